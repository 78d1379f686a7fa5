package isns_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/isns/isnstest"
)

const (
	watchIni = "iqn.2026-12.dev.goiscsi:watch-host"
	watchT1  = "iqn.2026-12.dev.goiscsi:watch-one"
	watchT2  = "iqn.2026-12.dev.goiscsi:watch-two"
)

func watchServer(t *testing.T) *isnstest.Server {
	t.Helper()
	s, err := isnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// logBuffer collects a watch's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWatch runs w until the test ends; stop ends it and returns Run's
// error.
func startWatch(t *testing.T, w *isns.Watch) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() })
	return stop
}

// next receives from ch, failing the test after 10 s.
func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
	}
	t.Fatal("timed out waiting for the watch")
	var zero T
	return zero
}

type found struct {
	names, why string
}

// A watch registers the initiator and for SCNs, hands on the targets there
// are, a target registered later (through its SCN), reports a deregistered
// one gone, logs each step, and deregisters when it ends.
func TestWatch(t *testing.T) {
	s := watchServer(t)
	if err := s.AddTarget(watchT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	founds := make(chan found, 8)
	gone := make(chan string, 8)
	var logs logBuffer
	stop := startWatch(t, &isns.Watch{Server: s.Addr(), Initiator: watchIni, SCNAddress: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Found: func(_ context.Context, ts []isns.Target, why string) {
			var names []string
			for _, t := range ts {
				names = append(names, t.Name+"@"+t.Portals[0].String())
			}
			founds <- found{strings.Join(names, ","), why}
		},
		Gone: func(_ context.Context, target string) { gone <- target }})
	if got := next(t, founds); got != (found{watchT1 + "@127.0.0.1:3260,1", "registration"}) {
		t.Fatalf("after registration Found %+v", got)
	}
	if !s.Registered(watchIni) || s.SCNBitmap(watchIni) != isns.DefaultSCNBitmap {
		t.Fatalf("registered %v, SCN bitmap %v", s.Registered(watchIni), s.SCNBitmap(watchIni))
	}
	// AddTarget returns once the SCN was answered.
	if err := s.AddTarget(watchT2, "", netip.MustParseAddrPort("127.0.0.2:3260")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, founds); got != (found{watchT2 + "@127.0.0.2:3260,1", "SCN"}) {
		t.Fatalf("after the SCN Found %+v", got)
	}
	if err := s.RemoveTarget(watchT2); err != nil {
		t.Fatal(err)
	}
	if got := next(t, gone); got != watchT2 {
		t.Fatalf("Gone %q", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Registered(watchIni) {
		t.Error("still registered after the watch ended")
	}
	for _, want := range []string{"iSNS: registered", "event=added target=" + watchT2,
		"event=removed target=" + watchT2, "iSNS: target gone", "iSNS: deregistered"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A server that is not there: the watch says so and tries again until it
// is stopped, in bounded time.
func TestWatchRetries(t *testing.T) {
	var logs logBuffer
	stop := startWatch(t, &isns.Watch{Server: "127.0.0.1:1", Initiator: watchIni, Retry: 20 * time.Millisecond,
		Timeout: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "two failed registrations", func() bool { return strings.Count(logs.String(), "registering again") >= 2 })
	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to end after its context", d)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not say why:\n%s", logs.String())
	}
	if err := (&isns.Watch{Server: "127.0.0.1:1"}).Run(context.Background()); err == nil {
		t.Error("a watch without an initiator name ran")
	}
}

// A registration the server lost (the refresh within its period finds no
// entity) is made again.
func TestWatchRegistersAgain(t *testing.T) {
	s := watchServer(t)
	s.RegistrationPeriod = 2 // refreshes every second
	var lost atomic.Bool
	s.Intercept = func(req *isns.Message) *isns.Message {
		if req.Function == isns.DevAttrQry && req.Key.String(isns.TagEntityIdentifier) != "" && lost.CompareAndSwap(true, false) {
			return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, Status: isns.StatusNoSuchEntry}
		}
		return nil
	}
	var logs logBuffer
	startWatch(t, &isns.Watch{Server: s.Addr(), Initiator: watchIni, SCNAddress: "127.0.0.1:0", Retry: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "the registration", func() bool { return strings.Count(logs.String(), "iSNS: registered") == 1 })
	lost.Store(true)
	waitFor(t, "the second registration", func() bool { return strings.Count(logs.String(), "iSNS: registered") == 2 })
	if !strings.Contains(logs.String(), "entity not registered") {
		t.Errorf("the log does not say the registration was lost:\n%s", logs.String())
	}
	if !s.Registered(watchIni) {
		t.Error("not registered after registering again")
	}
}
