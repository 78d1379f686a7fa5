package isns_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/isns/isnstest"
)

const initiator = "iqn.1993-08.org.debian:01:goiscsi"

func newServer(t *testing.T) *isnstest.Server {
	t.Helper()
	s, err := isnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, addr string, opts ...isns.Option) *isns.Client {
	t.Helper()
	c, err := isns.Dial(context.Background(), addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func listen(t *testing.T, network string) *isns.SCNListener {
	t.Helper()
	l, err := isns.ListenSCN(context.Background(), network, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// tags lists an attribute list's tags, to compare with what stock sends.
func tags(as isns.Attrs) []isns.Tag {
	var out []isns.Tag
	for _, a := range as {
		out = append(out, a.Tag)
	}
	return out
}

func waitEvent(t *testing.T, l *isns.SCNListener, kind isns.EventKind, name string) isns.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatal("events channel closed")
			}
			if ev.Kind == kind && ev.Name == name {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event for %q", kind, name)
		}
	}
}

func TestRegisterQueryDeregister(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			s := newServer(t)
			c := dial(t, s.Addr())
			l := listen(t, network)
			reg, err := c.RegisterInitiator(context.Background(), isns.Initiator{Name: initiator, Alias: "host1", EntityID: "host1.example.com", SCN: l})
			if err != nil {
				t.Fatal(err)
			}
			if reg.EntityID != "host1.example.com" || reg.Period != 900*time.Second {
				t.Fatalf("registration %+v", reg)
			}
			reqs := s.Requests()
			if len(reqs) != 2 || reqs[0].Function != isns.DevAttrReg || reqs[1].Function != isns.SCNReg {
				t.Fatalf("requests %v", reqs)
			}
			// The attribute set iscsid's discovery daemon sends, plus the alias.
			r := reqs[0]
			want := []isns.Tag{isns.TagEntityIdentifier, isns.TagEntityProtocol, isns.TagPortalIPAddress, isns.TagPortalPort, isns.TagSCNPort,
				isns.TagISCSIName, isns.TagISCSINodeType, isns.TagISCSIAlias}
			if got := tags(r.Operating); !reflect.DeepEqual(got, want) || r.Flags&isns.FlagReplace == 0 || !reflect.DeepEqual(tags(r.Key), []isns.Tag{isns.TagEntityIdentifier}) {
				t.Fatalf("DevAttrReg %v", r)
			}
			scnPort, _ := r.Operating.Uint32(isns.TagSCNPort)
			if uint16(scnPort) != l.Port() || (scnPort&(1<<16) != 0) != (network == "udp") {
				t.Fatalf("SCN port %#x, listener %d/%s", scnPort, l.Port(), network)
			}
			if ip, _ := r.Operating[2].AsIP(); ip != netip.MustParseAddr("127.0.0.1") {
				t.Fatalf("portal address %v", ip)
			}
			if s.SCNBitmap(initiator) != isns.DefaultSCNBitmap {
				t.Fatalf("SCN bitmap %v", s.SCNBitmap(initiator))
			}

			// Several targets, several portals each.
			if err := s.AddTarget("iqn.2003-01.org.example:t1", "t one", netip.MustParseAddrPort("10.0.0.1:3260"), netip.MustParseAddrPort("[fd00::1]:3261")); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, l, isns.EventAdded, "iqn.2003-01.org.example:t1")
			if err := s.AddTarget("iqn.2003-01.org.example:t2", "", netip.MustParseAddrPort("10.0.0.2:3260")); err != nil {
				t.Fatal(err)
			}
			ev := waitEvent(t, l, isns.EventAdded, "iqn.2003-01.org.example:t2")
			if ev.Destination != initiator || ev.Bitmap != isns.SCNObjectAdded|isns.SCNObjectUpdated {
				t.Fatalf("event %+v", ev)
			}
			ts, err := c.QueryTargets(context.Background(), initiator)
			if err != nil {
				t.Fatal(err)
			}
			a := netip.MustParseAddr
			wantTS := []isns.Target{
				{Name: "iqn.2003-01.org.example:t1", Alias: "t one", Entity: "isns.entity.0001", Portals: []isns.TargetPortal{{Address: a("10.0.0.1"), Port: 3260, PGT: 1}, {Address: a("fd00::1"), Port: 3261, PGT: 1}}},
				{Name: "iqn.2003-01.org.example:t2", Entity: "isns.entity.0002", Portals: []isns.TargetPortal{{Address: a("10.0.0.2"), Port: 3260, PGT: 1}}},
			}
			if !reflect.DeepEqual(ts, wantTS) {
				t.Fatalf("targets\n%+v\nwant\n%+v", ts, wantTS)
			}
			q := s.Requests()[2]
			wantQ := []isns.Tag{32, 33, 34, 16, 17, 48, 49, 50, 51}
			if !reflect.DeepEqual(tags(q.Operating), wantQ) || !reflect.DeepEqual(tags(q.Key), []isns.Tag{isns.TagISCSINodeType}) {
				t.Fatalf("query %v", q)
			}
			// By name, as iscsid does on an SCN; a name that is gone yields nothing.
			ts, err = c.QueryTargets(context.Background(), initiator, "iqn.2003-01.org.example:t2", "iqn.none")
			if err != nil || len(ts) != 1 || ts[0].Name != "iqn.2003-01.org.example:t2" {
				t.Fatalf("by name: %+v %v", ts, err)
			}

			if err := s.RemoveTarget("iqn.2003-01.org.example:t1"); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, l, isns.EventRemoved, "iqn.2003-01.org.example:t1")

			if err := c.Refresh(context.Background(), initiator, reg.EntityID); err != nil {
				t.Fatal(err)
			}
			if err := c.Deregister(context.Background(), initiator, reg.EntityID); err != nil {
				t.Fatal(err)
			}
			if s.Registered(initiator) {
				t.Fatal("still registered")
			}
			if err := c.Refresh(context.Background(), initiator, reg.EntityID); !errors.Is(err, isns.ErrNotRegistered) {
				t.Fatalf("refresh after deregistration: %v", err)
			}
		})
	}
}

func TestDiscoverTargetsRegistersWhenUnknown(t *testing.T) {
	s := newServer(t)
	s.SourceMustBeRegistered = true
	if err := s.AddTarget("iqn.t", "", netip.MustParseAddrPort("10.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	ts, err := c.DiscoverTargets(context.Background(), initiator)
	if err != nil || len(ts) != 1 || ts[0].Name != "iqn.t" {
		t.Fatalf("%+v %v", ts, err)
	}
	var fns []string
	for _, r := range s.Requests() {
		fns = append(fns, r.Function.String())
	}
	if got := strings.Join(fns, ","); got != "DevAttrQry,DevAttrReg,DevAttrQry,DevDereg" {
		t.Fatalf("requests %s", got)
	}
	reg := s.Requests()[1]
	if len(reg.Key) != 0 || !reflect.DeepEqual(tags(reg.Operating), []isns.Tag{isns.TagISCSIName, isns.TagISCSINodeType}) {
		t.Fatalf("bare registration %v", reg)
	}
	if s.Registered(initiator) {
		t.Fatal("left registered")
	}
}

// A server that says No Such Entry (the RFC's answer; isnsd answers
// Successful with nothing instead) means no targets to QueryTargets and a
// lost registration to Refresh.
func TestNoSuchEntry(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status isns.Status
	}{{"no such entry", isns.StatusNoSuchEntry}, {"source unknown", isns.StatusSourceUnknown}} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.Intercept = func(req *isns.Message) *isns.Message {
				return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, Status: tt.status}
			}
			c := dial(t, s.Addr())
			ts, err := c.QueryTargets(context.Background(), initiator, "iqn.a", "iqn.b")
			if tt.status == isns.StatusNoSuchEntry && (err != nil || len(ts) != 0) {
				t.Fatalf("QueryTargets: %+v %v", ts, err)
			}
			if tt.status == isns.StatusSourceUnknown && !errors.Is(err, isns.StatusSourceUnknown) {
				t.Fatalf("QueryTargets: %+v %v", ts, err)
			}
			err = c.Refresh(context.Background(), initiator, "host1")
			if !errors.Is(err, isns.ErrNotRegistered) || !errors.Is(err, tt.status) {
				t.Fatalf("Refresh: %v", err)
			}
		})
	}
	// isnsd's way: Successful, nothing in it.
	s := newServer(t)
	c := dial(t, s.Addr())
	if ts, err := c.QueryTargets(context.Background(), initiator); err != nil || len(ts) != 0 {
		t.Fatalf("empty server: %+v %v", ts, err)
	}
	if err := c.Refresh(context.Background(), initiator, "host1"); !errors.Is(err, isns.ErrNotRegistered) || errors.Is(err, isns.StatusNoSuchEntry) {
		t.Fatalf("Refresh of an unknown entity: %v", err)
	}
}

func TestServerStatus(t *testing.T) {
	tests := []struct {
		name   string
		status isns.Status
		call   func(c *isns.Client) error
		text   string
	}{
		{"invalid registration", isns.StatusInvalidRegistration, func(c *isns.Client) error {
			_, err := c.RegisterInitiator(context.Background(), isns.Initiator{Name: initiator})
			return err
		}, "DevAttrReg: server answered status 3 (Invalid Registration)"},
		{"source unauthorized", isns.StatusSourceUnauthorized, func(c *isns.Client) error {
			_, err := c.QueryTargets(context.Background(), initiator)
			return err
		}, "status 8 (Source Unauthorized)"},
		{"scn rejected", isns.StatusSCNRegistrationRejected, func(c *isns.Client) error {
			return c.RegisterSCN(context.Background(), initiator, isns.DefaultSCNBitmap)
		}, "status 17 (SCN Registration Rejected)"},
		{"busy", isns.StatusBusy, func(c *isns.Client) error { return c.Deregister(context.Background(), initiator, "") }, "status 12 (Busy)"},
		{"unknown status", 77, func(c *isns.Client) error { return c.DeregisterSCN(context.Background(), initiator) }, "status 77"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.Intercept = func(req *isns.Message) *isns.Message {
				return &isns.Message{Function: req.Function.Response(), Status: tt.status}
			}
			err := tt.call(dial(t, s.Addr()))
			var se *isns.StatusError
			if !errors.As(err, &se) || se.Status != tt.status || !errors.Is(err, tt.status) {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("%q does not contain %q", err, tt.text)
			}
		})
	}
}

// rawServer accepts connections and runs serve on each.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func readReq(c net.Conn) *isns.Message {
	m, err := isns.NewReader(c).ReadMessage()
	if err != nil {
		return nil
	}
	return m
}

func encode(m *isns.Message, maxPayload int) []byte {
	b, err := m.Encode(maxPayload)
	if err != nil {
		panic(err)
	}
	return b
}

func TestHostileServer(t *testing.T) {
	okRsp := func(req *isns.Message) *isns.Message {
		return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, XID: req.XID}
	}
	tests := []struct {
		name  string
		serve func(c net.Conn)
		opts  []isns.Option
		want  string
		is    error
	}{
		{"closes before answering", func(c net.Conn) { readReq(c) }, nil, "closed the connection", nil},
		{"closes mid-reply", func(c net.Conn) {
			req := readReq(c)
			b := encode(okRsp(req), 0)
			c.Write(b[:len(b)-2])
		}, nil, "stream ended inside", isns.ErrTruncated},
		{"garbage", func(c net.Conn) {
			readReq(c)
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, nil, "unsupported iSNSP version", isns.ErrVersion},
		{"huge length never sent", func(c net.Conn) {
			req := readReq(c)
			h := isns.Header{Version: 1, Function: req.Function.Response(), Length: 65535, Flags: isns.FlagServer | isns.FlagFirstPDU | isns.FlagLastPDU, XID: req.XID}
			c.Write(h.Append(nil))
			io.Copy(io.Discard, c) // until the cleanup closes the connection
			// A second, not less: the timeout bounds the dial too, and a
			// loaded machine took more than 200 ms to connect on loopback.
		}, []isns.Option{isns.WithTimeout(time.Second)}, "no response", context.DeadlineExceeded},
		{"endless multi-PDU message", func(c net.Conn) {
			req := readReq(c)
			rsp := okRsp(req)
			for i := 0; i < 2000; i++ {
				rsp.Operating = append(rsp.Operating, isns.StringAttr(isns.TagISCSIName, strings.Repeat("x", 60)))
			}
			c.Write(encode(rsp, 1024))
		}, []isns.Option{isns.WithMaxMessage(64 << 10)}, "limit 65536", isns.ErrTooLong},
		{"never answers", func(c net.Conn) {
			readReq(c)
			io.Copy(io.Discard, c)
			// A second, not less: the timeout bounds the dial too, and a
			// loaded machine took more than 200 ms to connect on loopback.
		}, []isns.Option{isns.WithTimeout(time.Second)}, "no response", context.DeadlineExceeded},
		{"wrong function", func(c net.Conn) {
			req := readReq(c)
			c.Write(encode(&isns.Message{Function: isns.DevAttrReg.Response(), XID: req.XID}, 0))
		}, nil, "answered with DevAttrRegRsp", isns.ErrUnexpected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, tt.serve)
			c := dial(t, addr, tt.opts...)
			start := time.Now()
			_, err := c.QueryTargets(context.Background(), initiator)
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	// The server reads the request and never answers; the call is
	// cancelled once the request is on the server's side.
	received := make(chan struct{})
	onReceived := sync.OnceFunc(func() { close(received) })
	addr := rawServer(t, func(c net.Conn) { readReq(c); onReceived(); io.Copy(io.Discard, c) })
	c := dial(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-received; cancel() }()
	_, err := c.QueryTargets(ctx, initiator)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	c.Close()
	if _, err := c.QueryTargets(context.Background(), initiator); !errors.Is(err, isns.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestXIDMatchingAndRedial(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	addr := rawServer(t, func(c net.Conn) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		r := isns.NewReader(c)
		if n == 1 {
			// Two calls in flight: answer the second first, with a stray
			// response for an unknown XID before either.
			a, _ := r.ReadMessage()
			b, _ := r.ReadMessage()
			if a == nil || b == nil {
				return
			}
			c.Write(encode(&isns.Message{Function: isns.DevAttrQry.Response(), XID: 999, Status: isns.StatusBusy}, 0))
			for _, m := range []*isns.Message{b, a} {
				rsp := &isns.Message{Function: m.Function.Response(), XID: m.XID, Key: m.Key,
					Operating: isns.Attrs{isns.StringAttr(isns.TagISCSIName, m.Key.String(isns.TagISCSIName)), isns.Uint32Attr(isns.TagISCSINodeType, isns.NodeTarget)}}
				c.Write(encode(rsp, 0))
			}
			return // close: the next call must dial again
		}
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			c.Write(encode(&isns.Message{Function: m.Function.Response(), XID: m.XID}, 0))
		}
	})
	c := dial(t, addr)
	var wg sync.WaitGroup
	res := make([][]isns.Target, 2)
	errs := make([]error, 2)
	for i, name := range []string{"iqn.a", "iqn.b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = c.QueryTargets(context.Background(), initiator, name)
		}()
	}
	// The server reads both requests before it answers either, so both are
	// in flight, whichever went out first.
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || res[0][0].Name != "iqn.a" || res[1][0].Name != "iqn.b" {
		t.Fatalf("%+v %v", res, errs)
	}
	// The server closed the first connection; this call redials.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Deregister(context.Background(), initiator, "")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 2 {
		t.Fatalf("%d connections", conns)
	}
}

func TestESI(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			s := newServer(t)
			c := dial(t, s.Addr())
			l := listen(t, network)
			reg, err := c.RegisterInitiator(context.Background(), isns.Initiator{Name: initiator, EntityID: "h", SCN: l, ESIInterval: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if reg.ESIInterval != 30*time.Second {
				t.Fatalf("ESI interval %v", reg.ESIInterval)
			}
			rsps, err := s.SendESI(context.Background(), "h")
			if err != nil || len(rsps) != 1 {
				t.Fatalf("%v %v", rsps, err)
			}
			rsp := rsps[0]
			if rsp.Function != isns.ESI.Response() || rsp.Status != 0 || rsp.Key.String(isns.TagEntityIdentifier) != "h" {
				t.Fatalf("ESIRsp %v", rsp)
			}
			if _, ok := rsp.Key.Get(isns.TagPortalIPAddress); !ok {
				t.Fatalf("ESIRsp lacks the portal: %v", rsp)
			}
			waitEvent(t, l, isns.EventESI, "")
		})
	}
}

func TestListenerRejectsAndShutsDown(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := isns.ListenSCN(ctx, "tcp", "127.0.0.1:0", isns.WithEventBuffer(0))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	// A malformed SCN is answered SCN Event Rejected.
	bad := &isns.Message{Function: isns.SCN, XID: 4, Key: isns.Attrs{isns.StringAttr(isns.TagISCSIName, "i")}}
	rsp, err := isnstest.Exchange(context.Background(), "tcp", addr, bad)
	if err != nil || rsp.Status != isns.StatusSCNEventRejected {
		t.Fatalf("%v %v", rsp, err)
	}
	// An unsupported request is answered Message Not Supported.
	rsp, err = isnstest.Exchange(context.Background(), "tcp", addr, &isns.Message{Function: isns.DevAttrQry, XID: 5, Source: isns.StringAttr(isns.TagISCSIName, "x")})
	if err != nil || rsp.Status != isns.StatusMessageNotSupported {
		t.Fatalf("%v %v", rsp, err)
	}
	// Garbage just closes the connection.
	gc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	gc.Write([]byte("garbage garbage garbage"))
	gc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := gc.Read(make([]byte, 1)); err == nil {
		t.Fatal("garbage answered")
	}
	gc.Close()
	// A good SCN with nobody reading Events: the handler blocks on
	// delivery; cancelling the context must still shut everything down.
	good := isns.NewSCN(6, &isns.Notification{Destination: "i", Timestamp: time.Now(), Changes: []isns.Change{{Bitmap: isns.SCNObjectAdded, Name: "t"}}})
	if rsp, err := isnstest.Exchange(context.Background(), "tcp", addr, good); err != nil || rsp.Status != 0 || rsp.Key.String(isns.TagISCSIName) != "i" {
		t.Fatalf("%v %v", rsp, err)
	}
	cancel()
	select {
	case _, ok := <-l.Events():
		if ok {
			// The blocked event may be delivered or dropped at shutdown.
			for range l.Events() {
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events channel not closed after cancel")
	}
	l.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before", n, before)
	}
}

func TestDialDefaults(t *testing.T) {
	s := newServer(t)
	_, port, _ := net.SplitHostPort(s.Addr())
	var got string
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		got = addr
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}
	for in, want := range map[string]string{"10.0.0.1": "10.0.0.1:3205", "10.0.0.1:3206": "10.0.0.1:3206", "fd00::1": "[fd00::1]:3205", "[fd00::1]": "[fd00::1]:3205", "isns.example.com": "isns.example.com:3205"} {
		c, err := isns.Dial(context.Background(), in, isns.WithDialer(dialer))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if got != want {
			t.Errorf("Dial(%q) dialled %q, want %q", in, got, want)
		}
	}
	if _, err := isns.Dial(context.Background(), "127.0.0.1:1", isns.WithTimeout(time.Second)); err == nil || !strings.Contains(err.Error(), "connect to 127.0.0.1:1") {
		t.Fatalf("refused: %v", err)
	}
}
