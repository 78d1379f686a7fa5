package nlink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestTurnsOneAtATime: many exchanges at once, never two holding the socket.
func TestTurnsOneAtATime(t *testing.T) {
	tu := newTurns()
	var mu sync.Mutex
	holders, most := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := tu.wait(context.Background()); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			holders++
			most = max(most, holders)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			holders--
			mu.Unlock()
			tu.done()
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d exchanges held the socket at once, want 1", most)
	}
}

// TestTurnsCancel: a waiter whose context ends leaves the line with the
// context's error, and the socket goes to the next one.
func TestTurnsCancel(t *testing.T) {
	tu := newTurns()
	if err := tu.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tu.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with the socket held: %v, want the deadline", err)
	}
	next := make(chan error, 1)
	go func() { next <- tu.wait(context.Background()) }()
	tu.done()
	select {
	case err := <-next:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the socket was not handed on")
	}
	tu.done()
	if err := tu.wait(context.Background()); err != nil {
		t.Fatalf("the socket is still taken: %v", err)
	}
	tu.done()
}
