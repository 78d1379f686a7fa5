package initiator

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/isns"
)

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

// A watch registers the initiator and for SCNs, stores the records of the
// targets there are, of a target registered later (through its SCN), reports
// a deregistered one gone keeping its records, logs each step, and
// deregisters when it ends.
func TestISNSWatch(t *testing.T) {
	s, srv := isnsServer(t)
	if err := s.AddTarget(isnsT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, nil)
	found := make(chan []*conf.Record, 8)
	gone := make(chan string, 8)
	var logs logBuffer
	w := &ISNSWatch{Client: c, Server: srv, SCNAddress: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Found: func(_ context.Context, recs []*conf.Record) { found <- recs },
		Gone:  func(_ context.Context, target string) { gone <- target }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	defer stop()
	targets := func(recs []*conf.Record) string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID().Target+" "+r.Get("node.discovery_type"))
		}
		return strings.Join(out, ",")
	}
	if got := targets(<-found); got != isnsT1+" isns" {
		t.Fatalf("after registration Found %q", got)
	}
	if !s.Registered(hostIQ) || s.SCNBitmap(hostIQ) != isns.DefaultSCNBitmap {
		t.Fatalf("registered %v, SCN bitmap %v", s.Registered(hostIQ), s.SCNBitmap(hostIQ))
	}
	// AddTarget returns once the SCN was answered.
	if err := s.AddTarget(isnsT2, "", netip.MustParseAddrPort("127.0.0.2:3260")); err != nil {
		t.Fatal(err)
	}
	if got := targets(<-found); got != isnsT2+" isns" {
		t.Fatalf("after the SCN Found %q", got)
	}
	if recs, _ := c.DB().FindNodes(isnsT2, "127.0.0.2", 3260, "default"); len(recs) != 1 || recs[0].Get("node.discovery_address") != srv.Address {
		t.Fatalf("record of the new target: %v", recs)
	}
	if err := s.RemoveTarget(isnsT2); err != nil {
		t.Fatal(err)
	}
	if got := <-gone; got != isnsT2 {
		t.Fatalf("Gone %q", got)
	}
	if recs, _ := c.DB().FindNodes(isnsT2, "", 0, ""); len(recs) != 1 {
		t.Errorf("the gone target's record did not stay: %v", recs)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Registered(hostIQ) {
		t.Error("still registered after the watch ended")
	}
	for _, want := range []string{"iSNS: registered", "iSNS: node record written", "event=added target=" + isnsT2,
		"event=removed target=" + isnsT2, "iSNS: target gone", "iSNS: deregistered"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A server that is not there: the watch says so and tries again until it
// is stopped, in bounded time.
func TestISNSWatchRetries(t *testing.T) {
	c, _ := newClient(t, nil)
	var logs logBuffer
	w := &ISNSWatch{Client: c, Server: Portal{Address: "127.0.0.1", Port: 1}, Retry: 20 * time.Millisecond,
		Timeout: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "two failed registrations", func() bool { return strings.Count(logs.String(), "registering again") >= 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after its context")
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not say why:\n%s", logs.String())
	}
}

// A registration the server lost (the refresh within its period finds no
// entity) is made again.
func TestISNSWatchRegistersAgain(t *testing.T) {
	s, srv := isnsServer(t)
	s.RegistrationPeriod = 2 // refreshes every second
	var lost atomic.Bool
	s.Intercept = func(req *isns.Message) *isns.Message {
		if req.Function == isns.DevAttrQry && req.Key.String(isns.TagEntityIdentifier) != "" && lost.CompareAndSwap(true, false) {
			return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, Status: isns.StatusNoSuchEntry}
		}
		return nil
	}
	c, _ := newClient(t, nil)
	var logs logBuffer
	w := &ISNSWatch{Client: c, Server: srv, SCNAddress: "127.0.0.1:0", Retry: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the registration", func() bool { return strings.Count(logs.String(), "iSNS: registered") == 1 })
	lost.Store(true)
	waitFor(t, "the second registration", func() bool { return strings.Count(logs.String(), "iSNS: registered") == 2 })
	if !strings.Contains(logs.String(), "entity not registered") {
		t.Errorf("the log does not say the registration was lost:\n%s", logs.String())
	}
	if !s.Registered(hostIQ) {
		t.Error("not registered after registering again")
	}
}
