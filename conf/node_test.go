package conf

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/session"
)

const testInitiator = "iqn.2026-11.dev.goiscsi:host"

func nodeKeys(kv ...string) map[string]string {
	m := map[string]string{"node.name": "iqn.2003-01.org.example:t", "node.conn[0].address": "10.0.0.1"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestNodeDecode(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("node.conn[0].timeo.login_timeout = 12\nnode.session.auth.chap_algs = SHA256,MD5\n"), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NodeRecordFrom(nodeKeys("node.tpgt", "3", "node.session.auth.authmethod", "chap",
		"node.session.auth.username", "u", "node.session.auth.password", "s3cret-of-u",
		"iface.iscsi_ifacename", "eth-a", "iface.net_ifacename", "vethA", "node.session.autoscan_en", "no",
		"node.conn[0].iscsi.HeaderDigest", "CRC32C,None", "node.session.nr_sessions", "2"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Node(testInitiator)
	if err != nil {
		t.Fatal(err)
	}
	if n.Target != "iqn.2003-01.org.example:t" || n.Address != "10.0.0.1" || n.Port != 3260 || n.TPGT != 3 {
		t.Errorf("identity %+v", n)
	}
	if n.Iface != (Iface{Name: "eth-a", Transport: "tcp", Netdev: "vethA"}) || n.InitiatorName != testInitiator {
		t.Errorf("iface %+v initiator %q", n.Iface, n.InitiatorName)
	}
	if n.Auth.Method != session.AuthCHAP || n.Auth.Username != "u" || n.Auth.Password != "s3cret-of-u" ||
		len(n.Auth.Algorithms) != 2 || n.Auth.Algorithms[0] != session.CHAPSHA256 {
		t.Errorf("auth %+v", n.Auth)
	}
	if n.Timeouts.Login != 12*time.Second || n.Timeouts.Replacement != 120 || n.Operational.HeaderDigest != "CRC32C,None" {
		t.Errorf("timeouts %+v operational %+v", n.Timeouts, n.Operational)
	}
	if n.AutoscanEn || n.Scan != "auto" || n.NrSessions != 2 || n.CmdsMax != 128 || n.QueueDepth != 32 {
		t.Errorf("scan %q %v, nr_sessions %d, cmds_max %d", n.Scan, n.AutoscanEn, n.NrSessions, n.CmdsMax)
	}
	// The iface's own initiator name wins over the host's.
	r.Set("iface.initiatorname", "iqn.2026-11.dev.goiscsi:iface")
	if n, _ := r.Node(testInitiator); n.InitiatorName != "iqn.2026-11.dev.goiscsi:iface" {
		t.Errorf("initiator %q", n.InitiatorName)
	}
}

func TestNodeDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keys      map[string]string
		initiator string
		key       string // the key the error names
	}{
		{"no target", map[string]string{"node.conn[0].address": "h"}, testInitiator, "node.name"},
		{"no portal", map[string]string{"node.name": "t"}, testInitiator, "node.conn[0].address"},
		{"no initiator name", nodeKeys(), "", "iface.initiatorname"},
		{"port 0", nodeKeys("node.conn[0].port", "0"), testInitiator, "node.conn[0].port"},
		{"port 70000", nodeKeys("node.conn[0].port", "70000"), testInitiator, "node.conn[0].port"},
		{"login timeout 0", nodeKeys("node.conn[0].timeo.login_timeout", "0"), testInitiator, "node.conn[0].timeo.login_timeout"},
		{"burst above RFC 7143", nodeKeys("node.session.iscsi.MaxBurstLength", "16777216"), testInitiator, "node.session.iscsi.MaxBurstLength"},
		{"MaxRecvDataSegmentLength 100", nodeKeys("node.conn[0].iscsi.MaxRecvDataSegmentLength", "100"), testInitiator, "node.conn[0].iscsi.MaxRecvDataSegmentLength"},
		{"queue depth 0", nodeKeys("node.session.queue_depth", "0"), testInitiator, "node.session.queue_depth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NodeRecordFrom(tc.keys, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Node(tc.initiator)
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != tc.key {
				t.Fatalf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
	// Values the record's types refuse never get as far.
	for _, kv := range [][2]string{{"node.session.auth.authmethod", "Kerberos"}, {"node.conn[0].iscsi.HeaderDigest", "MD5"},
		{"node.session.queue_depth", "lots"}, {"node.frobnicate", "1"}} {
		if _, err := NodeRecordFrom(nodeKeys(kv[0], kv[1]), nil); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s = %s: error %v", kv[0], kv[1], err)
		}
	}
}

// FuzzNodeDecode turns arbitrary node records, as goiscsid receives them, into
// a login's settings: a record is refused with an error or gives settings a
// login can use (a port, bounded timeouts, digests the negotiator knows),
// never a panic.
func FuzzNodeDecode(f *testing.F) {
	f.Add("node.name=iqn.2003-01.org.example:t\nnode.conn[0].address=10.0.0.1\nnode.conn[0].port=3260\nnode.tpgt=1\n")
	f.Add("node.name=t\nnode.conn[0].address=h\nnode.session.auth.authmethod=CHAP\nnode.conn[0].timeo.login_timeout=2147483647\nnode.session.queue_depth=65535\n")
	f.Add("node.name=t\nnode.conn[0].address=h\nnode.conn[0].iscsi.HeaderDigest=CRC32C,None\nnode.session.iscsi.MaxBurstLength=0x1000\n")
	f.Fuzz(func(t *testing.T, text string) {
		keys := map[string]string{}
		for _, line := range strings.Split(text, "\n") {
			k, v, _ := strings.Cut(line, "=")
			keys[k] = v
		}
		r, err := NodeRecordFrom(keys, nil)
		if err != nil {
			return
		}
		n, err := r.Node(testInitiator)
		if err != nil {
			return
		}
		if n.Port < 1 || n.Port > 65535 || n.Timeouts.Login <= 0 || n.Timeouts.Logout <= 0 || n.CmdsMax == 0 || n.QueueDepth == 0 || n.NrSessions < 1 {
			t.Fatalf("accepted %q as %+v", text, n)
		}
		for _, d := range []string{n.Operational.HeaderDigest, n.Operational.DataDigest} {
			if d != "None" && d != "CRC32C" && d != "CRC32C,None" && d != "None,CRC32C" {
				t.Fatalf("accepted digest %q", d)
			}
		}
	})
}
