package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
)

// qemuSysfs is the iBFT of TestVMFirmware's guest as its kernel showed it in
// sysfs (test/vm writes it with -update), with the NIC's interface.
var qemuSysfs = filepath.Join("..", "..", "ibft", "testdata", "qemu")

// TestFirmwareAgainstStock replays the lines of stock 2.1.8's capture in
// TestVMFirmware's guest (testdata/golden/stock-fw.txt) that need no daemon,
// over the same boot table, and compares stdout, stderr and the exit status.
// The one deliberate difference: goiscsi's records have
// node.session.autoscan_en.
func TestFirmwareAgainstStock(t *testing.T) {
	root := t.TempDir()
	// The two keys of Debian's iscsid.conf in the guest that differ from
	// stock's built-in defaults and show in the node records.
	conf := "node.session.initial_login_retry_max = 8\nnode.conn[0].timeo.login_timeout = 15\n"
	if err := os.WriteFile(filepath.Join(root, "iscsid.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", qemuSysfs)
	t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	cases := readStockSequence(t, "stock-fw.txt")
	replayed := 0
	for _, c := range cases {
		switch c.args {
		case "-m fw -l", "-m session", "-m node -U all":
			continue // these need the daemon and the session: TestVMFirmware
		}
		replayed++
		x := adm(t, strings.Fields(c.args)...)
		gotOut := without(lines(x.Stdout), func(l string) bool { return strings.HasPrefix(l, "node.session.autoscan_en = ") })
		wantErr := append([]string(nil), c.stderr...)
		for i := range wantErr {
			wantErr[i] = strings.ReplaceAll(wantErr[i], "/etc/iscsi", root)
		}
		if int(x.Code) != c.code {
			t.Errorf("iscsiadm %s: exit %d, stock %d", c.args, x.Code, c.code)
		}
		if !sameLines(gotOut, c.stdout, false) {
			t.Errorf("iscsiadm %s: stdout\n%s\nstock:\n%s", c.args, strings.Join(gotOut, "\n"), strings.Join(c.stdout, "\n"))
		}
		if !sameLines(lines(x.Stderr), wantErr, false) {
			t.Errorf("iscsiadm %s: stderr\n%s\nstock:\n%s", c.args, x.Stderr, strings.Join(wantErr, "\n"))
		}
	}
	if replayed < 8 {
		t.Fatalf("replayed %d of %d captured lines, want at least 8", replayed, len(cases))
	}
}

// TestFirmwareLogin is -m fw -l through the daemon: the login carries the
// table's target, portal and initiator name with stock's firmware login
// defaults (30 login retries, no NOP-Outs, scan auto) and -n/-v on top; an
// override of the iface's network settings is stock's refusal, exit 7.
func TestFirmwareLogin(t *testing.T) {
	d, _ := setup(t)
	t.Setenv("GOISCSI_SYSFS", qemuSysfs)
	x := adm(t, "-m", "fw", "-l", "-n", "node.session.timeo.replacement_timeout", "-v", "300")
	portal := "[iface: default, target: iqn.2003-01.org.example:fwboot, portal: 10.0.2.15,3260]"
	if want := "Logging in to " + portal + "\nLogin to " + portal + " successful.\n"; x.Code != 0 || x.Stdout != want {
		t.Fatalf("-m fw -l: exit %d, stdout %q, stderr %q; want 0 and %q", x.Code, x.Stdout, x.Stderr, want)
	}
	rec := d.last().Record
	for k, want := range map[string]string{
		"node.name": "iqn.2003-01.org.example:fwboot", "node.conn[0].address": "10.0.2.15", "node.tpgt": "1",
		"iface.initiatorname": "iqn.1993-08.org.debian:01:fwboot", "node.session.initial_login_retry_max": "30",
		"node.conn[0].timeo.noop_out_interval": "0", "node.conn[0].timeo.noop_out_timeout": "0",
		"node.session.scan": "auto", "node.session.timeo.replacement_timeout": "300",
	} {
		if rec[k] != want {
			t.Errorf("login record %s = %q, want %q", k, rec[k], want)
		}
	}
	x = adm(t, "-m", "fw", "-l", "-n", "iface.net_ifacename", "-v", "eth9")
	if x.Code != 7 || !strings.Contains(x.Stderr, "Cannot override interface parameters for firmware logins") {
		t.Errorf("-m fw -l overriding iface.net_ifacename: exit %d, stderr %q; want 7 and stock's refusal", x.Code, x.Stderr)
	}
}

// TestFirmwareBrokenTables: a table that is broken or absent gives a clear
// error naming what is wrong and the code stock gives for no targets (21); a
// NIC no interface matches is named, and the target is still shown.
func TestFirmwareBrokenTables(t *testing.T) {
	for _, tc := range []struct {
		tree   string
		code   int
		stderr string
	}{
		{"none", 21, "iscsiadm: Could not get list of targets from firmware. (err 21)\n"},
		{"badassoc", 21, "target0: nic-assoc 4 names no NIC"},
		{"badport", 21, `target0: port: "32x0" is not a number`},
		{"unknownnic", 0, "ethernet0: no network interface has its PCI function or its MAC address 52:54:00:99:99:99"},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			setup(t)
			t.Setenv("GOISCSI_SYSFS", filepath.Join("..", "..", "ibft", "testdata", tc.tree))
			for _, args := range [][]string{{"-m", "fw"}, {"-m", "discovery", "-t", "fw"}, {"-m", "fw", "-l"}} {
				x := adm(t, args...)
				if int(x.Code) != tc.code || !strings.Contains(x.Stderr, tc.stderr) {
					t.Errorf("%s: exit %d, stderr %q; want %d and %q", strings.Join(args, " "), x.Code, x.Stderr, tc.code, tc.stderr)
				}
			}
		})
	}
}

// TestFirmwareDiscoveryOps: -m discovery -t fw with stock's default ops
// deletes the fw records of targets the table no longer has and leaves other
// records alone; -o new leaves an existing record as it is (startup not made
// onboot); -o nonpersistent stores nothing.
func TestFirmwareDiscoveryOps(t *testing.T) {
	_, root := setup(t)
	t.Setenv("GOISCSI_SYSFS", qemuSysfs)
	const target, other = "iqn.2003-01.org.example:fwboot", "iqn.2003-01.org.example:gone"
	startup := func(iqn string) string {
		x := adm(t, "-m", "node", "-T", iqn, "-p", "10.0.2.15:3260")
		for _, l := range lines(x.Stdout) {
			if v, ok := strings.CutPrefix(l, "node.startup = "); ok {
				return v
			}
		}
		return "(no record: " + strings.TrimSpace(x.Stderr) + ")"
	}
	if x := adm(t, "-m", "discovery", "-t", "fw", "-o", "nonpersistent"); x.Code != 0 || x.Stdout != "10.0.2.15:3260,1 "+target+"\n" {
		t.Fatalf("-o nonpersistent: exit %d, %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "nodes", target)); !os.IsNotExist(err) {
		t.Errorf("-o nonpersistent stored a record (%v)", err)
	}
	adm(t, "-m", "discovery", "-t", "fw")
	// A fw record of a target the table no longer has (an earlier table's),
	// and a static one.
	stale := conf.NewNodeRecord(nil, other, "10.0.2.15", 3260, 1, "default")
	if err := stale.Set("node.discovery_type", "fw"); err != nil {
		t.Fatal(err)
	}
	if err := (&conf.DB{Root: root}).SaveNode(stale); err != nil {
		t.Fatal(err)
	}
	if x := adm(t, "-m", "node", "-T", "iqn.2003-01.org.example:static", "-p", "10.0.2.15:3260", "-o", "new"); x.Code != 0 {
		t.Fatalf("-o new: %d %q", x.Code, x.Stderr)
	}
	adm(t, "-m", "discovery", "-t", "fw", "-o", "new")
	if got := startup(target); got != "manual" {
		t.Errorf("after -o new over an existing record: startup %s, want it left manual", got)
	}
	if got := startup(other); got != "manual" {
		t.Errorf("-o new deleted the stale record (startup %s)", got)
	}
	adm(t, "-m", "discovery", "-t", "fw")
	if got := startup(target); got != "onboot" {
		t.Errorf("after a second discovery: startup %s, want onboot", got)
	}
	if got := startup(other); !strings.HasPrefix(got, "(no record") {
		t.Errorf("the stale fw record stayed (startup %s)", got)
	}
	if got := startup("iqn.2003-01.org.example:static"); got != "manual" {
		t.Errorf("fw discovery touched a static record (startup %s)", got)
	}
}
