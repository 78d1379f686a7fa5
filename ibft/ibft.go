// Package ibft reads the iSCSI boot firmware tables the Linux kernel shows in
// sysfs: the iBFT (iscsi_ibft, /sys/firmware/ibft) and the tables offload HBAs
// publish through iscsi_boot_sysfs (/sys/firmware/iscsi_bootN, N the SCSI host
// number). Both have one layout: an initiator directory, ethernetN directories
// (the NICs) and targetN directories, each a set of one-value attribute files.
//
// Read returns every table with its entries typed; Targets returns what a boot
// login needs for each valid target, as open-iscsi's fw_get_targets assembles
// it: the target, the NIC its nic-assoc names, the initiator, and the network
// interface of that NIC (by PCI function, then by MAC address). Values a table
// does not show stay zero; a value that does not parse is an error naming the
// file.
package ibft

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoTable says that sysfs shows no boot firmware table at all: most
// machines have none (iscsiadm then answers 21, "no records found").
var ErrNoTable = errors.New("ibft: no iSCSI boot firmware table in sysfs (/sys/firmware/ibft, /sys/firmware/iscsi_boot*)")

// Flag bits of the flags attribute of a NIC or target.
const (
	// FlagValid is the block-valid bit of the specification.
	FlagValid = 1 << 0
	// FlagBootSelected marks the NIC or target the firmware booted from.
	FlagBootSelected = 1 << 1
)

// Origin is a NIC's prefix origin (the origin attribute), as in the
// specification's IP prefix origin values.
type Origin int

// The origins the specification names.
const (
	OriginOther     Origin = 0
	OriginManual    Origin = 1
	OriginWellKnown Origin = 2
	OriginDHCP      Origin = 3
	OriginRouterAdv Origin = 4
	OriginUnchanged Origin = 16
)

// DefaultTargetPort is a target's port when its table shows none.
const DefaultTargetPort = 3260

// Table is one boot firmware table.
type Table struct {
	// Name is the table's directory under /sys/firmware: "ibft" for the iBFT,
	// "iscsi_bootN" for the table of offload SCSI host N. The kernel shows
	// it as a boot session's boot_root.
	Name string
	// Dir is the table's directory.
	Dir       string
	Initiator Initiator
	// NICs and Targets are in the order of their directory names' numbers.
	NICs    []NIC
	Targets []Target
}

// Offload reports whether the table belongs to an offload HBA (iscsi_bootN),
// whose NICs have no Linux network interface: the HBA logs in itself.
func (t *Table) Offload() bool { return strings.HasPrefix(t.Name, "iscsi_boot") }

// Initiator is the initiator directory.
type Initiator struct {
	Index, Flags int
	// Name is initiator-name.
	Name string
	// The servers a table may name (isns-server, slp-server,
	// pri-radius-server, sec-radius-server); zero when not shown.
	ISNSServer, SLPServer, PriRadiusServer, SecRadiusServer netip.Addr
}

// NIC is an ethernetN directory.
type NIC struct {
	// Entry is the directory's name (ethernet0), a boot session's boot_nic.
	Entry        string
	Index, Flags int
	// IP is ip-addr; PrefixLen prefix-len; SubnetMask subnet-mask.
	IP         netip.Addr
	PrefixLen  int
	SubnetMask netip.Addr
	Origin     Origin
	Gateway    netip.Addr
	// PrimaryDNS and SecondaryDNS are primary-dns and secondary-dns; DHCP is
	// the dhcp server's address.
	PrimaryDNS, SecondaryDNS, DHCP netip.Addr
	// VLAN is the vlan attribute, -1 when the table shows none.
	VLAN     int
	MAC      net.HardwareAddr
	Hostname string
}

// Target is a targetN directory.
type Target struct {
	// Entry is the directory's name (target0), a boot session's boot_target.
	Entry        string
	Index, Flags int
	IP           netip.Addr
	// Port is the port attribute, DefaultTargetPort when not shown.
	Port int
	// LUN is the lun attribute as the kernel shows it: each of the 8 bytes
	// in hex without leading zeros ("00000000" for LUN 0), which is how
	// iscsiadm prints node.boot_lun.
	LUN      string
	CHAPType int
	// NICAssoc is nic-assoc: the Index of the NIC the target is reached
	// through.
	NICAssoc int
	// Name is target-name.
	Name string
	// CHAPName and CHAPSecret are chap-name and chap-secret; the Rev ones
	// (rev-chap-name, rev-chap-name-secret) the target's, for mutual CHAP.
	CHAPName, CHAPSecret, RevCHAPName, RevCHAPSecret string
}

// BootSelected reports whether the firmware booted from the NIC.
func (n *NIC) BootSelected() bool { return n.Flags&FlagBootSelected != 0 }

// BootSelected reports whether the firmware booted from the target.
func (t *Target) BootSelected() bool { return t.Flags&FlagBootSelected != 0 }

// DHCPUsed reports whether the NIC's address came from DHCP: origin DHCP, or a
// DHCP server address other than 0.0.0.0 (some firmware shows 0.0.0.0 for
// none), as iscsiadm decides iface.bootproto.
func (n *NIC) DHCPUsed() bool {
	return n.Origin == OriginDHCP || n.DHCP.IsValid() && !n.DHCP.IsUnspecified()
}

// Read returns the boot firmware tables under sysfs (the mount point, "" for
// /sys): the iBFT first, then the offload HBAs' tables in host order. No table
// at all is ErrNoTable. A table whose files do not parse is an error naming
// the table and the file; the tables read until then are returned with it.
func Read(sysfs string) ([]*Table, error) {
	if sysfs == "" {
		sysfs = "/sys"
	}
	fw := filepath.Join(sysfs, "firmware")
	names := []string{}
	if isDir(filepath.Join(fw, "ibft", "initiator")) {
		names = append(names, "ibft")
	}
	ents, _ := os.ReadDir(fw)
	var hba []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "iscsi_boot") && isDir(filepath.Join(fw, e.Name(), "initiator")) {
			hba = append(hba, e.Name())
		}
	}
	sort.Slice(hba, func(i, j int) bool { return entryLess(hba[i], hba[j], "iscsi_boot") })
	names = append(names, hba...)
	if len(names) == 0 {
		return nil, ErrNoTable
	}
	var tables []*Table
	for _, n := range names {
		t, err := ReadTable(filepath.Join(fw, n))
		if err != nil {
			return tables, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// ReadTable reads the table in dir (a directory such as /sys/firmware/ibft).
func ReadTable(dir string) (*Table, error) {
	t := &Table{Name: filepath.Base(dir), Dir: dir}
	files, err := readFiles(filepath.Join(dir, "initiator"))
	if err != nil {
		return nil, fmt.Errorf("ibft: table %s: %w", t.Name, err)
	}
	if t.Initiator, err = ParseInitiator(files); err != nil {
		return nil, fmt.Errorf("ibft: table %s: initiator: %w", t.Name, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ibft: table %s: %w", t.Name, err)
	}
	var nics, targets []string
	for _, e := range ents {
		switch {
		case !isDir(filepath.Join(dir, e.Name())):
		case strings.HasPrefix(e.Name(), "ethernet"):
			nics = append(nics, e.Name())
		case strings.HasPrefix(e.Name(), "target"):
			targets = append(targets, e.Name())
		}
	}
	sort.Slice(nics, func(i, j int) bool { return entryLess(nics[i], nics[j], "ethernet") })
	sort.Slice(targets, func(i, j int) bool { return entryLess(targets[i], targets[j], "target") })
	for _, name := range nics {
		files, err := readFiles(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("ibft: table %s: %w", t.Name, err)
		}
		n, err := ParseNIC(files)
		if err != nil {
			return nil, fmt.Errorf("ibft: table %s: %s: %w", t.Name, name, err)
		}
		n.Entry = name
		t.NICs = append(t.NICs, n)
	}
	for _, name := range targets {
		files, err := readFiles(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("ibft: table %s: %w", t.Name, err)
		}
		tg, err := ParseTarget(files)
		if err != nil {
			return nil, fmt.Errorf("ibft: table %s: %s: %w", t.Name, name, err)
		}
		tg.Entry = name
		t.Targets = append(t.Targets, tg)
	}
	return t, nil
}

// entryLess orders names like target2 < target10 by their number after
// prefix; a name without a number sorts by text after the numbered ones.
func entryLess(a, b, prefix string) bool {
	na, ea := strconv.Atoi(strings.TrimPrefix(a, prefix))
	nb, eb := strconv.Atoi(strings.TrimPrefix(b, prefix))
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// maxAttr bounds what is read of one attribute file: sysfs gives at most a
// page, and a longer file is not a sysfs attribute.
const maxAttr = 4096

// readFiles reads the regular files of an entry directory into a map from
// file name to content. Links (device, subsystem) and directories (power) are
// not attributes and are left out.
func readFiles(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := readAttr(filepath.Join(dir, e.Name()))
		if err != nil {
			// An attribute the kernel refuses to show (EIO, EPERM for a
			// secret to a non-root reader) is an attribute not shown.
			continue
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

func readAttr(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxAttr+1)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, err
	}
	if n > maxAttr {
		return nil, fmt.Errorf("%s: longer than %d bytes", p, maxAttr)
	}
	return b[:n], nil
}

// attrs reads typed values out of one entry's files, keeping the first error.
type attrs struct {
	files map[string]string
	err   error
}

// str returns the value of file name without its trailing newline, "" when
// the entry does not show it.
func (a *attrs) str(name string) string {
	v, ok := a.files[name]
	if !ok {
		return ""
	}
	v = strings.TrimSuffix(v, "\n")
	if a.err == nil && strings.ContainsAny(v, "\x00\n") {
		a.err = fmt.Errorf("%s: %q is not one line of text", name, v)
	}
	return v
}

// num returns file name as a decimal number, def when the entry does not show
// it.
func (a *attrs) num(name string, def int) int {
	v, ok := a.files[name]
	if !ok {
		return def
	}
	v = strings.TrimSpace(v)
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		if a.err == nil {
			a.err = fmt.Errorf("%s: %q is not a number", name, v)
		}
		return def
	}
	return int(n)
}

// addr returns file name as an IP address, zero when the entry does not show
// it or shows an empty value.
func (a *attrs) addr(name string) netip.Addr {
	v := strings.TrimSpace(a.files[name])
	if v == "" {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		if a.err == nil {
			a.err = fmt.Errorf("%s: %q is not an IP address", name, v)
		}
		return netip.Addr{}
	}
	return ip.Unmap()
}

// ParseInitiator reads an initiator directory's files (file name to content).
func ParseInitiator(files map[string]string) (Initiator, error) {
	a := &attrs{files: files}
	in := Initiator{
		Index: a.num("index", 0), Flags: a.num("flags", 0), Name: a.str("initiator-name"),
		ISNSServer: a.addr("isns-server"), SLPServer: a.addr("slp-server"),
		PriRadiusServer: a.addr("pri-radius-server"), SecRadiusServer: a.addr("sec-radius-server"),
	}
	return in, a.err
}

// ParseNIC reads an ethernetN directory's files (file name to content). A NIC
// needs index and mac.
func ParseNIC(files map[string]string) (NIC, error) {
	a := &attrs{files: files}
	n := NIC{
		Index: a.num("index", -1), Flags: a.num("flags", 0), IP: a.addr("ip-addr"),
		PrefixLen: a.num("prefix-len", 0), SubnetMask: a.addr("subnet-mask"), Origin: Origin(a.num("origin", 0)),
		Gateway: a.addr("gateway"), PrimaryDNS: a.addr("primary-dns"), SecondaryDNS: a.addr("secondary-dns"),
		DHCP: a.addr("dhcp"), VLAN: a.num("vlan", -1), Hostname: a.str("hostname"),
	}
	if a.err != nil {
		return n, a.err
	}
	if n.Index < 0 {
		return n, errors.New("index: missing or negative")
	}
	if n.PrefixLen < 0 || n.PrefixLen > 128 {
		return n, fmt.Errorf("prefix-len: %d is not a prefix length", n.PrefixLen)
	}
	if n.VLAN > 4095 {
		return n, fmt.Errorf("vlan: %d is not a VLAN ID", n.VLAN)
	}
	mac := strings.TrimSpace(a.files["mac"])
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return n, fmt.Errorf("mac: %q is not an Ethernet MAC address", mac)
	}
	n.MAC = hw
	return n, nil
}

// ParseTarget reads a targetN directory's files (file name to content). A
// target needs index, target-name, ip-addr and nic-assoc.
func ParseTarget(files map[string]string) (Target, error) {
	a := &attrs{files: files}
	t := Target{
		Index: a.num("index", -1), Flags: a.num("flags", 0), IP: a.addr("ip-addr"),
		Port: a.num("port", DefaultTargetPort), LUN: a.str("lun"), CHAPType: a.num("chap-type", 0),
		NICAssoc: a.num("nic-assoc", -1), Name: a.str("target-name"),
		CHAPName: a.str("chap-name"), CHAPSecret: a.str("chap-secret"),
		RevCHAPName: a.str("rev-chap-name"), RevCHAPSecret: a.str("rev-chap-name-secret"),
	}
	switch {
	case a.err != nil:
		return t, a.err
	case t.Index < 0:
		return t, errors.New("index: missing or negative")
	case t.Name == "":
		return t, errors.New("target-name: missing or empty")
	case !t.IP.IsValid():
		return t, errors.New("ip-addr: missing or empty")
	case t.Port <= 0 || t.Port > 65535:
		return t, fmt.Errorf("port: %d is not a TCP port", t.Port)
	case t.NICAssoc < 0:
		return t, errors.New("nic-assoc: missing or negative")
	}
	for _, c := range t.LUN {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return t, fmt.Errorf("lun: %q is not hexadecimal", t.LUN)
		}
	}
	return t, nil
}

// Addr formats an address as the kernel's boot firmware files show it:
// dotted IPv4, IPv6 as eight groups of four hex digits; "" for none.
func Addr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return ""
	case a.Is4():
		return a.String()
	}
	b := a.As16()
	var s strings.Builder
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			s.WriteByte(':')
		}
		fmt.Fprintf(&s, "%02x%02x", b[i], b[i+1])
	}
	return s.String()
}
