package initiator

import (
	"context"

	"github.com/goiscsi/goiscsi/mgmt"
)

// Event is something that happened to a session: its login and logout, a
// connection error, a recovery and how it ended, a LUN change the target
// announced, a LUN removed. The kinds are mgmt's Event* constants.
type Event = mgmt.Event

// EventStream is a subscription to goiscsid's events; Next returns them in
// order, io.EOF when goiscsid ended the stream (after an Event of kind
// mgmt.EventLost when it dropped a subscriber that fell behind: read Sessions
// again and subscribe anew).
type EventStream = mgmt.EventStream

// Events subscribes to goiscsid's events. It returns once the subscription is
// in place: whatever happens after, Next sees. ctx bounds the subscription
// (no default timeout applies). Without goiscsid there are no events: the
// error then has code ISCSIDNotConn.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	return (&mgmt.Client{Path: c.Socket}).Events(ctx)
}
