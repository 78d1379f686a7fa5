package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan"
)

func serve(t *testing.T, h Handler, tweak func(*Server)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "goiscsid.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	if tweak != nil {
		tweak(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

var echo = HandlerFunc(func(ctx context.Context, req *Request) *Response {
	switch req.Op {
	case OpStatus:
		return &Response{Status: &Status{Version: "test", PID: os.Getpid()}}
	case OpLogout:
		if req.SID != 7 {
			return &Response{Error: iscsierr.Errorf(iscsierr.NoObjsFound, "no session %d", req.SID)}
		}
		return &Response{}
	}
	return &Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "unknown op %q", req.Op)}
})

func do(t *testing.T, path string, req *Request) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return (&Client{Path: path}).Do(ctx, req)
}

func TestRoundTrip(t *testing.T) {
	path := serve(t, echo, nil)
	resp, err := do(t, path, &Request{Op: OpStatus})
	if err != nil || resp.Error != nil || resp.Status.PID != os.Getpid() {
		t.Fatalf("%+v %v", resp, err)
	}
	resp, err = do(t, path, &Request{Op: OpLogout, SID: 3})
	if err != nil || resp.Error == nil || resp.Error.Code != 21 {
		t.Fatalf("failed request: %+v %v", resp, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v", di.Mode())
	}
}

func rawExchange(t *testing.T, path, line string) *Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line != "" {
		c.Write([]byte(line))
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("no response to %q: %v", line, err)
	}
	return &resp
}

func TestBadRequests(t *testing.T) {
	path := serve(t, echo, func(s *Server) { s.MaxRequestBytes = 1024; s.ReadTimeout = 200 * time.Millisecond })
	tests := []struct {
		name string
		line string
		code iscsierr.Code
		msg  string
	}{
		{"newer client", `{"version":2,"op":"status"}` + "\n", iscsierr.ISCSIDCommErr, "protocol 2"},
		{"no version", `{"op":"status"}` + "\n", iscsierr.ISCSIDCommErr, "protocol 0"},
		{"garbage", "hello\n", iscsierr.InvalidMgmtReq, "not valid JSON"},
		{"oversized", strings.Repeat("x", 2000) + "\n", iscsierr.InvalidMgmtReq, "longer than 1024"},
		{"silent client", "", iscsierr.InvalidMgmtReq, "not received"},
		{"unknown op", `{"version":1,"op":"frobnicate"}` + "\n", iscsierr.InvalidMgmtReq, "frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawExchange(t, path, tt.line)
			if resp.Version != Version || resp.Error == nil || resp.Error.Code != tt.code || !strings.Contains(resp.Error.Message, tt.msg) {
				t.Fatalf("got %+v", resp.Error)
			}
		})
	}
	// The server still answers after all that.
	if resp, err := do(t, path, &Request{Op: OpStatus}); err != nil || resp.Status == nil {
		t.Fatalf("after bad requests: %+v %v", resp, err)
	}
}

// An older daemon answering a newer client: the client reports the mismatch.
func TestClientDetectsOtherVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf)
		fmt.Fprintln(c, `{"version":0,"error":{"code":18,"message":"client speaks management protocol 1, goiscsid speaks 0"}}`)
	}()
	_, err = do(t, path, &Request{Op: OpStatus})
	var e *iscsierr.Error
	if !errors.As(err, &e) || e.Code != iscsierr.ISCSIDCommErr || !strings.Contains(e.Message, "protocol 0") {
		t.Fatalf("got %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	_, err := do(t, filepath.Join(t.TempDir(), "nothing.sock"), &Request{Op: OpStatus})
	var e *iscsierr.Error
	if !errors.As(err, &e) || e.Code != iscsierr.ISCSIDNotConn || !strings.Contains(e.Message, "not running") {
		t.Fatalf("no daemon: %v", err)
	}
	// A daemon that answers only after the client has given up (or after
	// 5 s, so that a client that does not give up fails the test instead of
	// hanging it).
	gaveUp := make(chan struct{})
	defer close(gaveUp)
	slow := HandlerFunc(func(ctx context.Context, req *Request) *Response {
		select {
		case <-gaveUp:
		case <-time.After(5 * time.Second):
		}
		return &Response{}
	})
	path := serve(t, slow, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = (&Client{Path: path}).Do(ctx, &Request{Op: OpStatus})
	if !errors.As(err, &e) || e.Code != iscsierr.ReqTimedOut {
		t.Fatalf("slow daemon: %v", err)
	}
}

func TestListenRefusesSecondDaemon(t *testing.T) {
	path := serve(t, echo, nil)
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another goiscsid") {
		t.Fatalf("second Listen: %v", err)
	}
	// A stale socket file from a dead daemon is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, _ := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	l.SetUnlinkOnClose(false)
	l.Close()
	ln, err := Listen(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()
}

func TestConcurrentClients(t *testing.T) {
	path := serve(t, echo, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := do(t, path, &Request{Op: OpStatus})
			if err == nil && resp.Status == nil {
				err = errors.New("no status")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A client that is not root is refused by its peer credentials, unless the
// server's Authorize lets its uid in. The test binary runs itself as uid 65534
// to be that client.
func TestNonRootRefused(t *testing.T) {
	if os.Getenv("MGMT_TEST_CLIENT") != "" {
		resp, err := (&Client{Path: os.Getenv("MGMT_TEST_CLIENT")}).Do(context.Background(), &Request{Op: OpStatus})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(0)
		}
		b, _ := json.Marshal(resp)
		fmt.Println(string(b))
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// t.TempDir's parent is private to root; this client needs to get in.
	dir, err := os.MkdirTemp("", "mgmt-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "open.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666) // let the unprivileged client connect; the credential check must stop it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var called, allow atomic.Bool
	go (&Server{Handler: HandlerFunc(func(ctx context.Context, req *Request) *Response {
		called.Store(true)
		return &Response{}
	}), Authorize: func(uid uint32) bool { return allow.Load() && uid == 65534 }}).Serve(ctx, ln)
	// The test binary sits in a build directory only root may enter.
	bin := filepath.Join(dir, "mgmt.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	client := func() Response {
		cmd := exec.Command(bin, "-test.run=^TestNonRootRefused$")
		cmd.Env = append(os.Environ(), "MGMT_TEST_CLIENT="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client: %v\n%s", err, out)
		}
		var resp Response
		if err := json.Unmarshal([]byte(strings.SplitN(string(out), "\n", 2)[0]), &resp); err != nil {
			t.Fatalf("client output %q", out)
		}
		return resp
	}
	if resp := client(); resp.Error == nil || resp.Error.Code != iscsierr.Access || !strings.Contains(resp.Error.Message, "uid 65534") || called.Load() {
		t.Fatalf("non-root client got %+v (handler called: %v)", resp.Error, called.Load())
	}
	allow.Store(true)
	if resp := client(); resp.Error != nil || !called.Load() {
		t.Fatalf("authorized non-root client got %+v (handler called: %v)", resp.Error, called.Load())
	}
}

func TestRemovalError(t *testing.T) {
	if e := RemovalError(&scan.Report{Removed: true}); e != nil {
		t.Errorf("a finished removal has an error: %v", e)
	}
	for _, tc := range []struct {
		f    scan.Failure
		code iscsierr.Code
	}{
		{scan.FailNotFound, 21}, {scan.FailInUse, 28}, {scan.FailFlush, 29}, {scan.FailDeviceMapper, 9},
		{scan.FailSysfs, 22}, {scan.FailCanceled, 33},
	} {
		e := RemovalError(&scan.Report{LUN: 4, Failure: tc.f, Error: "why", Left: []string{"path sdb (2:0:0:4)"}})
		if e == nil || e.Code != tc.code || e.Message != "could not remove LUN 4: why; left: path sdb (2:0:0:4)" {
			t.Errorf("%s: %+v, want code %d", tc.f, e, tc.code)
		}
	}
}

// A NoWait request is answered when the daemon has it, before the handler
// has done anything; the handler still runs it to the end.
func TestNoWait(t *testing.T) {
	release, handled := make(chan struct{}), make(chan *Request, 1)
	path := serve(t, HandlerFunc(func(ctx context.Context, req *Request) *Response {
		<-release
		handled <- req
		return &Response{Error: iscsierr.Errorf(iscsierr.Login, "failed later")}
	}), nil)
	resp, err := do(t, path, &Request{Op: OpLogin, NoWait: true, Record: map[string]string{"node.name": "iqn.x"}})
	if err != nil || resp.Error != nil {
		t.Fatalf("NoWait request: %+v, %v; want an empty answer at once", resp, err)
	}
	close(release)
	select {
	case req := <-handled:
		if req.Record["node.name"] != "iqn.x" {
			t.Errorf("handler got %+v", req)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran the request")
	}
}

// eventSource is a Handler with events: each subscription gets the channel
// the test feeds, and cancel is recorded.
type eventSource struct {
	Handler
	ch       chan Event
	subs     chan struct{}
	canceled chan struct{}
}

func (e *eventSource) SubscribeEvents() (<-chan Event, func()) {
	e.subs <- struct{}{}
	return e.ch, func() { close(e.canceled) }
}

// Events arrive in order once Events has returned; a source that drops the
// subscriber ends the stream with EventLost, then io.EOF; a client that closes
// ends the subscription in the server.
func TestEvents(t *testing.T) {
	src := &eventSource{Handler: echo, ch: make(chan Event, 4), subs: make(chan struct{}, 1), canceled: make(chan struct{})}
	path := serve(t, src, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := (&Client{Path: path}).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-src.subs
	src.ch <- Event{Kind: EventLoggedIn, SID: 3}
	src.ch <- Event{Kind: EventConnError, SID: 3, Detail: "ISCSI_ERR_CONN_FAILED"}
	close(src.ch)
	var got []string
	for {
		e, err := st.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d %s", e.Kind, e.SID, e.Detail))
	}
	if want := "logged_in 3 |conn_error 3 ISCSI_ERR_CONN_FAILED|lost 0 "; strings.Join(got, "|") != want {
		t.Errorf("events %q, want %q", strings.Join(got, "|"), want)
	}
	st.Close()
	select {
	case <-src.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription outlived the stream")
	}

	// A client that goes away ends its subscription too.
	src2 := &eventSource{Handler: echo, ch: make(chan Event), subs: make(chan struct{}, 1), canceled: make(chan struct{})}
	path2 := serve(t, src2, nil)
	st, err = (&Client{Path: path2}).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-src2.subs
	st.Close()
	select {
	case <-src2.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("a closed client's subscription stayed")
	}
	// A daemon without events says so.
	if _, err := (&Client{Path: serve(t, echo, nil)}).Events(ctx); iscsierr.CodeOf(err) != iscsierr.InvalidMgmtReq {
		t.Errorf("events from a handler without them: %v", err)
	}
}
