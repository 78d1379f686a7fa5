package initiator

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// A discovery through iser ifaces goes to goiscsid (the kernel's), one
// through tcp ifaces stays here; a mix, or a transport goiscsi cannot drive,
// is refused (exit 14), never run over TCP instead.
func TestKernelDiscoveryIface(t *testing.T) {
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
		kernel string // the iface the kernel runs it through
		refuse bool
	}{
		{"default", []*conf.Record{iface("default", "tcp")}, "", false},
		{"unset transport", []*conf.Record{iface("eth1", "")}, "", false},
		{"iser", []*conf.Record{iface("iser", "iser")}, "iser", false},
		{"two iser", []*conf.Record{iface("rdma0", "iser"), iface("rdma1", "iser")}, "rdma0", false},
		{"tcp and iser", []*conf.Record{iface("default", "tcp"), iface("rdma0", "iser")}, "", true},
		{"offload", []*conf.Record{iface("bnx2i.00:11", "bnx2i")}, "", true},
	} {
		k, err := kernelDiscoveryIface(tt.ifaces)
		var ie *iscsierr.Error
		if tt.refuse != (err != nil) || (err != nil && (!errors.As(err, &ie) || ie.Code != iscsierr.TransCaps)) {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		got := ""
		if k != nil {
			got = k.Get("iface.iscsi_ifacename")
		}
		if got != tt.kernel {
			t.Errorf("%s: through the kernel on %q, want %q", tt.name, got, tt.kernel)
		}
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
