package initiator

import (
	"context"

	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/mgmt"
)

// Health returns the health of session sid's path, or of every session's in
// SID order when sid is 0, as goiscsid measures and judges it: the socket's
// TCP figures (retransmissions, RTT, windows), the kernel's iSCSI counters,
// connection errors, recoveries with their causes and durations, logins and
// their latencies, time in each state, and the Verdict under the
// goiscsi.health.* thresholds of the daemon's iscsid.conf. The figures are
// measured as the daemon answers.
//
// Only goiscsid has them: without it the error has code ISCSIDNotConn; a
// goiscsid of a release without health answers InvalidMgmtReq; an unknown
// sid is SessNotFound.
func (c *Client) Health(ctx context.Context, sid int) ([]health.Snapshot, error) {
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpHealth, SID: sid})
	if err != nil {
		return nil, err
	}
	return resp.Health, nil
}
