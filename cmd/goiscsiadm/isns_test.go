package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/isns/isnstest"
)

const isnsIQN = "iqn.2026-11.dev.goiscsi:isns-target"

// The iSNS discovery commands print, record and list what stock 2.1.8 does
// (as measured in the VM): -m discovery -t isns stores node records and no
// discovery record, -m discoverydb makes isns/<server>,<port>/isns_config,
// lists it "via isns", and -o delete takes the nodes it found with it; a
// server that stopped naming the target gives "No portals found" (21) and
// leaves the record.
func TestISNSDiscoveryCommands(t *testing.T) {
	_, root := setup(t)
	s, err := isnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddTarget(isnsIQN, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	server := "127.0.0.1:" + port
	for _, step := range []struct {
		args           []string
		code           iscsierr.Code
		stdout, stderr string
	}{
		{[]string{"-m", "discovery", "-t", "isns", "-p", server}, 0, "127.0.0.1:3260,1 " + isnsIQN + "\n", ""},
		{[]string{"-m", "discovery"}, iscsierr.NoObjsFound, "", ""},
		{[]string{"-m", "discovery", "-P", "1"}, 0, "SENDTARGETS:\nNo targets found.\niSNS:\nTarget: " + isnsIQN +
			"\n\tPortal: 127.0.0.1:3260,1\n\t\tIface Name: default\nSTATIC:\nNo targets found.\nFIRMWARE:\nNo targets found.\n", ""},
		{[]string{"-m", "discoverydb", "-t", "isns", "-p", server}, iscsierr.IDBM, "", "iscsiadm: Discovery record [127.0.0.1," + port + "] not found.\n"},
		{[]string{"-m", "discoverydb", "-t", "isns", "-p", server, "-o", "new"}, 0, "New discovery record for [127.0.0.1," + port + "] added.\n", ""},
		{[]string{"-m", "discoverydb", "-t", "isns", "-p", server}, 0, "# BEGIN RECORD 2.1.8\ndiscovery.startup = manual\ndiscovery.type = isns\n" +
			"discovery.sendtargets.address = 127.0.0.1\ndiscovery.sendtargets.port = " + port + "\ndiscovery.isns.use_discoveryd = No\n" +
			"discovery.isns.discoveryd_poll_inval = -1\n# END RECORD\n", ""},
		{[]string{"-m", "discoverydb", "-t", "isns", "-p", server, "-o", "update", "-n", "discovery.isns.use_discoveryd", "-v", "Yes"}, 0, "", ""},
		{[]string{"-m", "discoverydb", "-t", "isns", "-p", server, "--discover"}, 0, "127.0.0.1:3260,1 " + isnsIQN + "\n", ""},
		{[]string{"-m", "discoverydb"}, 0, "127.0.0.1:" + port + " via isns\n", ""},
		{[]string{"-m", "discovery", "-P", "1"}, 0, "SENDTARGETS:\nNo targets found.\niSNS:\nDiscoveryAddress: 127.0.0.1," + port + "\nTarget: " + isnsIQN +
			"\n\tPortal: 127.0.0.1:3260,1\n\t\tIface Name: default\nSTATIC:\nNo targets found.\nFIRMWARE:\nNo targets found.\n", ""},
	} {
		x := adm(t, step.args...)
		if x.Code != step.code || x.Stdout != step.stdout || x.Stderr != step.stderr {
			t.Fatalf("%s: exit %d\n%s%s\nwant exit %d\n%s%s", strings.Join(step.args, " "), x.Code, x.Stdout, x.Stderr, step.code, step.stdout, step.stderr)
		}
	}
	rec, err := os.ReadFile(filepath.Join(root, "nodes", isnsIQN, "127.0.0.1,3260,1", "default"))
	if err != nil || !strings.Contains(string(rec), "\nnode.discovery_address = 127.0.0.1\nnode.discovery_port = "+port+"\nnode.discovery_type = isns\n") {
		t.Fatalf("node record: %v\n%s", err, rec)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "isns", "127.0.0.1,"+port, "isns_config")); !strings.Contains(string(b), "discovery.isns.use_discoveryd = Yes\n") {
		t.Errorf("isns_config after -o update:\n%s", b)
	}

	if err := s.RemoveTarget(isnsIQN); err != nil {
		t.Fatal(err)
	}
	if x := adm(t, "-m", "discovery", "-t", "isns", "-p", server); x.Code != iscsierr.NoObjsFound || x.Stderr != "iscsiadm: No portals found\n" {
		t.Errorf("after deregistration: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "node"); x.Code != 0 || x.Stdout != "127.0.0.1:3260,1 "+isnsIQN+"\n" {
		t.Errorf("-m node after a discovery that found nothing: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if x := adm(t, "-m", "discoverydb", "-t", "isns", "-p", server, "-o", "delete"); x.Code != 0 || x.Stderr != "" {
		t.Fatalf("delete: %d %q", x.Code, x.Stderr)
	}
	if x := adm(t, "-m", "node"); x.Code != iscsierr.NoObjsFound {
		t.Errorf("-m node after the discovery record was deleted: %d %q %q", x.Code, x.Stdout, x.Stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "isns", "127.0.0.1,"+port)); !os.IsNotExist(err) {
		t.Errorf("the server's directory outlived -o delete: %v", err)
	}
}

// A server nobody answers on: stock's last line and exit 25, after a line
// naming the cause; 3205 is the default port.
func TestISNSDiscoveryDeadServer(t *testing.T) {
	setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	x := adm(t, "-m", "discovery", "-t", "isns", "-p", addr)
	lines := strings.Split(x.Stderr, "\n")
	if x.Code != iscsierr.ISNSQuery || len(lines) != 3 || !strings.HasPrefix(lines[0], "iscsiadm: iSNS discovery failed: ") ||
		!strings.Contains(lines[0], "connection refused") || lines[1] != "iscsiadm: Could not perform iSNS discovery: iSNS query failed" {
		t.Errorf("refused: %d %q", x.Code, x.Stderr)
	}
	c, px := Parse([]string{"iscsiadm", "-m", "discovery", "-t", "isns", "-p", "10.0.0.9"})
	if px != nil || !c.ISNS || c.Portal.Port != 3205 || c.Action != ActDiscover {
		t.Errorf("default port: %+v %v", c, px)
	}
	c, px = Parse([]string{"iscsiadm", "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.9", "-D"})
	if px != nil || !c.ISNS || c.Portal.Port != 3205 || c.Action != ActDiscoverDB {
		t.Errorf("discoverydb default port: %+v %v", c, px)
	}
}
