package nlink

import "context"

// turns gives the request socket to one exchange at a time, first come, first
// served, and lets a waiter whose context ends leave the line (a channel's
// blocked senders are served in order). The kernel handles iSCSI netlink
// requests one at a time anyway (one mutex for all of them).
//
// Serving the sessions under way first (lowest SID first, CREATE_SESSION last)
// was measured against this in a 256-target storm under TCG: it made a new
// session's CREATE_SESSION wait 5.3 s on average with its login timeout
// running (0.8 s here), stretched the slowest login to 11.1 s (7.1 s here),
// and let the youngest session's Logout Request wait out its logout timeout,
// with no gain in the storm's total.
type turns chan struct{}

func newTurns() turns { return make(turns, 1) }

// wait returns when it is the caller's turn, or with ctx's error. After a nil
// return the caller must call done.
func (t turns) wait(ctx context.Context) error {
	select {
	case t <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// done ends the current exchange; the next in line goes.
func (t turns) done() { <-t }
