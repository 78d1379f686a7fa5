package ksession_test

import (
	"context"
	"testing"

	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
)

// A SendTargets discovery through an iser iface runs on a kernel session over
// an endpoint, and leaves nothing behind.
func TestDiscoverISER(t *testing.T) {
	_, p := startISERTarget(t, nil)
	k := nlinktest.New()
	defer k.Close()
	n := iserNode(t, p)
	n.Target = ""
	found, err := ksession.Discover(context.Background(), nlinktest.ISERConn(k.Conn()), n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Name != kISERIQN || len(found[0].Portals) != 1 || found[0].Portals[0].HostPort() != p.HostPort() {
		t.Fatalf("found %+v", found)
	}
	want := []nlink.MessageType{nlink.EPConnect, nlink.EPPoll, nlink.CreateBoundSession, nlink.CreateConn, nlink.BindConn,
		nlink.StartConn, nlink.EPDisconnect, nlink.StopConn, nlink.DestroyConn, nlink.DestroySession}
	if got := types(k); !prefix(got, want) || len(got) != len(want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	if v, _ := k.Param(0, nlink.ParamDiscoverySess); v != "" {
		t.Errorf("discovery param on session 0: %q", v)
	}
	if len(k.Sessions()) != 0 || k.Endpoints() != 0 {
		t.Fatalf("%d sessions, %d endpoints left", len(k.Sessions()), k.Endpoints())
	}
	// A TCP iface's discovery is not the kernel's.
	n.Iface.Transport = "tcp"
	if _, err := ksession.Discover(context.Background(), k.Conn(), n, nil); err == nil {
		t.Error("kernel discovery through a tcp iface")
	}
}
