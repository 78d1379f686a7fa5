package ibft

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestConfigureNICRefuses: what ConfigureNIC does not do is an error saying
// so, before it touches any interface (no root needed).
func TestConfigureNICRefuses(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	good := Boot{Table: "ibft", Netdev: "eth0",
		NIC:    NIC{Entry: "ethernet0", IP: netip.MustParseAddr("10.0.2.15"), PrefixLen: 24, MAC: mac, VLAN: 0},
		Target: Target{IP: netip.MustParseAddr("10.0.2.15")}}
	for _, tc := range []struct {
		change func(*Boot)
		want   string
	}{
		{func(b *Boot) { b.Netdev = "" }, "no network interface to configure"},
		{func(b *Boot) { b.NIC.Origin = OriginDHCP }, "got its address by DHCP: only static addresses are configured"},
		{func(b *Boot) { b.NIC.IP = netip.MustParseAddr("fd00::5") }, "only IPv4 addresses are configured"},
		{func(b *Boot) { b.NIC.VLAN = 12 }, "VLAN 12: VLAN interfaces are not configured"},
		{func(b *Boot) { b.NIC.PrefixLen = 0 }, "no subnet-mask and no IPv4 prefix-len"},
		{func(b *Boot) { b.Netdev = "nosuch0" }, "nosuch0"},
	} {
		b := good
		tc.change(&b)
		if err := ConfigureNIC(b, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ConfigureNIC: %v, want an error with %q", err, tc.want)
		}
	}
}
