//go:build vm

package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bootTarget is the IQN of the Debian guest's boot-time LIO target.
const bootTarget = "iqn.2026-11.dev.goiscsi:boot"

// debianRun is one test's Debian disk with goiscsi's package, booted stage by
// stage.
type debianRun struct {
	t        *testing.T
	scenario string
	disk     string
	deb      string
}

func newDebianRun(t *testing.T, scenario string, image DebianImage) *debianRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	deb, err := BuildDeb(ctx, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := NewDebianDisk(ctx, dir, image, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("package and Debian disk ready in %v", time.Since(start).Round(time.Millisecond))
	return &debianRun{t: t, scenario: scenario, disk: disk, deb: deb}
}

// boot runs one stage and checks what every stage must show: a boot without
// failed units, and a clean shutdown in which the initiator logged out before
// the target stopped.
func (d *debianRun) boot(stage int) *Result {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Scenario: d.scenario, Disk: d.disk, Timeout: 8 * time.Minute,
		Env:   map[string]string{"STAGE": strconv.Itoa(stage), "BOOT_TARGET": bootTarget},
		Files: map[string]string{DebianOfflineDir + "/goiscsi.deb": d.deb}, Logf: t.Logf})
	if res != nil {
		for _, r := range res.Records {
			t.Logf("stage %d record: %v", stage, map[string]string(r))
		}
		t.Logf("stage %d: accel %s, systemd up after %.1f s, wall %v", stage, res.Accel, res.Boot, res.Duration.Round(time.Millisecond))
	}
	if err != nil {
		if res != nil {
			t.Logf("console tail:\n%s", res.ConsoleTail(80))
		}
		t.Fatalf("%s stage %d: %v", d.scenario, stage, err)
	}
	if b := res.First("boot"); b["system"] != "running" {
		t.Errorf("stage %d: system %q after boot, failed units: %q", stage, b["system"], b["failed_units"])
	}
	// target_stop comes from boot-target's stop, after the exit record.
	var afterExit Record
	for i, r := range res.Records {
		if r.Type() == "exit" {
			for _, r2 := range res.Records[i:] {
				if r2.Type() == "target_stop" {
					afterExit = r2
				}
			}
		}
	}
	if afterExit == nil || afterExit["sessions"] != "0" {
		t.Errorf("stage %d: at the target's stop in the shutdown: %v; want 0 sessions (the initiator logs out first)", stage, afterExit)
	}
	return res
}

// record returns the scenario's record of type typ, failing the test without it.
func record(t *testing.T, res *Result, typ string) Record {
	t.Helper()
	r := res.First(typ)
	if r == nil {
		t.Fatalf("no %q record", typ)
	}
	return r
}

// expect fails the test for each key of r whose value differs from want's.
// expect checks r's values against want, reporting whether all matched.
func expect(t *testing.T, what string, r Record, want map[string]string) bool {
	t.Helper()
	ok := true
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, r[k], v)
			ok = false
		}
	}
	return ok
}

// logFile logs a file the scenario sent (emit_file), to show why a check
// failed.
func logFile(t *testing.T, res *Result, name string) {
	t.Helper()
	for _, r := range res.Find("file") {
		if r["name"] != name {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.Bytes("gz")))
		if err != nil {
			t.Logf("%s: %v", name, err)
			return
		}
		b, err := io.ReadAll(zr)
		t.Logf("%s (%v):\n%s", name, err, b)
		return
	}
	t.Logf("%s: not sent", name)
}

// unitStates parses the switch scenario's "unit=enabled/active ..." lists.
func unitStates(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(s) {
		if u, st, ok := strings.Cut(f, "="); ok {
			out[u] = st
		}
	}
	return out
}

// expectUnits fails the test for each unit whose "enabled/active" state
// differs; "*" in want matches any part.
func expectUnits(t *testing.T, what, got string, want map[string]string) {
	t.Helper()
	states := unitStates(got)
	for u, w := range want {
		ge, ga, _ := strings.Cut(states[u], "/")
		we, wa, _ := strings.Cut(w, "/")
		if (we != "*" && ge != we) || (wa != "*" && ga != wa) {
			t.Errorf("%s: %s is %q, want %q (all: %s)", what, u, states[u], w, got)
		}
	}
}

var goiscsiName = regexp.MustCompile(`^iqn\.2004-10\.com\.goiscsi:[0-9a-f]{12}$`)

// TestVMSystemdInstall installs goiscsi's Debian package on a systemd-booted
// Debian without open-iscsi and proves the units: readiness, boot-time login
// with real udev, a restart under I/O, socket activation, logout at shutdown.
func TestVMSystemdInstall(t *testing.T) {
	d := newDebianRun(t, "systemd-install", DebianPlain)

	res := d.boot(1)
	inst := record(t, res, "installed")
	if !goiscsiName.MatchString(inst["name"]) {
		t.Errorf("initiator name %q is not goiscsi-iname's", inst["name"])
	}
	expect(t, "after dpkg -i", inst, map[string]string{"name_mode": "600", "conf_mode": "600", "socket": "active",
		"socket_enabled": "enabled", "boot_unit_enabled": "enabled", "daemon": "inactive"})
	started := record(t, res, "started")
	expect(t, "systemctl start goiscsid", started, map[string]string{"active": "active",
		"status": "Ready to process requests", "iscsi_tcp": "1"})
	t.Logf("systemctl start goiscsid returned after %s ms", started["ms"])
	expect(t, "node", record(t, res, "node"), map[string]string{"startup": "automatic", "sessions": "0"})

	res = d.boot(2)
	login := record(t, res, "boot_login")
	expect(t, "after the reboot", login, map[string]string{"sessions": "1", "boot_unit": "active", "daemon": "active"})
	if !strings.HasPrefix(login["dev"], "/dev/sd") {
		t.Errorf("by-path link points at %q", login["dev"])
	}
	rs := record(t, res, "restart")
	expect(t, "restart during a write", rs, map[string]string{"dd_running": "yes", "dd_rc": "0", "active": "active", "session_rc": "0"})
	if at, all := atoi(rs["rounds_at_restart"]), atoi(rs["rounds"]); at < 1 || all <= at {
		t.Errorf("restart during a write: %d writes began by the restart's end and %d in all: want one under way and one after", at, all)
	}
	if rs["want"] == "" || rs["got"] != rs["want"] {
		t.Errorf("data written across the restart read back as %s, wrote %s", rs["got"], rs["want"])
	}
	if rs["pid_before"] == rs["pid_after"] || rs["pid_after"] == "0" {
		t.Errorf("goiscsid pid %s before the restart, %s after", rs["pid_before"], rs["pid_after"])
	}
	if n, _ := strconv.Atoi(rs["took_over"]); n < 1 {
		t.Errorf("the restarted goiscsid did not log that it took the session over")
	}
	if out := string(rs.Bytes("session")); !strings.Contains(out, "127.0.0.1:3260,1 "+bootTarget) {
		t.Errorf("goiscsiadm -m session after the restart:\n%s", out)
	}
	act := record(t, res, "activation")
	expect(t, "socket activation", act, map[string]string{"before": "inactive", "after": "active", "socket": "active",
		"rc": "0", "sessions": "1"})
	if out := string(act.Bytes("out")); !strings.Contains(out, bootTarget) {
		t.Errorf("goiscsiadm -m session through socket activation:\n%s", out)
	}
	up := record(t, res, "upgrade")
	expect(t, "upgrade", up, map[string]string{"sid_after": up["sid_before"], "daemon": "active", "boot_unit": "active",
		"dev": login["dev"], "got": rs["want"]})
	if up["pid_before"] == up["pid_after"] {
		t.Errorf("the upgrade did not restart goiscsid (pid %s)", up["pid_after"])
	}
}

// TestVMSystemdSwitchover goes from open-iscsi to goiscsi and back on one
// Debian host: stock's node record, initiator name, session and data carry
// over both ways, and each side logs in at boot and out at shutdown.
func TestVMSystemdSwitchover(t *testing.T) {
	d := newDebianRun(t, "systemd-switch", DebianOpenISCSI)

	res := d.boot(1)
	stock := record(t, res, "stock")
	name, want, sid := stock["name"], stock["want"], stock["sid"]
	if !strings.HasPrefix(name, "iqn.1993-08.org.debian:01:") || want == "" || sid == "" {
		t.Fatalf("stock open-iscsi: %v", stock)
	}
	tk := record(t, res, "takeover")
	// The same session (no new login), taken over by goiscsid.
	expect(t, "after dpkg -i goiscsi", tk, map[string]string{"name": name, "sid": sid, "sessions": "1", "got": want,
		"node_rc": "0", "startup": "automatic", "session_rc": "0", "stock_units": "disabled iscsid.socket disabled open-iscsi.service masked iscsid.service "})
	expectUnits(t, "after dpkg -i goiscsi", tk["units"], map[string]string{
		"iscsid.socket": "disabled/inactive", "iscsid.service": "masked/inactive", "open-iscsi.service": "disabled/*",
		"goiscsid.socket": "enabled/active", "goiscsid.service": "*/active", "goiscsi.service": "enabled/active"})
	if n, _ := strconv.Atoi(tk["took_over"]); n < 1 {
		t.Errorf("goiscsid did not log that it took stock's session over")
	}

	res = d.boot(2)
	gb := record(t, res, "goiscsi_boot")
	expect(t, "boot with goiscsi", gb, map[string]string{"name": name, "sessions": "1", "got": want})
	expectUnits(t, "boot with goiscsi", gb["units"], map[string]string{
		"iscsid.service": "masked/inactive", "open-iscsi.service": "disabled/inactive",
		"goiscsid.service": "*/active", "goiscsi.service": "enabled/active"})
	// iscsiadm at every path is goiscsiadm, for os-brick, libvirt and the rest.
	paths := record(t, res, "paths")
	expect(t, "iscsiadm's paths with goiscsi", paths, map[string]string{"sbin": "/usr/sbin/goiscsiadm",
		"usr_sbin": "/usr/sbin/goiscsiadm", "usr_bin": "/usr/sbin/goiscsiadm", "path": "/usr/sbin/goiscsiadm",
		"manual_scan": "yes", "diversions": "2"})
	// Debian's os-brick and libvirt, unmodified, attach and detach.
	oa := record(t, res, "osbrick_attached")
	// os-brick returns the disk's node (/dev/sdX), found through its
	// by-path link.
	if !strings.HasPrefix(oa["path"], "/dev/sd") || !strings.Contains(oa["devices"], ":1 ") ||
		strings.Contains(oa["devices"], ":0 ") {
		t.Errorf("os-brick's attach: %v (want exactly LUN 1)", oa)
	}
	if !expect(t, "os-brick's detach", record(t, res, "osbrick_detached"), map[string]string{"path_left": "no", "session": ""}) {
		logFile(t, res, "osbrick-disconnect.log")
	}
	ls := record(t, res, "libvirt_started")
	if ls["vols"] != "2" || ls["sid"] == "" || !strings.HasSuffix(ls["path"], "-lun-1") {
		t.Errorf("libvirt's pool: %v (want its two LUNs)", ls)
	}
	expect(t, "libvirt's pool-destroy", record(t, res, "libvirt_stopped"), map[string]string{"session": ""})
	var dds int
	for _, r := range res.Find("dd") {
		dds++
		if r["want"] == "" || r["got"] != r["want"] || r["target"] != r["want"] {
			t.Errorf("data written through a consumer's device did not read back identical: %v", r)
		}
	}
	if dds != 2 {
		t.Errorf("%d data checks, want os-brick's and libvirt's", dds)
	}
	// goiscsi removed: stock's iscsiadm, and every record goiscsi wrote.
	back := record(t, res, "stock_back")
	expect(t, "after dpkg -r goiscsi", back, map[string]string{"sbin": "/usr/sbin/iscsiadm", "usr_bin": "/usr/sbin/iscsiadm",
		"nodes_rc": "0", "logged_in": "2", "diversions": "0"})
	for _, tgt := range []string{"-osbrick", "-libvirt", ""} {
		if !strings.Contains(string(back.Bytes("nodes")), bootTarget+tgt+"\n") {
			t.Errorf("stock iscsiadm -m node does not list %s:\n%s", bootTarget+tgt, back.Bytes("nodes"))
		}
	}
	sb := record(t, res, "switch_back")
	expect(t, "after dpkg -r goiscsi", sb, map[string]string{"name": name, "sessions": "1", "got": want,
		"session_rc": "0", "goiscsid_program": "none", "startup": "automatic"})
	expectUnits(t, "after dpkg -r goiscsi", sb["units"], map[string]string{
		"iscsid.socket": "enabled/active", "iscsid.service": "*/active", "open-iscsi.service": "enabled/active",
		"goiscsid.service": "*/inactive"})

	res = d.boot(3)
	sbt := record(t, res, "stock_boot")
	expect(t, "boot with stock again", sbt, map[string]string{"name": name, "sessions": "1", "got": want, "session_rc": "0"})
	expectUnits(t, "boot with stock again", sbt["units"], map[string]string{
		"iscsid.service": "*/active", "open-iscsi.service": "enabled/active", "goiscsid.service": "*/inactive"})
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
