package ibft

import (
	"net/netip"
	"strings"
	"testing"
)

// entryFiles splits a fuzz input into an entry's files: "name\x01content"
// pairs separated by "\x00".
func entryFiles(data string) map[string]string {
	files := map[string]string{}
	for _, f := range strings.Split(data, "\x00") {
		name, content, _ := strings.Cut(f, "\x01")
		files[name] = content
	}
	return files
}

// FuzzParseEntry feeds the same files to the parsers of every entry kind:
// none may panic, and what they accept must hold up (addresses print and
// parse back, ports and prefixes in range).
func FuzzParseEntry(f *testing.F) {
	f.Add("index\x010\n\x00flags\x013\n\x00ip-addr\x0110.0.2.15\n\x00mac\x0152:54:00:12:34:56\n\x00nic-assoc\x010\n\x00target-name\x01iqn.2003-01.org.example:boot\n")
	f.Add("index\x011\n\x00flags\x011\n\x00ip-addr\x01fd00:0000:0000:0000:0000:0000:0000:0005\n\x00lun\x0101000000\n\x00nic-assoc\x011\n\x00target-name\x01iqn.x:y\n\x00port\x0170000\n")
	f.Add("initiator-name\x01iqn.1993-08.org.debian:01:x\n\x00isns-server\x01::ffff:10.0.0.1\n")
	f.Fuzz(func(t *testing.T, data string) {
		files := entryFiles(data)
		if n, err := ParseNIC(files); err == nil {
			if len(n.MAC) != 6 || n.PrefixLen < 0 || n.PrefixLen > 128 || n.VLAN > 4095 {
				t.Fatalf("ParseNIC accepted %+v", n)
			}
			roundTrip(t, n.IP, n.SubnetMask, n.Gateway, n.PrimaryDNS, n.SecondaryDNS, n.DHCP)
		}
		if tg, err := ParseTarget(files); err == nil {
			if tg.Name == "" || tg.Port <= 0 || tg.Port > 65535 || !tg.IP.IsValid() || strings.ContainsAny(tg.Name+tg.CHAPSecret, "\n\x00") {
				t.Fatalf("ParseTarget accepted %+v", tg)
			}
			roundTrip(t, tg.IP)
		}
		if in, err := ParseInitiator(files); err == nil {
			roundTrip(t, in.ISNSServer, in.SLPServer, in.PriRadiusServer, in.SecRadiusServer)
		}
	})
}

func roundTrip(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		back, err := netip.ParseAddr(Addr(a))
		if err != nil || back.Unmap() != a {
			t.Fatalf("address %v prints as %q, which reads back as %v (%v)", a, Addr(a), back, err)
		}
	}
}
