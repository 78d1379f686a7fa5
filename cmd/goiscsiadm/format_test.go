package main

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan"
)

var update = flag.Bool("update", false, "rewrite the goiscsiadm-*.txt golden files from the current output")

// golden compares got with testdata/golden/name. Files named stock-* hold
// stock 2.1.8's own output and are never rewritten; the others hold
// goiscsiadm's, reviewed against stock's source, and -update rewrites them.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update && !strings.HasPrefix(name, "stock-") {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// noExit returns a listing's text, failing the test when it ended with an
// Exit: noExit(t)(NodesText(...)).
func noExit(t *testing.T) func(string, *Exit) string {
	return func(text string, e *Exit) string {
		t.Helper()
		if e != nil {
			t.Fatalf("unexpected Exit %d %q", e.Code, e.Stderr)
		}
		return text
	}
}

// The node database of the stock-* captures, in the order stock read it.
var (
	nodeT0   = NodeSummary{"iqn.2003-01.org.x:t0", "10.0.0.3", 3260, -1, "default", ""}
	nodeT1a  = NodeSummary{"iqn.2003-01.org.x:t1", "10.0.0.1", 3260, 1, "default", ""}
	nodeT1aI = NodeSummary{"iqn.2003-01.org.x:t1", "10.0.0.1", 3260, 1, "iser", ""}
	nodeT1b  = NodeSummary{"iqn.2003-01.org.x:t1", "10.0.0.2", 3261, 2, "default", "lun0"}
	nodeT2   = NodeSummary{"iqn.2003-01.org.x:t2", "fe80::1", 3260, 1, "default", ""}
	// libopeniscsiusr's order: target, then portal directory, then iface.
	sortedNodes  = []NodeSummary{nodeT0, nodeT1a, nodeT1aI, nodeT1b, nodeT2}
	ifaceDefault = conf.Iface{Name: "default", Transport: "tcp"}
	ifaceISER    = conf.Iface{Name: "iser", Transport: "iser"}
)

func TestNodesText(t *testing.T) {
	golden(t, "stock-nodes-flat.txt", noExit(t)(NodesText(sortedNodes, -1)))
	golden(t, "stock-nodes-tree.txt", noExit(t)(NodesText(sortedNodes, 1)))
	if got := noExit(t)(NodesText(sortedNodes, 0)); got != noExit(t)(NodesText(sortedNodes, -1)) {
		t.Error("-P 0 differs from no -P")
	}
	for _, tc := range []struct {
		nodes  []NodeSummary
		level  int
		stderr string
		code   iscsierr.Code
	}{
		{sortedNodes, 2, "iscsiadm: Invalid info level 2. Try 0 or 1.\n", iscsierr.Inval},
		{nil, 2, "iscsiadm: Invalid info level 2. Try 0 or 1.\n", iscsierr.Inval}, // level first
		{nil, 0, "iscsiadm: No records found\n", iscsierr.NoObjsFound},
	} {
		text, e := NodesText(tc.nodes, tc.level)
		if text != "" || e == nil || e.Stderr != tc.stderr || e.Code != tc.code {
			t.Errorf("NodesText(%d nodes, %d) = %q, %+v", len(tc.nodes), tc.level, text, e)
		}
	}
}

func TestIfacesText(t *testing.T) {
	golden(t, "stock-ifaces-flat.txt", noExit(t)(IfacesText([]conf.Iface{ifaceDefault, ifaceISER})))
	full := conf.Iface{Name: "iface0", Transport: "cxgb4i", InitiatorName: "iqn.1994-05.com.example:a", IPAddress: "10.1.1.1", HWAddress: "00:07:43:11:22:33", Netdev: "eth2"}
	golden(t, "goiscsiadm-ifaces-flat-full.txt", noExit(t)(IfacesText([]conf.Iface{full})))
	if text, e := IfacesText(nil); text != "" || e == nil || e.Stderr != "iscsiadm: No interfaces found.\n" || e.Code != iscsierr.NoObjsFound {
		t.Errorf("IfacesText(nil) = %q, %+v", text, e)
	}
}

func TestIfaceTreeText(t *testing.T) {
	golden(t, "stock-iface-tree.txt", IfaceTreeText([]conf.Iface{ifaceDefault, ifaceISER}, sortedNodes))
	if got := IfaceTreeText([]conf.Iface{ifaceDefault, ifaceISER}, nil); got != "" {
		t.Errorf("no nodes: %q, stock prints nothing", got)
	}
}

func TestDiscoveryDBText(t *testing.T) {
	db := DiscoveryDB{
		SendTargets: []DiscoveryPortal{{Address: "10.0.0.9", Port: 3260}, {Address: "192.168.1.1", Port: 3261}},
		// In the order stock's directory walk met them.
		Static: []NodeSummary{nodeT0, nodeT2, nodeT1b, nodeT1aI, nodeT1a},
	}
	golden(t, "stock-discoverydb-tree.txt", noExit(t)(DiscoveryDBText(db, 1)))
	golden(t, "stock-discoverydb-flat.txt", noExit(t)(DiscoveryDBText(db, 0)))

	st := DiscoveryDB{
		SendTargets: []DiscoveryPortal{
			{Address: "10.0.0.8", Port: 3260, Nodes: []NodeSummary{{"iqn.2003-01.org.x:c", "10.0.0.8", 3260, 1, "default", ""}}},
			{Address: "10.0.0.9", Port: 3260, Nodes: []NodeSummary{
				{"iqn.2003-01.org.x:b", "10.0.0.9", 3260, 1, "iser", ""},
				{"iqn.2003-01.org.x:b", "10.0.0.9", 3260, 1, "default", ""},
				{"iqn.2003-01.org.x:a", "10.0.1.9", 3260, 2, "default", ""},
				{"iqn.2003-01.org.x:a", "10.0.0.9", 3260, 1, "default", ""},
			}},
		},
		Static: []NodeSummary{{"iqn.2003-01.org.x:s", "10.0.0.7", 3260, 1, "default", ""}},
	}
	golden(t, "stock-discoverydb-tree-sendtargets.txt", noExit(t)(DiscoveryDBText(st, 1)))
	if text, _ := DiscoveryDBText(st, 3); text != noExit(t)(DiscoveryDBText(st, 1)) {
		t.Error("levels above 1 should print the level 1 tree")
	}

	// Nothing at all: the empty sections, then exit 21 without a message.
	text, e := DiscoveryDBText(DiscoveryDB{}, 1)
	golden(t, "stock-discoverydb-tree-empty.txt", text)
	if e == nil || e.Code != iscsierr.NoObjsFound || e.Stderr != "" {
		t.Errorf("empty tree: Exit %+v", e)
	}
	if text, e := DiscoveryDBText(DiscoveryDB{Static: []NodeSummary{nodeT0}}, 0); text != "" || e == nil || e.Code != iscsierr.NoObjsFound || e.Stderr != "" {
		t.Errorf("flat listing counts only discovery records: %q, %+v", text, e)
	}
	iSNS := DiscoveryDB{ISNS: []DiscoveryPortal{{Address: "10.0.0.5", Port: 3205}}}
	golden(t, "goiscsiadm-discoverydb-isns.txt", noExit(t)(DiscoveryDBText(iSNS, 0))+noExit(t)(DiscoveryDBText(iSNS, 1)))
}

func TestDiscoveredText(t *testing.T) {
	found := []NodeSummary{
		{"iqn.2003-01.org.x:a", "10.0.0.9", 3260, 1, "default", ""},
		{"iqn.2003-01.org.x:a", "10.0.0.9", 3260, 1, "iser", ""},
		{"iqn.2003-01.org.x:a", "10.0.1.9", 3260, 2, "default", ""},
		{"iqn.2003-01.org.x:b", "fd00::9", 3260, 1, "default", ""},
		{"eui.02004567a425678d", "10.0.0.9", 3260, -1, "default", ""},
	}
	golden(t, "goiscsiadm-discovered-flat.txt", noExit(t)(DiscoveredText(found, -1)))
	golden(t, "goiscsiadm-discovered-tree.txt", noExit(t)(DiscoveredText(found, 1)))
	if got := noExit(t)(DiscoveredText(found, 2)); got != "" {
		t.Errorf("level 2 prints %q; stock prints nothing", got)
	}
	if text, e := DiscoveredText(nil, 0); text != "" || e == nil || e.Stderr != "iscsiadm: No portals found\n" || e.Code != iscsierr.NoObjsFound {
		t.Errorf("DiscoveredText(nil) = %q, %+v", text, e)
	}
}

// session1 is a full session with everything known.
func session1() initiator.Session {
	return initiator.Session{
		SID: 1, Transport: "tcp", TargetName: "iqn.2003-01.org.x:t1", TPGT: 1,
		Address: "10.0.0.1", Port: 3260, PersistentAddress: "10.0.0.1", PersistentPort: 3260,
		Iface:     conf.Iface{Name: "default", Transport: "tcp", InitiatorName: "iqn.1993-08.org.debian:01:abc", IPAddress: "10.0.0.2"},
		ConnState: "LOGGED IN", SessionState: "LOGGED_IN", InternalState: "NO CHANGE",
		Timeouts: initiator.Timeouts{Recovery: 120, TargetReset: 30, LUNReset: 30, Abort: 15},
		CHAP:     initiator.CHAP{Username: "out", Password: "outpass", UsernameIn: "in", PasswordIn: "inpass"},
		Params: &initiator.Negotiated{
			HeaderDigest: "None", DataDigest: "CRC32C",
			MaxRecvDataSegmentLength: 262144, MaxXmitDataSegmentLength: 1048576,
			FirstBurstLength: 65536, MaxBurstLength: 262144,
			ImmediateData: true, InitialR2T: false, MaxOutstandingR2T: 1,
		},
		Host: &initiator.Host{Number: 2, State: "running"},
		Devices: []scan.Device{
			{Host: 2, Target: 0, LUN: 0, Block: "sdb", State: "running"},
			{Host: 2, Target: 0, LUN: 1, Block: "sdc", State: "offline"},
			{Host: 2, Target: 0, LUN: 10, Block: "sdd", State: "running"},
			{Host: 2, Target: 0, LUN: 2},
		},
		ScanPolicy: "manual",
	}
}

// sessions are four sessions: two to one target through the same portal
// (two ifaces), one more to it through another portal, and one over IPv6
// with little known.
func sessions() []initiator.Session {
	s1 := session1()
	s2 := session1()
	s2.SID, s2.Address, s2.PersistentAddress, s2.TPGT = 2, "10.0.1.1", "10.0.1.1", 2
	s2.Host = &initiator.Host{Number: 3}
	s2.Devices = []scan.Device{{Host: 3, Target: 0, LUN: 0, Block: "sde", State: "running"}}
	s2.HeldLUNs = []scan.HeldLUN{{LUN: 1, Reason: "removed by the host", Since: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}}
	s3 := session1()
	s3.SID, s3.Iface.Name, s3.Iface.Transport, s3.Transport = 10, "iser", "iser", "iser"
	s3.Host = nil
	s4 := initiator.Session{
		SID: 3, Flash: true, TargetName: "iqn.2003-01.org.x:t2", TPGT: 1,
		Address: "fd00::1", Port: 3260, PersistentAddress: "fd00::1", PersistentPort: 3260,
		Iface:    conf.Iface{IPAddress: "fd00::2"},
		Timeouts: initiator.Timeouts{Recovery: 120, TargetReset: -1, LUNReset: -1, Abort: -1},
	}
	return []initiator.Session{s1, s3, s2, s4}
}

func TestSessionsText(t *testing.T) {
	ss := sessions()
	for _, tc := range []struct {
		name   string
		level  int
		secret bool
	}{
		{"goiscsiadm-sessions-flat.txt", -1, false},
		{"goiscsiadm-sessions-tree1.txt", 1, false},
		{"goiscsiadm-sessions-tree2.txt", 2, false},
		{"goiscsiadm-sessions-tree2-secrets.txt", 2, true},
		{"goiscsiadm-sessions-tree3.txt", 3, false},
	} {
		golden(t, tc.name, noExit(t)(SessionsText(ss, tc.level, tc.secret, "2.0-870")))
	}
	if noExit(t)(SessionsText(ss, 0, true, "")) != noExit(t)(SessionsText(ss, -1, false, "")) {
		t.Error("-P 0 differs from no -P, or -S changed the flat listing")
	}
	// Without the kernel's version the -P 3 header is left out.
	p3 := noExit(t)(SessionsText(ss[:1], 3, false, ""))
	if !strings.HasPrefix(p3, "Target: ") {
		t.Errorf("-P 3 without a class version starts %q", p3[:20])
	}
	for _, level := range []int{1, 2, 3} {
		if text := noExit(t)(SessionsText(ss, level, false, "")); strings.Contains(text, "outpass") || strings.Contains(text, "inpass") {
			t.Errorf("-P %d without -S shows a password:\n%s", level, text)
		}
	}
	text, e := SessionsText(nil, 9, false, "")
	if text != "" || e == nil || e.Stderr != "iscsiadm: No active sessions.\n" || e.Code != iscsierr.NoObjsFound {
		t.Errorf("no sessions: %q, %+v (stock checks for sessions before the level)", text, e)
	}
	text, e = SessionsText(ss, 4, false, "")
	if text != "" || e == nil || e.Stderr != "iscsiadm: Invalid info level 4. Try 0 - 3.\n" || e.Code != iscsierr.Inval {
		t.Errorf("-P 4: %q, %+v", text, e)
	}
}

// TestSessionsTextConsumers parses the flat listing the way os-brick,
// csi-lib-iscsi and Trident do.
func TestSessionsTextConsumers(t *testing.T) {
	text := noExit(t)(SessionsText(sessions(), 0, false, ""))
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	f := strings.Fields(lines[0])
	if f[0] != "tcp:" || f[1][1:len(f[1])-1] != "1" || f[2] != "10.0.0.1:3260,1" || f[3] != "iqn.2003-01.org.x:t1" {
		t.Errorf("fields %q", f)
	}
	if f := strings.Fields(lines[3]); f[2] != "[fd00::1]:3260,1" || f[4] != "(flash)" {
		t.Errorf("IPv6 fields %q", f)
	}
}

func TestHostsText(t *testing.T) {
	ss := sessions()
	hosts := []HostSummary{
		{Number: 2, State: "running", Iface: conf.Iface{Transport: "tcp", InitiatorName: "iqn.1993-08.org.debian:01:abc", IPAddress: "10.0.0.2", Netdev: "eth0"},
			Sessions: ss[:1]},
		{Number: 3, Iface: conf.Iface{Transport: "tcp", IPAddress: "fd00::2"}, Sessions: ss[1:2]},
		{Number: 4, State: "running"},
	}
	golden(t, "goiscsiadm-hosts-flat.txt", noExit(t)(HostsText(hosts, -1, "")))
	for level := 1; level <= 4; level++ {
		golden(t, "goiscsiadm-hosts-tree"+string(rune('0'+level))+".txt", noExit(t)(HostsText(hosts, level, "2.0-870")))
	}
	text, e := HostsText(hosts, 5, "")
	if text != "" || e == nil || e.Stderr != "iscsiadm: Invalid info level 5. Try 0 - 4.\n" || e.Code != iscsierr.Inval {
		t.Errorf("-P 5: %q, %+v", text, e)
	}
	text, e = HostsText(nil, 4, "2.0-870")
	if text != "iSCSI Transport Class version 2.0-870\nversion 2.1.8\n" || e == nil || e.Stderr != "iscsiadm: No iSCSI hosts.\n" || e.Code != iscsierr.NoObjsFound {
		t.Errorf("no hosts: %q, %+v", text, e)
	}
}

// BenchmarkSessionsText is -m session -P 3 of 64 sessions of one LUN each, the
// text alone: a listing's hot path once the daemon and sysfs have answered.
func BenchmarkSessionsText(b *testing.B) {
	sessions := make([]initiator.Session, 64)
	for i := range sessions {
		sessions[i] = initiator.Session{SID: i + 1, Transport: "tcp", TargetName: "iqn.2003-01.org.linux-iscsi.bench:t" + strconv.Itoa(i), TPGT: 1,
			Address: "127.0.0.1", Port: 3260, PersistentAddress: "127.0.0.1", PersistentPort: 3260,
			Iface: conf.Iface{Name: "default", Transport: "tcp", InitiatorName: "iqn.1993-08.org.debian:01:bench", IPAddress: "127.0.0.1",
				HWAddress: "default", Netdev: "default"},
			ConnState: "LOGGED IN", SessionState: "LOGGED_IN", InternalState: "NO CHANGE", ScanPolicy: "auto",
			Timeouts: initiator.Timeouts{Recovery: 120, TargetReset: 30, LUNReset: 30, Abort: 15},
			Params: &initiator.Negotiated{HeaderDigest: "None", DataDigest: "None", MaxRecvDataSegmentLength: 262144,
				MaxXmitDataSegmentLength: 262144, FirstBurstLength: 65536, MaxBurstLength: 262144,
				ImmediateData: true, InitialR2T: true, MaxOutstandingR2T: 1},
			Host:    &initiator.Host{Number: i + 2, State: "running"},
			Devices: []scan.Device{{Host: i + 2, LUN: 0, Block: "sd" + string(rune('a'+i%26)), State: "running"}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, x := SessionsText(sessions, 3, false, "2.0-870"); x != nil {
			b.Fatal(x.Stderr)
		}
	}
}
