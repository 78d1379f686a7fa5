package nlink

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gated is a Transport whose requests each wait for a value on release (when
// it is set), count how many run at once, and run hook first; it has no
// events (answering's).
type gated struct {
	answering
	release chan struct{}
	hook    func()

	mu            sync.Mutex
	running, most int
	sent          int
	started       chan struct{} // gets a value as each request starts
}

func newGated(t *testing.T, typ MessageType) *gated {
	reply, err := (&Reply{Type: typ, SID: 7, HostNo: 3}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &gated{answering: answering{reply: reply, closed: make(chan struct{})}, started: make(chan struct{}, 100)}
}

func (g *gated) Request(ctx context.Context, msgs [][]byte, replyExpected bool) ([][]byte, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.sent++
	g.mu.Unlock()
	g.started <- struct{}{}
	if g.hook != nil {
		g.hook()
	}
	if g.release != nil {
		<-g.release
	} else {
		// Not synchronisation: a kernel takes time over a request, and
		// this is the window in which a second request would overlap.
		time.Sleep(50 * time.Microsecond)
	}
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	return g.answering.Request(ctx, msgs, replyExpected)
}

// TestQueueOneAtATime: many requests at once, the transport never sees two
// at a time, and every caller gets its answer.
func TestQueueOneAtATime(t *testing.T) {
	g := newGated(t, UnbindSession)
	c := New(g, 1, nil)
	defer c.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := c.UnbindSession(context.Background(), 7); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g.most != 1 || g.sent != 50 {
		t.Errorf("%d requests sent, at most %d at once; want 50, 1", g.sent, g.most)
	}
}

// TestQueueLeaveWhileWaiting: a caller whose context ends while its request
// waits gets the context's error, and its request never reaches the kernel.
func TestQueueLeaveWhileWaiting(t *testing.T) {
	g := newGated(t, UnbindSession)
	g.release = make(chan struct{})
	c := New(g, 1, nil)
	defer c.Close()
	first := make(chan error, 1)
	go func() { first <- c.UnbindSession(context.Background(), 7) }()
	<-g.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.UnbindSession(ctx, 8); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request queued behind a busy kernel: %v, want the deadline", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The queue goes on with the next request, and only the first and
	// this one were sent.
	if err := c.UnbindSession(context.Background(), 9); err != nil {
		t.Fatal(err)
	}
	if g.sent != 2 {
		t.Errorf("%d requests sent, want 2 (the abandoned one must not be)", g.sent)
	}
}

// TestQueueAnswerNotLost: once the kernel has a request, its answer reaches
// the caller even if the caller's deadline passes meanwhile: a session the
// kernel created is not leaked.
func TestQueueAnswerNotLost(t *testing.T) {
	g := newGated(t, CreateSession)
	ctx, cancel := context.WithCancel(context.Background())
	g.hook = cancel
	c := New(g, 1, nil)
	defer c.Close()
	sid, host, err := c.CreateSession(ctx, 1, 128, 32)
	if err != nil || sid != 7 || host != 3 {
		t.Fatalf("CreateSession with its context ended in the kernel: sid %d host %d, %v; want 7 3 nil", sid, host, err)
	}
}

// TestQueueClose: Close stops the queue; a request waiting in it, or made
// after, fails instead of hanging.
func TestQueueClose(t *testing.T) {
	g := newGated(t, UnbindSession)
	g.release = make(chan struct{})
	c := New(g, 1, nil)
	first := make(chan error, 1)
	go func() { first <- c.UnbindSession(context.Background(), 7) }()
	<-g.started
	var waiting atomic.Value
	second := make(chan struct{})
	go func() {
		waiting.Store(c.UnbindSession(context.Background(), 8) == nil)
		close(second)
	}()
	// The second one is in the queue (serve is busy with the first).
	deadline := time.Now().Add(5 * time.Second)
	for len(c.jobs) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second request did not enter the queue in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	close(g.release) // the kernel answers the first
	<-closed
	if err := <-first; err != nil {
		t.Errorf("the request under way when Close came: %v, want its answer", err)
	}
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("a queued request hangs after Close")
	}
	if waiting.Load() == true && g.sent != 2 {
		t.Errorf("queued request succeeded without being sent")
	}
	if err := c.UnbindSession(context.Background(), 9); !errors.Is(err, ErrClosed) {
		t.Errorf("request after Close: %v, want ErrClosed", err)
	}
}
