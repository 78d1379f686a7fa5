package ibft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// ConfigureNIC brings up the network interface of boot target b with the
// table's static address, as iscsistart -N does before the root file system
// exists: the interface up, the address and netmask set, and a host route to
// the target through the interface (through the table's gateway when the
// target is on another subnet). Only IPv4 and static addresses: a NIC the
// table says got its address by DHCP, an IPv6 address, or a VLAN are errors
// saying so, as is a NIC without a network interface. configured is true when the
// interface was already configured for an earlier target (two targets of one
// table may share a NIC): then only the route is added.
func ConfigureNIC(b Boot, configured bool) error {
	n := b.NIC
	switch {
	case b.Netdev == "":
		return fmt.Errorf("ibft: table %s: %s (MAC %s): no network interface to configure", b.Table, n.Entry, n.MAC)
	case n.DHCPUsed():
		return fmt.Errorf("ibft: table %s: %s got its address by DHCP: only static addresses are configured (run a DHCP client on %s)", b.Table, n.Entry, b.Netdev)
	case !n.IP.Is4() || !b.Target.IP.Is4():
		return fmt.Errorf("ibft: table %s: %s: only IPv4 addresses are configured (NIC %s, target %s)", b.Table, n.Entry, Addr(n.IP), Addr(b.Target.IP))
	case n.VLAN > 0:
		return fmt.Errorf("ibft: table %s: %s: VLAN %d: VLAN interfaces are not configured", b.Table, n.Entry, n.VLAN)
	}
	mask := n.SubnetMask
	if !mask.Is4() {
		if n.PrefixLen <= 0 || n.PrefixLen > 32 {
			return fmt.Errorf("ibft: table %s: %s: no subnet-mask and no IPv4 prefix-len", b.Table, n.Entry)
		}
		m := net.CIDRMask(n.PrefixLen, 32)
		mask = netip.AddrFrom4([4]byte(m))
	}
	ifi, err := net.InterfaceByName(b.Netdev)
	if err != nil {
		return fmt.Errorf("ibft: %s: %w", b.Netdev, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ibft: socket to configure %s: %w", b.Netdev, err)
	}
	defer unix.Close(fd)
	if !configured {
		if err := setIfreq(fd, b.Netdev, func(ifr *unix.Ifreq) error {
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
				return err
			}
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
			return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
		}); err != nil {
			return fmt.Errorf("ibft: bring up %s: %w", b.Netdev, err)
		}
		for _, step := range []struct {
			what string
			req  uint
			addr netip.Addr
		}{{"address", unix.SIOCSIFADDR, n.IP}, {"netmask", unix.SIOCSIFNETMASK, mask}} {
			if err := setIfreq(fd, b.Netdev, func(ifr *unix.Ifreq) error {
				if err := ifr.SetInet4Addr(step.addr.AsSlice()); err != nil {
					return err
				}
				return unix.IoctlIfreq(fd, step.req, ifr)
			}); err != nil {
				return fmt.Errorf("ibft: set the %s %s of %s: %w", step.what, Addr(step.addr), b.Netdev, err)
			}
		}
	}
	var gw netip.Addr
	if !netip.PrefixFrom(n.IP, maskBits(mask)).Masked().Contains(b.Target.IP) {
		if !n.Gateway.Is4() {
			return fmt.Errorf("ibft: table %s: target %s is not on %s's subnet and the table has no IPv4 gateway", b.Table, Addr(b.Target.IP), n.Entry)
		}
		gw = n.Gateway
	}
	if err := addHostRoute(b.Target.IP, gw, ifi.Index); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ibft: route to target %s through %s: %w", Addr(b.Target.IP), b.Netdev, err)
	}
	return nil
}

func setIfreq(fd int, name string, f func(*unix.Ifreq) error) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	return f(ifr)
}

func maskBits(m netip.Addr) int {
	b := m.As4()
	ones, _ := net.IPMask(b[:]).Size()
	return ones
}

// addHostRoute adds dst/32 through interface oif (by gateway gw when valid)
// with one RTM_NEWROUTE request over rtnetlink, and waits for its answer.
func addHostRoute(dst, gw netip.Addr, oif int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	ne := binary.NativeEndian
	scope := byte(unix.RT_SCOPE_LINK)
	if gw.IsValid() {
		scope = unix.RT_SCOPE_UNIVERSE
	}
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg)
	rt := msg[unix.SizeofNlMsghdr:]
	rt[0], rt[1] = unix.AF_INET, 32 // family, dst_len
	rt[4], rt[5], rt[6], rt[7] = unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, scope, unix.RTN_UNICAST
	attr := func(typ uint16, v []byte) {
		a := make([]byte, (unix.SizeofRtAttr+len(v)+3)&^3)
		ne.PutUint16(a[0:], uint16(unix.SizeofRtAttr+len(v)))
		ne.PutUint16(a[2:], typ)
		copy(a[unix.SizeofRtAttr:], v)
		msg = append(msg, a...)
	}
	attr(unix.RTA_DST, dst.AsSlice())
	if gw.IsValid() {
		attr(unix.RTA_GATEWAY, gw.AsSlice())
	}
	oifb := make([]byte, 4)
	ne.PutUint32(oifb, uint32(oif))
	attr(unix.RTA_OIF, oifb)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	ne.PutUint32(msg[8:], 1) // sequence number
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != 1 || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(ne.Uint32(m.Data)); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}
