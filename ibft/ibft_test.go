package ibft

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// brief is what a user checks of a Boot: which target, through which NIC and
// interface, from which table.
type brief struct {
	table, target, addr string
	port                int
	nic, netdev, mac    string
	host                int
}

func briefOf(b Boot) brief {
	return brief{b.Table, b.Target.Name, Addr(b.Target.IP), b.Target.Port, b.NIC.Entry, b.Netdev, b.NIC.MAC.String(), b.Host}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		tree    string
		want    []brief
		wantErr string // substring; "" for none
	}{
		// As the kernel showed qemu's table (TestVMFirmware -update): the
		// PCI function of a virtio NIC has its interface below virtio0,
		// so the MAC finds it.
		{"qemu", []brief{{"ibft", "iqn.2003-01.org.example:fwboot", "10.0.2.15", 3260, "ethernet0", "eth0", "52:54:00:12:34:56", -1}}, ""},
		{"pci", []brief{{"ibft", "iqn.2003-01.org.example:boot", "10.0.2.15", 3260, "ethernet0", "eth0", "52:54:00:12:34:56", -1}}, ""},
		{"mac", []brief{
			{"ibft", "iqn.2003-01.org.example:boot", "192.168.7.5", 3261, "ethernet0", "eth0", "52:54:00:aa:bb:01", -1},
			{"ibft", "iqn.2003-01.org.example:second", "fd00:0000:0000:0000:0000:0000:0000:0005", 3260, "ethernet1", "eth1", "52:54:00:aa:bb:02", -1},
		}, ""},
		{"oldnet", []brief{{"ibft", "iqn.2003-01.org.example:boot", "10.0.2.15", 3260, "ethernet0", "eth3", "52:54:00:12:34:56", -1}}, ""},
		{"offload", []brief{{"iscsi_boot3", "iqn.2003-01.org.example:hba", "10.1.1.1", 3260, "ethernet0", "", "00:0e:1e:00:00:01", 3}}, ""},
		{"badassoc", nil, "ibft: table ibft: target0: nic-assoc 4 names no NIC"},
		{"badport", nil, `ibft: table ibft: target0: port: "32x0" is not a number`},
		{"unknownnic", []brief{{"ibft", "iqn.2003-01.org.example:boot", "10.0.2.15", 3260, "ethernet0", "", "52:54:00:99:99:99", -1}},
			"ethernet0: no network interface has its PCI function or its MAC address 52:54:00:99:99:99"},
		{"none", nil, ErrNoTable.Error()},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			boots, err := Targets(filepath.Join("testdata", tc.tree))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Targets: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Targets error = %v, want one containing %q", err, tc.wantErr)
			}
			var got []brief
			for _, b := range boots {
				got = append(got, briefOf(b))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Targets = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("boot %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestTargetsNoTableIsErrNoTable(t *testing.T) {
	if _, err := Targets(t.TempDir()); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Targets of an empty sysfs = %v, want ErrNoTable", err)
	}
}

func TestReadValues(t *testing.T) {
	tables, err := Read(filepath.Join("testdata", "mac"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].Name != "ibft" || tables[0].Offload() {
		t.Fatalf("tables = %+v, want the one iBFT", tables)
	}
	tb := tables[0]
	if tb.Initiator.Name != "iqn.1993-08.org.debian:01:macvm" {
		t.Errorf("initiator name = %q", tb.Initiator.Name)
	}
	n0, n1 := tb.NICs[0], tb.NICs[1]
	if !n0.DHCPUsed() || n1.DHCPUsed() {
		t.Errorf("DHCPUsed = %v, %v; want true (origin 3), false", n0.DHCPUsed(), n1.DHCPUsed())
	}
	if n0.SubnetMask != netip.MustParseAddr("255.255.255.0") || n0.PrefixLen != 24 || n0.Gateway != netip.MustParseAddr("192.168.7.1") {
		t.Errorf("ethernet0 = %+v", n0)
	}
	if n1.VLAN != 12 || n1.IP != netip.MustParseAddr("fd00::14") || !n0.BootSelected() || n1.BootSelected() {
		t.Errorf("ethernet1 = %+v", n1)
	}
	t1 := tb.Targets[1]
	if t1.LUN != "01000000" || t1.CHAPName != "bob" || t1.RevCHAPName != "tgt" || t1.RevCHAPSecret != "tgtsecret12345" || t1.NICAssoc != 1 {
		t.Errorf("target1 = %+v", t1)
	}
}

func TestParseErrors(t *testing.T) {
	nic := func(kv ...string) map[string]string {
		m := map[string]string{"index": "0\n", "flags": "3\n", "mac": "52:54:00:12:34:56\n"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	tgt := func(kv ...string) map[string]string {
		m := map[string]string{"index": "0\n", "flags": "3\n", "ip-addr": "10.0.0.1\n", "nic-assoc": "0\n", "target-name": "iqn.x:y\n"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nic ok", second(ParseNIC(nic())), ""},
		{"nic mac", second(ParseNIC(nic("mac", "52:54:00\n"))), `mac: "52:54:00" is not an Ethernet MAC address`},
		{"nic no mac", second(ParseNIC(nic("mac", ""))), `mac: "" is not an Ethernet MAC address`},
		{"nic ip", second(ParseNIC(nic("ip-addr", "10.0.0.300\n"))), `ip-addr: "10.0.0.300" is not an IP address`},
		{"nic zone", second(ParseNIC(nic("ip-addr", "fe80::1%eth0\n"))), `ip-addr: "fe80::1%eth0" is not an IP address`},
		{"nic prefix", second(ParseNIC(nic("prefix-len", "200\n"))), "prefix-len: 200 is not a prefix length"},
		{"nic vlan", second(ParseNIC(nic("vlan", "5000\n"))), "vlan: 5000 is not a VLAN ID"},
		{"nic index", second(ParseNIC(nic("index", ""))), "index: missing or negative"},
		{"nic flags", second(ParseNIC(nic("flags", "three\n"))), `flags: "three" is not a number`},
		{"target ok", second(ParseTarget(tgt())), ""},
		{"target name", second(ParseTarget(tgt("target-name", ""))), "target-name: missing or empty"},
		{"target ip", second(ParseTarget(tgt("ip-addr", ""))), "ip-addr: missing or empty"},
		{"target port", second(ParseTarget(tgt("port", "70000\n"))), "port: 70000 is not a TCP port"},
		{"target assoc", second(ParseTarget(tgt("nic-assoc", ""))), "nic-assoc: missing or negative"},
		{"target lun", second(ParseTarget(tgt("lun", "0000zz00\n"))), `lun: "0000zz00" is not hexadecimal`},
		{"target two lines", second(ParseTarget(tgt("target-name", "iqn.a\niqn.b\n"))), `target-name: "iqn.a\niqn.b" is not one line of text`},
		{"initiator isns", second(ParseInitiator(map[string]string{"isns-server": "x\n"})), `isns-server: "x" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if tc.err != nil {
				got = tc.err.Error()
			}
			if got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"10.0.2.15", "10.0.2.15"},
		{"::ffff:10.0.2.15", "10.0.2.15"},
		{"fd00::5", "fd00:0000:0000:0000:0000:0000:0000:0005"},
	} {
		var a netip.Addr
		if tc.in != "" {
			a = netip.MustParseAddr(tc.in).Unmap()
		}
		if got := Addr(a); got != tc.want {
			t.Errorf("Addr(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
