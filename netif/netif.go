// Package netif finds the host network interface that an iSCSI iface record
// binds its connections to, as open-iscsi does for software iSCSI (iscsi_tcp):
// iface.hwaddress names the interface with that MAC address and wins over
// iface.net_ifacename; iface.ipaddress alone is refused, because iscsi_tcp has
// no way to bind a source address and stock fails such a login rather than let
// it leave through whatever the route picks.
package netif

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Binding is the part of an iface record that says where its connections
// leave the host. Empty fields and the value "default" are unset, as in
// open-iscsi's records.
type Binding struct {
	// Transport is iface.transport_name; only "tcp" (or empty) binds here:
	// other transports reach their hardware through their own endpoint.
	Transport string
	// HWAddress is iface.hwaddress.
	HWAddress string
	// Netdev is iface.net_ifacename.
	Netdev string
	// IPAddress is iface.ipaddress.
	IPAddress string
}

// BindError is a binding that cannot be honoured: a tcp iface bound only by
// its IP address (software iSCSI cannot bind a connection to one), or a MAC
// address no interface has. Its message is open-iscsi's. Trying again does
// not help, so a login fails at once where stock retries until its timeout.
type BindError struct {
	// Value is the iface.ipaddress or iface.hwaddress that could not be bound.
	Value string
	// IPAddress tells that Value is an IP address, not a MAC.
	IPAddress bool
}

func (e *BindError) Error() string {
	if e.IPAddress {
		return fmt.Sprintf("Cannot bind %s to net/scsi interface. This is not supported with software iSCSI (iscsi_tcp).", e.Value)
	}
	return fmt.Sprintf("Cannot match %s to net/scsi interface.", e.Value)
}

// set tells whether a record value is set: "default" is open-iscsi's unset.
func set(v string) bool { return v != "" && v != "default" }

// Netdev returns the network interface b binds its connections to, "" when it
// binds none (the route decides). sysfsRoot is where sysfs is mounted; empty
// means /sys.
func Netdev(sysfsRoot string, b Binding) (string, error) {
	if set(b.Transport) && b.Transport != "tcp" {
		return "", nil
	}
	switch {
	case set(b.HWAddress):
		return ByMAC(sysfsRoot, b.HWAddress)
	case set(b.Netdev):
		return b.Netdev, nil
	case set(b.IPAddress):
		return "", &BindError{Value: b.IPAddress, IPAddress: true}
	}
	return "", nil
}

// ByMAC returns the name of the network interface whose hardware address is
// mac, read from sysfsRoot/class/net/*/address; a *BindError when none has it.
func ByMAC(sysfsRoot, mac string) (string, error) {
	want, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("netif: iface.hwaddress %q is not a MAC address: %w", mac, err)
	}
	if sysfsRoot == "" {
		sysfsRoot = "/sys"
	}
	dir := filepath.Join(sysfsRoot, "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("netif: list network interfaces: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "address"))
		if err != nil {
			continue // an interface that went away while listing
		}
		if got, err := net.ParseMAC(strings.TrimSpace(string(b))); err == nil && strings.EqualFold(got.String(), want.String()) {
			return e.Name(), nil
		}
	}
	return "", &BindError{Value: mac}
}

// Control is a net.Dialer Control function that binds the socket to netdev
// (SO_BINDTODEVICE), so that a connection leaves through that interface even
// where the route names another; "" binds nothing.
func Control(netdev string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if netdev == "" {
			return nil
		}
		var berr error
		if err := c.Control(func(fd uintptr) { berr = unix.BindToDevice(int(fd), netdev) }); err != nil {
			return err
		}
		if berr != nil {
			return fmt.Errorf("bind to network interface %s: %w", netdev, berr)
		}
		return nil
	}
}
