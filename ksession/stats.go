package ksession

import (
	"context"

	"github.com/goiscsi/goiscsi/nlink"
)

// Stats returns the kernel's statistics of the session's connection. It asks
// through the Conn the session was made with, whose requests carry its
// transport's handle: the kernel runs that transport's get_stats on the
// connection, so an iSER session's must never go through iscsi_tcp's Conn.
func (s *Session) Stats(ctx context.Context) (*nlink.Stats, error) {
	return s.k.GetStats(ctx, s.SID, 0)
}
