package initiator

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan/scantest"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/test/target"
)

const (
	tgtIQN = "iqn.2026-12.dev.goiscsi:initiator-test"
	hostIQ = "iqn.2026-12.dev.goiscsi:host"
)

// daemon is a fake goiscsid: one session to tgtIQN at 10.0.0.1:3260 on host 4
// once logged in, or the error fail.
type daemon struct {
	mu   sync.Mutex
	reqs []mgmt.Request
	in   bool
	fail *iscsierr.Error
}

func (d *daemon) ServeMgmt(_ context.Context, req *mgmt.Request) *mgmt.Response {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, *req)
	if d.fail != nil {
		return &mgmt.Response{Error: d.fail}
	}
	s := mgmt.Session{SID: 3, HostNo: 4, TargetName: tgtIQN, TPGT: 1, Address: "10.0.0.1", Port: 3260,
		PersistentAddress: "10.0.0.1", PersistentPort: 3260, Iface: "default", Transport: "tcp",
		ConnState: "LOGGED IN", InternalState: "NO CHANGE", ScanPolicy: "lun0",
		Params: mgmt.Negotiated{HeaderDigest: "None", DataDigest: "None", MaxRecvDataSegmentLength: 262144}}
	switch req.Op {
	case mgmt.OpLogin:
		d.in = true
		return &mgmt.Response{Session: &s}
	case mgmt.OpSessions:
		if !d.in {
			return &mgmt.Response{}
		}
		return &mgmt.Response{Sessions: []mgmt.Session{s}}
	case mgmt.OpScan:
		return &mgmt.Response{Session: &s}
	case mgmt.OpLogout:
		d.in = false
		return &mgmt.Response{}
	}
	return &mgmt.Response{}
}

func (d *daemon) last() mgmt.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reqs[len(d.reqs)-1]
}

// newClient returns a Client over an empty node database, a fake sysfs and,
// when d is not nil, d serving as goiscsid (to this test's user, root or not).
func newClient(t *testing.T, d *daemon) (*Client, *scantest.FS) {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "initiatorname.iscsi"), []byte("InitiatorName="+hostIQ+"\n"), 0o600)
	fs := scantest.New(t)
	c := &Client{Root: root, Sysfs: fs.Root, Proc: t.TempDir(), Run: t.TempDir(), Socket: filepath.Join(t.TempDir(), "d.sock")}
	if d == nil {
		return c, fs
	}
	ln, err := mgmt.Listen(c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	me := uint32(os.Geteuid())
	srv := &mgmt.Server{Handler: d, Logger: slog.New(slog.DiscardHandler), Authorize: func(uid uint32) bool { return uid == me }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, fs
}

func saveNode(t *testing.T, c *Client, target, address string, port, tpgt int, iface string) *conf.Record {
	t.Helper()
	r, err := c.NewNode(target, Portal{Address: address, Port: port, TPGT: tpgt}, iface)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SaveNode(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Records and sessions are selected as stock selects them: the portal without
// its tpgt, a host name by what it resolves to.
func TestNodeFilter(t *testing.T) {
	c, _ := newClient(t, nil)
	saveNode(t, c, tgtIQN, "127.0.0.1", 3260, 1, "default")
	saveNode(t, c, tgtIQN, "10.0.0.2", 3261, -1, "default")
	saveNode(t, c, "iqn.2026-12.dev.goiscsi:other", "127.0.0.1", 3260, 2, "default")
	for _, tc := range []struct {
		name string
		f    NodeFilter
		want int
	}{
		{"all", NodeFilter{}, 3},
		{"target", NodeFilter{Target: tgtIQN}, 2},
		{"portal with any tpgt", NodeFilter{Address: "127.0.0.1", Port: 3260}, 2},
		{"host name", NodeFilter{Target: tgtIQN, Address: "localhost"}, 1},
		{"port", NodeFilter{Port: 3261}, 1},
		{"iface", NodeFilter{Iface: "default"}, 3},
		{"other iface", NodeFilter{Iface: "eth-a"}, 0},
		{"nothing", NodeFilter{Target: "iqn.x:none"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.FindNodes(context.Background(), tc.f)
			if err != nil || len(got) != tc.want {
				t.Fatalf("FindNodes(%+v) = %d records, %v; want %d", tc.f, len(got), err, tc.want)
			}
		})
	}
}

// A safety check that gets no answer about the sessions does not pass for
// "no sessions": nothing is deleted and the caller is told why.
func TestDeleteNodesFailsClosed(t *testing.T) {
	d := &daemon{}
	c, _ := newClient(t, d)
	r := saveNode(t, c, tgtIQN, "10.0.0.1", 3260, 1, "default")
	if _, err := c.Login(context.Background(), r, LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	errs, err := c.DeleteNodes(context.Background(), []*conf.Record{r})
	if err != nil || len(errs) != 1 || iscsierr.CodeOf(errs[0]) != iscsierr.SessExists {
		t.Fatalf("delete of a live session's record: %v %v", errs, err)
	}
	d.mu.Lock()
	d.fail = iscsierr.Errorf(iscsierr.ISCSIDCommErr, "daemon broken")
	d.mu.Unlock()
	if _, err := c.DeleteNodes(context.Background(), []*conf.Record{r}); iscsierr.CodeOf(err) != iscsierr.ISCSIDCommErr {
		t.Fatalf("delete without an answer about sessions: %v", err)
	}
	if recs, _ := c.Nodes(); len(recs) != 1 {
		t.Fatalf("%d records left, want the one", len(recs))
	}
	d.mu.Lock()
	d.fail, d.in = nil, false
	d.mu.Unlock()
	if errs, err := c.DeleteNodes(context.Background(), []*conf.Record{r}); err != nil || errs[0] != nil {
		t.Fatalf("delete without sessions: %v %v", errs, err)
	}
}

// Without goiscsid the sessions come from sysfs, with their devices, and a
// narrow scan is done here.
func TestWithoutDaemon(t *testing.T) {
	c, fs := newClient(t, nil)
	fs.AddSession(7, 5, tgtIQN, "10.0.0.1", 3260)
	fs.SetSessionAttr(7, "state", "LOGGED_IN")
	fs.AddDevice(5, 0, 0, 10, "sdc")
	fs.AddDevice(5, 0, 0, 2, "sdb")
	all, err := c.Sessions(context.Background(), ListOptions{})
	if err != nil || len(all) != 1 {
		t.Fatalf("Sessions: %v %v", all, err)
	}
	s := all[0]
	if s.SID != 7 || s.Host == nil || s.Host.Number != 5 || s.SessionState != "LOGGED_IN" || s.Params != nil || len(s.Devices) != 2 ||
		s.Devices[0].HCTL() != "5:0:0:10" {
		t.Errorf("session %+v", s)
	}
	out, err := c.ScanLUN(context.Background(), 7, 2)
	if err != nil || out.Disk != "sdb" || out.HCTL != "5:0:0:2" || fs.ScanWritten(5) != "0 0 2" {
		t.Errorf("ScanLUN: %+v %v, wrote %q", out, err, fs.ScanWritten(5))
	}
	if _, err := c.ScanLUN(context.Background(), 8, 2); iscsierr.CodeOf(err) != iscsierr.SessNotFound {
		t.Errorf("ScanLUN of no session: %v", err)
	}
	if err := c.UpdateSession(context.Background(), 7, map[string]string{"node.session.scan": "manual"}); err != nil {
		t.Errorf("UpdateSession without goiscsid: %v", err)
	}
}

// startTarget serves tgtIQN with one LUN from a Go target on loopback, in
// portal group 1, for the test's duration; it returns its portals.
func startTarget(t *testing.T) []session.Portal {
	t.Helper()
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{
		{Name: tgtIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
			LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}}},
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ps, _ := srv.Portals(tgtIQN)
	return ps
}

// Discovery against a Go target records what it found with stock's link from
// the portal's directory, keeps a record's settings when it finds it again,
// and drops what the portal no longer gives, link and all.
func TestDiscover(t *testing.T) {
	ps := startTarget(t)
	c, _ := newClient(t, &daemon{})
	portal := Portal{Address: ps[0].Address, Port: ps[0].Port}
	recs, err := c.Discover(context.Background(), portal, DiscoverOptions{DeleteStale: true})
	if err != nil || len(recs) != 1 || recs[0].ID().Target != tgtIQN || recs[0].ID().TPGT != 1 {
		t.Fatalf("Discover: %v %v", recs, err)
	}
	recs[0].Set("node.session.autoscan_en", "No")
	if err := c.SaveNode(recs[0]); err != nil {
		t.Fatal(err)
	}
	stale := saveNode(t, c, "iqn.2026-12.dev.goiscsi:gone", ps[0].Address, ps[0].Port, 1, "default")
	stale.Set("node.discovery_type", "send_targets")
	stale.Set("node.discovery_address", ps[0].Address)
	stale.Set("node.discovery_port", strconv.Itoa(ps[0].Port))
	c.SaveNode(stale)
	recs, err = c.Discover(context.Background(), portal, DiscoverOptions{DeleteStale: true})
	if err != nil || len(recs) != 1 || recs[0].Get("node.session.autoscan_en") != "No" {
		t.Fatalf("rediscovery: %v %v", recs, err)
	}
	if all, _ := c.Nodes(); len(all) != 1 {
		t.Errorf("%d records after rediscovery, want the stale one gone", len(all))
	}
	// The record's link from the portal's directory stays; the stale
	// record's went with it.
	dir := "send_targets/" + ps[0].Address + "," + strconv.Itoa(ps[0].Port) + "/"
	portalOf := ps[0].Address + "," + strconv.Itoa(ps[0].Port) + ",1"
	wantLinks(t, c.Root, dir+tgtIQN+","+portalOf+",default -> nodes/"+tgtIQN+"/"+portalOf)
	// A portal nobody listens on: the attempts are reported, the error has
	// stock's code and says how often it tried.
	d := c.DB()
	drec := conf.NewDiscoveryRecord(nil, "127.0.0.1", 1)
	drec.Set("discovery.sendtargets.reopen_max", "1")
	d.SaveDiscovery(drec)
	var attempts int
	_, err = c.Discover(context.Background(), Portal{Address: "127.0.0.1", Port: 1}, DiscoverOptions{FromRecord: true,
		Unreachable: func(error) { attempts++ }})
	var ue *UnreachableError
	if iscsierr.CodeOf(err) != iscsierr.PDUTimeout || !errors.As(err, &ue) || ue.ReopenMax != 1 || attempts != 2 {
		t.Errorf("unreachable portal: %v, %d attempts", err, attempts)
	}
	_, err = c.Discover(context.Background(), Portal{Address: "127.0.0.1", Port: 2}, DiscoverOptions{FromRecord: true})
	if !errors.Is(err, ErrNoDiscoveryRecord) {
		t.Errorf("FromRecord without a record: %v", err)
	}
	var le *session.LoginError
	if errors.As(err, &le) {
		t.Errorf("no login error expected: %v", le)
	}
}

// Without -I a discovery binds its records to every tcp iface record but
// default, as stock does; an iface bound only by IP address fails as stock
// fails it (11), naming the address.
func TestDiscoverIfaces(t *testing.T) {
	ps := startTarget(t)
	c, _ := newClient(t, &daemon{})
	portal := Portal{Address: ps[0].Address, Port: ps[0].Port}
	for name, iname := range map[string]string{"eth-a": "", "eth-b": "iqn.2026-12.dev.goiscsi:other"} {
		ir := conf.NewIfaceRecord(name)
		if iname != "" {
			ir.Set("iface.initiatorname", iname)
		}
		if err := c.DB().SaveIface(ir); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := c.Discover(context.Background(), portal, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID().Iface)
	}
	if strings.Join(got, " ") != "eth-a eth-b" {
		t.Errorf("records through ifaces %q, want eth-a and eth-b (not default)", got)
	}

	// A record made by hand without a tpgt is found again with the group
	// the target names, as stock prints it; the file keeps its layout.
	os.RemoveAll(filepath.Join(c.Root, "nodes"))
	saveNode(t, c, tgtIQN, ps[0].Address, ps[0].Port, -1, "eth-a")
	recs, err = c.Discover(context.Background(), portal, DiscoverOptions{Ifaces: []string{"eth-a"}})
	if err != nil || len(recs) != 1 || recs[0].ID().TPGT != 1 {
		t.Fatalf("rediscovery over a record without tpgt: %v %v", recs, err)
	}
	if all, _ := c.Nodes(); len(all) != 1 || all[0].ID().TPGT != -1 {
		t.Errorf("the record on disk changed: %v", all)
	}

	ip := conf.NewIfaceRecord("by-ip")
	ip.Set("iface.ipaddress", "10.1.0.1")
	if err := c.DB().SaveIface(ip); err != nil {
		t.Fatal(err)
	}
	_, err = c.Discover(context.Background(), portal, DiscoverOptions{Ifaces: []string{"by-ip"}})
	if iscsierr.CodeOf(err) != iscsierr.PDUTimeout || !strings.Contains(err.Error(), "Cannot bind 10.1.0.1 to net/scsi interface") {
		t.Errorf("discovery through an iface bound by IP address: %v", err)
	}
}

// Login, the session it returns, and logout go through the daemon.
func TestLoginLogout(t *testing.T) {
	d := &daemon{}
	c, _ := newClient(t, d)
	r := saveNode(t, c, tgtIQN, "10.0.0.1", 3260, 1, "default")
	r.Set("node.session.autoscan_en", "No")
	s, err := c.Login(context.Background(), r, LoginOptions{})
	if err != nil || s.SID != 3 || s.ScanPolicy != "lun0" || s.Params == nil || s.Params.MaxRecvDataSegmentLength != 262144 {
		t.Fatalf("Login: %+v %v", s, err)
	}
	if req := d.last(); req.Op != mgmt.OpLogin || req.Record["node.session.autoscan_en"] != "No" || req.Record["node.name"] != tgtIQN {
		t.Errorf("login request %+v", req)
	}
	counts, err := c.SessionCounts(context.Background())
	if err != nil || counts[r.ID()] != 1 {
		t.Errorf("SessionCounts: %v %v", counts, err)
	}
	if err := c.Logout(context.Background(), s.SID); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.fail = iscsierr.Errorf(iscsierr.LoginAuthFailed, "authorization failure")
	d.mu.Unlock()
	if _, err := c.Login(context.Background(), r, LoginOptions{}); iscsierr.CodeOf(err) != iscsierr.LoginAuthFailed {
		t.Errorf("refused login: %v", err)
	}
}

func TestApplyBootDefaults(t *testing.T) {
	r := conf.NewNodeRecord(nil, "iqn.t", "10.0.0.1", 3260, 1, "default")
	if err := ApplyBootDefaults(r, [][2]string{{"node.session.scan", "manual"}}); err != nil {
		t.Fatal(err)
	}
	if r.Get("node.session.initial_login_retry_max") != "30" || r.Get("node.conn[0].timeo.noop_out_interval") != "0" ||
		r.Get("node.conn[0].timeo.noop_out_timeout") != "0" || r.Get("node.session.scan") != "manual" {
		t.Errorf("retries %s, noop %s/%s, scan %s; want 30, 0/0 and the parameter's manual",
			r.Get("node.session.initial_login_retry_max"), r.Get("node.conn[0].timeo.noop_out_interval"),
			r.Get("node.conn[0].timeo.noop_out_timeout"), r.Get("node.session.scan"))
	}
	if err := ApplyBootDefaults(r, [][2]string{{"node.nosuch", "1"}}); iscsierr.CodeOf(err) != iscsierr.Inval {
		t.Errorf("an unknown key: %v, want an error with code Inval", err)
	}
}

// eventDaemon is a daemon with events the test sends.
type eventDaemon struct {
	daemon
	ch chan mgmt.Event
}

func (d *eventDaemon) SubscribeEvents() (<-chan mgmt.Event, func()) { return d.ch, func() {} }

// Events come through the Client in order; without goiscsid the error says so.
func TestEvents(t *testing.T) {
	c, _ := newClient(t, nil)
	if _, err := c.Events(context.Background()); iscsierr.CodeOf(err) != iscsierr.ISCSIDNotConn {
		t.Errorf("events without goiscsid: %v", err)
	}
	ln, err := mgmt.Listen(c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	d := &eventDaemon{ch: make(chan mgmt.Event, 2)}
	me := uint32(os.Geteuid())
	srv := &mgmt.Server{Handler: d, Logger: slog.New(slog.DiscardHandler), Authorize: func(uid uint32) bool { return uid == me }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	st, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d.ch <- mgmt.Event{Kind: mgmt.EventLoggedIn, SID: 4}
	d.ch <- mgmt.Event{Kind: mgmt.EventLoggedOut, SID: 4}
	for _, want := range []mgmt.EventKind{mgmt.EventLoggedIn, mgmt.EventLoggedOut} {
		if e, err := st.Next(); err != nil || e.Kind != want || e.SID != 4 {
			t.Fatalf("Next = %+v, %v; want %s of session 4", e, err, want)
		}
	}
}
