package ksession

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Admission is a daemon's count of logins (and logouts) under way in the
// kernel. A login takes its place before it connects, so that the target
// sees a Login Request right after each connection: a target may read its
// connections' first PDUs one at a time in accept order (LIO's login thread
// waits up to 15 s on each), and a connection left idle while the login
// waits for the kernel stalls the logins behind it. A portal that does not
// answer within ConnectGrace gives the place back (and is remembered in
// SlowPortals), so a dead array holds the places of the others for that
// long at most.
type Admission interface {
	// TryAcquire takes a place if one is free now.
	TryAcquire() bool
	// Acquire waits for a place until ctx ends.
	Acquire(ctx context.Context) error
	// Release gives a place back.
	Release()
}

// ConnectGrace is how long a login's connect may hold its kernel place: a
// healthy portal answers a TCP connect within a round trip (tens of
// milliseconds across sites) and a lost SYN is sent again after 1 s, so a
// connect that takes longer is a portal that is down, or a network that
// loses packets, and the logins to other portals get the place meanwhile.
const ConnectGrace = time.Second

// SlowPortals are the portals whose latest connect outlasted ConnectGrace
// without answering. Logins to them connect before they take a place, as
// many as want to, so that each fails after its own login timeout without
// holding anyone's place; the first connect that a portal answers removes
// it. The zero value is empty and ready; it is safe for concurrent use.
type SlowPortals struct {
	mu sync.Mutex
	m  map[string]bool
}

func (p *SlowPortals) has(portal string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[portal]
}

func (p *SlowPortals) set(portal string, slow bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slow {
		delete(p.m, portal)
		return
	}
	if p.m == nil {
		p.m = map[string]bool{}
	}
	p.m[portal] = true
}

// connectAdmitted connects to the node's portal holding a kernel place
// (node.Admission) when the login then goes on, and returns the connection,
// the context of the login (ctx with node.Timeouts.Login, which starts once
// the place is taken: the wait for it is the daemon's queue, not the
// target's slowness) and what ends both. A login to a portal of SlowPortals,
// or whose connect outlasted ConnectGrace, connects without a place and
// then takes one that is free; with none free it closes the connection,
// waits for a place and connects again, with a fresh login timeout.
func (s *Session) connectAdmitted(ctx context.Context) (io.Closer, context.Context, func(), error) {
	n := &s.node
	a, portal := n.Admission, n.portal()
	if a == nil {
		loginCtx, cancel := withTimeout(ctx, n.Timeouts.Login)
		sock, err := s.timedOpen(loginCtx, portal)
		if err != nil {
			cancel()
			return nil, nil, nil, err
		}
		return sock, loginCtx, cancel, nil
	}
	held := false
	if !n.SlowPortals.has(portal) {
		if err := a.Acquire(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("waiting for the kernel's turn: %w", err)
		}
		held = true
	}
	loginCtx, cancel := withTimeout(ctx, n.Timeouts.Login)
	// mu orders the grace timer's release against the connect's end.
	var mu sync.Mutex
	connecting := true
	if held {
		grace := time.AfterFunc(ConnectGrace, func() {
			mu.Lock()
			defer mu.Unlock()
			if connecting {
				held = false
				a.Release()
				n.SlowPortals.set(portal, true)
			}
		})
		defer grace.Stop()
	}
	sock, err := s.timedOpen(loginCtx, portal)
	mu.Lock()
	connecting = false
	mu.Unlock()
	if err != nil {
		if held {
			a.Release()
		}
		cancel()
		return nil, nil, nil, err
	}
	n.SlowPortals.set(portal, false)
	if !held && !a.TryAcquire() {
		sock.Close()
		cancel()
		if err := a.Acquire(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("waiting for the kernel's turn: %w", err)
		}
		loginCtx, cancel = withTimeout(ctx, n.Timeouts.Login)
		if sock, err = s.timedOpen(loginCtx, portal); err != nil {
			a.Release()
			cancel()
			return nil, nil, nil, err
		}
	}
	return sock, loginCtx, func() { a.Release(); cancel() }, nil
}

// timedOpen opens the connection, its time counted as the login's connect.
func (s *Session) timedOpen(ctx context.Context, portal string) (io.Closer, error) {
	t0 := time.Now()
	sock, err := s.open(ctx, portal)
	if err == nil {
		s.timed(&s.times.Connect, t0)
	}
	return sock, err
}
