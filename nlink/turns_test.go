package nlink

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestTurnsOrder holds the socket while exchanges queue up, then lets them go
// one by one: existing sessions' requests first, the oldest session first,
// CREATE_SESSION last, equal ranks in arrival order.
func TestTurnsOrder(t *testing.T) {
	var tu turns
	ctx := context.Background()
	if err := tu.wait(ctx, rank(&Request{Type: SetParam, SID: 1})); err != nil {
		t.Fatal(err)
	}
	arrivals := []struct {
		name string
		r    Request
	}{
		{"create-a", Request{Type: CreateSession}},
		{"sid7", Request{Type: SetParam, SID: 7}},
		{"sid3", Request{Type: SendPDU, SID: 3}},
		{"create-b", Request{Type: CreateSession}},
		{"host", Request{Type: SetHostParam, HostNo: 9}},
		{"sid3-again", Request{Type: StartConn, SID: 3}},
	}
	order := make(chan string, len(arrivals))
	for i, a := range arrivals {
		go func() {
			if err := tu.wait(ctx, rank(&a.r)); err != nil {
				t.Error(err)
				return
			}
			order <- a.name
			tu.done()
		}()
		// The next arrives once this one waits in line.
		for queued := 0; queued <= i; {
			time.Sleep(time.Millisecond)
			tu.mu.Lock()
			queued = len(tu.queue)
			tu.mu.Unlock()
		}
	}
	tu.done()
	var got []string
	for range arrivals {
		got = append(got, <-order)
	}
	want := []string{"host", "sid3", "sid3-again", "sid7", "create-a", "create-b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if tu.busy {
		t.Error("the socket is still taken after the last exchange")
	}
}

// TestTurnsCancel: a waiter whose context ends leaves the line, and the socket
// goes to the next one.
func TestTurnsCancel(t *testing.T) {
	var tu turns
	if err := tu.wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tu.wait(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with the socket held: %v, want the deadline", err)
	}
	if len(tu.queue) != 0 {
		t.Fatalf("%d waiters left in line after the deadline", len(tu.queue))
	}
	next := make(chan error, 1)
	go func() { next <- tu.wait(context.Background(), 3) }()
	time.Sleep(10 * time.Millisecond)
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
	if tu.busy {
		t.Error("the socket is still taken")
	}
}
