package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/stockipc"
	"github.com/goiscsi/goiscsi/test/target"
)

const (
	testIQN = "iqn.2026-11.dev.goiscsi:daemon"
	testIni = "iqn.2026-11.dev.goiscsi:host"
)

type fixture struct {
	d      *daemon
	srv    *target.Server
	fs     *scantest.FS
	kernel *nlinktest.Kernel
	rec    map[string]string
	// scans records the daemon's scan decisions; its other log records
	// are dropped.
	scans scanDecisions
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureConfig(t, nil)
}

// newFixtureConfig is newFixture with iscsid.conf's cfg.
func newFixtureConfig(t *testing.T, cfg *conf.Config) *fixture {
	t.Helper()
	scans := newScanDecisions()
	f := newFixtureWith(t, []target.TargetConfig{{
		Name: testIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}, {Number: 1, Size: 1 << 20}},
	}}, cfg, slog.New(scans))
	f.scans = scans
	return f
}

// newFixtureWith is a daemon on a fake kernel and sysfs (hosts 0-7) with a Go
// target serving targets, whose first is the one f.rec logs in to.
func newFixtureWith(t testing.TB, targets []target.TargetConfig, cfg *conf.Config, log *slog.Logger) *fixture {
	t.Helper()
	srv, err := target.New(&target.Config{Targets: targets}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ps, _ := srv.Portals(targets[0].Name)
	k := nlinktest.New()
	t.Cleanup(func() { k.Close() })
	fs := scantest.New(t)
	for h := 0; h < 8; h++ {
		fs.AddHost(h)
	}
	d := newDaemon(k.Conn(), scan.Sysfs{Root: fs.Root}, testIni, "", cfg, log)
	rec := map[string]string{
		"node.name": targets[0].Name, "node.tpgt": "1", "node.conn[0].address": ps[0].Address,
		"node.conn[0].port": strconv.Itoa(ps[0].Port), "node.conn[0].timeo.login_timeout": "5",
	}
	return &fixture{d: d, srv: srv, fs: fs, kernel: k, rec: rec}
}

func (f *fixture) login(t testing.TB, extra map[string]string) *mgmt.Session {
	t.Helper()
	rec := map[string]string{}
	for k, v := range f.rec {
		rec[k] = v
	}
	for k, v := range extra {
		rec[k] = v
	}
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: rec})
	if resp.Error != nil {
		t.Fatalf("login: %v", resp.Error)
	}
	return resp.Session
}

func TestLoginScansByPolicy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  map[string]string
		scan  string
		shown string
	}{
		{"default", nil, "- - -", "auto"},
		{"autoscan off", map[string]string{"node.session.autoscan_en": "No"}, "0 0 0", "lun0"},
		{"manual", map[string]string{"node.session.scan": "manual"}, "", "manual"},
		{"manual wins", map[string]string{"node.session.scan": "manual", "node.session.autoscan_en": "No"}, "", "manual"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := f.login(t, tc.keys)
			if got := f.fs.ScanWritten(s.HostNo); got != tc.scan {
				t.Errorf("login wrote %q to the scan file, want %q", got, tc.scan)
			}
			if s.ScanPolicy != tc.shown || s.ConnState != "LOGGED IN" || s.TPGT != 1 {
				t.Errorf("session %+v", s)
			}
			if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogout, SID: s.SID}); resp.Error != nil {
				t.Fatal(resp.Error)
			}
			if n := len(f.kernel.Sessions()); n != 0 {
				t.Errorf("%d kernel sessions after logout", n)
			}
		})
	}
}

// waitScan waits for the host's scan file to hold want: AEN scans run in the
// background.
func waitScan(t *testing.T, f *fixture, host int, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.fs.ScanWritten(host) != want {
		if time.Now().After(deadline) {
			t.Fatalf("scan file holds %q, want %q", f.fs.ScanWritten(host), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAENScansOnlyUnderAuto(t *testing.T) {
	f := newFixture(t)
	s := f.login(t, map[string]string{"node.session.autoscan_en": "No"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.srv.WaitSessions(ctx, testIQN, 1); err != nil {
		t.Fatal(err)
	}
	aen := target.AsyncEvent{Target: testIQN, Sense: target.SenseCode{Key: 6, ASC: 0x3f, ASCQ: 0x0e}}
	f.fs.ResetScan(s.HostNo)
	if _, err := f.srv.SendAsyncEvent(aen); err != nil {
		t.Fatal(err)
	}
	// The decision is logged after what it writes, so the scan file is
	// final once it is.
	f.scans.wait(t, scan.AEN)
	if got := f.fs.ScanWritten(s.HostNo); got != "" {
		t.Fatalf("autoscan_en=No scanned %q after an AEN", got)
	}
	// The policy of the live session changes without a relogin.
	resp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpUpdate, SID: s.SID, Record: map[string]string{"node.session.autoscan_en": "Yes"}})
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if _, err := f.srv.SendAsyncEvent(aen); err != nil {
		t.Fatal(err)
	}
	waitScan(t, f, s.HostNo, "- - -")
	// A narrow scan adds exactly the LUN asked for.
	lun := uint64(1)
	if resp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpScan, SID: s.SID, LUN: &lun}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if got := f.fs.ScanWritten(s.HostNo); got != "0 0 1" {
		t.Errorf("--scan-lun 1 wrote %q", got)
	}
	if resp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpUpdate, SID: s.SID, Record: map[string]string{"node.session.timeo.replacement_timeout": "5"}}); resp.Error == nil || resp.Error.Code != 7 {
		t.Errorf("updating a key that needs a relogin: %+v", resp.Error)
	}
}

func TestLoginErrors(t *testing.T) {
	f := newFixture(t)
	f.login(t, nil)
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: f.rec})
	if resp.Error == nil || resp.Error.Code != 15 {
		t.Errorf("second login of the same node: %+v", resp.Error)
	}
	bad := map[string]string{"node.name": testIQN, "node.conn[0].address": "127.0.0.1", "node.conn[0].port": "x"}
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: bad}); resp.Error == nil || resp.Error.Code != 7 {
		t.Errorf("bad port: %+v", resp.Error)
	}
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogout, SID: 99}); resp.Error == nil || resp.Error.Code != 2 {
		t.Errorf("logout of an unknown session: %+v", resp.Error)
	}
	list := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions})
	if len(list.Sessions) != 1 || list.Sessions[0].TargetName != testIQN {
		t.Fatalf("sessions %+v", list.Sessions)
	}
	// What the daemon set as the host's netdev and hwaddress, which -P 1
	// prints without reading them back from sysfs.
	if s := list.Sessions[0]; s.Netdev != "default" || s.HWAddress != "default" {
		t.Errorf("netdev %q, hwaddress %q, want default for an unbound iface", s.Netdev, s.HWAddress)
	}
	// A brief list names the sessions and leaves the rest out.
	brief := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions, Brief: true})
	if len(brief.Sessions) != 1 || !reflect.DeepEqual(brief.Sessions[0], list.Sessions[0].Brief()) ||
		brief.Sessions[0].TargetName != testIQN || brief.Sessions[0].Params != (mgmt.Negotiated{}) {
		t.Errorf("brief sessions %+v", brief.Sessions)
	}
}

// Another session of a logged-in node (nr_sessions above 1, -m session -r SID
// -o new) is one more session with an ISID of its own, at the target too; a
// login that does not ask for another is still refused; a logout ends just
// the session named.
func TestAnotherSession(t *testing.T) {
	f := newFixture(t)
	first := f.login(t, nil)
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: f.rec, Another: true})
	if resp.Error != nil {
		t.Fatalf("another session: %v", resp.Error)
	}
	second := resp.Session
	if second.SID == first.SID {
		t.Fatalf("the second session has the first's SID %d", first.SID)
	}
	ss, err := f.srv.Sessions(testIQN)
	if err != nil || len(ss) != 2 || ss[0].ISID == ss[1].ISID {
		t.Fatalf("target sessions %+v (%v), want two with distinct ISIDs", ss, err)
	}
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: f.rec}); resp.Error == nil || resp.Error.Code != 15 {
		t.Errorf("a third login without Another: %+v", resp.Error)
	}
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogout, SID: int(first.SID)}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	list := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions})
	if len(list.Sessions) != 1 || list.Sessions[0].SID != second.SID {
		t.Errorf("sessions after logging out %d: %+v", first.SID, list.Sessions)
	}
}

// Requests with absurd values, sent through the management socket, each get an
// error with iscsiadm's code that names what was wrong, quickly; the daemon
// then still logs in and answers.
func TestAbsurdRequests(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "goiscsid.sock")
	ln, err := mgmt.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- (&mgmt.Server{Handler: f.d, Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	with := func(kv ...string) map[string]string {
		rec := map[string]string{}
		for k, v := range f.rec {
			rec[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			rec[kv[i]] = kv[i+1]
		}
		return rec
	}
	lun := uint64(1<<64 - 1)
	for _, tc := range []struct {
		name string
		req  mgmt.Request
		code iscsierr.Code
		msg  string
	}{
		{"no record", mgmt.Request{Op: mgmt.OpLogin}, 7, "node.name"},
		{"port out of range", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].port", "99999999")}, 7, "node.conn[0].port"},
		{"negative port", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].port", "-1")}, 7, "node.conn[0].port"},
		{"queue depth cut to 16 bits", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.session.queue_depth", "65568")}, 7, "node.session.queue_depth"},
		{"no login timeout", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].timeo.login_timeout", "0")}, 7, "login_timeout"},
		{"login timeout overflowing", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].timeo.login_timeout", "99999999999")}, 7, "login_timeout"},
		{"logout timeout negative", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].timeo.logout_timeout", "-5")}, 7, "logout_timeout"},
		{"digest nobody knows", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.conn[0].iscsi.HeaderDigest", "Bogus")}, 7, "HeaderDigest"},
		{"burst length absurd", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.session.iscsi.MaxBurstLength", "4294967295")}, 7, "node.session.iscsi.MaxBurstLength"},
		{"Time2Wait past an hour", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.session.iscsi.DefaultTime2Wait", "86400")}, 7, "DefaultTime2Wait"},
		{"auth method unknown", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.session.auth.authmethod", "Kerberos")}, 7, "authmethod"},
		{"target name of 100 KiB", mgmt.Request{Op: mgmt.OpLogin, Record: with("node.name", strings.Repeat("x", 100<<10))}, 16, "longer than"},
		{"logout of a negative sid", mgmt.Request{Op: mgmt.OpLogout, SID: -1}, 2, "no session"},
		{"stats of no session", mgmt.Request{Op: mgmt.OpStats, SID: 1 << 30}, 2, "no session"},
		{"scan of the largest LUN of no session", mgmt.Request{Op: mgmt.OpScan, SID: 12345, LUN: &lun}, 2, "no session"},
		{"update of no session", mgmt.Request{Op: mgmt.OpUpdate, SID: 7, Record: map[string]string{"node.session.scan": "sometimes"}}, 2, "no session"},
		{"unknown op", mgmt.Request{Op: "reboot"}, iscsierr.InvalidMgmtReq, "reboot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer rcancel()
			start := time.Now()
			resp, err := (&mgmt.Client{Path: path}).Do(rctx, &tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Error == nil || resp.Error.Code != tc.code || !strings.Contains(resp.Error.Message, tc.msg) {
				t.Errorf("answer %+v, want code %d saying %q", resp.Error, tc.code, tc.msg)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v", d)
			}
		})
	}
	resp, err := (&mgmt.Client{Path: path}).Do(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: f.rec})
	if err != nil || resp.Error != nil || resp.Session == nil {
		t.Fatalf("a normal login afterwards: %+v %v", resp, err)
	}
	resp, err = (&mgmt.Client{Path: path}).Do(context.Background(), &mgmt.Request{Op: mgmt.OpStatus})
	if err != nil || resp.Status == nil || resp.Status.Sessions != 1 {
		t.Fatalf("status afterwards: %+v %v", resp, err)
	}
}

// A login whose negotiation finds no acceptable value fails at once: another
// attempt would fail the same way, so it is not retried for
// initial_login_retry_max login timeouts.
func TestNegotiationFailureIsNotRetried(t *testing.T) {
	f := newFixture(t)
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{
		Name: testIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}}, Params: map[string]string{"HeaderDigest": "None"},
	}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ps, _ := srv.Portals(testIQN)
	rec := map[string]string{
		"node.name": testIQN, "node.conn[0].address": ps[0].Address, "node.conn[0].port": strconv.Itoa(ps[0].Port),
		"node.conn[0].timeo.login_timeout": "5", "node.conn[0].iscsi.HeaderDigest": "CRC32C",
	}
	start := time.Now()
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: rec})
	if resp.Error == nil || !strings.Contains(resp.Error.Message, "HeaderDigest") || time.Since(start) > 2*time.Second {
		t.Fatalf("digest the target refuses: %+v after %v", resp.Error, time.Since(start))
	}
}

// A command the target answers with a broken PDU makes the kernel fail the
// connection; goiscsid logs in again, the session is listed as logged in with
// its I/O working, and the relogin scans nothing, whatever the policy.
func TestCommandFaultRecovered(t *testing.T) {
	f := newFixture(t)
	s := f.login(t, map[string]string{"node.session.iscsi.DefaultTime2Wait": "0"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.srv.WaitSessions(ctx, testIQN, 1); err != nil {
		t.Fatal(err)
	}
	f.fs.ResetScan(s.HostNo)
	if err := f.srv.InjectFault(testIQN, "response-wrong-itt", 1); err != nil {
		t.Fatal(err)
	}
	read := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	if _, err := f.kernel.Command(ctx, uint32(s.SID), 0, read, nil, 512); err == nil || !strings.Contains(err.Error(), "ISCSI_ERR_BAD_ITT") {
		t.Fatalf("command answered with a wrong ITT: %v", err)
	}
	for {
		res, err := f.kernel.Command(ctx, uint32(s.SID), 0, read, nil, 512)
		if err == nil && res.Status == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no I/O after the connection error: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpSessions})
	if len(list.Sessions) != 1 || list.Sessions[0].SID != s.SID || list.Sessions[0].ConnState != "LOGGED IN" {
		t.Fatalf("sessions after recovery: %+v", list.Sessions)
	}
	// The relogin's scan decision runs in the background and is logged
	// after what it writes.
	f.scans.wait(t, scan.Relogin)
	if got := f.fs.ScanWritten(s.HostNo); got != "" {
		t.Errorf("the relogin scanned %q", got)
	}
}

// scanDecisions records the triggers of the scan decisions a daemon logs
// (scan.Sysfs.Apply's "scan" records), so that a test can wait for the
// decision of a scan that runs in the background.
type scanDecisions struct {
	mu       *sync.Mutex
	triggers *[]string
}

func newScanDecisions() scanDecisions {
	return scanDecisions{mu: &sync.Mutex{}, triggers: new([]string)}
}

func (h scanDecisions) Enabled(context.Context, slog.Level) bool { return true }

func (h scanDecisions) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "scan" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "trigger" {
			h.mu.Lock()
			*h.triggers = append(*h.triggers, a.Value.String())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h scanDecisions) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h scanDecisions) WithGroup(string) slog.Handler      { return h }

// wait waits up to five seconds for a decision for trigger tr.
func (h scanDecisions) wait(t *testing.T, tr scan.Trigger) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		seen := slices.Contains(*h.triggers, tr.String())
		got := strings.Join(*h.triggers, ", ")
		h.mu.Unlock()
		if seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scan decision for %s logged; decisions: [%s]", tr, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// removalFixture is a logged-in session (autoscan off) with LUN 1 attached as
// sdb and a fake block kernel for removals.
func removalFixture(t *testing.T) (*fixture, *mgmt.Session, *scantest.BlockOps) {
	t.Helper()
	return removalFixtureWith(t, map[string]string{"node.session.autoscan_en": "No"})
}

// removalFixtureWith is removalFixture with the session logged in with keys
// (its scan policy) instead.
func removalFixtureWith(t *testing.T, keys map[string]string) (*fixture, *mgmt.Session, *scantest.BlockOps) {
	t.Helper()
	f := newFixture(t)
	s := f.login(t, keys)
	f.fs.AddDevice(s.HostNo, 0, 0, 1, "sdb")
	k := scantest.NewBlockOps(f.fs)
	f.d.block = k
	f.d.proc = t.TempDir()
	if err := os.MkdirAll(filepath.Join(f.d.proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.d.proc, "self", "mountinfo"), []byte("22 1 0:21 / /proc rw - proc proc rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, s, k
}

// An attach's scan of the target waits while a removal on the same target is
// in progress, and runs right after it.
func TestRemoveLUNAndScansDoNotInterleave(t *testing.T) {
	f, s, k := removalFixture(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	k.OnFlush = func(string) {
		once.Do(func() { close(entered) })
		<-release
	}
	ctx := context.Background()
	one, two := uint64(1), uint64(2)
	removed := make(chan *mgmt.Response)
	go func() { removed <- f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpRemoveLUN, SID: s.SID, LUN: &one}) }()
	<-entered
	f.fs.ResetScan(s.HostNo)
	scanned := make(chan *mgmt.Response)
	go func() { scanned <- f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpScan, SID: s.SID, LUN: &two}) }()
	waitForLock(t, scanned, "(*daemon).scanRequest")
	if got := f.fs.ScanWritten(s.HostNo); got != "" {
		t.Fatalf("scan file written during the removal: %q", got)
	}
	close(release)
	if resp := <-removed; resp.Error != nil || resp.Removal == nil || !resp.Removal.Removed {
		t.Fatalf("removal: %+v %+v", resp.Error, resp.Removal)
	}
	if resp := <-scanned; resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if got := f.fs.ScanWritten(s.HostNo); got != "0 0 2" {
		t.Errorf("scan after the removal wrote %q", got)
	}
	if got := strings.Join(k.Calls(), "|"); got != "flush sdb|delete "+strconv.Itoa(s.HostNo)+":0:0:1" {
		t.Errorf("removal calls %s", got)
	}
}

// waitForLock waits up to five seconds for a goroutine running fn to be
// blocked on a target's lock, failing the test if its request is answered
// first: the lock is a sync.RWMutex, which shows who waits for it only in the
// goroutines' stacks.
func waitForLock(t *testing.T, answered <-chan *mgmt.Response, fn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		select {
		case resp := <-answered:
			t.Fatalf("%s answered without waiting for the target's lock: %+v", fn, resp)
		default:
		}
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[sync.RWMutex.") && strings.Contains(g, "goiscsid.(*targetLocks).") && strings.Contains(g, "goiscsid."+fn) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not waiting for the target's lock after 5s:\n%s", fn, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRemoveLUNErrors(t *testing.T) {
	f, s, k := removalFixture(t)
	ctx := context.Background()
	lun := uint64(5)
	for _, tc := range []struct {
		name string
		req  mgmt.Request
		code iscsierr.Code
	}{
		{"LUN not attached", mgmt.Request{SID: s.SID, LUN: &lun}, 21},
		{"no such session", mgmt.Request{SID: 99, LUN: &lun}, 2},
		{"no session to target", mgmt.Request{Target: "iqn.2003-01.org.example:none", LUN: &lun}, 21},
		{"no LUN", mgmt.Request{SID: s.SID}, iscsierr.InvalidMgmtReq},
	} {
		tc.req.Op = mgmt.OpRemoveLUN
		if resp := f.d.ServeMgmt(ctx, &tc.req); resp.Error == nil || resp.Error.Code != tc.code {
			t.Errorf("%s: %+v, want code %d", tc.name, resp.Error, tc.code)
		}
	}
	// Held open through every try: 28, and the message says what is left.
	k.Holding["8:0"] = []scan.Opener{{PID: 42, Comm: "dd"}}
	one := uint64(1)
	resp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpRemoveLUN, Target: testIQN, LUN: &one, Tries: 1})
	if resp.Error == nil || resp.Error.Code != 28 || !strings.Contains(resp.Error.Message, "pid 42 (dd)") ||
		!strings.Contains(resp.Error.Message, "left: path sdb") || resp.Removal == nil || resp.Removal.Failure != scan.FailInUse {
		t.Errorf("held open: %+v", resp.Error)
	}
}

func TestTargetLocks(t *testing.T) {
	var l targetLocks
	done := make(chan bool)
	for i := 0; i < 50; i++ {
		go func() {
			l.lock("b", "a", "b")()
			l.lock("a", "b")()
			done <- true
		}()
	}
	for i := 0; i < 50; i++ {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("overlapping target locks deadlocked")
		}
	}
	unlock := l.lock("a")
	got := make(chan bool)
	go func() { l.lock("c")(); got <- true }()
	select {
	case <-got:
	case <-time.After(time.Second):
		t.Fatal("a lock of target c waited for target a")
	}
	if l.of("a").TryRLock() {
		t.Error("a scan of target a did not wait for its removal")
	}
	unlock()
	// Scans share the lock (each session's own host), and a removal
	// waits for them all.
	first, second := l.share("a"), l.share("a")
	if l.of("a").TryLock() {
		t.Fatal("a removal on target a did not wait for its scans")
	}
	first()
	second()
	if !l.of("a").TryLock() {
		t.Fatal("target a stays locked after its scans")
	}
}

// goiscsiadm -k 0 ends the daemon, which answers first; a daemon that
// cannot be stopped by request says so.
func TestStopRequest(t *testing.T) {
	stopped := false
	d := &daemon{log: slog.New(slog.DiscardHandler), stop: func() { stopped = true }}
	if resp := d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpStop}); resp.Error != nil || !stopped {
		t.Errorf("stop: %+v, stopped %v", resp.Error, stopped)
	}
	d.stop = nil
	if resp := d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpStop}); resp.Error == nil {
		t.Error("a daemon without a stop function accepted the stop request")
	}
}

// TestLoginsUnderWayAreBounded starts more logins than maxConnecting at once,
// to portals that do not answer: the first maxInFlight connect holding the
// kernel's places; once their connects outlast ksession.ConnectGrace they
// give them to the next ones, up to maxConnecting connecting at once, and
// every login gets its answer. It runs in a synctest bubble, whose clock
// moves only when every goroutine waits, and whose Wait returns once every
// login is connecting or waiting for its turn.
func TestLoginsUnderWayAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDaemon(nil, scan.Sysfs{}, testIni, "", nil, slog.New(slog.DiscardHandler))
		var mu sync.Mutex
		active, most := 0, 0
		release := make(chan struct{})
		d.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			active++
			most = max(most, active)
			mu.Unlock()
			<-release
			mu.Lock()
			active--
			mu.Unlock()
			return nil, &session.ProtocolError{Reason: "test: no connection"}
		}
		var wg sync.WaitGroup
		for i := range maxConnecting + 8 {
			rec := map[string]string{"node.name": testIQN, "node.conn[0].address": "127.0.0.1",
				"node.conn[0].port": strconv.Itoa(20000 + i)} // a node of its own
			wg.Go(func() {
				if resp := d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: rec}); resp.Error == nil {
					t.Errorf("login %d: no error from a portal that cannot be reached", i)
				}
			})
		}
		for _, want := range []struct {
			after      time.Duration
			connecting int
		}{{0, maxInFlight}, {ksession.ConnectGrace, 2 * maxInFlight}, {3 * ksession.ConnectGrace, maxConnecting}} {
			time.Sleep(want.after)
			synctest.Wait()
			mu.Lock()
			if active != want.connecting || most != want.connecting {
				t.Errorf("after %v more: %d logins connecting, at most %d at once; want %d", want.after, active, most, want.connecting)
			}
			mu.Unlock()
		}
		close(release)
		wg.Wait()
	})
}

// A session taken over at start shows what its login negotiated, as the
// kernel keeps it, not zero values: -P 2 after a goiscsid restart printed
// MaxRecvDataSegmentLength 0 and ImmediateData No.
func TestAdoptedSessionKeepsNegotiatedValues(t *testing.T) {
	f := newFixture(t)
	f.fs.AddSession(7, 3, testIQN, "127.0.0.1", 3260)
	for name, v := range map[string]string{"tpgt": "1", "ifacename": "default", "initiatorname": testIni,
		"recovery_tmo": "120", "first_burst_len": "65536", "max_burst_len": "262144", "max_outstanding_r2t": "1",
		"initial_r2t": "0", "immediate_data": "1", "data_pdu_in_order": "1", "data_seq_in_order": "1", "erl": "0"} {
		f.fs.SetSessionAttr(7, name, v)
	}
	for name, v := range map[string]string{"max_recv_dlength": "262144", "max_xmit_dlength": "131072",
		"header_digest": "1", "data_digest": "0", "exp_statsn": "42"} {
		f.fs.SetConnAttr(7, name, v)
	}
	f.d.adopt(func(string, string, int, string) (*conf.Record, error) { return nil, nil })
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions})
	if len(resp.Sessions) != 1 {
		t.Fatalf("sessions %+v", resp.Sessions)
	}
	want := mgmt.Negotiated{HeaderDigest: "CRC32C", DataDigest: "None", MaxRecvDataSegmentLength: 262144,
		MaxXmitDataSegmentLength: 131072, FirstBurstLength: 65536, MaxBurstLength: 262144, ImmediateData: true,
		MaxOutstandingR2T: 1}
	if s := resp.Sessions[0]; s.SID != 7 || s.HostNo != 3 || s.Params != want || s.TPGT != 1 {
		t.Errorf("adopted session %+v\nparams %+v, want %+v", s, s.Params, want)
	}
}

// A session without a node record (a boot login) is taken over with the CHAP
// credentials the kernel keeps, so its relogin after a drop authenticates; a
// session with a record keeps the record's.
func TestAdoptedSessionCHAPFromKernel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stored *conf.Record
		want   map[string]string
	}{
		{"no record", nil, map[string]string{"node.session.auth.authmethod": "CHAP",
			"node.session.auth.username": "boot", "node.session.auth.password": "s3cret-boot",
			"node.session.auth.username_in": "tgt", "node.session.auth.password_in": "s3cret-tgt"}},
		{"record", conf.NewNodeRecord(nil, testIQN, "127.0.0.1", 3260, 1, "default"),
			map[string]string{"node.session.auth.authmethod": "None", "node.session.auth.username": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.fs.AddSession(7, 3, testIQN, "127.0.0.1", 3260)
			for name, v := range map[string]string{"tpgt": "1", "ifacename": "default", "initiatorname": testIni,
				"username": "boot", "password": "s3cret-boot", "username_in": "tgt", "password_in": "s3cret-tgt"} {
				f.fs.SetSessionAttr(7, name, v)
			}
			f.d.adopt(func(string, string, int, string) (*conf.Record, error) { return tc.stored, nil })
			f.d.mu.Lock()
			ds := f.d.sessions[7]
			f.d.mu.Unlock()
			if ds == nil {
				t.Fatal("session 7 not taken over")
			}
			for k, v := range tc.want {
				if got := ds.rec.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// A socket that fails ends the daemon with its error (so that systemd's
// Restart=on-failure restarts it), and the other socket stops too.
func TestServeAllEndsOnFailure(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &mgmt.Server{Handler: mgmt.HandlerFunc(func(context.Context, *mgmt.Request) *mgmt.Response { return &mgmt.Response{} }),
		Logger: slog.New(slog.DiscardHandler)}
	otherStopped := make(chan struct{})
	ln.Close() // the listener fails under the server, not by the context
	err = serveAll(context.Background(),
		func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		func(ctx context.Context) error { <-ctx.Done(); close(otherStopped); return nil })
	if err == nil {
		t.Fatal("serveAll returned nil after a socket failed")
	}
	select {
	case <-otherStopped:
	default:
		t.Fatal("the other server still runs")
	}
	// A clean stop is no error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := serveAll(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil }); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// Stock iscsiadm's login goes through the same login as goiscsiadm's, and
// goiscsi's own keys come from the node database, where stock's record
// cannot carry them: a record set to autoscan_en = No scans LUN 0 alone.
func TestStockLoginHonoursOwnKeys(t *testing.T) {
	f := newFixture(t)
	f.d.db = &conf.DB{Root: t.TempDir()}
	port, _ := strconv.Atoi(f.rec["node.conn[0].port"])
	r := conf.NewNodeRecord(nil, testIQN, f.rec["node.conn[0].address"], port, 1, "default")
	r.Set("node.session.autoscan_en", "No")
	if err := f.d.db.SaveNode(r); err != nil {
		t.Fatal(err)
	}
	stockRec := map[string]string{"node.session.conn_reopen_log_freq": "0"} // a 2.1.11 key goiscsi does not know
	for k, v := range r.Map() {
		if k != "node.session.autoscan_en" {
			stockRec[k] = v
		}
	}
	stockRec["node.conn[0].timeo.login_timeout"] = "5"
	resp := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionLogin, Record: stockRec})
	if resp.Err != 0 {
		t.Fatalf("stock login: %d", resp.Err)
	}
	sessions := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions}).Sessions
	if len(sessions) != 1 || sessions[0].ScanPolicy != "lun0" || f.fs.ScanWritten(sessions[0].HostNo) != "0 0 0" {
		t.Fatalf("sessions %+v, scan %q", sessions, f.fs.ScanWritten(sessions[0].HostNo))
	}
	sid := sessions[0].SID
	info := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionInfo, SID: sid})
	if info.Err != 0 || info.SessionState != stockipc.SessionNoChange || info.ConnState != stockipc.ConnLoggedIn {
		t.Errorf("session info %+v", info)
	}
	if again := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionLogin, Record: stockRec}); again.Err != iscsierr.SessExists {
		t.Errorf("second stock login: %d, want 15", again.Err)
	}
	if out := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionLogout, SID: sid}); out.Err != 0 {
		t.Errorf("stock logout: %d", out.Err)
	}
	if gone := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionInfo, SID: sid}); gone.Err != iscsierr.SessNotFound {
		t.Errorf("info of a logged-out session: %d", gone.Err)
	}
}

// A record stock made has no goiscsi settings beside it, and stock's login
// request cannot carry node.session.autoscan_en: iscsid.conf's value decides,
// as for a record goiscsiadm logs in without one, whether the record is in
// goiscsid's database (stock on the host) or not (a container's own). A
// value goiscsi keeps beside the record wins over iscsid.conf's.
func TestStockLoginHonoursConfigAutoscan(t *testing.T) {
	cfg, err := conf.ParseConfig(strings.NewReader("node.session.autoscan_en = No\n"), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		record func(t *testing.T, db *conf.DB, r *conf.Record)
		scan   string
		policy string
	}{
		{"stock's record", func(t *testing.T, db *conf.DB, r *conf.Record) {
			// What stock writes: the record file alone.
			b, err := r.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			id := r.ID()
			file := filepath.Join(db.Root, "nodes", id.Target, id.Address+","+strconv.Itoa(id.Port)+",1", "default")
			if err := conf.WriteFileAtomic(file, b); err != nil {
				t.Fatal(err)
			}
		}, "0 0 0", "lun0"},
		{"a container's record", func(*testing.T, *conf.DB, *conf.Record) {}, "0 0 0", "lun0"},
		{"goiscsi's own setting", func(t *testing.T, db *conf.DB, r *conf.Record) {
			r.Set("node.session.autoscan_en", "Yes")
			if err := db.SaveNode(r); err != nil {
				t.Fatal(err)
			}
		}, "- - -", "auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureConfig(t, cfg)
			f.d.db = &conf.DB{Root: t.TempDir(), Warn: func(err error) { t.Errorf("database: %v", err) }}
			port, _ := strconv.Atoi(f.rec["node.conn[0].port"])
			r := conf.NewNodeRecord(nil, testIQN, f.rec["node.conn[0].address"], port, 1, "default")
			tc.record(t, f.d.db, r)
			stockRec := map[string]string{}
			for k, v := range r.Map() {
				if !conf.IsNodeKey(k) || k == "node.session.autoscan_en" {
					continue
				}
				stockRec[k] = v
			}
			stockRec["node.conn[0].timeo.login_timeout"] = "5"
			if resp := f.d.ServeStock(context.Background(), &stockipc.Request{Command: stockipc.CmdSessionLogin, Record: stockRec}); resp.Err != 0 {
				t.Fatalf("stock login: %d", resp.Err)
			}
			sessions := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions}).Sessions
			if len(sessions) != 1 {
				t.Fatalf("sessions %+v", sessions)
			}
			if s := sessions[0]; s.ScanPolicy != tc.policy || f.fs.ScanWritten(s.HostNo) != tc.scan {
				t.Errorf("scan policy %q, scan file %q; want %q, %q", s.ScanPolicy, f.fs.ScanWritten(s.HostNo), tc.policy, tc.scan)
			}
		})
	}
}

// A subscriber sees a session's life in order: the login, the connection
// error, the recovery and its end, a LUN change the target announces, the
// logout; one that falls behind is dropped (its channel closed) without ever
// holding a session up.
func TestEvents(t *testing.T) {
	f := newFixture(t)
	events, cancel := f.d.SubscribeEvents()
	defer cancel()
	var seen []mgmt.EventKind
	next := func(want mgmt.EventKind) mgmt.Event {
		t.Helper()
		for {
			select {
			case e := <-events:
				seen = append(seen, e.Kind)
				if e.Kind == want {
					return e
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no %s event; saw %v", want, seen)
			}
		}
	}
	s := f.login(t, nil)
	if e := next(mgmt.EventLoggedIn); e.SID != int(s.SID) || e.Target != testIQN || e.State != "LOGGED_IN" || e.Iface != "default" {
		t.Errorf("login event %+v", e)
	}
	// The target counts a session once its login response is out, a
	// moment after the initiator has it.
	ctx, cancelWait := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelWait()
	if _, err := f.srv.WaitSessions(ctx, testIQN, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := f.srv.DropConnections(testIQN, 0, 0); err != nil || n != 1 {
		t.Fatalf("dropped %d connections: %v", n, err)
	}
	if e := next(mgmt.EventConnError); e.SID != int(s.SID) || e.Detail == "" {
		t.Errorf("connection error event %+v", e)
	}
	next(mgmt.EventRecovering)
	next(mgmt.EventRecovered)
	if _, err := f.srv.WaitSessions(ctx, testIQN, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := f.srv.SendAsyncEvent(target.AsyncEvent{Target: testIQN, Sense: target.SenseCode{Key: 6, ASC: 0x3f, ASCQ: 0x0e}}); err != nil || n != 1 {
		t.Fatalf("AEN sent on %d sessions: %v", n, err)
	}
	next(mgmt.EventLUNsChanged)
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogout, SID: int(s.SID)}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if e := next(mgmt.EventLoggedOut); e.SID != int(s.SID) {
		t.Errorf("logout event %+v", e)
	}

	slow, cancelSlow := f.d.SubscribeEvents()
	defer cancelSlow()
	for range eventBufferLen + 1 {
		f.d.bus.publish(mgmt.Event{Kind: mgmt.EventLUNsChanged})
	}
	n := 0
	for range slow {
		n++
	}
	if n != eventBufferLen {
		t.Errorf("a subscriber that never read got %d events before its channel closed, want %d", n, eventBufferLen)
	}
}
