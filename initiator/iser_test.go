package initiator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// A discovery through an iser iface goes to goiscsid (the kernel's endpoint),
// never over a socket here; one through a transport goiscsi cannot drive is
// refused (exit 14). Neither makes a record, though a TCP target answers.
func TestDiscoveryTransports(t *testing.T) {
	ps := startTarget(t)
	c, _ := newClient(t, nil)
	for name, transport := range map[string]string{"rdma0": "iser", "bnx2i.00:11": "bnx2i"} {
		r := conf.NewIfaceRecord(name)
		if err := r.Set("iface.transport_name", transport); err != nil {
			t.Fatal(err)
		}
		if err := c.DB().SaveIface(r); err != nil {
			t.Fatal(err)
		}
	}
	portal := Portal{Address: ps[0].Address, Port: ps[0].Port}
	for iface, want := range map[string]iscsierr.Code{"rdma0": iscsierr.ISCSIDNotConn, "bnx2i.00:11": iscsierr.TransCaps} {
		_, err := c.Discover(context.Background(), portal, DiscoverOptions{Ifaces: []string{iface}})
		var ie *iscsierr.Error
		if !errors.As(err, &ie) || ie.Code != want {
			t.Errorf("discovery through %s: %v, want code %d", iface, err, want)
		}
	}
	if recs, _ := c.Nodes(); len(recs) != 0 {
		t.Errorf("records made: %v", recs)
	}
}

// Without goiscsid a session's transport comes from its host's driver, as
// stock reads it (proc_name without "iscsi_").
func TestHostTransport(t *testing.T) {
	root := t.TempDir()
	for host, driver := range map[int]string{1: "iscsi_tcp\n", 2: "iscsi_iser\n"} {
		dir := filepath.Join(root, "class", "scsi_host", "host"+strconv.Itoa(host))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "proc_name"), []byte(driver), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for host, want := range map[int]string{1: "tcp", 2: "iser", 3: "tcp"} {
		if got := hostTransport(root, host); got != want {
			t.Errorf("host%d: %q, want %q", host, got, want)
		}
	}
}
