//go:build vm

package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/test/target"
)

// rootTarget is the IQN of the target the iSCSI-rooted guest boots from, with
// the CHAP credentials it asks for: goiscsid has them from the kernel only
// (no record), for its relogin after the drop.
const (
	rootTarget     = "iqn.2026-12.dev.goiscsi:root"
	rootCHAPUser   = "rootuser"
	rootCHAPSecret = "root-secret-21"
)

// lockedBuffer is a bytes.Buffer the target's logger writes to while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// events returns the target's log records with the given message.
func (l *lockedBuffer) events(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestVMRootOnISCSI boots a Debian host whose root file system is an iSCSI LUN
// (issue 21): the root image is served by test/target from the host, reached
// over qemu's user network; the guest has no disk. The host runs open-iscsi
// (with os-brick and libvirt) and switches to goiscsi; the target asks for
// CHAP: initramfs-tools and
// goiscsi's package are installed, /etc/iscsi/iscsi.initramfs names the
// target, and update-initramfs built the initramfs through both packages'
// hooks: so the boot itself proves goiscsi's hook and goiscsistart (no root
// otherwise), and that open-iscsi's script did not log in a second time. The
// scenario (rootiscsi) checks goiscsid's takeover, a connection drop during
// writes to the root, and -U all; the test checks what the target saw (one
// login at boot, one relogin after the drop, never a logout, to the end of the
// shutdown) and that the root file system was left clean.
func TestVMRootOnISCSI(t *testing.T) {
	start := time.Now()
	d := newDebianRun(t, "rootiscsi", DebianOpenISCSI)
	disk := d.disk
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// The target first: iscsi.initramfs names its port. It reads and writes
	// the image file only when the guest boots, after the root is made (and
	// unmounted).
	var tlog lockedBuffer
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{
		Name:         rootTarget,
		PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs:         []target.LUNConfig{{Number: 0, File: disk}},
		Auth:         target.AuthConfig{Method: "CHAP", Username: rootCHAPUser, Secret: rootCHAPSecret},
	}}}, slog.New(slog.NewJSONHandler(&tlog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	portals, err := srv.Portals(rootTarget)
	if err != nil {
		t.Fatal(err)
	}
	// qemu's user network: the guest reaches the host's 127.0.0.1 at 10.0.2.2.
	port := portals[0].Port
	portal := fmt.Sprintf("10.0.2.2:%d", port)
	initrd, err := InstallISCSIRoot(ctx, ISCSIRoot{
		Disk: disk, Deb: d.deb, Target: rootTarget, Address: "10.0.2.2", Port: port,
		Username: rootCHAPUser, Password: rootCHAPSecret,
		Run: Config{Scenario: "rootiscsi", Env: map[string]string{"ROOT_TARGET": rootTarget, "ROOT_PORTAL": portal}},
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iSCSI root and its initramfs ready in %v", time.Since(start).Round(time.Millisecond))

	res, err := Run(ctx, Config{Scenario: "rootiscsi", Initrd: initrd, Append: ISCSIRootAppend, Timeout: 12 * time.Minute,
		QemuArgs: []string{"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="}, Logf: t.Logf})
	if res != nil {
		for _, r := range res.Records {
			if r.Type() != "cmd" {
				t.Logf("record: %v", map[string]string(r))
			}
		}
	}
	if err != nil {
		if res != nil {
			t.Logf("console tail:\n%s", res.ConsoleTail(120))
			for _, name := range []string{"session", "goiscsid_journal", "recovery_journal"} {
				if c := res.Cmd(name); c != nil {
					t.Logf("%s (rc %s):\n%s%s", name, c["rc"], c.Bytes("stdout"), c.Bytes("stderr"))
				}
			}
		}
		t.Fatal(err)
	}
	t.Logf("boot: systemd up after %.1f s, wall %v", res.Boot, res.Duration.Round(time.Millisecond))
	// The initramfs logged in with goiscsistart (its lines on the console).
	for _, want := range []string{
		fmt.Sprintf("iscsistart: Logging into %s %s,1", rootTarget, portal),
		fmt.Sprintf("Connection1:0 to [target: %s, portal: %s] through [iface: default] is operational now", rootTarget, strings.Replace(portal, ":", ",", 1)),
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console has no %q: goiscsistart did not log in from the initramfs", want)
		}
	}
	if b := res.First("boot"); b["system"] != "running" {
		t.Errorf("system %q after boot, failed units: %q", b["system"], b["failed_units"])
	}
	expect(t, "root", record(t, res, "root"), map[string]string{"sid": "1", "target": rootTarget, "address": "10.0.2.2", "sessions": "session1 "})
	expect(t, "drop", record(t, res, "drop"), map[string]string{"writer_rc": "0", "io_errors": "0", "state": "LOGGED_IN", "sessions": "session1 "})
	if d := res.First("drop"); d["got"] != d["want"] {
		t.Errorf("the file written across the drop reads back %s, wrote %s", d["got"], d["want"])
	}
	for name, rc := range map[string]string{"node_new": "0", "node_auto": "0", "logout_all": "21", "logout_automatic": "21",
		"logout_nodes": "21", "logout_sessions": "21"} {
		c := res.Cmd(name)
		if c == nil || c["rc"] != rc {
			t.Errorf("%s: %v, want exit %s", name, c, rc)
		}
	}
	if c := res.Cmd("logout_all"); c != nil && !strings.Contains(string(c.Bytes("stderr")), "No matching sessions found") {
		t.Errorf("-U all: stderr %q, want stock's \"No matching sessions found\"", c.Bytes("stderr"))
	}
	if c := res.Cmd("session_after"); c == nil || !strings.Contains(string(c.Bytes("stdout")), "tcp: [1] "+portal+",1 "+rootTarget) {
		t.Errorf("-m session after -U all: %q, want session 1 to %s", c.Bytes("stdout"), rootTarget)
	}
	// The CHAP secret is in iscsi.initramfs (mode 0600) and the kernel only:
	// neither goiscsistart nor goiscsid prints it.
	logs := res.Console
	for _, name := range []string{"goiscsid_journal", "recovery_journal"} {
		if c := res.Cmd(name); c != nil {
			logs += string(c.Bytes("stdout")) + string(c.Bytes("stderr"))
		}
	}
	if strings.Contains(logs, rootCHAPSecret) {
		t.Errorf("the CHAP secret is on the console or in goiscsid's journal")
	}
	// What the target saw, the shutdown included: goiscsistart's login and
	// goiscsid's relogin after the drop (no login when goiscsid took the
	// session over), and no logout ever: the root's session was kept until
	// the guest powered off.
	if !strings.Contains(res.ConsoleTail(5), "reboot: Power down") {
		t.Errorf("the guest did not power off cleanly; console tail:\n%s", res.ConsoleTail(20))
	}
	var normal int
	for _, e := range tlog.events("login complete") {
		if e["discovery"] == false {
			normal++
		}
	}
	if normal != 2 {
		t.Errorf("the target saw %d logins of normal sessions, want 2 (goiscsistart's, the relogin after the drop)", normal)
	}
	if lo := tlog.events("logout"); len(lo) != 0 {
		t.Errorf("the target saw %d logouts, want none (the root's session is kept to the end): %v", len(lo), lo)
	}
	srv.Close()
	// e2fsck -n: the root was remounted read-only at the end of the shutdown,
	// so its journal is empty and the file system clean.
	if out, err := exec.CommandContext(ctx, "e2fsck", "-n", "-f", disk).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -n of the root after the shutdown: %v\n%s", err, out)
	}
}
