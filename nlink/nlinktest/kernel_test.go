package nlinktest

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
)

// target is a minimal peer on the other end of the bound socket.
type target struct {
	t  *testing.T
	ln net.Listener
	c  net.Conn
	r  *pdu.Reader
	w  *pdu.Writer
}

func newTarget(t *testing.T) *target {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &target{t: t, ln: ln}
}

func (g *target) accept() {
	c, err := g.ln.Accept()
	if err != nil {
		g.t.Error(err)
		return
	}
	g.c, g.r, g.w = c, pdu.NewReader(c), pdu.NewWriter(c)
	g.t.Cleanup(func() { c.Close() })
}

func (g *target) read() *pdu.PDU {
	g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var p pdu.PDU
	if err := g.r.Read(&p); err != nil {
		g.t.Fatalf("target read: %v", err)
	}
	return &p
}

func (g *target) send(m pdu.Message, data []byte) {
	p := &pdu.PDU{Data: data}
	m.Encode(&p.Header)
	if err := g.w.Write(p); err != nil {
		g.t.Fatalf("target write: %v", err)
	}
}

// dial connects to g and returns the socket's file descriptor, kept open by
// the returned conn.
func dial(t *testing.T, g *target) (*net.TCPConn, int) {
	c, err := net.Dial("tcp", g.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	g.accept()
	return c.(*net.TCPConn), fd
}

// next returns the next event other than the session-created one, which the
// kernel multicasts while CREATE_SESSION runs and may so reach a subscription
// made right after.
func next(t *testing.T, s *nlink.Subscription) nlink.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for an event: %v", err)
		}
		if ev.Type != nlink.EventCreateSession {
			return ev
		}
	}
}

func TestLoginThroughKernel(t *testing.T) {
	k := New()
	defer k.Close()
	c := k.Conn()
	defer c.Close()
	ctx := context.Background()

	sid, host, err := c.CreateSession(ctx, 5, 128, 32)
	if err != nil || sid != 1 || host != 2 {
		t.Fatalf("CreateSession = %d %d %v", sid, host, err)
	}
	events := c.Subscribe(sid)
	if _, err := c.CreateConn(ctx, sid, 0); err != nil {
		t.Fatal(err)
	}
	g := newTarget(t)
	_, fd := dial(t, g)
	if err := c.BindConn(ctx, sid, 0, fd, true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamTargetName, Value: "iqn.t"}}); err != nil {
		t.Fatal(err)
	}

	// The login request goes out with the kernel's CmdSN and ITT.
	login := &pdu.PDU{Data: []byte("SessionType=Normal\x00")}
	(&pdu.LoginRequest{Transit: true, CSG: 1, NSG: 3, ITT: 7, CmdSN: 99, ExpStatSN: 42}).Encode(&login.Header)
	if err := c.SendPDU(ctx, sid, 0, login); err != nil {
		t.Fatal(err)
	}
	got := g.read()
	var req pdu.LoginRequest
	req.Decode(&got.Header)
	if req.CmdSN != 5 || req.ITT == 7 || req.ExpStatSN != 42 || string(got.Data) != "SessionType=Normal\x00" {
		t.Fatalf("on the wire: %+v %q (want CmdSN 5 from CREATE_SESSION, a kernel ITT, ExpStatSN kept)", req, got.Data)
	}
	g.send(&pdu.LoginResponse{Transit: true, CSG: 1, NSG: 3, ITT: req.ITT, TSIH: 1, StatSN: 10}, nil)
	ev := next(t, events)
	if ev.Type != nlink.EventRecvPDU || ev.PDU.Header.Opcode() != pdu.OpLoginResponse || ev.PDU.Header.ITT() != req.ITT {
		t.Fatalf("event %v", ev)
	}
	if err := c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamExpStatSN, Value: "11"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.StartConn(ctx, sid, 0); err != nil {
		t.Fatal(err)
	}
	if !k.Started(sid, 0) {
		t.Fatal("not started")
	}

	// A target ping is answered by the kernel; an Async Message is forwarded.
	g.send(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: 0x55, StatSN: 11}, nil)
	pong := g.read()
	var nop pdu.NOPOut
	if err := nop.Decode(&pong.Header); err != nil || nop.TTT != 0x55 || nop.ITT != pdu.ReservedTag || nop.ExpStatSN != 12 {
		t.Fatalf("ping answer %+v %v", nop, err)
	}
	g.send(&pdu.AsyncMessage{StatSN: 12, Event: pdu.AsyncSCSIEvent}, pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, pdu.UnitAttention, 0x3f, 0x0e)))
	ev = next(t, events)
	if ev.Type != nlink.EventRecvPDU || ev.PDU.Header.Opcode() != pdu.OpAsyncMessage {
		t.Fatalf("event %v", ev)
	}
	if s, err := pdu.ParseAsyncSCSIEvent(ev.PDU.Data); err != nil || !s.ReportedLUNsDataChanged() {
		t.Fatalf("async payload %v %v", s, err)
	}

	// Logout: the kernel fills in ExpStatSN; a logout with data is refused.
	bad := &pdu.PDU{Data: []byte("x")}
	(&pdu.LogoutRequest{Immediate: true, ITT: 8}).Encode(&bad.Header)
	if err := c.SendPDU(ctx, sid, 0, bad); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("logout with data: %v", err)
	}
	logout := &pdu.PDU{}
	(&pdu.LogoutRequest{Immediate: true, ITT: 8}).Encode(&logout.Header)
	if err := c.SendPDU(ctx, sid, 0, logout); err != nil {
		t.Fatal(err)
	}
	got = g.read()
	var lr pdu.LogoutRequest
	lr.Decode(&got.Header)
	if lr.ExpStatSN != 13 || lr.CmdSN != 5 {
		t.Fatalf("logout on the wire %+v", lr)
	}
	g.send(&pdu.LogoutResponse{ITT: lr.ITT, StatSN: 13}, nil)
	if ev := next(t, events); ev.PDU == nil || ev.PDU.Header.Opcode() != pdu.OpLogoutResponse {
		t.Fatalf("event %v", ev)
	}
	if err := c.DestroySession(ctx, sid, nlink.NoConn); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("destroying a session with a connection: %v", err)
	}
	if err := c.DestroySession(ctx, sid, nlink.ConnBound); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.Type != nlink.EventDestroySession || ev.SID != sid || ev.HostNo != host {
		t.Fatalf("event %v", ev)
	}
	if len(k.Sessions()) != 0 {
		t.Fatal("session left")
	}
}

func TestKernelRefusals(t *testing.T) {
	k := New()
	defer k.Close()
	c := k.Conn()
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateConn(ctx, 99, 0); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("CREATE_CONN on no session: %v", err)
	}
	sid, _, _ := c.CreateSession(ctx, 0, 128, 32)
	c.CreateConn(ctx, sid, 0)
	if _, err := c.CreateConn(ctx, sid, 0); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second CREATE_CONN: %v", err)
	}
	if err := c.StartConn(ctx, sid, 0); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("START_CONN before bind: %v", err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	err := c.BindConn(ctx, sid, 0, int(r.Fd()), true)
	var ke *nlink.KernelError
	if !errors.As(err, &ke) || ke.Op != nlink.BindConn || !errors.Is(err, syscall.ENOTSOCK) {
		t.Errorf("bind a pipe: %v", err)
	}
	k.FailNext(nlink.SetParam, syscall.ENOSYS)
	if err := c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamPingTmo, Value: "5"}}); !errors.Is(err, syscall.ENOSYS) {
		t.Errorf("injected ENOSYS: %v", err)
	}
	// One exchange, one refusal in the middle: the kernel goes on with the
	// rest, and the error names the refused parameter.
	err = c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamTargetName, Value: "iqn.batch"},
		{Param: nlink.ParamSessRecoveryTmo, Value: "soon"}, {Param: nlink.ParamAbortTmo, Value: "17"}})
	if !errors.As(err, &ke) || ke.Param != nlink.ParamSessRecoveryTmo || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad recovery_tmo in a batch: %v", err)
	}
	for p, want := range map[nlink.Param]string{nlink.ParamTargetName: "iqn.batch", nlink.ParamAbortTmo: "17"} {
		if got, _ := k.Param(sid, p); got != want {
			t.Errorf("after the batch %v = %q, want %q", p, got, want)
		}
	}
	st, err := c.GetStats(ctx, sid, 0)
	if err != nil || st == nil {
		t.Errorf("GetStats: %v", err)
	}
	if _, err := c.GetStats(ctx, 77, 0); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("GetStats of no session: %v", err)
	}
}

// A dropped TCP connection becomes a CONN_ERROR event for its session only;
// events of a session nobody subscribed to go to the unclaimed subscription.
func TestConnErrorRouting(t *testing.T) {
	k := New()
	defer k.Close()
	c := k.Conn()
	defer c.Close()
	ctx := context.Background()
	unclaimed := c.SubscribeUnclaimed()
	sid1, _, _ := c.CreateSession(ctx, 0, 128, 32)
	sid2, _, _ := c.CreateSession(ctx, 0, 128, 32)
	s1 := c.Subscribe(sid1)
	for _, sid := range []uint32{sid1, sid2} {
		c.CreateConn(ctx, sid, 0)
		g := newTarget(t)
		_, fd := dial(t, g)
		if err := c.BindConn(ctx, sid, 0, fd, true); err != nil {
			t.Fatal(err)
		}
	}
	k.DropConnection(sid1, 0)
	if ev := next(t, s1); ev.Type != nlink.EventConnError || ev.Error != nlink.ErrTCPConnClose {
		t.Fatalf("session 1 got %v", ev)
	}
	k.DropConnection(sid2, 0)
	if ev := next(t, unclaimed); ev.Type != nlink.EventConnError || ev.SID != sid2 {
		t.Fatalf("unclaimed got %v", ev)
	}
	s1.Cancel()
	if _, err := s1.Next(ctx); !errors.Is(err, nlink.ErrClosed) {
		t.Fatalf("cancelled subscription: %v", err)
	}
}

func TestCloseEndsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	k := New()
	c := k.Conn()
	ctx := context.Background()
	sid, _, _ := c.CreateSession(ctx, 0, 128, 32)
	c.CreateConn(ctx, sid, 0)
	g := newTarget(t)
	_, fd := dial(t, g)
	c.BindConn(ctx, sid, 0, fd, true)
	sub := c.Subscribe(sid)
	c.Close()
	k.Close()
	// Events routed before Close (the session-created one can come late)
	// are still handed out; then Next must end with ErrClosed, not block.
	for n := 0; ; n++ {
		_, err := sub.Next(ctx)
		if errors.Is(err, nlink.ErrClosed) {
			break
		}
		if err != nil || n == 10 {
			t.Fatalf("after Close: %v after %d events, want ErrClosed", err, n)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left, %d before", n, before)
	}
}

// With recv_tmo and ping_tmo set, a quiet target gets NOP-Out pings; one that
// answers keeps the connection, one that does not gets ISCSI_ERR_NOP_TIMEDOUT.
func TestPingTimeout(t *testing.T) {
	for _, answer := range []bool{true, false} {
		k := New()
		c := k.Conn()
		ctx := context.Background()
		sid, _, _ := c.CreateSession(ctx, 0, 128, 32)
		events := c.Subscribe(sid)
		c.CreateConn(ctx, sid, 0)
		g := newTarget(t)
		_, fd := dial(t, g)
		if err := c.BindConn(ctx, sid, 0, fd, true); err != nil {
			t.Fatal(err)
		}
		c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamRecvTmo, Value: "1"}})
		c.SetParams(ctx, sid, 0, []nlink.ParamValue{{Param: nlink.ParamPingTmo, Value: "1"}})
		if err := c.StartConn(ctx, sid, 0); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for pings := 0; pings < 2; pings++ {
			p := g.read()
			var nop pdu.NOPOut
			if err := nop.Decode(&p.Header); err != nil || nop.ITT == pdu.ReservedTag || nop.TTT != pdu.ReservedTag || !nop.Immediate {
				t.Fatalf("ping %+v %v", nop, err)
			}
			if !answer {
				break
			}
			g.send(&pdu.NOPIn{ITT: nop.ITT, TTT: pdu.ReservedTag, StatSN: 1}, nil)
		}
		if answer {
			wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			if ev, err := events.Next(wctx); err == nil && ev.Type == nlink.EventConnError {
				t.Errorf("answered pings: %v", ev)
			}
			cancel()
		} else if ev := next(t, events); ev.Type != nlink.EventConnError || ev.Error != nlink.ErrNOPTimedOut || time.Since(start) > 3*time.Second {
			t.Errorf("unanswered ping: %v after %v", ev, time.Since(start))
		}
		c.Close()
		k.Close()
	}
}
