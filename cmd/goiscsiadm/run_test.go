package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
	"github.com/goiscsi/goiscsi/test/target"
)

const runIQN = "iqn.2026-11.dev.goiscsi:adm"

// fakeDaemon answers like goiscsid and remembers the requests.
type fakeDaemon struct {
	mu   sync.Mutex
	reqs []mgmt.Request
	port int  // the session's portal port; 3260 when 0
	in   bool // logged in: the session is listed
}

func (f *fakeDaemon) ServeMgmt(_ context.Context, req *mgmt.Request) *mgmt.Response {
	f.mu.Lock()
	f.reqs = append(f.reqs, *req)
	port, in := f.port, f.in
	f.mu.Unlock()
	if port == 0 {
		port = 3260
	}
	s := mgmt.Session{SID: 3, HostNo: 4, TargetName: runIQN, TPGT: 1, Address: "127.0.0.1", Port: port,
		PersistentAddress: "127.0.0.1", PersistentPort: port, Iface: "default", Transport: "tcp",
		ConnState: "LOGGED IN", InternalState: "NO CHANGE", ScanPolicy: "lun0"}
	switch req.Op {
	case mgmt.OpLogin:
		if req.Record["node.session.auth.password"] == "wrong" {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.LoginAuthFailed, "authorization failure")}
		}
		f.mu.Lock()
		f.in = true
		f.mu.Unlock()
		return &mgmt.Response{Session: &s}
	case mgmt.OpSessions:
		if !in {
			return &mgmt.Response{}
		}
		return &mgmt.Response{Sessions: []mgmt.Session{s}}
	case mgmt.OpStats:
		return &mgmt.Response{Stats: &mgmt.Stats{TxDataOctets: 512, RxDataOctets: 4096,
			Counters: map[string]uint64{"scsicmd_pdus": 9, "timeout_err": 1, "tx_sendpage_failures": 2}}}
	case mgmt.OpRemoveLUN:
		return removalResponse(*req.LUN)
	case mgmt.OpLogout, mgmt.OpScan:
		if req.SID != 3 {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SessNotFound, "no session")}
		}
		if req.Op == mgmt.OpLogout {
			f.mu.Lock()
			f.in = false
			f.mu.Unlock()
		}
		return &mgmt.Response{Session: &s}
	}
	return &mgmt.Response{}
}

// removalResponse is the daemon's answer to a removal: LUN 1 goes with its
// map, LUN 2 is held open.
func removalResponse(lun uint64) *mgmt.Response {
	m := scan.MapReport{MultipathMap: scan.MultipathMap{DMDevice: scan.DMDevice{BlockDev: scan.BlockDev{Name: "dm-0", Dev: "254:0"},
		DMName: "mpatha", UUID: "mpath-36001"}, WWID: "36001", Slaves: []string{"sdb", "sdd"}}}
	rep := &scan.Report{LUN: lun, Maps: []scan.MapReport{m}, Paths: []scan.PathReport{
		{HCTL: "4:0:0:1", Block: "sdb", SID: 3, Portal: "127.0.0.1:3260"},
		{HCTL: "5:0:0:1", Block: "sdd", SID: 4, Portal: "127.0.0.2:3260"}}}
	if lun == 1 {
		rep.Maps[0].Removed, rep.Paths[0].Deleted, rep.Paths[1].Deleted, rep.Removed, rep.MS = true, true, true, true, 1234
		rep.Steps = []scan.Step{{Action: "flush", Object: "mpatha (dm-0)", Attempt: 1, OK: true, MS: 2},
			{Action: "remove-map", Object: "mpatha (dm-0)", Attempt: 1, OK: true, MS: 30},
			{Action: "verify-map", Object: "mpatha (dm-0)", OK: true, Detail: "DM_DEV_STATUS: no such device; not in sysfs"}}
	} else {
		rep.Steps = []scan.Step{{Action: "in-use", Object: "LUN 2", Attempt: 1, Detail: "multipath map mpatha (dm-0) is open (open count 1) held open by pid 7 (sleep)"}}
		rep.Failure, rep.Error = scan.FailInUse, "LUN 2 is still in use after 1 attempts in 0.0 s: multipath map mpatha (dm-0) is open"
		rep.Left = []string{"multipath map mpatha (dm-0)", "path sdb (4:0:0:1)", "path sdd (5:0:0:1)"}
	}
	return &mgmt.Response{Removal: rep, Error: mgmt.RemovalError(rep)}
}

func (f *fakeDaemon) last() mgmt.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func setup(t *testing.T) (*fakeDaemon, string) {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "initiatorname.iscsi"), []byte("InitiatorName=iqn.2026-11.dev.goiscsi:me\n"), 0o600)
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", t.TempDir())
	sock := filepath.Join(t.TempDir(), "d.sock")
	t.Setenv("GOISCSI_SOCKET", sock)
	ln, err := mgmt.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The fake daemon serves this test's own user, root or not.
	me := uint32(os.Geteuid())
	srv := &mgmt.Server{Handler: d, Logger: slog.New(slog.DiscardHandler), Authorize: func(uid uint32) bool { return uid == me }}
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, root
}

func adm(t *testing.T, args ...string) *Exit {
	t.Helper()
	c, x := Parse(append([]string{"iscsiadm"}, args...))
	if x != nil {
		return x
	}
	var stdout, stderr strings.Builder
	code := run(c, &stdout, &stderr)
	return &Exit{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

func TestDiscoveryLoginAndSessions(t *testing.T) {
	d, root := setup(t)
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{Name: runIQN,
		PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs:         []target.LUNConfig{{Number: 0, Size: 1 << 20}}}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ps, _ := srv.Portals(runIQN)
	portal := "127.0.0.1:" + strconv.Itoa(ps[0].Port)
	d.mu.Lock()
	d.port = ps[0].Port
	d.mu.Unlock()

	// A record an earlier discovery through this portal made, for a
	// target the portal no longer gives, goes; one made by hand stays.
	stale := conf.NewNodeRecord(nil, "iqn.2026-11.dev.goiscsi:gone", "127.0.0.1", ps[0].Port, 1, "default")
	stale.Set("node.discovery_address", "127.0.0.1")
	stale.Set("node.discovery_port", strconv.Itoa(ps[0].Port))
	stale.Set("node.discovery_type", "send_targets")
	db := &conf.DB{Root: root}
	if err := db.SaveNode(stale); err != nil {
		t.Fatal(err)
	}
	adm(t, "-m", "node", "-T", "iqn.2026-11.dev.goiscsi:static", "-p", portal, "-o", "new")
	x := adm(t, "-m", "discovery", "-t", "st", "-p", portal)
	if want := portal + ",1 " + runIQN + "\n"; x.Code != 0 || x.Stdout != want {
		t.Fatalf("discovery: %d %q %q, want %q", x.Code, x.Stdout, x.Stderr, want)
	}
	if _, err := os.Stat(filepath.Join(root, "nodes", runIQN, "127.0.0.1,"+strconv.Itoa(ps[0].Port)+",1", "default")); err != nil {
		t.Fatalf("no node record: %v", err)
	}
	if x := adm(t, "-m", "node"); x.Stdout != portal+",1 "+runIQN+"\n"+portal+",4294967295 iqn.2026-11.dev.goiscsi:static\n" {
		t.Errorf("-m node: %q", x.Stdout)
	}
	adm(t, "-m", "node", "-T", "iqn.2026-11.dev.goiscsi:static", "-o", "delete")
	// -I binds what is found to that iface (its settings copied into the
	// record); the default iface's records stay.
	if x := adm(t, "-m", "iface", "-I", "lo0", "-o", "new", "-n", "iface.net_ifacename", "-v", "lo"); x.Code != 0 {
		t.Fatalf("iface new: %d %q", x.Code, x.Stderr)
	}
	x = adm(t, "-m", "discovery", "-t", "st", "-p", portal, "-I", "lo0")
	if want := portal + ",1 " + runIQN + "\n"; x.Code != 0 || x.Stdout != want {
		t.Fatalf("discovery -I: %d %q %q, want %q", x.Code, x.Stdout, x.Stderr, want)
	}
	if x := adm(t, "-m", "node", "-T", runIQN, "-p", portal, "-I", "lo0"); !strings.Contains(x.Stdout, "iface.net_ifacename = lo\n") {
		t.Errorf("record bound to lo0:\n%s", x.Stdout)
	}
	if x := adm(t, "-m", "node", "-P", "1"); !strings.Contains(x.Stdout, "Iface Name: default\n") || !strings.Contains(x.Stdout, "Iface Name: lo0\n") {
		t.Errorf("-m node -P 1 after discovery -I:\n%s", x.Stdout)
	}
	adm(t, "-m", "iface", "-I", "lo0", "-o", "delete")
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "-o", "update", "-n", "node.session.autoscan_en", "-v", "No")
	if x.Code != 0 {
		t.Fatalf("update: %d %s", x.Code, x.Stderr)
	}
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "-o", "update", "-n", "node.session.scan", "-v", "sometimes")
	if x.Code != iscsierr.Inval || !strings.Contains(x.Stderr, "node.session.scan") {
		t.Errorf("bad value: %d %q", x.Code, x.Stderr)
	}
	adm(t, "-m", "node", "-T", runIQN, "-o", "update", "-n", "node.session.auth.password", "-v", "wrong")
	x = adm(t, "-m", "node", "-T", runIQN, "--login")
	if x.Code != iscsierr.LoginAuthFailed || !strings.Contains(x.Stderr, "Could not log into all portals") {
		t.Errorf("failed login: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "node", "-T", runIQN, "-o", "show"); !strings.Contains(x.Stdout, "node.session.auth.password = ********\n") {
		t.Errorf("secret not masked:\n%s", x.Stdout)
	}
	adm(t, "-m", "node", "-T", runIQN, "-o", "update", "-n", "node.session.auth.password", "-v", "")
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "--login")
	if x.Code != 0 || !strings.Contains(x.Stdout, "Login to [iface: default, target: "+runIQN+", portal: 127.0.0.1,"+strconv.Itoa(ps[0].Port)+"] successful.") {
		t.Fatalf("login: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if r := d.last(); r.Op != mgmt.OpLogin || r.Record["node.session.autoscan_en"] != "No" || r.Record["node.name"] != runIQN {
		t.Errorf("login request %+v", r)
	}
	// Stock 2.1.8 (session_mgmt.c): a record with its session gets a
	// warning, no request, and 15.
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "--login")
	if x.Code != iscsierr.SessExists || x.Stdout != "" || x.Stderr != "iscsiadm: default: 1 session requested, but 1 already present.\n"+
		"iscsiadm: Could not log into all portals\n" || d.last().Op != mgmt.OpSessions {
		t.Errorf("second login: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "session"); x.Stdout != "tcp: [3] "+portal+",1 "+runIQN+" (non-flash)\n" {
		t.Errorf("-m session: %q", x.Stdout)
	}
	if x := adm(t, "-m", "session", "-r", "3", "--scan-lun", "7"); x.Code != 0 {
		t.Errorf("--scan-lun: %d %s", x.Code, x.Stderr)
	} else if r := d.last(); r.Op != mgmt.OpScan || r.LUN == nil || *r.LUN != 7 {
		t.Errorf("scan request %+v", r)
	}
	x = adm(t, "-m", "session", "-r", "3", "-o", "update", "-n", "node.session.autoscan_en", "-v", "Yes")
	if r := d.last(); x.Code != 0 || r.Op != mgmt.OpUpdate || r.Record["node.session.autoscan_en"] != "Yes" {
		t.Errorf("live update: %d %s %+v", x.Code, x.Stderr, r)
	}
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "-o", "update", "-n", "node.transport_name", "-v", "iser")
	if x.Code != iscsierr.SessExists || x.Stderr != "iscsiadm: Cannot modify node/iface transport name while a session is using it. "+
		"Log out the session then update record.\n" {
		t.Errorf("transport name under a session: %d %q", x.Code, x.Stderr)
	}
	x = adm(t, "-m", "session", "-r", "3", "-s")
	if want := "Stats for session [sid: 3, target: " + runIQN + ", portal: 127.0.0.1," + strconv.Itoa(ps[0].Port) + "]\n" +
		"iSCSI SNMP:\n\ttxdata_octets: 512\n\trxdata_octets: 4096\n\tnoptx_pdus: 0\n\tscsicmd_pdus: 9\n\ttmfcmd_pdus: 0\n" +
		"\tlogin_pdus: 0\n\ttext_pdus: 0\n\tdataout_pdus: 0\n\tlogout_pdus: 0\n\tsnack_pdus: 0\n\tnoprx_pdus: 0\n" +
		"\tscsirsp_pdus: 0\n\ttmfrsp_pdus: 0\n\ttextrsp_pdus: 0\n\tdatain_pdus: 0\n\tlogoutrsp_pdus: 0\n\tr2t_pdus: 0\n" +
		"\tasync_pdus: 0\n\trjt_pdus: 0\n\tdigest_err: 0\n\ttimeout_err: 1\niSCSI Extended:\n\ttx_sendpage_failures: 2\n"; x.Code != 0 || x.Stdout != want {
		t.Errorf("-s: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	// -L/-U pick by node.startup or node.conn[0].startup (both manual here).
	if x := adm(t, "-m", "node", "-U", "automatic"); x.Code != 21 || x.Stderr != "iscsiadm: No matching sessions found\n" {
		t.Errorf("-U automatic: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "node", "-L", "automatic"); x.Code != 21 || x.Stderr != "iscsiadm: No records found\n" {
		t.Errorf("-L automatic: %d %q", x.Code, x.Stderr)
	}
	// Stock's delete_node: a record a session uses stays.
	x = adm(t, "-m", "node", "-T", runIQN, "-o", "delete")
	if want := "iscsiadm: This command will remove the record [iface: default, target: " + runIQN + ", portal: 127.0.0.1," +
		strconv.Itoa(ps[0].Port) + "], but a session is using it. Logout session then rerun command to remove record.\n" +
		"iscsiadm: Could not execute operation on all records: session exists\n"; x.Code != iscsierr.SessExists || x.Stderr != want {
		t.Errorf("delete with a session: %d %q", x.Code, x.Stderr)
	}
	x = adm(t, "-m", "node", "-T", runIQN, "-p", portal, "--logout")
	if x.Code != 0 || !strings.Contains(x.Stdout, "Logout of [sid: 3, target: "+runIQN+", portal: 127.0.0.1,"+strconv.Itoa(ps[0].Port)+"] successful.") {
		t.Errorf("logout: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "node", "-T", "iqn.none:x", "--login"); x.Code != iscsierr.NoObjsFound || x.Stderr != "iscsiadm: No records found\n" {
		t.Errorf("login without records: %d %q", x.Code, x.Stderr)
	}
}

// The os-brick discovery flow with CHAP: -o update of a missing discovery
// record is 6, so it makes one with -o new, sets the credentials, then runs
// --discover, which uses them. Bad credentials end with 24, as stock's.
func TestDiscoveryDBWithCHAP(t *testing.T) {
	_, root := setup(t)
	srv, err := target.New(&target.Config{
		DiscoveryAuth: target.AuthConfig{Method: "CHAP", Username: "disc", Secret: "discsecret12"},
		Targets: []target.TargetConfig{{Name: runIQN,
			PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
			LUNs:         []target.LUNConfig{{Number: 0, Size: 1 << 20}}}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ps, _ := srv.Portals(runIQN)
	portal := "127.0.0.1:" + strconv.Itoa(ps[0].Port)
	db := []string{"-m", "discoverydb", "-t", "sendtargets", "-I", "default", "-p", portal}
	auth := func(user, pass string) []string {
		return append(append([]string(nil), db...), "--op", "update",
			"-n", "discovery.sendtargets.auth.authmethod", "-v", "CHAP",
			"-n", "discovery.sendtargets.auth.username", "-v", user,
			"-n", "discovery.sendtargets.auth.password", "-v", pass)
	}
	if x := adm(t, auth("disc", "discsecret12")...); x.Code != iscsierr.IDBM {
		t.Fatalf("update of a missing record: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, append(db, "--op", "new")...); x.Code != 0 {
		t.Fatalf("new: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, auth("disc", "wrongsecret1")...); x.Code != 0 || x.Stderr != "" {
		t.Fatalf("update: %d %q", x.Code, x.Stderr)
	}
	x := adm(t, append(db, "--discover")...)
	if want := "iscsiadm: discovery login to 127.0.0.1 rejected: initiator failed authorization\n" +
		"iscsiadm: Could not perform SendTargets discovery: iSCSI login failed due to authorization failure\n"; x.Code != iscsierr.LoginAuthFailed || x.Stderr != want {
		t.Errorf("bad credentials: %d %q", x.Code, x.Stderr)
	}
	adm(t, auth("disc", "discsecret12")...)
	x = adm(t, append(db, "--discover")...)
	if want := portal + ",1 " + runIQN + "\n"; x.Code != 0 || x.Stdout != want {
		t.Fatalf("--discover: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "discoverydb", "-o", "show", "-P", "1"); !strings.Contains(x.Stdout, "DiscoveryAddress: 127.0.0.1,"+strconv.Itoa(ps[0].Port)+"\nTarget: "+runIQN+"\n") {
		t.Errorf("discoverydb tree:\n%s", x.Stdout)
	}
	if _, err := os.Stat(filepath.Join(root, "send_targets", "127.0.0.1,"+strconv.Itoa(ps[0].Port), "st_config")); err != nil {
		t.Error(err)
	}
	// Deleting the discovery record deletes the nodes it found, as stock.
	if x := adm(t, append(db, "-o", "delete")...); x.Code != 0 || x.Stderr != "" {
		t.Fatalf("delete: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "node"); x.Code != iscsierr.NoObjsFound || x.Stderr != "iscsiadm: No records found\n" {
		t.Errorf("-m node after the discovery record was deleted: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
}

// A portal nobody listens on: stock's messages, once per attempt of
// discovery.sendtargets.reopen_max, exit 11, and the discovery record stays for
// the operator to fix or delete.
func TestDiscoveryUnreachablePortal(t *testing.T) {
	_, root := setup(t)
	os.WriteFile(filepath.Join(root, "iscsid.conf"), []byte("discovery.sendtargets.reopen_max = 1\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	x := adm(t, "-m", "discovery", "-t", "st", "-p", "127.0.0.1:"+strconv.Itoa(port))
	refused := "iscsiadm: cannot make connection to 127.0.0.1: Connection refused\n"
	if want := refused + refused + "iscsiadm: connection login retries (reopen_max) 1 exceeded\n" +
		"iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out\n"; x.Code != iscsierr.PDUTimeout || x.Stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", x.Code, x.Stderr, iscsierr.PDUTimeout, want)
	}
	if x := adm(t, "-m", "discoverydb"); x.Stdout != "127.0.0.1:"+strconv.Itoa(port)+" via sendtargets\n" {
		t.Errorf("-m discoverydb after the failed discovery: %q %q", x.Stdout, x.Stderr)
	}
}

func TestRemoveLUNThroughTheDaemon(t *testing.T) {
	d, _ := setup(t)
	d.mu.Lock()
	d.in = true
	d.mu.Unlock()
	x := adm(t, "-m", "session", "-r", "3", "--remove-lun", "1")
	want := "Removing LUN 1: multipath map mpatha (dm-0, wwid 36001) over sdb (4:0:0:1) [sid: 3, portal: 127.0.0.1:3260], sdd (5:0:0:1) [sid: 4, portal: 127.0.0.2:3260]\n" +
		"  flush mpatha (dm-0): ok (attempt 1, 2 ms)\n" +
		"  remove-map mpatha (dm-0): ok (attempt 1, 30 ms)\n" +
		"  verify-map mpatha (dm-0): ok, DM_DEV_STATUS: no such device; not in sysfs\n" +
		"Removal of LUN 1 successful: multipath map mpatha and 2 paths removed in 1.2 s.\n"
	if x.Code != 0 || x.Stdout != want || x.Stderr != "" {
		t.Errorf("remove LUN 1: %d\n%s%q\nwant\n%s", x.Code, x.Stdout, x.Stderr, want)
	}
	if r := d.last(); r.Op != mgmt.OpRemoveLUN || r.SID != 3 || *r.LUN != 1 || r.Force || r.Tries != 0 {
		t.Errorf("request %+v", r)
	}
	x = adm(t, "-m", "node", "-T", runIQN, "--remove-lun", "2", "--remove-tries", "2", "--force", "--json")
	if x.Code != iscsierr.Busy || x.Stderr != "iscsiadm: could not remove LUN 2: LUN 2 is still in use after 1 attempts in 0.0 s: multipath map mpatha (dm-0) is open; "+
		"left: multipath map mpatha (dm-0), path sdb (4:0:0:1), path sdd (5:0:0:1)\n" {
		t.Errorf("remove LUN 2: %d %q", x.Code, x.Stderr)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(x.Stdout), &rep); err != nil || rep.Failure != scan.FailInUse || len(rep.Left) != 3 || rep.Removed {
		t.Errorf("--json: %v %+v\n%s", err, rep, x.Stdout)
	}
	if r := d.last(); r.Target != runIQN || r.SID != 0 || r.Tries != 2 || !r.Force {
		t.Errorf("request %+v", r)
	}
}

// Without goiscsid goiscsiadm removes the LUN itself, from sysfs.
func TestRemoveLUNWithoutTheDaemon(t *testing.T) {
	fs := scantest.New(t)
	fs.AddSession(1, 2, runIQN, "127.0.0.1", 3260)
	fs.AddSession(2, 3, runIQN, "127.0.0.2", 3260)
	fs.AddDevice(2, 0, 0, 1, "sdb")
	fs.AddDevice(3, 0, 0, 1, "sdc")
	fs.AddMultipath("dm-0", "mpatha", "36001405aa", "sdb", "sdc")
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte("22 1 0:21 / /proc rw - proc proc rw\n"), 0o644)
	k := scantest.NewBlockOps(fs)
	var stdout, stderr strings.Builder
	e := &env{ctx: context.Background(), stdout: &stdout, stderr: &stderr, c: &initiator.Client{
		Sysfs: fs.Root, Proc: proc, Run: t.TempDir(), Block: k, Socket: filepath.Join(t.TempDir(), "none.sock")}}
	c, x := Parse([]string{"iscsiadm", "-m", "node", "-T", runIQN, "-p", "127.0.0.1", "--remove-lun", "1"})
	if x != nil {
		t.Fatal(x)
	}
	if code := e.removeLUN(c); code != 0 || !strings.Contains(stdout.String(), "Removal of LUN 1 successful: multipath map mpatha and 2 paths removed") {
		t.Fatalf("%d\n%s%s", code, stdout.String(), stderr.String())
	}
	if got := strings.Join(k.Calls(), "|"); got != "flush dm-0|remove mpath-36001405aa|flush sdb|delete 2:0:0:1|flush sdc|delete 3:0:0:1" {
		t.Errorf("calls %s", got)
	}
	stdout.Reset()
	if code := e.removeLUN(c); code != iscsierr.NoObjsFound || !strings.Contains(stderr.String(), "LUN 1 is not attached on session 1, 2") {
		t.Errorf("second removal: %d %q", code, stderr.String())
	}
}

// With multipathd running, --scan-lun waits for the new disk's map and names
// it.
func TestScanLUNWaitsForTheMultipathMap(t *testing.T) {
	d, _ := setup(t)
	d.mu.Lock()
	d.in = true
	d.mu.Unlock()
	fs := scantest.New(t)
	fs.AddDevice(4, 0, 0, 7, "sdb")
	fs.AddMultipath("dm-0", "mpatha", "36001405aa", "sdb")
	t.Setenv("GOISCSI_SYSFS", fs.Root)
	proc := t.TempDir()
	t.Setenv("GOISCSI_PROC", proc)
	x := adm(t, "-m", "session", "-r", "3", "--scan-lun", "7")
	if x.Code != 0 || strings.Contains(x.Stdout, "Multipath") {
		t.Errorf("without multipathd: %d %q", x.Code, x.Stdout)
	}
	os.MkdirAll(filepath.Join(proc, "net"), 0o755)
	os.WriteFile(filepath.Join(proc, "net", "unix"), []byte("Num       RefCount Protocol Flags    Type St Inode Path\n"+
		"0000000000000000: 00000002 00000000 00010000 0001 01 11225 @/org/kernel/linux/storage/multipathd\n"), 0o644)
	x = adm(t, "-m", "session", "-r", "3", "--scan-lun", "7")
	if want := "Multipath map of LUN 7: mpatha (dm-0, wwid 36001405aa) over sdb\n"; x.Code != 0 || !strings.HasSuffix(x.Stdout, want) {
		t.Errorf("with multipathd: %d %q, want it to end with %q", x.Code, x.Stdout, want)
	}
	x = adm(t, "-m", "session", "-r", "3", "--scan-lun", "7", "--json")
	var out struct {
		HCTL, Disk string
		Multipathd bool
		Multipath  *scan.MultipathMap
	}
	if err := json.Unmarshal([]byte(x.Stdout), &out); err != nil || out.HCTL != "4:0:0:7" || out.Disk != "sdb" || !out.Multipathd ||
		out.Multipath == nil || out.Multipath.DMName != "mpatha" {
		t.Errorf("--json: %v %+v\n%s", err, out, x.Stdout)
	}
	// udev says multipath does not claim the disk: no wait.
	run := t.TempDir()
	t.Setenv("GOISCSI_RUN", run)
	os.MkdirAll(filepath.Join(run, "udev", "data"), 0o755)
	os.WriteFile(filepath.Join(run, "udev", "data", "b8:0"), []byte("E:DM_MULTIPATH_DEVICE_PATH=0\n"), 0o644)
	x = adm(t, "-m", "session", "-r", "3", "--scan-lun", "7")
	if !strings.HasSuffix(x.Stdout, "Multipath map of LUN 7: none (udev says multipath does not claim it)\n") {
		t.Errorf("udev verdict 0: %q", x.Stdout)
	}
}

// -k 0 asks the daemon to stop; with no daemon it says so in stock's words,
// and exits 0 as stock does either way.
func TestKillDaemon(t *testing.T) {
	d, _ := setup(t)
	if x := adm(t, "-k", "0"); x.Code != 0 || x.Stderr != "" || d.last().Op != mgmt.OpStop {
		t.Errorf("-k 0: %d %q, request %q", x.Code, x.Stderr, d.last().Op)
	}
	t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	x := adm(t, "-k", "0")
	if x.Code != 0 || !strings.HasSuffix(x.Stderr, "iscsiadm: Could not stop iscsid. Trying sending iscsid SIGTERM or SIGKILL signals manually\n\n") {
		t.Errorf("-k 0 without a daemon: %d %q", x.Code, x.Stderr)
	}
}

// node.session.nr_sessions 2 asks for two sessions at once, each announced
// "(multiple)" as stock does; -W hands the requests over without waiting for
// (or printing) their results; -m session -r SID -o new asks for one more.
func TestSeveralSessions(t *testing.T) {
	d, _ := setup(t)
	adm(t, "-m", "node", "-T", runIQN, "-p", "127.0.0.1", "-o", "new")
	adm(t, "-m", "node", "-T", runIQN, "-p", "127.0.0.1", "-o", "update", "-n", "node.session.nr_sessions", "-v", "2")
	portal := "[iface: default, target: " + runIQN + ", portal: 127.0.0.1,3260]"
	logins := func() (n int, another, noWait bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		another, noWait = true, true
		for _, r := range d.reqs {
			if r.Op == mgmt.OpLogin {
				n++
				another, noWait = another && r.Another, noWait && r.NoWait
			}
		}
		d.reqs = nil
		return n, another, noWait
	}

	x := adm(t, "-m", "node", "-T", runIQN, "-p", "127.0.0.1", "--login")
	want := "Logging in to " + portal + " (multiple)\nLogging in to " + portal + " (multiple)\n" +
		"Login to " + portal + " successful.\nLogin to " + portal + " successful.\n"
	if x.Code != 0 || x.Stdout != want {
		t.Errorf("login with nr_sessions 2: %d\n%s%s", x.Code, x.Stdout, x.Stderr)
	}
	if n, another, noWait := logins(); n != 2 || !another || noWait {
		t.Errorf("%d login requests (another %v, no wait %v), want 2 asking for another", n, another, noWait)
	}

	// The fake daemon lists one session now: one is missing.
	x = adm(t, "-m", "node", "-T", runIQN, "-p", "127.0.0.1", "--login", "-W")
	if x.Code != 0 || x.Stdout != "Logging in to "+portal+" (multiple)\n" {
		t.Errorf("login -W: %d\n%s%s", x.Code, x.Stdout, x.Stderr)
	}
	if n, _, noWait := logins(); n != 1 || !noWait {
		t.Errorf("-W: %d login requests (no wait %v), want 1 without waiting", n, noWait)
	}

	x = adm(t, "-m", "session", "-r", "3", "-o", "new")
	if x.Code != 0 || x.Stdout != "Logging in to "+portal+" (multiple)\nLogin to "+portal+" successful.\n" {
		t.Errorf("-m session -r 3 -o new: %d\n%s%s", x.Code, x.Stdout, x.Stderr)
	}
	if n, another, _ := logins(); n != 1 || !another {
		t.Errorf("-o new: %d login requests (another %v), want 1 asking for another", n, another)
	}
}
