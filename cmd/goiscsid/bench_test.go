package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/test/target"
)

// BenchmarkLoginLogout is goiscsid's own work for one session's login and
// logout (issue 24: its CPU against iscsid's over -L all and -U all): the
// management requests, the login exchange with a Go target over loopback, the
// netlink requests to the fake kernel, the scan write, and the info-level log
// lines as goiscsid writes them (text, to a discarded stream).
func BenchmarkLoginLogout(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := newFixtureWith(b, []target.TargetConfig{{
		Name: testIQN, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs: []target.LUNConfig{{Number: 0, Size: 1 << 20}},
	}}, nil, log)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s := f.login(b, nil)
		if resp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpLogout, SID: s.SID}); resp.Error != nil {
			b.Fatal(resp.Error)
		}
	}
}
