package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"golang.org/x/sys/unix"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// settled waits up to ten seconds for the goroutines and descriptors to come
// back to their baseline and reports those left over. (Encoding the answer of
// 20000 sessions of a client gone took over 2 s under -race on a loaded
// machine.)
func settled(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines || openFDs(t) > fds {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines (baseline %d), %d descriptors (baseline %d) left:\n%s",
				runtime.NumGoroutine(), goroutines, openFDs(t), fds, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Clients that go away midway, send a 100 MB line, or come by the thousand: each
// gets a clear answer (or none, when it is gone), the server stays up and serves
// a normal client after, and its goroutines and descriptors come back to where
// they were.
func TestAbusiveClients(t *testing.T) {
	inHandler, clientGone := make(chan struct{}), make(chan struct{})
	handled := make(chan struct{}, 1)
	h := HandlerFunc(func(ctx context.Context, req *Request) *Response {
		if req.Op == OpSessions {
			// The client hangs up while this runs; the answer is large
			// enough not to fit in the socket's buffer.
			close(inHandler)
			<-clientGone
			defer func() { handled <- struct{}{} }()
			return &Response{Sessions: make([]Session, 20000)}
		}
		return echo(ctx, req)
	})
	path := serve(t, h, func(s *Server) { s.ReadTimeout = time.Second })
	normal := func(t *testing.T) {
		t.Helper()
		if resp, err := do(t, path, &Request{Op: OpStatus}); err != nil || resp.Status == nil {
			t.Fatalf("a normal client afterwards: %+v %v", resp, err)
		}
	}
	normal(t) // the server's own goroutines are up now
	// Each subtest adds its own goroutine.
	goroutines, fds := runtime.NumGoroutine()+1, openFDs(t)

	t.Run("hangs up midway through its request", func(t *testing.T) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(`{"version":1,"op":"sta`))
		c.Close()
		normal(t)
		settled(t, goroutines, fds)
	})
	t.Run("hangs up while its request runs", func(t *testing.T) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(`{"version":1,"op":"sessions"}` + "\n"))
		select {
		case <-inHandler:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the handler")
		}
		c.Close()
		close(clientGone)
		select {
		case <-handled:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler did not finish")
		}
		normal(t)
		settled(t, goroutines, fds)
	})
	t.Run("sends a 100 MB line", func(t *testing.T) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		go func() {
			chunk := []byte(strings.Repeat("x", 64<<10))
			for sent := 0; sent < 100<<20; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return // the server has answered and closed
				}
			}
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var resp Response
		if err := json.NewDecoder(c).Decode(&resp); err != nil {
			t.Fatalf("no answer: %v", err)
		}
		runtime.ReadMemStats(&after)
		if resp.Error == nil || resp.Error.Code != iscsierr.InvalidMgmtReq || !strings.Contains(resp.Error.Message, "longer than 65536 bytes") {
			t.Errorf("answer %+v", resp.Error)
		}
		// TotalAlloc counts the whole test process (the sender, the runtime,
		// other connections winding down): the bound is far below the 100 MB
		// sent, not near what the server itself needs.
		if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
			t.Errorf("the server allocated %d KiB for it", n>>10)
		}
		c.Close()
		normal(t)
		settled(t, goroutines, fds)
	})
	t.Run("floods: 1000 clients at once", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				req := &Request{Op: OpStatus}
				if i%2 == 1 {
					req.Op = "frobnicate" // half of them ask nonsense
				}
				resp, err := (&Client{Path: path}).Do(ctx, req)
				switch {
				case err != nil:
					errs <- err
				case req.Op == OpStatus && resp.Status == nil, req.Op != OpStatus && (resp.Error == nil || resp.Error.Code != iscsierr.InvalidMgmtReq):
					errs <- errors.New("wrong answer")
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		normal(t)
		settled(t, goroutines, fds)
	})
}

// A server that has all its connections taken by clients that say nothing
// serves the next client once their read deadline has passed.
func TestSilentClientsHoldNoMoreThanMaxConns(t *testing.T) {
	path := serve(t, echo, func(s *Server) { s.MaxConns = 4; s.ReadTimeout = 300 * time.Millisecond })
	var silent []net.Conn
	for range 16 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	start := time.Now()
	resp, err := do(t, path, &Request{Op: OpStatus})
	if err != nil || resp.Status == nil {
		t.Fatalf("after silent clients: %+v %v", resp, err)
	}
	// 16 silent clients, 4 at a time, 300 ms each.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("served after %v", d)
	}
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var r Response
		if err := json.NewDecoder(c).Decode(&r); err != nil || r.Error == nil || !strings.Contains(r.Error.Message, "not received") {
			t.Errorf("silent client got %+v %v", r.Error, err)
		}
	}
}

// acceptFailures counts the server's log records saying that an accept
// failed and will be retried, and drops the rest.
type acceptFailures struct{ n *atomic.Int32 }

func (h acceptFailures) Enabled(context.Context, slog.Level) bool { return true }

func (h acceptFailures) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "cannot accept a connection; retrying" {
		h.n.Add(1)
	}
	return nil
}

func (h acceptFailures) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h acceptFailures) WithGroup(string) slog.Handler      { return h }

// Out of file descriptors, the server waits for some instead of stopping.
func TestServeSurvivesDescriptorExhaustion(t *testing.T) {
	failures := acceptFailures{n: new(atomic.Int32)}
	path := serve(t, echo, func(s *Server) { s.Logger = slog.New(failures) })
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(openFDs(t) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	// Hold descriptors until none is left, then connect with the one given
	// back: the connection waits in the backlog because the server cannot
	// accept it, and the server logs its failed accept (then retries after
	// a backoff). (Connecting first lets the server accept it before the
	// descriptors run out.) A descriptor another goroutine lets go of
	// meanwhile ends the shortage: then the server accepts at once, and the
	// case is tried again.
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
	}
	defer release()
	var c net.Conn
	for attempt := 1; failures.n.Load() == 0; attempt++ {
		if attempt > 5 {
			t.Fatal("no failed accept logged in 5 tries")
		}
		if c != nil {
			c.Close()
			release()
		}
		for {
			f, err := os.Open("/dev/null")
			if err != nil {
				break
			}
			held = append(held, f)
		}
		if len(held) == 0 {
			t.Fatal("no descriptor left to connect with")
		}
		held[len(held)-1].Close()
		held = held[:len(held)-1]
		var err error
		if c, err = net.Dial("unix", path); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(`{"version":1,"op":"status"}` + "\n"))
		deadline := time.Now().Add(time.Second)
		for failures.n.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	release()
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Status == nil {
		t.Fatalf("the waiting client: %+v %v", resp, err)
	}
	if resp, err := do(t, path, &Request{Op: OpStatus}); err != nil || resp.Status == nil {
		t.Fatalf("a client afterwards: %+v %v", resp, err)
	}
}

// A client that finds the daemon's backlog full waits for room, as a blocking
// connect would, instead of failing.
func TestClientWaitsForAFullBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full.sock")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Fill the backlog: connections nobody accepts, until one is refused.
	var queued []net.Conn
	defer func() {
		for _, c := range queued {
			c.Close()
		}
	}()
	for {
		c, err := net.Dial("unix", path)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil || len(queued) > 64 {
			t.Fatalf("filling the backlog: %v after %d", err, len(queued))
		}
		queued = append(queued, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, func() {
		(&Server{Handler: echo}).Serve(ctx, ln.(*net.UnixListener))
	})
	if resp, err := do(t, path, &Request{Op: OpStatus}); err != nil || resp.Status == nil {
		t.Fatalf("behind a full backlog: %+v %v", resp, err)
	}
}
