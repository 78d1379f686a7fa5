package nlink

import (
	"container/heap"
	"context"
	"sync"
)

// turns gives the request socket to one exchange at a time, in the order that
// finishes logins soonest. The kernel handles iSCSI netlink requests one at a
// time (one mutex for all of them), and creating a session is the slowest of
// them, so in a login storm the order decides how long each login takes:
// served first come, first served, every login's requests wait behind every
// other's and all of them finish together at the end, each as slow as the whole
// storm. Here the requests of existing sessions go first, the oldest session
// (lowest SID: the kernel numbers sessions in creation order) before younger
// ones, and CREATE_SESSION (SID 0) last: a new session is created whenever the
// ones under way are waiting for their targets, so logins finish one after the
// other while the kernel is never idle. Equal ranks keep their arrival order.
// The zero value is ready to use.
type turns struct {
	mu      sync.Mutex
	busy    bool
	arrived uint64
	queue   turnQueue
}

// rank is where an exchange starting with r goes in line: a request of no
// session (a host's parameter, set during a login) first, then by SID, and
// CREATE_SESSION after all of them.
func rank(r *Request) uint64 {
	if r.Type == CreateSession {
		return 1 << 32
	}
	return uint64(r.SID)
}

// turn is an exchange waiting for the socket.
type turn struct {
	rank    uint64
	seq     uint64
	ready   chan struct{}
	granted bool
	index   int
}

// wait returns when it is the turn of an exchange of that rank, or with ctx's
// error. After a nil return the caller must call done.
func (t *turns) wait(ctx context.Context, rank uint64) error {
	t.mu.Lock()
	if !t.busy {
		t.busy = true
		t.mu.Unlock()
		return nil
	}
	w := &turn{rank: rank, seq: t.arrived, ready: make(chan struct{})}
	t.arrived++
	heap.Push(&t.queue, w)
	t.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		granted := w.granted
		if !granted {
			heap.Remove(&t.queue, w.index)
		}
		t.mu.Unlock()
		if granted {
			t.done() // the turn came as ctx ended: pass it on
		}
		return ctx.Err()
	}
}

// done ends the current exchange and hands the socket to the next in line.
func (t *turns) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		t.busy = false
		return
	}
	w := heap.Pop(&t.queue).(*turn)
	w.granted = true
	close(w.ready)
}

// turnQueue is a heap of waiting exchanges, the next to go first.
type turnQueue []*turn

func (q turnQueue) Len() int { return len(q) }

func (q turnQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].seq < q[j].seq
}

func (q turnQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *turnQueue) Push(x any) {
	w := x.(*turn)
	w.index = len(*q)
	*q = append(*q, w)
}

func (q *turnQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}
