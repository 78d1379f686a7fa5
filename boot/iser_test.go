package boot

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
	"github.com/goiscsi/goiscsi/test/target"
)

// A boot record whose iface is iser logs in through ib_iser's handle (read
// from sysfs), over an endpoint; an offload transport is refused, not run
// over TCP.
func TestLoginThroughTheIfaceTransport(t *testing.T) {
	const iqn = "iqn.2026-11.dev.goiscsi:boot-iser"
	p := target.DefaultParams()
	p["RDMAExtensions"] = "Yes"
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{Name: iqn,
		PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs:         []target.LUNConfig{{Number: 0, Size: 1 << 20}}, Params: p}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ps, _ := srv.Portals(iqn)
	fs := scantest.New(t)
	for h := 0; h < 4; h++ {
		fs.AddHost(h)
	}
	dir := filepath.Join(fs.Root, "class", "iscsi_transport", "iser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "handle"), []byte(strconv.FormatUint(nlinktest.ISERHandle, 10)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "caps"), []byte("0x39\n"), 0o644)
	for _, tc := range []struct {
		transport string
		ok        bool
	}{{"iser", true}, {"bnx2i", false}} {
		k := nlinktest.New()
		rec := conf.NewNodeRecord(nil, iqn, ps[0].Address, ps[0].Port, 1, tc.transport)
		if err := rec.Set("iface.transport_name", tc.transport); err != nil {
			t.Fatal(err)
		}
		rec.Set("node.conn[0].timeo.login_timeout", "5")
		rec.Set("node.session.initial_login_retry_max", "1")
		s, err := Login(context.Background(), k.Conn(), rec, "iqn.2026-11.dev.goiscsi:initiator", scan.Sysfs{Root: fs.Root}, nil)
		if !tc.ok {
			if err == nil {
				t.Errorf("%s: logged in", tc.transport)
			}
			if len(k.Requests()) != 0 {
				t.Errorf("%s: sent %v", tc.transport, k.Requests()[0].Type)
			}
			k.Close()
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.transport, err)
		}
		for _, r := range k.Requests() {
			if r.Handle != nlinktest.ISERHandle || r.Type == nlink.CreateSession {
				t.Fatalf("%v with handle %#x", r.Type, r.Handle)
			}
		}
		if err := s.Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		k.Close()
	}
}
