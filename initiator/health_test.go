package initiator

import (
	"context"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// Health asks goiscsid for the session it names and, without a daemon,
// fails with the code that says so (the figures are only the daemon's).
func TestHealthAsksTheDaemon(t *testing.T) {
	d := &daemon{}
	c, _ := newClient(t, d)
	if _, err := c.Health(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if r := d.last(); r.Op != mgmt.OpHealth || r.SID != 3 {
		t.Errorf("request %+v, want health of sid 3", r)
	}
	d.fail = iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid 9")
	if _, err := c.Health(context.Background(), 9); iscsierr.CodeOf(err) != iscsierr.SessNotFound {
		t.Errorf("unknown sid: %v", err)
	}
	none, _ := newClient(t, nil)
	if _, err := none.Health(context.Background(), 0); iscsierr.CodeOf(err) != iscsierr.ISCSIDNotConn {
		t.Errorf("without goiscsid: %v, want code %d", err, iscsierr.ISCSIDNotConn)
	}
}
