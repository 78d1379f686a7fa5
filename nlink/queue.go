package nlink

import (
	"context"
	"sync/atomic"
	"time"
)

// The kernel handles iSCSI netlink requests one at a time (one mutex for all
// of them), so the Conn hands them over one at a time too, first come, first
// served, from a goroutine of its own (serve): it sends the next request as
// soon as the kernel has answered the last. Passing the socket from waiter to
// waiter instead left the kernel idle while the next waiter was woken and
// scheduled: in a 64-session logout under TCG, with the CPUs busy removing
// SCSI devices, a median of 9.4 ms between two requests (the kernel worked 5.9
// s of an 11.5 s `-U all`), where stock iscsid, one thread sending its
// requests back to back, left 1.0 ms.
//
// Serving the sessions under way first (lowest SID first, CREATE_SESSION
// last) was measured against first come, first served in a 256-target storm
// under TCG: it made a new session's CREATE_SESSION wait 5.3 s on average with
// its login timeout running (0.8 s), stretched the slowest login to 11.1 s
// (7.1 s), and let the youngest session's Logout Request wait out its logout
// timeout, with no gain in the storm's total.

// job is one exchange waiting for, or having had, its turn.
type job struct {
	ctx           context.Context
	msgs          [][]byte
	replyExpected bool
	// state goes from queued to started (serve took it) or abandoned (its
	// caller gave up first); only one of the two CAS wins.
	state   atomic.Int32
	queued  time.Time
	started time.Time
	replies [][]byte
	err     error
	done    chan struct{} // closed when replies and err are set
}

const (
	jobQueued int32 = iota
	jobStarted
	jobAbandoned
)

// queueLength bounds the exchanges waiting for their turn; more callers wait
// to enter the queue, in no particular order.
const queueLength = 1024

// submit queues an exchange and waits for its result. A caller whose ctx ends
// while its exchange waits leaves the queue with ctx's error; once the
// kernel has the exchange, the caller waits for the answer, so that what the
// kernel did (a session created) is never lost.
func (c *Conn) submit(ctx context.Context, msgs [][]byte, replyExpected bool) (*job, error) {
	j := &job{ctx: ctx, msgs: msgs, replyExpected: replyExpected, queued: time.Now(), done: make(chan struct{})}
	select {
	case c.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.served:
		return nil, ErrClosed
	}
	select {
	case <-j.done:
		return j, j.err
	case <-ctx.Done():
	case <-c.served:
	}
	if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrClosed
	}
	<-j.done // serve took it before it stopped, and finishes it
	return j, j.err
}

// serve runs the queued exchanges in order until ctx ends.
func (c *Conn) serve(ctx context.Context) {
	defer close(c.served)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-c.jobs:
			if !j.state.CompareAndSwap(jobQueued, jobStarted) {
				continue
			}
			j.started = time.Now()
			// The kernel answers while sendmsg runs, so the replies are
			// queued when it returns: reading them must not fail because
			// the caller's deadline passed meanwhile, or a reply (a new
			// session's number) would be lost.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), DefaultTimeout)
			j.replies, j.err = c.t.Request(rctx, j.msgs, j.replyExpected)
			cancel()
			close(j.done)
		}
	}
}
