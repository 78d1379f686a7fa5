//go:build vm

package vm

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchDefaults are TestVMBench's quick run (CI): every step of the full run, with
// fewer targets and rounds. `make bench-vm` runs the full one (64 targets, 3
// rounds, 128 LUNs, 256, 1024 and 4x64 sessions); GOISCSI_BENCH_N, _ROUNDS, _LISTINGS, _DELAY,
// _MANY_LUNS, _BIG, _PROFILE and _TRACE change each value.
var benchDefaults = map[string]string{"N": "16", "ROUNDS": "1", "LISTINGS": "5", "DELAY": "50ms", "MANY_LUNS": "8", "BIG": "32", "PROFILE": "", "TRACE": ""}

// benchMetrics are the figures of the bench scenario's "bench" records (one per
// round) and "listing" records (LISTINGS per round), in the table's order; bound
// names the lower bound a figure is compared with ("in", "out" or none).
var benchMetrics = []struct{ record, key, name, bound string }{
	{"bench", "single_ms", "one login until its block device exists (ms)", ""},
	{"bench", "single_adm_ms", "one login, iscsiadm's own time (ms)", ""},
	{"bench", "login_all_ms", "`-m node -L all` (ms)", "in"},
	{"bench", "devices_ms", "`-L all` until every block device exists (ms)", "in"},
	{"listing", "session_ms", "`-m session` (ms)", ""},
	{"listing", "session_p3_ms", "`-m session -P 3` (ms)", ""},
	{"bench", "logout_all_ms", "`-m node -U all` (ms)", "out"},
	{"bench", "rss_idle_kb", "daemon RSS idle (kB)", ""},
	{"bench", "rss_sessions_kb", "daemon RSS with the sessions (kB)", ""},
	{"bench", "login_all_daemon_cpu_ms", "daemon CPU over -L all (ms)", ""},
	{"bench", "login_all_daemon_sys_ms", "… of which in the kernel (ms)", ""},
	{"bench", "login_all_busy_ms", "guest CPU busy over -L all (ms)", ""},
	{"bench", "logout_all_daemon_cpu_ms", "daemon CPU over -U all (ms)", ""},
	{"bench", "logout_all_daemon_sys_ms", "… of which in the kernel (ms)", ""},
	{"bench", "logout_all_busy_ms", "guest CPU busy over -U all (ms)", ""},
}

// TestVMBench runs the bench scenario: stock open-iscsi and goiscsi side by side
// in one boot (login storm, single login, listings, logout storm, footprint), then
// goiscsi's autoscan_en = No login against one LUN and many, and BIG targets in and
// out. It fails when any step fails (every login, device and logout must happen);
// the figures are logged as a table (min / median / max per initiator and the
// ratio of the medians), written to GOISCSI_BENCH_OUT when set. The files the
// scenario sends back (goiscsid's log; with PROFILE its profiles, with TRACE the
// kernel's traces) go to
// GOISCSI_BENCH_FILES when set.
func TestVMBench(t *testing.T) {
	env := map[string]string{}
	for k, v := range benchDefaults {
		env[k] = v
		if e, ok := os.LookupEnv("GOISCSI_BENCH_" + k); ok {
			env[k] = e
		}
	}
	res := bootConfig(t, Config{Scenario: "bench", Env: env, MemoryMB: 2048, Timeout: 90 * time.Minute})
	if dir := os.Getenv("GOISCSI_BENCH_FILES"); dir != "" {
		if err := res.SaveFiles(dir, func(p string) { t.Logf("wrote %s", p) }); err != nil {
			t.Fatal(err)
		}
	}
	table, err := benchTable(res, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table)
	if out := os.Getenv("GOISCSI_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// spread returns the minimum, median and maximum of xs (NaN when empty).
func spread(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

// bounds are the lower bounds of the storms, from one uncontended session's
// times in the same boot (ms): the kernel takes iSCSI netlink requests one at a
// time (scsi_transport_iscsi's rx_queue_mutex) and does their work in the
// caller's context, so n logins cannot end before the first connect, n logins'
// requests and the last one's scan, and n logouts not before n logouts'
// requests, whichever initiator sends them.
type bounds struct{ in, out, connect, scan float64 }

// of returns the bound of kind "in" or "out" for n sessions, 0 for others or
// when unknown.
func (bd bounds) of(kind string, n float64) float64 {
	switch {
	case bd.in <= 0:
		return 0
	case kind == "in":
		return bd.connect + n*bd.in + bd.scan
	case kind == "out":
		return n * bd.out
	}
	return 0
}

// benchTable formats the bench scenario's records as a markdown table.
func benchTable(res *Result, env map[string]string) (string, error) {
	// by[record][initiator] are the records of that kind and initiator.
	by := map[string]map[string][]Record{}
	for _, kind := range []string{"bench", "listing"} {
		by[kind] = map[string][]Record{}
		for _, r := range res.Find(kind) {
			by[kind][r["initiator"]] = append(by[kind][r["initiator"]], r)
		}
		if len(by[kind]["stock"]) == 0 || len(by[kind]["goiscsi"]) == 0 {
			return "", fmt.Errorf("bench: %s records of stock %d, of goiscsi %d: want both", kind, len(by[kind]["stock"]), len(by[kind]["goiscsi"]))
		}
	}
	col := func(recs []Record, k string) (string, float64) {
		var xs []float64
		for _, r := range recs {
			if v := r.Float(k); v >= 0 {
				xs = append(xs, v)
			}
		}
		lo, med, hi := spread(xs)
		return fmt.Sprintf("%.0f / %.0f / %.0f", lo, med, hi), med
	}
	n, _ := strconv.ParseFloat(env["N"], 64)
	var bd bounds
	kernel := res.Find("kernel")
	if len(kernel) > 0 {
		_, bd.in = col(kernel, "login_ms")
		_, bd.out = col(kernel, "logout_ms")
		_, bd.connect = col(kernel, "connect_ms")
		_, bd.scan = col(kernel, "scan_ms")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s targets, netem %s each way, %d rounds each in one boot, each listing %s times a round (%s, kernel %s)\n\n",
		env["N"], env["DELAY"], len(by["bench"]["goiscsi"]), env["LISTINGS"], res.Accel, res.First("boot")["kver"])
	b.WriteString("| metric | stock min / median / max | goiscsi min / median / max | stock ÷ goiscsi (medians) | ÷ bound, stock / goiscsi |\n|---|---|---|---|---|\n")
	for _, m := range benchMetrics {
		s, sm := col(by[m.record]["stock"], m.key)
		g, gm := col(by[m.record]["goiscsi"], m.key)
		ratio := ""
		if bound := bd.of(m.bound, n); bound > 0 {
			ratio = fmt.Sprintf("%.2f / %.2f", sm/bound, gm/bound)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f× | %s |\n", m.name, s, g, sm/gm, ratio)
	}
	if len(kernel) > 0 {
		in, _ := col(kernel, "login_ms")
		out, _ := col(kernel, "logout_ms")
		c, _ := col(kernel, "connect_ms")
		sc, _ := col(kernel, "scan_ms")
		fmt.Fprintf(&b, "\nThe bound, from one uncontended session in the same boot (goiscsid's log): the kernel's netlink requests take %s ms"+
			" for a login and %s ms for a logout, one at a time for every initiator; a login's connect takes %s ms and its scan %s ms."+
			" So %.0f sessions need at least %.0f ms in (connect + %.0f × login + scan) and %.0f ms out (%.0f × logout).\n",
			in, out, c, sc, n, bd.of("in", n), n, bd.of("out", n), n)
	}
	if a := res.Find("autoscan"); len(a) > 0 {
		var few, many []Record
		for _, r := range a {
			if r["target"] == "many" {
				many = append(many, r)
			} else {
				few = append(few, r)
			}
		}
		f, fm := col(few, "ms")
		m, mm := col(many, "ms")
		fmt.Fprintf(&b, "\ngoiscsi, node.session.autoscan_en = No, login until LUN 0's block device: 1 LUN %s ms, %s LUNs %s ms (%+.0f%%).\n",
			f, env["MANY_LUNS"], m, 100*(mm-fm)/fm)
	}
	if big := res.Find("big"); len(big) > 0 {
		b.WriteString("\ngoiscsi, every session at once (one round each; ÷ bound as above):\n\n" +
			"| sessions | `-L all` (ms) | every block device (ms) | `-U all` (ms) | `-m session` (ms) | `-P 3` (ms) | daemon RSS (kB) | daemon CPU in / out (ms) | … of which in the kernel | guest CPU busy in / out (% of its vCPUs) | `-L all` per session (ms) |\n" +
			"|---|---|---|---|---|---|---|---|---|---|---|\n")
		_, l := col(by["bench"]["goiscsi"], "login_all_ms")
		_, d := col(by["bench"]["goiscsi"], "devices_ms")
		_, u := col(by["bench"]["goiscsi"], "logout_all_ms")
		_, ls := col(by["listing"]["goiscsi"], "session_ms")
		_, l3 := col(by["listing"]["goiscsi"], "session_p3_ms")
		_, kb := col(by["bench"]["goiscsi"], "rss_sessions_kb")
		_, ci := col(by["bench"]["goiscsi"], "login_all_daemon_cpu_ms")
		_, co := col(by["bench"]["goiscsi"], "logout_all_daemon_cpu_ms")
		_, si := col(by["bench"]["goiscsi"], "login_all_daemon_sys_ms")
		_, so := col(by["bench"]["goiscsi"], "logout_all_daemon_sys_ms")
		_, bi := col(by["bench"]["goiscsi"], "login_all_busy_ms")
		_, bo := col(by["bench"]["goiscsi"], "logout_all_busy_ms")
		// The guest's busy CPU over a step against all its vCPUs' time:
		// near 100% the VM's CPU, not the kernel's netlink lock, is what
		// bounds the step.
		vcpus := res.First("boot").Float("cpus")
		row := func(label string, sessions, l, d, u, ls, l3, kb, ci, co, si, so, bi, bo float64) {
			fmt.Fprintf(&b, "| %s | %.0f (%.2f) | %.0f (%.2f) | %.0f (%.2f) | %.0f | %.0f | %.0f | %.0f / %.0f | %.0f / %.0f | %.0f%% / %.0f%% | %.1f |\n",
				label, l, l/bd.of("in", sessions), d, d/bd.of("in", sessions), u, u/bd.of("out", sessions), ls, l3, kb, ci, co, si, so,
				100*bi/(vcpus*l), 100*bo/(vcpus*u), l/sessions)
		}
		row(env["N"]+" (medians above)", n, l, d, u, ls, l3, kb, ci, co, si, so, bi, bo)
		for _, r := range big {
			label := r["sessions"]
			if r["portals"] != "1" {
				label = fmt.Sprintf("%s (%s portals × %s targets)", r["sessions"], r["portals"], r["targets"])
			}
			row(label, r.Float("sessions"), r.Float("login_all_ms"), r.Float("devices_ms"), r.Float("logout_all_ms"),
				r.Float("session_ms"), r.Float("p3_ms"), r.Float("rss_kb"), r.Float("login_all_daemon_cpu_ms"), r.Float("logout_all_daemon_cpu_ms"),
				r.Float("login_all_daemon_sys_ms"), r.Float("logout_all_daemon_sys_ms"), r.Float("login_all_busy_ms"), r.Float("logout_all_busy_ms"))
		}
	}
	return b.String(), nil
}
