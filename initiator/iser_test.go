package initiator

import (
	"errors"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// A discovery through a non-tcp iface is refused (exit 14), never run over
// TCP instead.
func TestDiscoveryRefusesNonTCPIfaces(t *testing.T) {
	iface := func(name, transport string) *conf.Record {
		r := conf.NewIfaceRecord(name)
		if transport != "" {
			if err := r.Set("iface.transport_name", transport); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	for _, tt := range []struct {
		name   string
		ifaces []*conf.Record
		refuse bool
	}{
		{"default", []*conf.Record{iface("default", "tcp")}, false},
		{"unset transport", []*conf.Record{iface("eth1", "")}, false},
		{"iser", []*conf.Record{iface("iser", "iser")}, true},
		{"tcp and iser", []*conf.Record{iface("default", "tcp"), iface("rdma0", "iser")}, true},
	} {
		err := tcpDiscovery(tt.ifaces)
		var ie *iscsierr.Error
		if tt.refuse != (err != nil) || (err != nil && (!errors.As(err, &ie) || ie.Code != iscsierr.TransCaps)) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
