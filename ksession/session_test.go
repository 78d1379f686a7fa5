package ksession_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/test/target"
	"golang.org/x/sys/unix"
)

const (
	kIQN     = "iqn.2026-11.dev.goiscsi:kernel"
	kCHAPIQN = "iqn.2026-11.dev.goiscsi:kernel-chap"
	kIni     = "iqn.2026-11.dev.goiscsi:initiator"
)

func startTarget(t *testing.T) (*target.Server, map[string]session.Portal) {
	t.Helper()
	cfg := &target.Config{Targets: []target.TargetConfig{
		{Name: kIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 7, Portals: []string{"127.0.0.1:0"}}},
			LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}, {Number: 5, Size: 1 << 20}}},
		{Name: kCHAPIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
			Auth: target.AuthConfig{Method: "CHAP", Username: "u", Secret: "secret-of-u-12"},
			LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}}},
	}}
	srv, err := target.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	portals := map[string]session.Portal{}
	for _, name := range []string{kIQN, kCHAPIQN} {
		ps, err := srv.Portals(name)
		if err != nil {
			t.Fatal(err)
		}
		portals[name] = ps[0]
	}
	return srv, portals
}

func node(_ *testing.T, name string, p session.Portal) ksession.Node {
	to := conf.DefaultTimeouts()
	to.Login = 5 * time.Second
	return ksession.Node{Node: conf.Node{
		Target: name, InitiatorName: kIni, Operational: session.DefaultOperational(), Auth: session.Auth{Method: session.AuthNone},
		Address: p.Address, Port: p.Port, TPGT: p.TPGT, Iface: conf.Iface{Name: "default"}, Timeouts: to,
		CmdsMax: 128, QueueDepth: 32,
	}}
}

func TestEstablishSetsKernelParamsAndLogsOut(t *testing.T) {
	_, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	conn := k.Conn()
	ctx := context.Background()
	s, err := ksession.Establish(ctx, conn, node(t, kIQN, portals[kIQN]), ksession.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Started(s.SID, 0) {
		t.Fatal("connection not started")
	}
	for p, want := range map[nlink.Param]string{
		nlink.ParamTargetName: kIQN, nlink.ParamInitiatorName: kIni, nlink.ParamTPGT: "7",
		nlink.ParamPersistentAddress: "127.0.0.1", nlink.ParamIfaceName: "default", nlink.ParamSessRecoveryTmo: "120",
	} {
		if got, _ := k.Param(s.SID, p); got != want {
			t.Errorf("%v = %q, want %q", p, got, want)
		}
	}
	// An iface without netdev and hwaddress sets neither, as iscsid does
	// (sysfs shows "(null)", stock iscsiadm -m host <empty>).
	for _, r := range k.Requests() {
		if r.Type == nlink.SetHostParam {
			t.Errorf("SET_HOST_PARAM %v = %q for an unbound iface", r.HostParam, r.Value)
		}
	}
	if s.State() != ksession.LoggedIn || s.ISID != (pdu.ISID{0, 2, 0x3d, byte(s.SID >> 16), byte(s.SID >> 8), byte(s.SID)}) {
		t.Errorf("state %s ISID %v", s.State(), s.ISID)
	}
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(k.Sessions()); n != 0 {
		t.Fatalf("%d kernel sessions left after logout", n)
	}
	// Each step of the logout was timed, for the "logged out" log line.
	if lt := s.LogoutTimes(); lt.Unbind <= 0 || lt.Logout <= 0 || lt.Kernel <= 0 {
		t.Errorf("logout times %+v", lt)
	}
}

func TestEstablishFailureLeavesNothing(t *testing.T) {
	_, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	n := node(t, kCHAPIQN, portals[kCHAPIQN])
	n.Auth = session.Auth{Method: session.AuthCHAP, Username: "u", Password: "wrong-secret-12"}
	conn := k.Conn()
	_, err := ksession.Establish(context.Background(), conn, n, ksession.Hooks{}, nil)
	var le *session.LoginError
	if !errorsAs(err, &le) || !le.AuthFailure() {
		t.Fatalf("wrong secret: %v", err)
	}
	if n := len(k.Sessions()); n != 0 {
		t.Fatalf("%d kernel sessions left after a failed login", n)
	}
	n.Auth.Password = "secret-of-u-12"
	s, err := ksession.Establish(context.Background(), conn, n, ksession.Hooks{}, nil)
	if err != nil {
		t.Fatalf("right secret: %v", err)
	}
	s.Logout(context.Background())
}

// libiscsi refuses a login request with EPERM while it still holds the task of
// the last one, which it frees only after multicasting the response: a login
// waits for it instead of failing.
func TestLoginWhileKernelFreesLoginTask(t *testing.T) {
	_, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	k.FailNext(nlink.SendPDU, syscall.EPERM)
	s, err := ksession.Establish(context.Background(), k.Conn(), node(t, kIQN, portals[kIQN]), ksession.Hooks{}, nil)
	if err != nil {
		t.Fatalf("login after one EPERM from SEND_PDU: %v", err)
	}
	s.Logout(context.Background())
}

func TestAsyncEventAndRecovery(t *testing.T) {
	srv, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	aen := make(chan pdu.Sense, 1)
	recovered := make(chan int, 1)
	hooks := ksession.Hooks{
		AsyncEvent: func(_ *ksession.Session, lun uint64, s pdu.Sense) { aen <- s },
		Recovered:  func(_ *ksession.Session, attempts int) { recovered <- attempts },
	}
	s, err := ksession.Establish(context.Background(), k.Conn(), node(t, kIQN, portals[kIQN]), hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Logout(context.Background())
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.WaitSessions(wctx, kIQN, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SendAsyncEvent(target.AsyncEvent{Target: kIQN, Event: 0, Sense: target.SenseCode{Key: 6, ASC: 0x3f, ASCQ: 0x0e}}); err != nil {
		t.Fatal(err)
	}
	select {
	case sense := <-aen:
		if !sense.ReportedLUNsDataChanged() {
			t.Errorf("sense %v", sense)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no AsyncEvent hook call")
	}
	if _, err := srv.DropConnections(kIQN, 0, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-recovered:
	case <-time.After(15 * time.Second):
		t.Fatalf("no recovery; state %s", s.State())
	}
	if !k.Started(s.SID, 0) || s.State() != ksession.LoggedIn {
		t.Fatalf("after recovery: started %v state %s", k.Started(s.SID, 0), s.State())
	}
}

// A redirected login is followed on a new connection, temporary or permanent,
// and a redirect loop fails the login quickly with an error that says so.
func TestEstablishFollowsRedirects(t *testing.T) {
	srv, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	conn := k.Conn()
	ctx := context.Background()
	self := portals[kIQN].HostPort()
	if err := srv.RefuseLogins(target.LoginRefusal{Target: kIQN, Class: 1, Detail: 2, Address: self}); err != nil {
		t.Fatal(err)
	}
	if err := srv.InjectFault(kIQN, "redirect-loop", 2); err != nil {
		t.Fatal(err)
	}
	s, err := ksession.Establish(ctx, conn, node(t, kIQN, portals[kIQN]), ksession.Hooks{}, nil)
	if err != nil {
		t.Fatalf("after a permanent and two temporary redirections: %v", err)
	}
	s.Logout(ctx)
	if err := srv.InjectFault(kIQN, "redirect-loop", -1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = ksession.Establish(ctx, conn, node(t, kIQN, portals[kIQN]), ksession.Hooks{}, nil)
	var le *session.LoginError
	if !errorsAs(err, &le) || !le.Redirect() || !strings.Contains(err.Error(), "redirect loop") || time.Since(start) > 2*time.Second {
		t.Fatalf("endless redirections: %v after %v", err, time.Since(start))
	}
	if n := len(k.Sessions()); n != 0 {
		t.Fatalf("%d kernel sessions left after a redirect loop", n)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// A connection error lost with other events in a full netlink buffer (ENOBUFS)
// would leave the session listed as logged in with no recovery: the session
// asks the kernel for the connection's state and recovers.
func TestConnErrorLostInOverflowIsRecovered(t *testing.T) {
	srv, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	recovered := make(chan int, 1)
	hooks := ksession.Hooks{Recovered: func(_ *ksession.Session, attempts int) { recovered <- attempts }}
	s, err := ksession.Establish(context.Background(), k.Conn(), node(t, kIQN, portals[kIQN]), hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Logout(context.Background())
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.WaitSessions(wctx, kIQN, 1); err != nil {
		t.Fatal(err)
	}
	k.LoseNextEvent()
	if _, err := srv.DropConnections(kIQN, 0, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-recovered:
	case <-time.After(15 * time.Second):
		t.Fatalf("no recovery after the lost connection error; state %s", s.State())
	}
	if st, _ := k.LinkState(s.SID, 0); st != "up" || s.State() != ksession.LoggedIn {
		t.Fatalf("after recovery: kernel %s, session %s", st, s.State())
	}
}

// A recovery that gives up tears the session down; when that teardown does
// not happen, the session is still in the kernel, says so, and a logout
// finishes it instead of reporting success over a session left behind.
func TestTeardownOwedAfterRecoveryGivesUp(t *testing.T) {
	srv, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	failed := make(chan error, 1)
	hooks := ksession.Hooks{Failed: func(_ *ksession.Session, err error) { failed <- err }}
	s, err := ksession.Establish(context.Background(), k.Conn(), node(t, kIQN, portals[kIQN]), hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.WaitSessions(wctx, kIQN, 1); err != nil {
		t.Fatal(err)
	}
	// The relogin is refused for good (an initiator error), and the kernel
	// refuses the teardown that follows.
	if err := srv.RefuseLogins(target.LoginRefusal{Target: kIQN, Class: 2, Detail: 1, Count: -1}); err != nil {
		t.Fatal(err)
	}
	k.FailNext(nlink.DestroySession, syscall.EBUSY)
	if _, err := srv.DropConnections(kIQN, 0, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !strings.Contains(err.Error(), "still in the kernel") {
			t.Errorf("recovery's error %v does not say the session stayed", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("recovery did not give up; state %s", s.State())
	}
	if !s.InKernel() || len(k.Sessions()) != 1 {
		t.Fatalf("InKernel %v, kernel sessions %v", s.InKernel(), k.Sessions())
	}
	if err := s.Logout(context.Background()); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if s.InKernel() || len(k.Sessions()) != 0 {
		t.Fatalf("after logout: InKernel %v, kernel sessions %v", s.InKernel(), k.Sessions())
	}
}

// The connection leaves through the interface the iface names: by
// iface.hwaddress (found in sysfs) before iface.net_ifacename, as stock binds
// it; an iface bound only by IP address, or by a MAC no interface has, fails
// at once, before the kernel has a session.
func TestEstablishBindsIface(t *testing.T) {
	_, portals := startTarget(t)
	k := nlinktest.New()
	defer k.Close()
	sysfs := t.TempDir()
	lo := filepath.Join(sysfs, "class", "net", "lo")
	if err := os.MkdirAll(lo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lo, "address"), []byte("00:00:00:00:00:00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := node(t, kIQN, portals[kIQN])
	n.SysfsRoot = sysfs
	n.Iface = conf.Iface{Name: "by-mac", Transport: "tcp", HWAddress: "00:00:00:00:00:00", Netdev: "no-such-netdev"}
	s, err := ksession.Establish(context.Background(), k.Conn(), n, ksession.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bound string
	if err := s.WithSocket(func(fd int) (err error) {
		bound, err = unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		return err
	}); err != nil || bound != "lo" {
		t.Errorf("socket bound to %q (%v), want lo", bound, err)
	}
	s.Logout(context.Background())

	for _, i := range []conf.Iface{
		{Name: "by-ip", Transport: "tcp", IPAddress: "10.1.0.1"},
		{Name: "gone", Transport: "tcp", HWAddress: "52:54:00:00:00:09"},
	} {
		n.Iface = i
		_, err := ksession.Establish(context.Background(), k.Conn(), n, ksession.Hooks{}, nil)
		var be *netif.BindError
		if !errorsAs(err, &be) || ksession.Retryable(err) {
			t.Errorf("iface %s: %v, want a *netif.BindError that is not retried", i.Name, err)
		}
	}
	if n := len(k.Sessions()); n != 0 {
		t.Fatalf("%d kernel sessions left", n)
	}
}

// fakeAdmission is a ksession.Admission with one place and a record of
// what Establish asked, safe for the grace timer's Release.
type fakeAdmission struct {
	free       bool  // the place is free for TryAcquire
	acquireErr error // what Acquire returns
	k          *nlinktest.Kernel
	dials      *atomic.Int32

	mu               sync.Mutex
	tried, acquired  int
	released, afterK int // releases; places taken after a kernel request
	beforeDial       int // places taken before the first connect
	releases         chan struct{}
}

func (a *fakeAdmission) took() {
	if len(a.k.Requests()) != 0 {
		a.afterK++
	}
	if a.dials.Load() == 0 {
		a.beforeDial++
	}
}

func (a *fakeAdmission) TryAcquire() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tried++
	if a.free {
		a.took()
	}
	return a.free
}

func (a *fakeAdmission) Acquire(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acquired++
	if a.acquireErr == nil {
		a.took()
	}
	return a.acquireErr
}

func (a *fakeAdmission) Release() {
	a.mu.Lock()
	a.released++
	a.mu.Unlock()
	if a.releases != nil {
		a.releases <- struct{}{}
	}
}

// A login takes its place before it connects and gives it back when
// Establish returns, so the target sees each connection's Login Request at
// once. A portal that outlasts ConnectGrace gives the place back and is
// remembered: its next logins connect first and take a free place, or close
// the connection, wait for one and connect again. A wait that fails leaves
// nothing behind.
func TestEstablishAdmission(t *testing.T) {
	_, portals := startTarget(t)
	// slow is a portal that answers only once its login gave its place
	// back (after ConnectGrace), or never (its dial waits for the login
	// timeout).
	type dialer func(ctx context.Context, network, address string) (net.Conn, error)
	for _, tc := range []struct {
		name                                     string
		free                                     bool  // the fake's place is free for TryAcquire
		acquireErr                               error // what its Acquire returns
		slowBefore                               bool  // the portal is in SlowPortals already
		answers                                  bool  // false: the portal answers no connect
		afterGrace                               bool  // the portal answers once the place is back
		tried, acquired, released, dials, placed int   // placed: places taken before the first connect
		ok, slowAfter                            bool  // slowAfter: the next login connects first
	}{
		{name: "a place before the connect", free: true, answers: true,
			acquired: 1, released: 1, dials: 1, placed: 1, ok: true},
		{name: "the wait fails", acquireErr: context.DeadlineExceeded, answers: true,
			acquired: 1, ok: false},
		{name: "a slow portal, a place free", free: true, slowBefore: true, answers: true,
			tried: 1, released: 1, dials: 1, ok: true},
		{name: "a slow portal, no place free", slowBefore: true, answers: true,
			tried: 1, acquired: 1, released: 1, dials: 2, ok: true},
		{name: "answers after the grace", free: true, answers: true, afterGrace: true,
			tried: 1, acquired: 1, released: 2, dials: 1, placed: 1, ok: true},
		{name: "never answers", answers: false,
			acquired: 1, released: 1, dials: 1, placed: 1, ok: false, slowAfter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := nlinktest.New()
			defer k.Close()
			n := node(t, kIQN, portals[kIQN])
			n.Timeouts.Login = ksession.ConnectGrace + 500*time.Millisecond
			var dials atomic.Int32
			a := &fakeAdmission{free: tc.free, acquireErr: tc.acquireErr, k: k, dials: &dials, releases: make(chan struct{}, 2)}
			var dial dialer = func(ctx context.Context, network, address string) (net.Conn, error) {
				dials.Add(1)
				switch {
				case !tc.answers:
					<-ctx.Done()
					return nil, ctx.Err()
				case tc.afterGrace:
					select {
					case <-a.releases:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return (&net.Dialer{}).DialContext(ctx, network, address)
			}
			n.Dial = dial
			n.Admission = a
			n.SlowPortals = &ksession.SlowPortals{}
			if tc.slowBefore {
				// Mark the portal slow the way a login does: one that
				// outlasts the grace.
				mk := nlinktest.New()
				defer mk.Close()
				m := n
				m.Admission = &fakeAdmission{free: true, k: mk, dials: new(atomic.Int32)}
				m.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				}
				if _, err := ksession.Establish(context.Background(), mk.Conn(), m, ksession.Hooks{}, nil); err == nil {
					t.Fatal("a portal that never answers: logged in")
				}
			}
			s, err := ksession.Establish(context.Background(), k.Conn(), n, ksession.Hooks{}, nil)
			if (err == nil) != tc.ok || a.afterK != 0 {
				t.Errorf("%v, places taken after the kernel was asked: %d", err, a.afterK)
			}
			if s != nil {
				s.Logout(context.Background())
			}
			a.mu.Lock()
			got := []int{a.tried, a.acquired, a.released, int(dials.Load()), a.beforeDial}
			a.mu.Unlock()
			if want := []int{tc.tried, tc.acquired, tc.released, tc.dials, tc.placed}; !slices.Equal(got, want) {
				t.Errorf("tried, acquired, released, dials, places before the connect: %v; want %v", got, want)
			}
			if !tc.ok && tc.acquireErr != nil && !errors.Is(err, tc.acquireErr) {
				t.Errorf("%v, want the wait's error", err)
			}
			if len(k.Sessions()) != 0 {
				t.Errorf("kernel sessions left: %v", k.Sessions())
			}
			// Whether the portal is remembered as slow: the next login
			// connects without waiting for a place first, or waits.
			// Each login has its own fake kernel.
			nk := nlinktest.New()
			defer nk.Close()
			next := &fakeAdmission{free: true, k: nk, dials: new(atomic.Int32)}
			n.Admission, n.Dial = next, nil
			if tc.answers {
				if s, err := ksession.Establish(context.Background(), nk.Conn(), n, ksession.Hooks{}, nil); err != nil {
					t.Fatalf("next login: %v", err)
				} else {
					s.Logout(context.Background())
				}
			} else {
				n.Dial = dial
				ksession.Establish(context.Background(), nk.Conn(), n, ksession.Hooks{}, nil)
			}
			if slow := next.acquired == 0; slow != tc.slowAfter {
				t.Errorf("next login connected before its place: %v, want %v", slow, tc.slowAfter)
			}
		})
	}
}
