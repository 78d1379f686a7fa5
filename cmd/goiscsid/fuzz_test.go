package main

import (
	"strings"
	"testing"
)

// FuzzRecordNode turns arbitrary node records, as goiscsiadm would send them,
// into sessions' settings: a record is refused with an error or gives settings
// that a login can use (a port, bounded timeouts, digests the negotiator
// knows), never a panic.
func FuzzRecordNode(f *testing.F) {
	f.Add("node.name=iqn.2003-01.org.example:t\nnode.conn[0].address=10.0.0.1\nnode.conn[0].port=3260\nnode.tpgt=1\n")
	f.Add("node.name=t\nnode.conn[0].address=h\nnode.session.auth.authmethod=CHAP\nnode.conn[0].timeo.login_timeout=2147483647\nnode.session.queue_depth=65535\n")
	f.Add("node.name=t\nnode.conn[0].address=h\nnode.conn[0].iscsi.HeaderDigest=CRC32C,None\nnode.session.iscsi.MaxBurstLength=0x1000\n")
	f.Fuzz(func(t *testing.T, text string) {
		rec := record{}
		for _, line := range strings.Split(text, "\n") {
			k, v, _ := strings.Cut(line, "=")
			rec[k] = v
		}
		n, err := rec.node("iqn.2026-11.dev.goiscsi:fuzz", "")
		if err != nil {
			return
		}
		if n.Port < 1 || n.Port > 65535 || n.Timeouts.Login <= 0 || n.Timeouts.Logout <= 0 || n.CmdsMax == 0 || n.QueueDepth == 0 {
			t.Fatalf("accepted %q as %+v", text, n)
		}
		for _, d := range []string{n.Login.Operational.HeaderDigest, n.Login.Operational.DataDigest} {
			if d != "None" && d != "CRC32C" && d != "CRC32C,None" && d != "None,CRC32C" {
				t.Fatalf("accepted digest %q", d)
			}
		}
	})
}
