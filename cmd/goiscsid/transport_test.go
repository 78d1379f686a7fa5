package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/test/target"
)

// iserFixture is a daemon on a fake kernel with an iSER transport (its class
// in sysfs when loaded; every endpoint failing when unreach) and a target
// that takes iSER's login keys.
func iserFixture(t *testing.T, loaded, unreach bool) *fixture {
	t.Helper()
	p := target.DefaultParams()
	p["RDMAExtensions"] = "Yes"
	f := newFixtureWith(t, []target.TargetConfig{{
		Name: testIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}}, Params: p,
	}}, nil, slog.New(slog.DiscardHandler))
	fakeISER(f, loaded)
	f.kernel.Unreachable(unreach)
	return f
}

// fakeISER makes f's daemon find the fake kernel's iser transport.
func fakeISER(f *fixture, loaded bool) {
	f.d.transports.load = func(_, name string) (nlink.TransportInfo, error) {
		if !loaded {
			return nlink.TransportInfo{}, errors.New(`nlink: iSCSI transport "iser" not in the kernel (is ib_iser loaded?)`)
		}
		return nlink.TransportInfo{Name: name, Handle: nlinktest.ISERHandle}, nil
	}
}

func TestLoginPicksTheIfaceTransport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport string // iface.transport_name
		loaded    bool
		unreach   bool
		code      iscsierr.Code
		msg       string
		shown     string // -m session's transport
	}{
		{"tcp", "tcp", true, false, 0, "", "tcp"},
		{"iser", "iser", true, false, 0, "", "iser"},
		{"iser without ib_iser", "iser", false, false, iscsierr.TransNotFound, "ib_iser", ""},
		{"iser without an RDMA device", "iser", true, true, iscsierr.TransTimeout, "did not come up", ""},
		{"offload transport", "bnx2i", true, false, iscsierr.TransNotFound, "not supported", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := iserFixture(t, tc.loaded, tc.unreach)
			rec := map[string]string{"iface.iscsi_ifacename": tc.transport, "iface.transport_name": tc.transport,
				"node.session.initial_login_retry_max": "1", "node.conn[0].timeo.login_timeout": "1"}
			for k, v := range f.rec {
				rec[k] = v
			}
			if tc.transport == "tcp" {
				rec["iface.iscsi_ifacename"] = "default"
			}
			resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogin, Record: rec})
			if tc.code != 0 {
				if resp.Error == nil || resp.Error.Code != tc.code || !strings.Contains(resp.Error.Error(), tc.msg) {
					t.Fatalf("login: %v, want exit %d naming %q", resp.Error, tc.code, tc.msg)
				}
				for _, r := range f.kernel.Requests() {
					if r.Type == nlink.CreateSession || r.Type == nlink.BindConn {
						t.Fatalf("fell back to a %v", r.Type)
					}
				}
				return
			}
			if resp.Error != nil {
				t.Fatalf("login: %v", resp.Error)
			}
			if resp.Session.Transport != tc.shown {
				t.Errorf("session transport %q, want %q", resp.Session.Transport, tc.shown)
			}
			// Statistics go through the session's transport too: the
			// kernel runs the handle's get_stats on the connection.
			if r := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpStats, SID: resp.Session.SID}); r.Error != nil || r.Stats == nil {
				t.Fatalf("stats: %v", r.Error)
			}
			want := nlinktest.Handle
			if tc.transport == "iser" {
				want = nlinktest.ISERHandle
			}
			for _, r := range f.kernel.Requests() {
				if r.Handle != want {
					t.Fatalf("%v carried handle %#x, want %#x", r.Type, r.Handle, want)
				}
			}
			if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpLogout, SID: resp.Session.SID}); resp.Error != nil {
				t.Fatal(resp.Error)
			}
			if n := len(f.kernel.Sessions()); n != 0 || f.kernel.Endpoints() != 0 {
				t.Errorf("%d kernel sessions, %d endpoints after logout", n, f.kernel.Endpoints())
			}
		})
	}
}

// OpDiscover runs SendTargets on a kernel session over an iSER endpoint; a
// portal it cannot reach answers ISCSI_ERR_TRANS for goiscsiadm to retry,
// and a tcp iface is not the kernel's to discover through.
func TestDiscoverOverISER(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport string
		unreach   bool
		code      iscsierr.Code
	}{
		{"iser", "iser", false, 0},
		{"unreachable", "iser", true, iscsierr.Trans},
		{"tcp", "tcp", false, iscsierr.Inval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := iserFixture(t, true, tc.unreach)
			keys := map[string]string{"discovery.sendtargets.address": f.rec["node.conn[0].address"],
				"discovery.sendtargets.port": f.rec["node.conn[0].port"], "discovery.sendtargets.timeo.login_timeout": "2",
				"iface.iscsi_ifacename": tc.transport, "iface.transport_name": tc.transport}
			resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpDiscover, Record: keys})
			if tc.code != 0 {
				if resp.Error == nil || resp.Error.Code != tc.code {
					t.Fatalf("discover: %v, want exit %d", resp.Error, tc.code)
				}
			} else if resp.Error != nil || len(resp.Targets) != 1 || resp.Targets[0].Name != testIQN ||
				len(resp.Targets[0].Portals) != 1 || strconv.Itoa(resp.Targets[0].Portals[0].Port) != keys["discovery.sendtargets.port"] {
				t.Fatalf("discover: %+v, %v", resp.Targets, resp.Error)
			}
			for _, r := range f.kernel.Requests() {
				if r.Type == nlink.CreateSession {
					t.Fatal("discovery over TCP's kernel session")
				}
			}
			if len(f.kernel.Sessions()) != 0 || f.kernel.Endpoints() != 0 {
				t.Fatalf("%d sessions, %d endpoints left", len(f.kernel.Sessions()), f.kernel.Endpoints())
			}
		})
	}
}
