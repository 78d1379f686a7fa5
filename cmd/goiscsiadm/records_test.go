package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan/scantest"
)

// dbStep is one command against the node database and what stock 2.1.8
// printed for it in the same sequence (captured with Debian's
// open-iscsi_2.1.8-1+deb12u1 in a private mount namespace on an empty
// /etc/iscsi). "{root}" stands for the database root. Where stock also
// talked to iscsid (it asks iscsid for iscsid.conf's path on -o new) its
// "can not connect to iSCSI daemon" lines are left out: goiscsiadm reads
// iscsid.conf itself.
type dbStep struct {
	args   string
	code   iscsierr.Code
	stdout string // exact unless prefixed with "~": then a substring
	stderr string
}

func runSteps(t *testing.T, steps []dbStep) {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "initiatorname.iscsi"), []byte("InitiatorName=iqn.1993-08.org.debian:01:t\n"), 0o600)
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", t.TempDir())
	t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	for _, s := range steps {
		x := adm(t, strings.Fields(s.args)...)
		want := func(what, got, w string) {
			w = strings.ReplaceAll(w, "{root}", root)
			if sub, ok := strings.CutPrefix(w, "~"); ok {
				if !strings.Contains(got, sub) {
					t.Errorf("%s: %s %q does not contain %q", s.args, what, got, sub)
				}
			} else if got != w {
				t.Errorf("%s: %s\n got %q\nwant %q", s.args, what, got, w)
			}
		}
		if x.Code != s.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", s.args, x.Code, s.code, x.Stderr)
		}
		want("stdout", x.Stdout, s.stdout)
		want("stderr", x.Stderr, s.stderr)
	}
}

const tgt = "iqn.2003-01.org.x:t1"

func TestNodeRecordsAsStock(t *testing.T) {
	runSteps(t, []dbStep{
		{"-m node", 21, "", "iscsiadm: No records found\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1", 21, "", "iscsiadm: No records found\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o new", 0,
			"New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] 10.0.0.1,3260,-1 " + tgt + "] added\n", ""},
		{"-m node", 0, "10.0.0.1:3260,4294967295 " + tgt + "\n", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o update -n node.session.scan -v manual", 0, "", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o update -n node.session.bogus -v manual", 7, "",
			"iscsiadm: Cannot modify node.session.bogus. Invalid param name.\n" +
				"iscsiadm: Could not execute operation on all records: invalid parameter\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o update -n node.session.scan -v sometimes", 7, "",
			"iscsiadm: unknown value format 'sometimes' for parameter name 'node.session.scan'\n" +
				"iscsiadm: Unknown parameter node.session.scan.\n" +
				"iscsiadm: Could not execute operation on all records: invalid parameter\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o update -n node.name -v foo", 7, "",
			"iscsiadm: Cannot modify node.name. It is used to look up the record and cannot be changed.\n" +
				"iscsiadm: Could not execute operation on all records: invalid parameter\n"},
		// A bad pair after a good one changes nothing.
		{"-m node -T " + tgt + " -p 10.0.0.1 -o update -n node.startup -v automatic -n node.bogus -v 1", 7, "", "~Invalid param name."},
		{"-m node -T " + tgt + " -p 10.0.0.1 --op update -n node.session.auth.password -v secret", 0, "", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o show", 0, "~node.session.auth.password = ********\n", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o show", 0, "~node.startup = manual\n", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o show -S", 0, "~node.session.auth.password = secret\n", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1", 0, "~node.session.scan = manual\n", ""},
		{"-m node -T " + tgt + " -p 10.0.0.2 -o show", 21, "", "iscsiadm: No records found\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -I nosuch", 3, "", "iscsiadm: Could not read iface info for nosuch.\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o delete", 0, "", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o delete", 21, "", "iscsiadm: No records found\n"},
	})
}

func TestNewAndUpdateAsStock(t *testing.T) {
	const c = "iqn.x:c"
	added := func(addr string, port, tpgt int) string {
		return "New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] " + addr + "," + itoa(port) + "," + itoa(tpgt) + " " + c + "] added\n"
	}
	upd := "-m node -T " + c + " -p 10.0.0.1 -o update "
	runSteps(t, []dbStep{
		// Stock's add_static_recs: nothing to add to is an error message
		// and exit 0.
		{"-m node -T " + c + " -o new", 0, "", "iscsiadm: Error while adding record: \n"},
		{"-m node -p 10.0.0.1 -o new", 0, "", "iscsiadm: Error while adding record: \n"},
		{"-m node -T " + c + " -p 10.0.0.1 -o new", 0, added("10.0.0.1", 3260, -1), ""},
		{"-m node -T " + c + " -p 10.0.0.2:3261,4 -o new", 0, added("10.0.0.2", 3261, 4), ""},
		{upd + "-n node.startup -v automatic", 0, "", ""},
		// -o new with -p only makes that portal's records afresh.
		{"-m node -p 10.0.0.1 -o new", 0, added("10.0.0.1", 3260, -1), ""},
		{"-m node -T " + c + " -p 10.0.0.1", 0, "~node.startup = manual\n", ""},
		{"-m node -T " + c + " -p 10.0.0.1 -o update", 7, "", "iscsiadm: update requires name and value\n"},
		{"-m node -T " + c + " -p 10.0.0.1 -o new -o update", 7, "", "iscsiadm: operation is not supported.\n"},
		// Option values are exact, as stock's strcmp.
		{upd + "-n node.startup -v Automatic", 7, "", "iscsiadm: unknown value format 'Automatic' for parameter name 'node.startup'\n" +
			"iscsiadm: Unknown parameter node.startup.\niscsiadm: Could not execute operation on all records: invalid parameter\n"},
		{upd + "-n node.session.auth.authmethod -v chap", 7, "", "~'chap' for parameter name 'node.session.auth.authmethod'"},
		{upd + "-n node.session.iscsi.InitialR2T -v yes", 7, "", "~'yes' for parameter name 'node.session.iscsi.InitialR2T'"},
		{upd + "-n node.conn[0].iscsi.HeaderDigest -v CRC32C,None", 0, "", ""},
		{upd + "-n node.session.auth.chap_algs -v SHA256,MD5", 0, "", ""},
		{upd + "-n node.session.auth.chap_algs -v FOO,SHA1", 0, "",
			"iscsiadm: Ignoring unknown value 'FOO' for 'node.session.auth.chap_algs'\n"},
		{"-m node -T " + c + " -p 10.0.0.1", 0, "~node.session.auth.chap_algs = SHA1\n", ""},
		{upd + "-n node.session.auth.username -v u -n node.session.auth.password -v p -n node.session.auth.authmethod -v CHAP", 0, "", ""},
		{"-m node -T " + c + " -p 10.0.0.1", 0, "~node.session.auth.authmethod = CHAP\n", ""},
		{upd + "-n node.session.auth.username -v <empty>", 0, "", ""},
		{"-m node -T " + c + " -p 10.0.0.1", 0, "~node.session.auth.username = <empty>\n", ""},
		// Deliberately stricter than stock, whose strtoul stores 0 for
		// "abc" (a replacement_timeout of 0 fails I/O at once).
		{upd + "-n node.session.timeo.replacement_timeout -v abc", 7, "", "~unknown value format 'abc'"},
	})
}

func TestDiscoveryRecordsAsStock(t *testing.T) {
	runSteps(t, []dbStep{
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o show", 6, "", "iscsiadm: Discovery record [10.0.0.1,3260] not found.\n"},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o update -n discovery.sendtargets.auth.authmethod -v CHAP", 6, "",
			"iscsiadm: Discovery record [10.0.0.1,3260] not found.\n"},
		{"-m discovery -p 10.0.0.1 -o update", 7, "", "iscsiadm: Discovery record [10.0.0.1,3260] not found!\n"},
		{"-m discovery -p 10.0.0.1 -o show", 7, "", "iscsiadm: Discovery record [10.0.0.1,3260] not found!\n"},
		{"-m discovery -p 10.0.0.1 -l", 7, "", "iscsiadm: Discovery record [10.0.0.1,3260] not found!\n"},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o new", 0, "New discovery record for [10.0.0.1,3260] added.\n", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o new", 0, "New discovery record for [10.0.0.1,3260] added.\n", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o show", 0, "# BEGIN RECORD 2.1.8\n" +
			"discovery.startup = manual\ndiscovery.type = sendtargets\ndiscovery.sendtargets.address = 10.0.0.1\n" +
			"discovery.sendtargets.port = 3260\ndiscovery.sendtargets.auth.authmethod = None\n" +
			"discovery.sendtargets.auth.username = <empty>\ndiscovery.sendtargets.auth.password = <empty>\n" +
			"discovery.sendtargets.auth.username_in = <empty>\ndiscovery.sendtargets.auth.password_in = <empty>\n" +
			"node.session.auth.chap_algs = MD5\ndiscovery.sendtargets.timeo.login_timeout = 15\n" +
			"discovery.sendtargets.use_discoveryd = No\ndiscovery.sendtargets.discoveryd_poll_inval = 30\n" +
			"discovery.sendtargets.reopen_max = 5\ndiscovery.sendtargets.timeo.auth_timeout = 45\n" +
			"discovery.sendtargets.timeo.active_timeout = 30\n" +
			"discovery.sendtargets.iscsi.MaxRecvDataSegmentLength = 32768\n# END RECORD\n", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1:3260 -o update -n discovery.sendtargets.auth.authmethod -v CHAP " +
			"-n discovery.sendtargets.auth.username -v u -n discovery.sendtargets.auth.password -v p", 0, "", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o update -n discovery.sendtargets.bogus -v x", 7, "",
			"iscsiadm: Cannot modify discovery.sendtargets.bogus. Invalid param name.\n"},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o update -n discovery.sendtargets.auth.authmethod -v Bogus", 7, "",
			"iscsiadm: unknown value format 'Bogus' for parameter name 'discovery.sendtargets.auth.authmethod'\n"},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o show", 0, "~discovery.sendtargets.auth.password = ********\n", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o show -S", 0, "~discovery.sendtargets.auth.password = p\n", ""},
		{"-m discovery -p 10.0.0.1 -o new", 7, "",
			"iscsiadm: Operations new and update for discovery mode is not supported. Use discoverydb mode.\n"},
		{"-m discoverydb", 0, "10.0.0.1:3260 via sendtargets\n", ""},
		{"-m discovery", 0, "10.0.0.1:3260 via sendtargets\n", ""},
		{"-m discoverydb -o show -P 1", 0, "SENDTARGETS:\nDiscoveryAddress: 10.0.0.1,3260\niSNS:\nNo targets found.\n" +
			"STATIC:\nNo targets found.\nFIRMWARE:\nNo targets found.\n", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o delete", 0, "", ""},
		{"-m discoverydb -t sendtargets -p 10.0.0.1 -o delete", 6, "", "iscsiadm: Discovery record [10.0.0.1,3260] not found.\n"},
	})
}

func TestIfaceRecordsAsStock(t *testing.T) {
	ifaceShow := func(name, transport, netdev string) string {
		r := conf.NewIfaceRecord(name)
		r.Set("iface.transport_name", transport)
		r.Set("iface.net_ifacename", netdev)
		return r.Show(false)
	}
	runSteps(t, []dbStep{
		{"-m iface", 0, "default tcp,<empty>,<empty>,<empty>,<empty>\niser iser,<empty>,<empty>,<empty>,<empty>\n", ""},
		{"-m iface -I default", 0, ifaceShow("default", "tcp", "<empty>"), ""},
		{"-m iface -I default -o show", 0, "~iface.transport_name = tcp\n", ""},
		{"-m iface -I iser -o show", 0, "~iface.transport_name = iser\n", ""},
		{"-m iface -I nosuch -o show", 6, "",
			"iSCSI ERROR: Failed to open {root}/ifaces/nosuch using read mode: 2 No such file or directory # idbm.c:_idbm_recs_read():834\n"},
		{"-m iface -P 1", 0, "", ""},
		{"-m iface -I myif -o new", 0, "myif updated.\nNew interface myif added\n", ""},
		{"-m iface -I default -o new", 7, "", "iscsiadm: iface default is a special interface and is not stored in {root}/ifaces.\n" +
			"iscsiadm: Could not create new interface default.\n"},
		{"-m iface -I myif -o update -n iface.net_ifacename -v eth0", 0, "myif updated.\n", ""},
		{"-m iface -I myif -o update -n iface.hwaddress -v 00:11:22:33:44:55", 7, "",
			"iscsiadm: Can not update interface binding from net_ifacename to hwaddress. You must delete the interface and create a new one\n" +
				"iscsiadm: Could not update iface myif: invalid parameter\n"},
		{"-m iface -I myif", 0, ifaceShow("myif", "tcp", "eth0"), ""},
		{"-m iface", 0, "myif tcp,<empty>,<empty>,eth0,<empty>\ndefault tcp,<empty>,<empty>,<empty>,<empty>\n" +
			"iser iser,<empty>,<empty>,<empty>,<empty>\n", ""},
		{"-m node -T iqn.x:t -p 10.0.0.1 -I myif -o new", 0,
			"New iSCSI node [tcp:[hw=,ip=,net_if=eth0,iscsi_if=myif] 10.0.0.1,3260,-1 iqn.x:t] added\n", ""},
		{"-m node -T iqn.x:t -p 10.0.0.1 -I myif", 0, "~iface.net_ifacename = eth0\n", ""},
		{"-m iface -P 1", 0, "Iface: myif\n\tTarget: iqn.x:t\n\t\tPortal: 10.0.0.1:3260,-1\nIface: default\nIface: iser\n", ""},
		{"-m iface -I myif -o update -n iface.net_ifacename -v eth1", 0, "myif updated.\n", ""},
		{"-m node -T iqn.x:t -p 10.0.0.1 -I myif", 0, "~iface.net_ifacename = eth1\n", ""},
		{"-m iface -I myif -o delete", 0, "myif unbound and deleted.\n", ""},
		{"-m iface -I myif -o delete", 7, "", "iscsiadm: Could not read iface info for myif.\n" +
			"iscsiadm: Could not delete iface myif: invalid parameter\n"},
		{"-m node", 21, "", "iscsiadm: No records found\n"},
		{"-m iface -I default -o delete", 7, "", "iscsiadm: iface default is a special interface and cannot be deleted.\n" +
			"iscsiadm: Could not delete iface default: invalid parameter\n"},
		// Stock makes the iface and exits 0 whatever -n/-v did.
		{"-m iface -I other -o new -n iface.bogus -v x", 0, "New interface other added\n",
			"iscsiadm: Cannot modify iface.bogus. Invalid param name.\niscsiadm: Could not update iface other: invalid parameter\n"},
		{"-m iface -I nosuch -o update -n iface.net_ifacename -v eth0", 7, "", "iscsiadm: Could not read iface info for nosuch.\n"},
	})
}

func TestNoDaemonAsStock(t *testing.T) {
	runSteps(t, []dbStep{
		{"-m session", 21, "", "iscsiadm: No active sessions.\n"},
		{"-m host", 21, "", "iscsiadm: No iSCSI hosts.\n"},
		{"-m session -r 1", 22, "", "iscsiadm: could not read session targetname: 5\niscsiadm: Could not get session info for sid 1\n"},
		{"-m session -r 1 --logout", 22, "", "~Could not get session info for sid 1\n"},
		{"-m session -r 1 --rescan", 22, "", "~Could not get session info for sid 1\n"},
		{"-m session -r 1 -P 3", 22, "", "~Could not get session info for sid 1\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -o new", 0, "~added", ""},
		{"-m node -T " + tgt + " -p 10.0.0.1:3260 --login", 20,
			"Logging in to [iface: default, target: " + tgt + ", portal: 10.0.0.1,3260]\n",
			"~iscsiadm: Could not login to [iface: default, target: " + tgt + ", portal: 10.0.0.1,3260].\n" +
				"iscsiadm: initiator reported error (20 - could not connect to iscsid)\n"},
		{"-m node -L automatic", 21, "", "iscsiadm: No records found\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 --logout", 21, "", "iscsiadm: No matching sessions found\n"},
		{"-m node -U all", 21, "", "iscsiadm: No matching sessions found\n"},
		{"-m node -T " + tgt + " -p 10.0.0.1 -R", 21, "", "iscsiadm: No session found.\n"},
		{"-m session -s", 21, "", "iscsiadm: No session found.\n"},
		{"-m fw", 21, "", "iscsiadm: Could not get list of targets from firmware. (err 21)\n"},
		{"-m fw -l", 21, "", "iscsiadm: Could not get list of targets from firmware. (err 21)\n"},
		{"-m node -s", 21, "", "iscsiadm: No session found.\n"},
	})
}

// fakeSysfsSession adds session sid on host h to a fake sysfs tree laid out as
// the kernel lays it out (class links into devices/platform/host<h>/session<sid>).
func fakeSysfsSession(t *testing.T, root string, h, sid int, target, addr string, port, tpgt int) {
	t.Helper()
	dev := filepath.Join(root, "devices", "platform", "host"+itoa(h), "session"+itoa(sid))
	sdir := filepath.Join(dev, "iscsi_session", "session"+itoa(sid))
	cdir := filepath.Join(dev, "connection"+itoa(sid)+":0", "iscsi_connection", "connection"+itoa(sid)+":0")
	files := map[string]string{
		filepath.Join(sdir, "targetname"): target, filepath.Join(sdir, "tpgt"): itoa(tpgt),
		filepath.Join(sdir, "state"): "LOGGED_IN", filepath.Join(sdir, "ifacename"): "default",
		filepath.Join(sdir, "initiatorname"): "iqn.1993-08.org.debian:01:t", filepath.Join(sdir, "creator"): "1",
		filepath.Join(cdir, "persistent_address"): addr, filepath.Join(cdir, "persistent_port"): itoa(port),
		filepath.Join(cdir, "address"): addr, filepath.Join(cdir, "port"): itoa(port),
	}
	for p, v := range files {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../../../session"+itoa(sid), filepath.Join(sdir, "device"))
	for class, target := range map[string]string{
		filepath.Join(root, "class", "iscsi_session", "session"+itoa(sid)):            sdir,
		filepath.Join(root, "class", "iscsi_connection", "connection"+itoa(sid)+":0"): cdir,
	} {
		os.MkdirAll(filepath.Dir(class), 0o755)
		if err := os.Symlink(target, class); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(root, "class", "scsi_host", "host"+itoa(h), "state")
	os.MkdirAll(filepath.Dir(state), 0o755)
	os.WriteFile(state, []byte("running\n"), 0o644)
}

func itoa(n int) string { return strconv.Itoa(n) }

// Without goiscsid, sessions come from sysfs, as stock reads them, and the
// session-scoped record commands still work on the session's record.
func TestSessionsFromSysfs(t *testing.T) {
	sys := scantest.New(t)
	fakeSysfsSession(t, sys.Root, 4, 3, tgt, "10.0.0.1", 3260, 1)
	sys.AddDevice(4, 0, 0, 0, "sdb")
	sys.AddDevice(4, 0, 0, 2, "")
	root := t.TempDir()
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", sys.Root)
	t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	os.WriteFile(filepath.Join(root, "initiatorname.iscsi"), []byte("InitiatorName=iqn.1993-08.org.debian:01:t\n"), 0o600)

	if x := adm(t, "-m", "session"); x.Code != 0 || x.Stdout != "tcp: [3] 10.0.0.1:3260,1 "+tgt+" (non-flash)\n" {
		t.Errorf("-m session: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	x := adm(t, "-m", "session", "-P", "3")
	for _, want := range []string{"Target: " + tgt + " (non-flash)\n", "\t\tiSCSI Session State: LOGGED_IN\n",
		"\t\tHost Number: 4\tState: running\n", "\t\tscsi4 Channel 00 Id 0 Lun: 0\n",
		"\t\t\tAttached scsi disk sdb\t\tState: running\n", "\t\tscsi4 Channel 00 Id 0 Lun: 2\n"} {
		if !strings.Contains(x.Stdout, want) {
			t.Errorf("-m session -P 3 lacks %q:\n%s", want, x.Stdout)
		}
	}
	if x := adm(t, "-m", "session", "-r", "3", "-o", "show"); x.Code != 21 || x.Stderr != "iscsiadm: No records found\n" {
		t.Errorf("record of a session without one: %d %q", x.Code, x.Stderr)
	}
	adm(t, "-m", "node", "-T", tgt, "-p", "10.0.0.1", "-o", "new")
	adm(t, "-m", "node", "-T", tgt, "-p", "10.0.0.9", "-o", "new")
	// The records hold tpgt -1 (-o new); the session has 1: stock matches
	// them anyway, the session's tpgt is not part of the lookup.
	x = adm(t, "-m", "session", "-r", "3", "-o", "update", "-n", "node.session.scan", "-v", "manual")
	if x.Code != 0 || x.Stderr != "" {
		t.Fatalf("session update: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "node", "-T", tgt, "-p", "10.0.0.1"); !strings.Contains(x.Stdout, "node.session.scan = manual\n") {
		t.Errorf("the session's record was not updated")
	}
	if x := adm(t, "-m", "node", "-T", tgt, "-p", "10.0.0.9"); !strings.Contains(x.Stdout, "node.session.scan = auto\n") {
		t.Errorf("another record was updated too")
	}
	if x := adm(t, "-m", "session", "-r", "3"); x.Code != 0 || !strings.Contains(x.Stdout, "node.conn[0].address = 10.0.0.1\n") {
		t.Errorf("-m session -r 3: %d %q", x.Code, x.Stderr)
	}

	// -r as a sysfs path, resolved as stock resolves it.
	if x := adm(t, "-m", "session", "-r", filepath.Join(sys.Root, "class", "iscsi_session", "session3"), "-P", "1"); x.Code != 0 ||
		!strings.Contains(x.Stdout, "\t\tSID: 3\n") {
		t.Errorf("-r PATH: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "session", "-r", filepath.Join(sys.Root, "devices", "platform", "host4")); x.Code != 7 ||
		x.Stderr != "iscsiadm: Unable to find sid in path "+filepath.Join(sys.Root, "devices", "platform", "host4")+"\n"+
			"iscsiadm: invalid sid '"+filepath.Join(sys.Root, "devices", "platform", "host4")+"'\n" {
		t.Errorf("-r PATH without a session: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "session", "-r", "/nonexistent/x"); x.Code != 1 || x.Stderr != "iscsiadm: /nonexistent/x is an invalid session ID or path\n" {
		t.Errorf("-r missing path: %d %q", x.Code, x.Stderr)
	}

	// Scans go through sysfs when goiscsid is not there.
	sys.AddHost(4)
	x = adm(t, "-m", "session", "-r", "3", "--rescan")
	if x.Code != 0 || x.Stdout != "Rescanning session [sid: 3, target: "+tgt+", portal: 10.0.0.1,3260]\n" {
		t.Errorf("--rescan: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if got := sys.ScanWritten(4); got != "- - -" {
		t.Errorf("--rescan wrote %q to the scan file", got)
	}
	if got := sys.DeviceWritten(4, 0, 0, 0, "rescan"); got != "1" {
		t.Errorf("--rescan wrote %q to sdb's rescan", got)
	}
	x = adm(t, "-m", "session", "-r", "3", "--scan-lun", "0")
	if x.Code != 0 || x.Stdout != "Scanned LUN 0 of session [sid: 3, target: "+tgt+", portal: 10.0.0.1,3260]: scsi4 Channel 00 Id 0 Lun: 0 disk sdb\n" {
		t.Errorf("--scan-lun: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if got := sys.ScanWritten(4); got != "0 0 0" {
		t.Errorf("--scan-lun wrote %q", got)
	}
}
