package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// This file prints the listings of iscsiadm byte for byte as stock 2.1.8
// does (usr/session_info.c, usr/host.c, usr/iface.c, usr/idbm.c and the node
// printing of usr/iscsiadm.c), from plain data the caller has gathered. Each
// listing returns the text for stdout and, when stock would end with
// something other than success, the Exit to end with; the caller prints the
// text first, then acts on the Exit (a few listings print text and still
// exit 21). Records (-o show, key = value) are printed by package conf.

// unknownValue is what stock prints for an empty value (UNKNOWN_VALUE).
const unknownValue = "<empty>"

// orEmpty is s, or <empty> when s is empty.
func orEmpty(s string) string {
	if s == "" {
		return unknownValue
	}
	return s
}

// orUnknown is s, or Unknown when s is empty: stock's word for a state it
// could not read.
func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// hostPort is an address and port as stock prints a portal: an address
// without a dot is taken for IPv6 and bracketed (so is a dotless host name,
// as in stock).
func hostPort(addr string, port int) string {
	if strings.Contains(addr, ".") {
		return addr + ":" + strconv.Itoa(port)
	}
	return "[" + addr + "]:" + strconv.Itoa(port)
}

// line writes the concatenation of s and a newline to b. The session trees
// are thousands of lines for many sessions: through fmt they took 0.44 ms
// and 5400 allocations for 64 sessions at -P 3, 15-20 ms under qemu TCG.
func line(b *strings.Builder, s ...string) {
	for _, x := range s {
		b.WriteString(x)
	}
	b.WriteByte('\n')
}

// banner writes stock's three-line section header: stars, title, stars.
func banner(b *strings.Builder, p, stars, title string) {
	line(b, p, stars)
	line(b, p, title)
	line(b, p, stars)
}

// bracketIP is an iface's IP address as stock prints it in trees: <empty>,
// as is with a dot, else bracketed.
func bracketIP(ip string) string {
	switch {
	case ip == "":
		return unknownValue
	case strings.Contains(ip, "."):
		return ip
	}
	return "[" + ip + "]"
}

// NodeSummary is a node record as the node and discovery listings show it.
type NodeSummary struct {
	Target  string
	Address string
	Port    int
	TPGT    int // -1 when unknown
	Iface   string
	// ScanPolicy is the record's effective scan policy (auto, lun0 or
	// manual; empty when unknown). Only --json shows it.
	ScanPolicy string
}

// DiscoveryDB is what -m discoverydb -o show (and -m discovery) lists: the
// discovery records and the node records found through each, and the node
// records that came from elsewhere.
type DiscoveryDB struct {
	SendTargets []DiscoveryPortal
	ISNS        []DiscoveryPortal
	// ISNSNodes are every node record an iSNS server gave; stock lists them
	// under iSNS when there is no iSNS discovery record (-m discovery -t
	// isns stores none).
	ISNSNodes []NodeSummary
	Static    []NodeSummary // added with -m node -o new
	Firmware  []NodeSummary // from the iBFT
}

// DiscoveryPortal is one discovery record.
type DiscoveryPortal struct {
	Address string
	Port    int
	Nodes   []NodeSummary // node records this portal's discovery created
}

// HostSummary is an iSCSI host as -m host shows it.
type HostSummary struct {
	Number uint32
	State  string // e.g. running; empty prints Unknown
	// Iface is the host's transport, initiator name and network identity
	// (Iface.Name is not shown).
	Iface conf.Iface
	// Sessions are the host's sessions, shown from -P 2 on.
	Sessions []initiator.Session
}

// sessionParts is which sections a session tree shows (stock's
// SESSION_INFO_* flags).
type sessionParts uint

const (
	partIface sessionParts = 1 << iota
	partState
	partTimeouts
	partCHAP
	partParams
	partHostLine
	partDevices
)

// SessionsText is -m session [-P level] [-S]. Levels -1 and 0 print one line
// per session, 1 to 3 print the tree with more in each; classVersion is the
// kernel's scsi_transport_iscsi version, which level 3 prints first when it
// is known. With no sessions it ends with "No active sessions." and 21;
// stock checks that before the level, which must be -1 to 3.
//
// With -S stock labels the incoming password "password:", the same as the
// outgoing one; goiscsiadm labels it "password_in:", as stock does without -S
// and as open-iscsi did before 2.0.876, because parsers that go by the label
// (Dell's goiscsi) otherwise take the incoming password for the outgoing one.
func SessionsText(sessions []initiator.Session, level int, showSecrets bool, classVersion string) (string, *Exit) {
	if len(sessions) == 0 {
		return "", Errorf(iscsierr.NoObjsFound, "No active sessions.")
	}
	var b strings.Builder
	var parts sessionParts
	switch level {
	case -1, 0:
		for _, s := range sessions {
			node := "non-flash"
			if s.Flash {
				node = "flash"
			}
			fmt.Fprintf(&b, "%s: [%d] %s,%d %s (%s)\n", orEmpty(s.Transport), s.SID,
				hostPort(s.PersistentAddress, s.PersistentPort), s.TPGT, s.TargetName, node)
		}
		return b.String(), nil
	case 3:
		writeClassVersion(&b, classVersion)
		parts |= partHostLine | partDevices
		fallthrough
	case 2:
		parts |= partTimeouts | partCHAP | partParams
		fallthrough
	case 1:
		parts |= partIface | partState
	default:
		return "", Errorf(iscsierr.Inval, "Invalid info level %d. Try 0 - 3.", level)
	}
	b.Grow(len(sessions) * 2048) // a -P 3 tree of one session and LUN: 1.1-1.5 kB
	writeSessionTree(&b, sessions, "", parts, showSecrets)
	return b.String(), nil
}

// writeClassVersion is the header of the most detailed trees, printed when
// the kernel's transport class version could be read.
func writeClassVersion(b *strings.Builder, classVersion string) {
	if classVersion != "" {
		fmt.Fprintf(b, "iSCSI Transport Class version %s\nversion %s\n", classVersion, compatVersion)
	}
}

// writeSessionTree is stock's session_info_print_tree. A session to the
// same target as the one before it gets no Target line, and one that is also
// connected to the same address and port gets an empty line instead of its
// portals.
func writeSessionTree(b *strings.Builder, sessions []initiator.Session, prefix string, parts sessionParts, showSecrets bool) {
	var prev *initiator.Session
	for i := range sessions {
		s := &sessions[i]
		if prev == nil || prev.TargetName != s.TargetName {
			node := "non-flash"
			if s.Flash {
				node = "flash"
			}
			line(b, prefix, "Target: ", s.TargetName, " (", node, ")")
			prev = nil
		}
		if prev != nil && prev.Port != 0 && s.Port != 0 && prev.Address == s.Address && prev.Port == s.Port {
			b.WriteString("\n")
		} else {
			tpgt := strconv.Itoa(s.TPGT)
			line(b, prefix, "\tCurrent Portal: ", hostPort(s.Address, s.Port), ",", tpgt)
			line(b, prefix, "\tPersistent Portal: ", hostPort(s.PersistentAddress, s.PersistentPort), ",", tpgt)
		}
		p := prefix + "\t\t"
		if parts&partIface != 0 {
			banner(b, p, "**********", "Interface:")
			line(b, p, "Iface Name: ", orEmpty(sessionIfaceName(s.Iface)))
			line(b, p, "Iface Transport: ", orEmpty(s.Iface.Transport))
			line(b, p, "Iface Initiatorname: ", orEmpty(s.Iface.InitiatorName))
			line(b, p, "Iface IPaddress: ", bracketIP(s.Iface.IPAddress))
			line(b, p, "Iface HWaddress: ", orEmpty(s.Iface.HWAddress))
			line(b, p, "Iface Netdev: ", orEmpty(s.Iface.Netdev))
		}
		if parts&partState != 0 {
			line(b, p, "SID: ", strconv.Itoa(s.SID))
			line(b, p, "iSCSI Connection State: ", orUnknown(s.ConnState))
			line(b, p, "iSCSI Session State: ", orUnknown(s.SessionState))
			line(b, p, "Internal iscsid Session State: ", orUnknown(s.InternalState))
			// goiscsi's one addition to stock's text: the effective scan
			// policy, on a line of its own that line-based parsers skip.
			if s.ScanPolicy != "" {
				line(b, p, "Scan Policy: ", s.ScanPolicy)
			}
			// And the LUNs that policy holds back, one line each.
			for _, h := range s.HeldLUNs {
				line(b, p, "Held Back LUN: ", fmt.Sprintf("%d (%s at %s; rescans leave it out while the target reports it)",
					h.LUN, h.Reason, h.Since.UTC().Format(time.RFC3339)))
			}
		}
		if parts&partTimeouts != 0 {
			t := s.Timeouts
			banner(b, p, "*********", "Timeouts:")
			line(b, p, "Recovery Timeout: ", strconv.Itoa(t.Recovery))
			line(b, p, "Target Reset Timeout: ", seconds(t.TargetReset))
			line(b, p, "LUN Reset Timeout: ", seconds(t.LUNReset))
			line(b, p, "Abort Timeout: ", seconds(t.Abort))
		}
		if parts&partCHAP != 0 {
			c := s.CHAP
			pass, passIn := "********", "********"
			if showSecrets {
				pass, passIn = orEmpty(c.Password), orEmpty(c.PasswordIn)
			}
			banner(b, p, "*****", "CHAP:")
			line(b, p, "username: ", orEmpty(c.Username))
			line(b, p, "password: ", pass)
			line(b, p, "username_in: ", orEmpty(c.UsernameIn))
			line(b, p, "password_in: ", passIn)
		}
		if parts&partParams != 0 {
			writeParams(b, p, s.Params)
		}
		if parts&(partHostLine|partDevices) != 0 {
			writeDevices(b, p, s, parts)
		}
		prev = s
	}
}

// seconds is a timeout, or <empty> when unknown.
func seconds(n int) string {
	if n < 0 {
		return unknownValue
	}
	return strconv.Itoa(n)
}

// writeParams is stock's print_iscsi_params; values nobody reported (n nil)
// are left out, as stock leaves out what the kernel does not show.
func writeParams(b *strings.Builder, p string, n *initiator.Negotiated) {
	banner(b, p, "************************", "Negotiated iSCSI params:")
	if n == nil {
		return
	}
	num := func(name string, v int) { line(b, p, name, ": ", strconv.Itoa(v)) }
	line(b, p, "HeaderDigest: ", n.HeaderDigest)
	line(b, p, "DataDigest: ", n.DataDigest)
	num("MaxRecvDataSegmentLength", n.MaxRecvDataSegmentLength)
	num("MaxXmitDataSegmentLength", n.MaxXmitDataSegmentLength)
	num("FirstBurstLength", n.FirstBurstLength)
	num("MaxBurstLength", n.MaxBurstLength)
	line(b, p, "ImmediateData: ", yesNo(n.ImmediateData))
	line(b, p, "InitialR2T: ", yesNo(n.InitialR2T))
	num("MaxOutstandingR2T", n.MaxOutstandingR2T)
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// writeDevices is stock's print_scsi_state: the session's host and its
// LUNs. A LUN without a block device gets only its address line.
func writeDevices(b *strings.Builder, p string, s *initiator.Session, parts sessionParts) {
	banner(b, p, "************************", "Attached SCSI devices:")
	if s.Host == nil {
		line(b, p, "Unavailable")
		return
	}
	if parts&partHostLine != 0 {
		line(b, p, "Host Number: ", strconv.Itoa(s.Host.Number), "\tState: ", orUnknown(s.Host.State))
	}
	if parts&partDevices == 0 {
		return
	}
	for _, d := range s.Devices {
		line(b, p, "scsi", strconv.Itoa(d.Host), " Channel 00 Id ", strconv.Itoa(d.Target), " Lun: ", strconv.FormatUint(d.LUN, 10))
		if d.Block != "" {
			line(b, p, "\tAttached scsi disk ", d.Block, "\t\tState: ", orUnknown(d.State))
		}
	}
}

// NodesText is -m node [-P level]: one "portal,tpgt target" line per record
// at level -1 or 0, a Target/Portal/Iface Name tree at 1; stock refuses other
// levels before it looks at the records, and ends with "No records found"
// and 21 when there are none. Records are listed in the given order (stock:
// sorted by target, then portal directory, then iface).
//
// The flat line prints the tpgt as unsigned, as stock does, so an unknown tpgt
// (-1, from -o new without one) lists as 4294967295.
func NodesText(nodes []NodeSummary, level int) (string, *Exit) {
	if level != -1 && level != 0 && level != 1 {
		return "", Errorf(iscsierr.Inval, "Invalid info level %d. Try 0 or 1.", level)
	}
	if len(nodes) == 0 {
		return "", Errorf(iscsierr.NoObjsFound, "No records found")
	}
	var b strings.Builder
	if level == 1 {
		writeNodeTree(&b, nodes, "", true)
		return b.String(), nil
	}
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s,%d %s\n", hostPort(n.Address, n.Port), uint32(int32(n.TPGT)), n.Target)
	}
	return b.String(), nil
}

// writeNodeTree is libopeniscsiusr's node tree (print_nodes_tree): a Target
// line whenever the target differs from the record before, a Portal line for
// every record, and its iface when withIface.
func writeNodeTree(b *strings.Builder, nodes []NodeSummary, prefix string, withIface bool) {
	for i, n := range nodes {
		if i == 0 || nodes[i-1].Target != n.Target {
			fmt.Fprintf(b, "%sTarget: %s\n", prefix, n.Target)
		}
		fmt.Fprintf(b, "%s\tPortal: %s,%d\n", prefix, hostPort(n.Address, n.Port), n.TPGT)
		if withIface {
			fmt.Fprintf(b, "\t\tIface Name: %s\n", n.Iface)
		}
	}
}

// writeDiscoveredTree is idbm's node tree (idbm_print_node_tree and
// idbm_print_node_and_iface_tree), which the discovery listings use. Unlike
// writeNodeTree it leaves out the Portal line of a record at the same
// address and port as the record before it (the same portal through another
// iface). It starts from an all-empty "record before", as stock does.
func writeDiscoveredTree(b *strings.Builder, nodes []NodeSummary) {
	var last NodeSummary
	for _, n := range nodes {
		if last.Target != n.Target {
			fmt.Fprintf(b, "Target: %s\n", n.Target)
			last = NodeSummary{}
		}
		if last.Address != n.Address || last.Port != n.Port {
			fmt.Fprintf(b, "\tPortal: %s,%d\n", hostPort(n.Address, n.Port), n.TPGT)
		}
		fmt.Fprintf(b, "\t\tIface Name: %s\n", n.Iface)
		last = n
	}
}

// DiscoveredText is what a discovery prints about the node records it found:
// "portal,tpgt target" lines at level -1 or 0, a tree at 1, and nothing at
// higher levels (stock does not check them). With nothing found it ends
// with "No portals found" and 21.
func DiscoveredText(nodes []NodeSummary, level int) (string, *Exit) {
	if len(nodes) == 0 {
		return "", Errorf(iscsierr.NoObjsFound, "No portals found")
	}
	var b strings.Builder
	switch level {
	case -1, 0:
		for _, n := range nodes {
			fmt.Fprintf(&b, "%s,%d %s\n", hostPort(n.Address, n.Port), n.TPGT, n.Target)
		}
	case 1:
		writeDiscoveredTree(&b, nodes)
	}
	return b.String(), nil
}

// DiscoveryDBText is -m discoverydb [-o show] [-P level] without a portal,
// and -m discovery: below level 1 one "address:port via sendtargets|isns"
// line per discovery record; from level 1 the sections SENDTARGETS, iSNS,
// STATIC and FIRMWARE with their node trees (os-brick parses this one).
// With nothing at all to list stock exits 21 without a message, after
// printing the empty sections.
func DiscoveryDBText(db DiscoveryDB, level int) (string, *Exit) {
	var b strings.Builder
	found := len(db.SendTargets) + len(db.ISNS)
	if level < 1 {
		for _, d := range db.SendTargets {
			fmt.Fprintf(&b, "%s:%d via sendtargets\n", d.Address, d.Port)
		}
		for _, d := range db.ISNS {
			fmt.Fprintf(&b, "%s:%d via isns\n", d.Address, d.Port)
		}
	} else {
		portals := func(title string, ds []DiscoveryPortal) {
			b.WriteString(title)
			for _, d := range ds {
				fmt.Fprintf(&b, "DiscoveryAddress: %s,%d\n", d.Address, d.Port)
				writeDiscoveredTree(&b, d.Nodes)
			}
			if len(ds) == 0 {
				b.WriteString("No targets found.\n")
			}
		}
		nodes := func(title string, ns []NodeSummary) {
			b.WriteString(title)
			writeDiscoveredTree(&b, ns)
			if len(ns) == 0 {
				b.WriteString("No targets found.\n")
			}
		}
		portals("SENDTARGETS:\n", db.SendTargets)
		if len(db.ISNS) > 0 {
			portals("iSNS:\n", db.ISNS)
		} else {
			nodes("iSNS:\n", db.ISNSNodes)
			found += len(db.ISNSNodes)
		}
		nodes("STATIC:\n", db.Static)
		nodes("FIRMWARE:\n", db.Firmware)
		found += len(db.Static) + len(db.Firmware)
	}
	if found == 0 {
		return b.String(), &Exit{Code: iscsierr.NoObjsFound}
	}
	return b.String(), nil
}

// IfacesText is -m iface: one "name transport,hwaddress,ipaddress,netdev,
// initiatorname" line per iface record, <empty> for empty values; with none
// it ends with "No interfaces found." and 21.
func IfacesText(ifaces []conf.Iface) (string, *Exit) {
	if len(ifaces) == 0 {
		return "", Errorf(iscsierr.NoObjsFound, "No interfaces found.")
	}
	var b strings.Builder
	for _, i := range ifaces {
		fmt.Fprintf(&b, "%s %s,%s,%s,%s,%s\n", orEmpty(i.Name), orEmpty(i.Transport), orEmpty(i.HWAddress),
			orEmpty(i.IPAddress), orEmpty(i.Netdev), orEmpty(i.InitiatorName))
	}
	return b.String(), nil
}

// IfaceTreeText is -m iface -P 1: each iface followed by the targets and
// portals of its node records. Stock prints nothing at all when there are no
// node records.
func IfaceTreeText(ifaces []conf.Iface, nodes []NodeSummary) string {
	if len(nodes) == 0 {
		return ""
	}
	var b strings.Builder
	for _, i := range ifaces {
		fmt.Fprintf(&b, "Iface: %s\n", i.Name)
		var own []NodeSummary
		for _, n := range nodes {
			if n.Iface == i.Name {
				own = append(own, n)
			}
		}
		writeNodeTree(&b, own, "\t", false)
	}
	return b.String()
}

// HostsText is -m host [-P level]: one "transport: [host] ip,[hwaddress],
// netdev initiatorname" line per host at level -1 or 0; a tree per host from
// 1, with its sessions from 2 (their iface and state), their negotiated
// parameters from 3 and their LUNs at 4, whose listing starts with the
// transport class version when classVersion is known. Levels above 4 are
// refused; with no hosts it ends with "No iSCSI hosts." and 21. Stock lists
// every host even when -H names one.
func HostsText(hosts []HostSummary, level int, classVersion string) (string, *Exit) {
	var b strings.Builder
	var parts sessionParts
	switch level {
	case -1, 0:
		for _, h := range hosts {
			i := h.Iface
			fmt.Fprintf(&b, "%s: [%d] %s,[%s],%s %s\n", orEmpty(i.Transport), h.Number,
				bracketIP(i.IPAddress), orEmpty(i.HWAddress), orEmpty(i.Netdev), orEmpty(i.InitiatorName))
		}
	case 4:
		writeClassVersion(&b, classVersion)
		parts |= partDevices
		fallthrough
	case 3:
		parts |= partParams
		fallthrough
	case 2:
		parts |= partState | partIface
		fallthrough
	case 1:
		for _, h := range hosts {
			writeHostTree(&b, h, parts)
		}
	default:
		return "", Errorf(iscsierr.Inval, "Invalid info level %d. Try 0 - 4.", level)
	}
	if len(hosts) == 0 {
		return b.String(), Errorf(iscsierr.NoObjsFound, "No iSCSI hosts.")
	}
	return b.String(), nil
}

// writeHostTree is stock's host_info_print_tree for a software host (one
// with no offload iface objects).
func writeHostTree(b *strings.Builder, h HostSummary, parts sessionParts) {
	i := h.Iface
	fmt.Fprintf(b, "Host Number: %d\n", h.Number)
	fmt.Fprintf(b, "\tState: %s\n", orUnknown(h.State))
	fmt.Fprintf(b, "\tTransport: %s\n", orEmpty(i.Transport))
	fmt.Fprintf(b, "\tInitiatorname: %s\n", orEmpty(i.InitiatorName))
	fmt.Fprintf(b, "\tIPaddress: %s\n", bracketIP(i.IPAddress))
	fmt.Fprintf(b, "\tHWaddress: %s\n", orEmpty(i.HWAddress))
	fmt.Fprintf(b, "\tNetdev: %s\n", orEmpty(i.Netdev))
	if parts == 0 || len(h.Sessions) == 0 {
		return
	}
	b.WriteString("\t*********\n\tSessions:\n\t*********\n")
	writeSessionTree(b, h.Sessions, "\t", parts, false)
}

// sessionIfaceName is the iface name stock's iscsiadm shows for a session:
// libopeniscsiusr names the iface of a host bound by MAC address
// TRANSPORT.HWADDRESS.ipv4|ipv6.0 from sysfs, whatever the record's name.
func sessionIfaceName(i conf.Iface) string {
	if i.HWAddress == "" || i.HWAddress == "default" {
		return i.Name
	}
	family := "ipv4"
	if strings.Contains(i.IPAddress, ":") {
		family = "ipv6"
	}
	return fmt.Sprintf("%s.%s.%s.0", i.Transport, i.HWAddress, family)
}
