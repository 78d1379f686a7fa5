package stockipc_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/stockipc"
)

var sockSeq atomic.Int64

// serve starts s on an abstract socket of the test's own (never the real
// name: a host iscsid could be listening there) and returns its address and
// a stop function that cancels Serve and waits for it.
func serve(t *testing.T, s *stockipc.Server) (addr string, stop func()) {
	t.Helper()
	addr = fmt.Sprintf("@goiscsi-stockipc-test-%d-%d", os.Getpid(), sockSeq.Add(1))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = discardLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return 10 s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return addr, stop
}

// exchange sends the request bytes in the given pieces and reads the answer
// as stock iscsiadm does (the whole struct, until EOF).
func exchange(t *testing.T, addr string, pieces ...[]byte) []byte {
	t.Helper()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, p := range pieces {
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func answer(t *testing.T, b []byte) *stockipc.Response {
	t.Helper()
	if len(b) == 0 {
		t.Fatal("no answer")
	}
	r, err := stockipc.DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func request(t *testing.T, r *stockipc.Request) []byte {
	t.Helper()
	b, err := stockipc.EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loginRequest(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/stock-2.1.8/login-chap.req")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerAnswers(t *testing.T) {
	var got []*stockipc.Request
	var mu sync.Mutex
	s := &stockipc.Server{Handler: stockipc.HandlerFunc(func(_ context.Context, r *stockipc.Request) *stockipc.Response {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		switch r.Command {
		case stockipc.CmdSessionInfo:
			return &stockipc.Response{Command: stockipc.CmdSessionLogin, SessionState: stockipc.SessionNoChange, ConnState: stockipc.ConnLoggedIn}
		case stockipc.CmdSessionLogout:
			return nil
		case stockipc.CmdConfigIName:
			return &stockipc.Response{Config: string(make([]byte, 300))} // not encodable
		}
		return &stockipc.Response{}
	})}
	s.FakePeerUID()
	// The pieces below come in separate writes: a loaded machine must not
	// make the server take the first ones for all there is. Only "short"
	// waits this long.
	s.SetSettle(time.Second)
	addr, _ := serve(t, s)
	login := loginRequest(t)

	for _, c := range []struct {
		name   string
		pieces [][]byte
		cmd    stockipc.Command
		err    iscsierr.Code
		conn   int
	}{
		{"login", [][]byte{login}, stockipc.CmdSessionLogin, 0, 0},
		{"login in pieces", [][]byte{login[:100], login[100:8000], login[8000:]}, stockipc.CmdSessionLogin, 0, 0},
		// The server sets the answer's command to the request's.
		{"info", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdSessionInfo, SID: 3})}, stockipc.CmdSessionInfo, 0, stockipc.ConnLoggedIn},
		{"no answer from the handler", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdSessionLogout, SID: 3})}, stockipc.CmdSessionLogout, 9, 0},
		{"answer not encodable", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdConfigIName})}, stockipc.CmdConfigIName, 9, 0},
		{"conn add", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdConnAdd})}, stockipc.CmdConnAdd, 1, 0},
		{"send targets", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdSendTargets})}, stockipc.CmdSendTargets, 16, 0},
		{"unknown command", [][]byte{request(t, &stockipc.Request{Command: 77})}, 77, 16, 0},
		{"payload", [][]byte{request(t, &stockipc.Request{Command: stockipc.CmdNotifyAddNode, PayloadLen: 4})}, stockipc.CmdNotifyAddNode, 16, 0},
		{"short", [][]byte{login[:5000]}, stockipc.CmdSessionLogin, 16, 0},
		// One write: two, a second apart on a loaded machine, were taken
		// for two requests.
		{"too long", [][]byte{slices.Concat(login, login)}, stockipc.CmdSessionLogin, 16, 0},
		{"bad record", [][]byte{badRecord(login)}, stockipc.CmdSessionLogin, 7, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := answer(t, exchange(t, addr, c.pieces...))
			if r.Command != c.cmd || r.Err != c.err || r.ConnState != c.conn {
				t.Errorf("answer %+v, want command %v err %d conn state %d", r, c.cmd, c.err, c.conn)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 || got[0].Record["node.name"] != "iqn.2003-01.org.example:tgt1" || got[2].SID != 3 {
		t.Errorf("handler saw %d requests: %v", len(got), got)
	}
}

// badRecord breaks the node name's NUL.
func badRecord(login []byte) []byte {
	b := append([]byte(nil), login...)
	for i := 16 + 16; i < 16+16+255; i++ {
		b[i] = 'x'
	}
	return b
}

func TestServerRefusesNonRoot(t *testing.T) {
	called := false
	s := &stockipc.Server{Handler: stockipc.HandlerFunc(func(context.Context, *stockipc.Request) *stockipc.Response {
		called = true
		return &stockipc.Response{}
	})}
	s.FakePeerUID().Store(1000)
	addr, stop := serve(t, s)
	r := answer(t, exchange(t, addr, loginRequest(t)))
	// As stock: command 0 (the request is not looked at), ISCSI_ERR_ACCESS.
	if r.Command != 0 || r.Err != 13 {
		t.Errorf("answer %+v, want command 0 err 13", r)
	}
	stop()
	if called {
		t.Error("the handler served a peer that is not root")
	}
}

// The real SO_PEERCRED check: this test's process is the peer.
func TestServerPeerCredentials(t *testing.T) {
	s := &stockipc.Server{Handler: stockipc.HandlerFunc(func(context.Context, *stockipc.Request) *stockipc.Response {
		return &stockipc.Response{}
	})}
	addr, _ := serve(t, s)
	r := answer(t, exchange(t, addr, request(t, &stockipc.Request{Command: stockipc.CmdImmediateStop})))
	want := iscsierr.Success
	if os.Geteuid() != 0 {
		want = iscsierr.Access
	}
	if r.Err != want {
		t.Errorf("uid %d got err %d, want %d", os.Geteuid(), r.Err, want)
	}
}

// A client that sends nothing, or part of a request and then waits, is let go
// after ReadTimeout and the settle time; one that closes gets no answer.
func TestServerSilentClients(t *testing.T) {
	calls := atomic.Int32{}
	s := &stockipc.Server{ReadTimeout: 50 * time.Millisecond, Handler: stockipc.HandlerFunc(func(context.Context, *stockipc.Request) *stockipc.Response {
		calls.Add(1)
		return &stockipc.Response{}
	})}
	s.FakePeerUID()
	addr, _ := serve(t, s)
	if b := exchange(t, addr); len(b) != 0 {
		t.Errorf("silent client got %d bytes", len(b))
	}
	start := time.Now()
	r := answer(t, exchange(t, addr, loginRequest(t)[:3000]))
	if r.Err != 16 || time.Since(start) > 5*time.Second {
		t.Errorf("partial request: %+v after %v", r, time.Since(start))
	}
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(loginRequest(t)[:10])
	c.(*net.UnixConn).CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if r := answer(t, b); r.Err != 16 {
		t.Errorf("10 bytes then EOF: %+v", r)
	}
	if calls.Load() != 0 {
		t.Errorf("handler called %d times", calls.Load())
	}
}

// At most MaxConns handlers run at once; the others wait their turn.
func TestServerMaxConns(t *testing.T) {
	const clients, limit = 6, 2
	var cur, peak atomic.Int32
	entered := make(chan struct{}, clients)
	release := make(chan struct{})
	s := &stockipc.Server{MaxConns: limit, Handler: stockipc.HandlerFunc(func(context.Context, *stockipc.Request) *stockipc.Response {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		cur.Add(-1)
		return &stockipc.Response{}
	})}
	s.FakePeerUID()
	addr, _ := serve(t, s)
	req := request(t, &stockipc.Request{Command: stockipc.CmdSessionLogout, SID: 1})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(req); err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(c)
			if err == nil && len(b) != stockipc.ResponseSize {
				err = fmt.Errorf("answer of %d bytes", len(b))
			}
			errs <- err
		}()
	}
	<-entered
	<-entered
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("%d handlers ran at once, limit %d", p, limit)
	}
}

// Shutdown waits for a login in progress and writes its answer; a read in
// progress ends at once; no goroutine stays behind.
func TestServerShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	entered := make(chan struct{})
	release := make(chan struct{})
	s := &stockipc.Server{ReadTimeout: time.Hour, Handler: stockipc.HandlerFunc(func(context.Context, *stockipc.Request) *stockipc.Response {
		close(entered)
		<-release
		return &stockipc.Response{Err: 29}
	})}
	s.FakePeerUID()
	addr, stop := serve(t, s)
	got := make(chan []byte)
	go func() { got <- exchange(t, addr, loginRequest(t)) }()
	<-entered
	idle, err := net.Dial("unix", addr) // sends nothing: its read must not hold Serve for an hour
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Serve returned with a handler still running")
	case b := <-got:
		t.Fatalf("answer %d bytes before the handler returned", len(b))
	default:
	}
	close(release)
	if r := answer(t, <-got); r.Err != 29 {
		t.Errorf("answer %+v, want the handler's 29", r)
	}
	<-stopped
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Serve returned, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
