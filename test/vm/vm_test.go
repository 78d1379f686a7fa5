//go:build vm

package vm

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// guestFiles holds the static goiscsi binaries built once for every boot of this
// test process (see TestMain).
var guestFiles struct {
	once  sync.Once
	dir   string
	files map[string]string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestFiles.dir != "" {
		os.RemoveAll(guestFiles.dir)
	}
	os.Exit(code)
}

// buildGuestFiles builds the guest's goiscsi binaries into a directory of this
// process (removed by TestMain).
func buildGuestFiles(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := ModuleRoot(ctx)
	if err != nil {
		guestFiles.err = err
		return
	}
	if guestFiles.dir, err = os.MkdirTemp("", "goiscsi-vm-bin-"); err != nil {
		guestFiles.err = err
		return
	}
	guestFiles.files, guestFiles.err = BuildBinaries(ctx, root, guestFiles.dir, t.Logf)
}

// goiscsiBinaries builds the static binaries the guest runs (once per process)
// and returns the Files entries that put them in /usr/local/sbin.
func goiscsiBinaries(t testing.TB) map[string]string {
	t.Helper()
	guestFiles.once.Do(func() { buildGuestFiles(t) })
	if guestFiles.err != nil {
		t.Fatalf("building the guest's goiscsi binaries: %v", guestFiles.err)
	}
	return guestFiles.files
}

// guestBinaries returns the Files of a run: the goiscsi binaries, or none for a
// stock-only run when they do not build (logged; the goiscsi runs fail on it).
func guestBinaries(t testing.TB, scenario string, env map[string]string) map[string]string {
	t.Helper()
	if NeedsGoiscsi(scenario, env) {
		return goiscsiBinaries(t)
	}
	guestFiles.once.Do(func() { buildGuestFiles(t) })
	if guestFiles.err != nil {
		t.Logf("goiscsi binaries did not build; this stock-only run goes on without them: %v", guestFiles.err)
		return nil
	}
	return guestFiles.files
}

// boot runs one scenario with the guest's goiscsi binaries, logs its records and
// fails the test with the console's tail if it did not pass.
func boot(t testing.TB, scenario string, env map[string]string) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Scenario: scenario, Env: env, Files: guestBinaries(t, scenario, env), Logf: t.Logf})
	if res != nil {
		for _, r := range res.Records {
			t.Logf("record: %v", map[string]string(r))
		}
		t.Logf("accel %s, wall %v", res.Accel, res.Duration)
	}
	if err != nil {
		if res != nil {
			t.Logf("console tail:\n%s", res.ConsoleTail(80))
		}
		t.Fatalf("scenario %s: %v", scenario, err)
	}
	return res
}

// TestVMStockLogin runs the login scenario with stock open-iscsi 2.1.8: the
// reference every goiscsi scenario is compared with.
func TestVMStockLogin(t *testing.T) {
	res := boot(t, "login", map[string]string{"INITIATOR": "stock"})
	checkLogin(t, res)
}

// TestVMGoiscsiLogin runs the same scenario with goiscsid and goiscsiadm.
func TestVMGoiscsiLogin(t *testing.T) {
	res := boot(t, "login", map[string]string{"INITIATOR": "goiscsi"})
	checkLogin(t, res)
}

func checkLogin(t *testing.T, res *Result) {
	t.Helper()
	if r := res.First("dd"); r == nil || r["want"] == "" || r["got"] != r["want"] {
		t.Errorf("data written did not read back identical: %v", r)
	}
	if r := res.First("after_logout"); r == nil || r["sessions"] != "0" || r["dev_present"] != "no" {
		t.Errorf("after logout: %v", r)
	}
	if r := res.First("login_ready"); r != nil {
		t.Logf("login until block device: %s ms", r["ms"])
	}
	for _, r := range res.Find("cmd") {
		if r["name"] == "session_p3" && !strings.Contains(string(r.Bytes("stdout")), "Attached scsi disk") {
			t.Errorf("-m session -P 3 lists no disk:\n%s", r.Bytes("stdout"))
		}
	}
}

// TestVMDemo runs the README's demo with both initiators: every LUN with
// autoscan on and 16 MiB read back identical; with goiscsi also LUN 0 alone with
// node.session.autoscan_en = No, then exactly the LUN asked for.
func TestVMDemo(t *testing.T) {
	for _, tc := range []struct {
		initiator string
		want      map[string]string
	}{
		{"stock", map[string]string{"autoscan_on": "3"}},
		{"goiscsi", map[string]string{"autoscan_on": "3", "autoscan_off": "1", "scan_lun_2": "2"}},
	} {
		t.Run(tc.initiator, func(t *testing.T) {
			res := boot(t, "demo", map[string]string{"INITIATOR": tc.initiator})
			want := tc.want
			for _, r := range res.Find("devices") {
				if w, ok := want[r["phase"]]; ok {
					if r["count"] != w {
						t.Errorf("%s: %s devices (%s), want %s", r["phase"], r["count"], r["list"], w)
					}
					delete(want, r["phase"])
				}
			}
			if len(want) > 0 {
				t.Errorf("phases never reached: %v", want)
			}
			if d := res.First("dd"); d == nil || d["want"] == "" || d["got"] != d["want"] {
				t.Errorf("data did not read back identical: %v", d)
			}
		})
	}
}

// TestVMLUNAddedWhileLoggedIn is the seed's scenario: a LUN added on a live
// session. Stock never shows it; goiscsid scans for it under autoscan and
// leaves it alone with autoscan_en = No.
func TestVMLUNAddedWhileLoggedIn(t *testing.T) {
	for _, tc := range []struct {
		initiator, autoscan, appears string
	}{
		{"stock", "Yes", "no"},
		{"goiscsi", "Yes", "yes"},
		{"goiscsi", "No", "no"},
	} {
		t.Run(tc.initiator+"-autoscan-"+tc.autoscan, func(t *testing.T) {
			res := boot(t, "lunchange", map[string]string{"INITIATOR": tc.initiator, "AUTOSCAN": tc.autoscan})
			r := res.First("after_add")
			if r == nil || r["appeared"] != tc.appears {
				t.Errorf("new LUN appeared = %v, want %s", r, tc.appears)
			}
		})
	}
}

// TestVMDaemon runs the daemon's proof with both initiators in turn: CHAP and
// mutual CHAP against LIO, a wrong secret (exit 24), a target that fails mutual
// CHAP, a portal nobody listens on, 16 targets logged in with one command and
// data checked on each; and compares the session's sysfs attributes.
func TestVMDaemon(t *testing.T) {
	attrs := map[string]map[string]string{}
	for _, initiator := range []string{"stock", "goiscsi"} {
		t.Run(initiator, func(t *testing.T) {
			res := boot(t, "daemon", map[string]string{"INITIATOR": initiator})
			want := map[string]int{"chap_wrong": 24, "chap": 0, "mutual": 0, "mutual_wrong_target": 19, "attrs": 0, "many": 0}
			for _, r := range res.Find("login") {
				name := r["name"]
				if w, ok := want[name]; ok && r.Int("rc") != w {
					t.Errorf("login %s: exit %s, want %d; stderr %s", name, r["rc"], w, r.Bytes("stderr"))
				}
				if name == "dead" {
					if r.Int("rc") == 0 || r.Float("ms") > 30000 {
						t.Errorf("dead portal: exit %s after %s ms", r["rc"], r["ms"])
					}
					t.Logf("dead portal: exit %s after %s ms: %s", r["rc"], r["ms"], r.Bytes("stderr"))
				}
				if name == "many" {
					t.Logf("16 targets -L all: %s ms", r["ms"])
				}
			}
			if r := res.First("many"); r == nil || r["verified"] != r["targets"] {
				t.Errorf("targets with data verified: %v", r)
			}
			a := map[string]string{}
			for _, typ := range []string{"sysfs_session", "sysfs_conn"} {
				for _, r := range res.Find(typ) {
					a[r["name"]] = r["value"]
				}
			}
			attrs[initiator] = a
		})
	}
	// Ports and the statsn differ from session to session; everything else a
	// tool or udev reads must be what stock sets.
	for k, v := range attrs["stock"] {
		if k == "port" || k == "exp_statsn" {
			continue
		}
		if g := attrs["goiscsi"][k]; g != v {
			t.Errorf("sysfs %s: goiscsi %q, stock %q", k, g, v)
		}
	}
}

// TestVMRecovery drops the network for 8 s during a write, then kills the daemon
// and starts it again: no byte may be lost, and the new daemon must be able to log
// the session out.
func TestVMRecovery(t *testing.T) {
	for _, initiator := range []string{"stock", "goiscsi"} {
		t.Run(initiator, func(t *testing.T) {
			res := boot(t, "recovery", map[string]string{"INITIATOR": initiator})
			b := res.First("blip")
			if b == nil || b["dd_rc"] != "0" || b["got"] != b["want"] || b["state"] != "LOGGED_IN" {
				t.Errorf("after the blip: %v", b)
			} else {
				t.Logf("24 MiB written across an 8 s blip in %s ms, %s connection errors", b["ms"], b["errors"])
			}
			r := res.First("restart")
			if r == nil || r["io_rc"] != "0" || r["sessions"] != "1" || r["list_rc"] != "0" {
				t.Errorf("daemon restart: %v (%s)", r, r.Bytes("list"))
			}
			if l := res.First("after_restart_logout"); l == nil || l["rc"] != "0" || l["sessions"] != "0" {
				t.Errorf("logout by the restarted daemon: %v %s", l, l.Bytes("stderr"))
			} else {
				t.Logf("restarted daemon logged the session out after %s attempt(s), %s ms", l["attempts"], l["ms"])
			}
		})
	}
}

// TestVMScanPolicy records which LUNs a login brings under each setting, for stock
// and goiscsi: manual brings none (and the login still returns), autoscan_en = No
// brings LUN 0 alone with goiscsi (stock ignores the key).
func TestVMScanPolicy(t *testing.T) {
	want := map[string]map[string]string{
		"stock":   {"auto": "3", "manual": "0", "autoscan_off": "3"},
		"goiscsi": {"auto": "3", "manual": "0", "autoscan_off": "1"},
	}
	for _, initiator := range []string{"stock", "goiscsi"} {
		t.Run(initiator, func(t *testing.T) {
			res := boot(t, "scanpolicy", map[string]string{"INITIATOR": initiator})
			seen := 0
			for _, r := range res.Find("policy") {
				seen++
				if w := want[initiator][r["name"]]; r["rc"] != "0" || r["count"] != w {
					t.Errorf("%s: login exit %s, %s devices (%s), want %s", r["name"], r["rc"], r["count"], r["devices"], w)
				}
				t.Logf("%s: login %s ms, devices %s", r["name"], r["login_ms"], r["devices"])
			}
			if seen != 3 {
				t.Errorf("%d of 3 settings tried", seen)
			}
		})
	}
}

// TestVMAsyncEvent: a LUN added on the Go test target and announced with an
// Async Message (through the kernel's RECV_PDU) or a unit attention (through the
// SDEV_UA uevent). Stock 2.1.8 scans on the AEN; goiscsid scans on both under
// auto and on neither with autoscan_en = No.
func TestVMAsyncEvent(t *testing.T) {
	for _, tc := range []struct{ initiator, autoscan, ua, appears string }{
		{"stock", "Yes", "0", "yes"},
		{"goiscsi", "Yes", "0", "yes"},
		{"goiscsi", "No", "0", "no"},
		{"goiscsi", "Yes", "1", "yes"},
		{"goiscsi", "No", "1", "no"},
	} {
		name := tc.initiator + "-autoscan-" + tc.autoscan + map[string]string{"0": "-aen", "1": "-ua"}[tc.ua]
		t.Run(name, func(t *testing.T) {
			res := boot(t, "aen", map[string]string{"INITIATOR": tc.initiator, "AUTOSCAN": tc.autoscan, "UA": tc.ua})
			if r := res.First("after_event"); r == nil || r["appeared"] != tc.appears {
				t.Errorf("LUN 3 appeared = %v, want %s", r, tc.appears)
			}
			for _, d := range res.Find("dd") {
				if d["want"] == "" || d["got"] != d["want"] {
					t.Errorf("data on %s did not read back identical: %v", d["dev"], d)
				}
			}
		})
	}
}

// TestVMLoginStorm times stock and goiscsi in the same harness: 64 targets behind
// 50 ms of netem each way (N, DELAY and ROUNDS from GOISCSI_STORM_* to change it).
// The figures are logged for the issue notes; the test asserts only that every
// login, device and logout happened.
func TestVMLoginStorm(t *testing.T) {
	env := map[string]string{"N": "64", "DELAY": "50ms", "ROUNDS": "2"}
	for k := range env {
		if v := os.Getenv("GOISCSI_STORM_" + k); v != "" {
			env[k] = v
		}
	}
	for _, initiator := range []string{"stock", "goiscsi"} {
		t.Run(initiator, func(t *testing.T) {
			e := map[string]string{"INITIATOR": initiator}
			for k, v := range env {
				e[k] = v
			}
			res := boot(t, "storm", e)
			rounds := res.Find("storm")
			if len(rounds) == 0 {
				t.Fatal("no round finished")
			}
			for _, k := range []string{"single_ms", "login_all_ms", "devices_ms", "session_ms", "session_p3_ms", "logout_all_ms"} {
				var xs []float64
				for _, r := range rounds {
					xs = append(xs, r.Float(k))
				}
				lo, med := SortedFloats(xs)
				t.Logf("FIGURE %s %s: min %.0f median %.0f (%d rounds, %s targets, delay %s)", initiator, k, lo, med, len(xs), env["N"], env["DELAY"])
			}
			for _, r := range res.Find("rss") {
				t.Logf("FIGURE %s rss %s: %s kB", initiator, r["phase"], r["kb"])
			}
		})
	}
}

// TestVMSeedStaleDevice reproduces the seed's bug: LUN 1 detached on the host,
// still exported, then an AEN. Stock brings LUN 1 back as a stale device, as
// does goiscsi under auto (stock's behaviour, by choice); with autoscan_en = No
// it stays gone.
func TestVMSeedStaleDevice(t *testing.T) {
	for _, tc := range []struct{ initiator, autoscan, back string }{
		{"stock", "Yes", "yes"},
		{"goiscsi", "Yes", "yes"},
		{"goiscsi", "No", "no"},
	} {
		t.Run(tc.initiator+"-autoscan-"+tc.autoscan, func(t *testing.T) {
			res := boot(t, "seed", map[string]string{"INITIATOR": tc.initiator, "AUTOSCAN": tc.autoscan})
			r := res.First("after_aen")
			if r == nil || r["lun1_back"] != tc.back {
				t.Errorf("detached LUN 1 came back = %v, want %s", r, tc.back)
			} else {
				t.Logf("after the AEN: %s", r["list"])
			}
		})
	}
}

// TestVMConsumers runs os-brick's and csi-lib-iscsi's command sequences against
// both initiators: every step that succeeds with stock must succeed with goiscsi,
// with empty stderr where they check it, and the one LUN os-brick scans must be
// the only one attached under scan = manual.
func TestVMConsumers(t *testing.T) {
	steps := map[string]map[string]Record{}
	for _, initiator := range []string{"stock", "goiscsi"} {
		t.Run(initiator, func(t *testing.T) {
			res := boot(t, "consumers", map[string]string{"INITIATOR": initiator})
			steps[initiator] = map[string]Record{}
			for _, r := range res.Find("step") {
				steps[initiator][r["name"]] = r
			}
			if r := steps[initiator]["ob_scan_manual"]; r == nil || r["rc"] != "0" || len(r.Bytes("stderr")) != 0 {
				t.Errorf("os-brick's scan=manual update must succeed silently: %v %s", r, r.Bytes("stderr"))
			}
			a := res.First("attach")
			if a == nil || a["lun1"] == "" || a["lun0"] != "" || a["persistent_port"] != "3260" || a["targetname"] == "" {
				t.Errorf("attach: %v", a)
			}
		})
	}
	for name, s := range steps["stock"] {
		g := steps["goiscsi"][name]
		if g == nil {
			t.Errorf("%s: goiscsi never ran it", name)
			continue
		}
		if s["rc"] != g["rc"] {
			t.Errorf("%s: goiscsi exit %s, stock %s\ngoiscsi stderr: %s\nstock stderr: %s", name, g["rc"], s["rc"], g.Bytes("stderr"), s.Bytes("stderr"))
		}
	}
}

// update rewrites the stored captures (testdata/golden) from this run.
var update = flag.Bool("update", false, "rewrite testdata/golden from this run's stock captures")

// goldenText formats golden records as the captures under
// cmd/goiscsiadm/testdata/golden: "== iscsiadm LINE", then "OUT:" and "ERR:"
// lines, then "RC:N".
func goldenText(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "== iscsiadm %s\n", r["line"])
		for _, s := range []struct{ prefix, key string }{{"OUT:", "stdout"}, {"ERR:", "stderr"}} {
			out := string(r.Bytes(s.key))
			if out == "" {
				continue
			}
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				b.WriteString(s.prefix + l + "\n")
			}
		}
		fmt.Fprintf(&b, "RC:%s\n", r["rc"])
	}
	return b.String()
}

// goldenCases splits a capture into its cases: "== iscsiadm LINE" and the
// lines up to the next case, in order.
func goldenCases(text string) (heads []string, bodies map[string]string) {
	bodies = map[string]string{}
	head := ""
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "== ") {
			// A line run twice keeps both outcomes apart.
			head = strings.TrimSuffix(l, "\n")
			for n := 2; bodies[head] != ""; n++ {
				head = fmt.Sprintf("%s (#%d)", strings.TrimSuffix(l, "\n"), n)
			}
			heads = append(heads, head)
			bodies[head] = "\n"
			continue
		}
		bodies[head] += l
	}
	return heads, bodies
}

// TestVMGolden captures stock iscsiadm 2.1.8 with a live iscsid, LIO targets
// and kernel sessions (scenarios/golden.sh) and checks the capture equals
// testdata/golden/stock-vm.txt, which goiscsiadm's compatibility tests compare
// against; -update rewrites the file. A difference means stock or the harness
// is not deterministic, or the case list changed.
//
// GOISCSI_GOLDEN_INITIATOR=goiscsi runs the same lines with goiscsid and
// goiscsiadm instead and reports every case whose output or exit status
// differs from stock's.
func TestVMGolden(t *testing.T) {
	initiator := os.Getenv("GOISCSI_GOLDEN_INITIATOR")
	if initiator == "" {
		initiator = "stock"
	}
	if *update && initiator != "stock" {
		t.Fatal("-update rewrites stock's capture: unset GOISCSI_GOLDEN_INITIATOR")
	}
	res := boot(t, "golden", map[string]string{"INITIATOR": initiator})
	recs := res.Find("golden")
	if d := res.First("golden_done"); d == nil || d.Int("cases") != len(recs) || len(recs) < 40 {
		t.Fatalf("%d golden records, done record %v: want at least 40, all reported", len(recs), d)
	}
	got := goldenText(recs)
	file := filepath.Join("testdata", "golden", "stock-vm.txt")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d cases", file, len(recs))
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (regenerate with: go test -tags vm -run TestVMGolden -v ./test/vm/ -args -update)", err)
	}
	gh, gb := goldenCases(got)
	wh, wb := goldenCases(string(want))
	if strings.Join(gh, "\n") != strings.Join(wh, "\n") {
		t.Fatalf("the case list differs from %s: regenerate it with -update", file)
	}
	bad := 0
	for _, h := range wh {
		if gb[h] != wb[h] {
			bad++
			t.Errorf("%s\n--- %s:%s--- stock:%s", h, initiator, gb[h], wb[h])
		}
	}
	if bad > 0 {
		t.Logf("%d of %d cases differ from stock", bad, len(wh))
	}
}
