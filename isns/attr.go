package isns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Tag is an iSNS attribute tag (RFC 4171 §6.1).
type Tag uint32

// Attribute tags of RFC 4171 §6.1. The ones an iSCSI initiator uses are the
// entity, portal, iSCSI node and portal group tags; the others are here so
// that messages from any server print and group correctly.
const (
	TagDelimiter            Tag = 0
	TagEntityIdentifier     Tag = 1
	TagEntityProtocol       Tag = 2
	TagMgmtIPAddress        Tag = 3
	TagTimestamp            Tag = 4
	TagProtocolVersionRange Tag = 5
	TagRegistrationPeriod   Tag = 6
	TagEntityIndex          Tag = 7
	TagEntityNextIndex      Tag = 8
	TagEntityISAKMPPhase1   Tag = 11
	TagEntityCertificate    Tag = 12
	TagPortalIPAddress      Tag = 16
	TagPortalPort           Tag = 17 // Portal TCP/UDP Port
	TagPortalSymbolicName   Tag = 18
	TagESIInterval          Tag = 19
	TagESIPort              Tag = 20
	TagPortalIndex          Tag = 22
	TagSCNPort              Tag = 23
	TagPortalNextIndex      Tag = 24
	TagPortalSecurityBitmap Tag = 27
	TagPortalISAKMPPhase1   Tag = 28
	TagPortalISAKMPPhase2   Tag = 29
	TagPortalCertificate    Tag = 31
	TagISCSIName            Tag = 32
	TagISCSINodeType        Tag = 33
	TagISCSIAlias           Tag = 34
	TagISCSISCNBitmap       Tag = 35
	TagISCSINodeIndex       Tag = 36
	TagWWNNToken            Tag = 37
	TagISCSINodeNextIndex   Tag = 38
	TagISCSIAuthMethod      Tag = 42
	TagPGISCSIName          Tag = 48
	TagPGPortalIPAddr       Tag = 49
	TagPGPortalPort         Tag = 50 // PG Portal TCP/UDP Port
	TagPGTag                Tag = 51 // Portal Group Tag
	TagPGIndex              Tag = 52
	TagPGNextIndex          Tag = 53
	TagFCPortNameWWPN       Tag = 64
	TagPortID               Tag = 65
	TagFCPortType           Tag = 66
	TagSymbolicPortName     Tag = 67
	TagFabricPortName       Tag = 68
	TagHardAddress          Tag = 69
	TagPortIPAddress        Tag = 70
	TagClassOfService       Tag = 71
	TagFC4Types             Tag = 72
	TagFC4Descriptor        Tag = 73
	TagFC4Features          Tag = 74
	TagIFCPSCNBitmap        Tag = 75
	TagPortRole             Tag = 76
	TagPermanentPortName    Tag = 77
	TagFC4TypeCode          Tag = 95
	TagFCNodeNameWWNN       Tag = 96
	TagSymbolicNodeName     Tag = 97
	TagNodeIPAddress        Tag = 98
	TagNodeIPA              Tag = 99
	TagProxyISCSIName       Tag = 101
	TagSwitchName           Tag = 128
	TagPreferredID          Tag = 129
	TagAssignedID           Tag = 130
	TagVirtualFabricID      Tag = 131
	TagServerVendorOUI      Tag = 256
	TagDDSetID              Tag = 2049
	TagDDSetSymbolicName    Tag = 2050
	TagDDSetStatus          Tag = 2051
	TagDDSetNextID          Tag = 2052
	TagDDID                 Tag = 2065
	TagDDSymbolicName       Tag = 2066
	TagDDMemberISCSIIndex   Tag = 2067
	TagDDMemberISCSIName    Tag = 2068
	TagDDMemberFCPortName   Tag = 2069
	TagDDMemberPortalIndex  Tag = 2070
	TagDDMemberPortalIPAddr Tag = 2071
	TagDDMemberPortalPort   Tag = 2072
	TagDDFeatures           Tag = 2078
	TagDDNextID             Tag = 2079
)

// Kind is the type of an attribute's value.
type Kind uint8

// Value kinds. A zero-length value (a query's "return this attribute", or the
// delimiter) is valid for every kind.
const (
	KindOpaque Kind = iota // anything, a multiple of 4 bytes
	KindString             // NUL-terminated UTF-8, padded to 4 bytes
	KindUint32             // 4 bytes
	KindUint64             // 8 bytes
	KindIP                 // 16 bytes: IPv6, or IPv4 mapped (::ffff:a.b.c.d)
	KindNil                // always zero length (the delimiter)
)

type tagInfo struct {
	name string
	kind Kind
}

var tags = map[Tag]tagInfo{
	TagDelimiter:            {"Delimiter", KindNil},
	TagEntityIdentifier:     {"Entity Identifier", KindString},
	TagEntityProtocol:       {"Entity Protocol", KindUint32},
	TagMgmtIPAddress:        {"Management IP Address", KindIP},
	TagTimestamp:            {"Timestamp", KindUint64},
	TagProtocolVersionRange: {"Protocol Version Range", KindUint32},
	TagRegistrationPeriod:   {"Registration Period", KindUint32},
	TagEntityIndex:          {"Entity Index", KindUint32},
	TagEntityNextIndex:      {"Entity Next Index", KindUint32},
	TagEntityISAKMPPhase1:   {"Entity ISAKMP Phase-1", KindOpaque},
	TagEntityCertificate:    {"Entity Certificate", KindOpaque},
	TagPortalIPAddress:      {"Portal IP Address", KindIP},
	TagPortalPort:           {"Portal TCP/UDP Port", KindUint32},
	TagPortalSymbolicName:   {"Portal Symbolic Name", KindString},
	TagESIInterval:          {"ESI Interval", KindUint32},
	TagESIPort:              {"ESI Port", KindUint32},
	TagPortalIndex:          {"Portal Index", KindUint32},
	TagSCNPort:              {"SCN Port", KindUint32},
	TagPortalNextIndex:      {"Portal Next Index", KindUint32},
	TagPortalSecurityBitmap: {"Portal Security Bitmap", KindUint32},
	TagPortalISAKMPPhase1:   {"Portal ISAKMP Phase-1", KindOpaque},
	TagPortalISAKMPPhase2:   {"Portal ISAKMP Phase-2", KindOpaque},
	TagPortalCertificate:    {"Portal Certificate", KindOpaque},
	TagISCSIName:            {"iSCSI Name", KindString},
	TagISCSINodeType:        {"iSCSI Node Type", KindUint32},
	TagISCSIAlias:           {"iSCSI Alias", KindString},
	TagISCSISCNBitmap:       {"iSCSI SCN Bitmap", KindUint32},
	TagISCSINodeIndex:       {"iSCSI Node Index", KindUint32},
	TagWWNNToken:            {"WWNN Token", KindUint64},
	TagISCSINodeNextIndex:   {"iSCSI Node Next Index", KindUint32},
	TagISCSIAuthMethod:      {"iSCSI AuthMethod", KindOpaque},
	TagPGISCSIName:          {"PG iSCSI Name", KindString},
	TagPGPortalIPAddr:       {"PG Portal IP Addr", KindIP},
	TagPGPortalPort:         {"PG Portal TCP/UDP Port", KindUint32},
	TagPGTag:                {"PG Tag", KindUint32},
	TagPGIndex:              {"PG Index", KindUint32},
	TagPGNextIndex:          {"PG Next Index", KindUint32},
	TagFCPortNameWWPN:       {"FC Port Name WWPN", KindUint64},
	TagPortID:               {"Port ID", KindUint32},
	TagFCPortType:           {"FC Port Type", KindUint32},
	TagSymbolicPortName:     {"Symbolic Port Name", KindString},
	TagFabricPortName:       {"Fabric Port Name", KindUint64},
	TagHardAddress:          {"Hard Address", KindUint32},
	TagPortIPAddress:        {"Port IP-Address", KindIP},
	TagClassOfService:       {"Class of Service", KindUint32},
	TagFC4Types:             {"FC-4 Types", KindOpaque},
	TagFC4Descriptor:        {"FC-4 Descriptor", KindString},
	TagFC4Features:          {"FC-4 Features", KindOpaque},
	TagIFCPSCNBitmap:        {"iFCP SCN bitmap", KindUint32},
	TagPortRole:             {"Port Role", KindUint32},
	TagPermanentPortName:    {"Permanent Port Name", KindUint64},
	TagFC4TypeCode:          {"FC-4 Type Code", KindUint32},
	TagFCNodeNameWWNN:       {"FC Node Name WWNN", KindUint64},
	TagSymbolicNodeName:     {"Symbolic Node Name", KindString},
	TagNodeIPAddress:        {"Node IP-Address", KindIP},
	TagNodeIPA:              {"Node IPA", KindUint64},
	TagProxyISCSIName:       {"Proxy iSCSI Name", KindString},
	TagSwitchName:           {"Switch Name", KindUint64},
	TagPreferredID:          {"Preferred ID", KindUint32},
	TagAssignedID:           {"Assigned ID", KindUint32},
	TagVirtualFabricID:      {"Virtual_Fabric_ID", KindString},
	TagServerVendorOUI:      {"iSNS Server Vendor OUI", KindUint32},
	TagDDSetID:              {"DD_Set ID", KindUint32},
	TagDDSetSymbolicName:    {"DD_Set Sym Name", KindString},
	TagDDSetStatus:          {"DD_Set Status", KindUint32},
	TagDDSetNextID:          {"DD_Set_Next_ID", KindUint32},
	TagDDID:                 {"DD_ID", KindUint32},
	TagDDSymbolicName:       {"DD_Symbolic Name", KindString},
	TagDDMemberISCSIIndex:   {"DD_Member iSCSI Index", KindUint32},
	TagDDMemberISCSIName:    {"DD_Member iSCSI Name", KindString},
	TagDDMemberFCPortName:   {"DD_Member FC Port Name", KindUint64},
	TagDDMemberPortalIndex:  {"DD Member Portal Index", KindUint32},
	TagDDMemberPortalIPAddr: {"DD_Member Portal IP Addr", KindIP},
	TagDDMemberPortalPort:   {"DD_Member Portal TCP/UDP", KindUint32},
	TagDDFeatures:           {"DD_Features", KindUint32},
	TagDDNextID:             {"DD_ID Next ID", KindUint32},
}

// String returns the RFC's name for the tag, e.g. "iSCSI Name".
func (t Tag) String() string {
	if ti, ok := tags[t]; ok {
		return ti.name
	}
	return "tag " + strconv.FormatUint(uint64(t), 10)
}

// Kind returns the value kind of the tag; unknown tags are KindOpaque.
func (t Tag) Kind() Kind {
	if ti, ok := tags[t]; ok {
		return ti.kind
	}
	return KindOpaque
}

// Attr is one TLV attribute. Value holds the bytes as on the wire, padding
// included; a zero-length Value is a "nil" attribute, which a query uses to
// ask for that attribute and which the delimiter always is.
type Attr struct {
	Tag   Tag
	Value []byte
}

// Delimiter is the attribute separating a message key from the operating
// attributes.
var Delimiter = Attr{Tag: TagDelimiter}

// NilAttr returns a zero-length attribute: in a DevAttrQry's operating
// attributes it asks the server to return that attribute.
func NilAttr(t Tag) Attr { return Attr{Tag: t} }

// StringAttr returns a string attribute: s, a NUL, and NUL padding to 4 bytes.
func StringAttr(t Tag, s string) Attr {
	n := pad4(len(s) + 1)
	v := make([]byte, n)
	copy(v, s)
	return Attr{Tag: t, Value: v}
}

// Uint32Attr returns a 4-byte attribute.
func Uint32Attr(t Tag, v uint32) Attr {
	return Attr{Tag: t, Value: binary.BigEndian.AppendUint32(nil, v)}
}

// Uint64Attr returns an 8-byte attribute (Timestamp, WWNN Token, ...).
func Uint64Attr(t Tag, v uint64) Attr {
	return Attr{Tag: t, Value: binary.BigEndian.AppendUint64(nil, v)}
}

// IPAttr returns a 16-byte address attribute; an IPv4 address is written
// IPv4-mapped (::ffff:a.b.c.d) as RFC 4171 §6.3.1 asks.
func IPAttr(t Tag, a netip.Addr) Attr {
	b := a.As16() // IPv4 comes out mapped; the zero Addr as ::
	return Attr{Tag: t, Value: b[:]}
}

// PortAttr returns a TCP/UDP port attribute (Portal TCP/UDP Port, SCN Port,
// ESI Port, PG Portal TCP/UDP Port): the port in the low 16 bits and, for UDP,
// bit 16 set (RFC 4171 §6.3.2).
func PortAttr(t Tag, port uint16, udp bool) Attr {
	return Uint32Attr(t, PortValue(port, udp))
}

// PortValue encodes a port and its transport as a TCP/UDP port value.
func PortValue(port uint16, udp bool) uint32 {
	v := uint32(port)
	if udp {
		v |= portUDPBit
	}
	return v
}

const portUDPBit = 1 << 16

// IsNil reports whether the attribute has no value.
func (a Attr) IsNil() bool { return len(a.Value) == 0 }

// AsString returns a string value up to its first NUL. A value without a NUL
// is taken whole (open-isns accepts those too).
func (a Attr) AsString() (string, error) {
	if a.IsNil() {
		return "", errorf("read "+a.Tag.String(), ErrField, "empty value")
	}
	v := a.Value
	if i := indexNUL(v); i >= 0 {
		v = v[:i]
	}
	return string(v), nil
}

// AsUint32 returns a 4-byte value.
func (a Attr) AsUint32() (uint32, error) {
	if len(a.Value) != 4 {
		return 0, errorf("read "+a.Tag.String(), ErrField, "length %d, want 4", len(a.Value))
	}
	return binary.BigEndian.Uint32(a.Value), nil
}

// AsUint64 returns an 8-byte value.
func (a Attr) AsUint64() (uint64, error) {
	if len(a.Value) != 8 {
		return 0, errorf("read "+a.Tag.String(), ErrField, "length %d, want 8", len(a.Value))
	}
	return binary.BigEndian.Uint64(a.Value), nil
}

// AsIP returns a 16-byte address value. IPv4-mapped addresses and the
// deprecated IPv4-compatible form (::a.b.c.d, which open-isns writes for
// addresses given to isnsadm) come back as IPv4.
func (a Attr) AsIP() (netip.Addr, error) {
	if len(a.Value) != 16 {
		return netip.Addr{}, errorf("read "+a.Tag.String(), ErrField, "length %d, want 16", len(a.Value))
	}
	ip := netip.AddrFrom16([16]byte(a.Value))
	if ip.Is4In6() {
		return ip.Unmap(), nil
	}
	b := ip.As16()
	if isZero(b[:12]) && binary.BigEndian.Uint32(b[12:]) > 1 {
		// IPv4-compatible; :: and ::1 are left alone as glibc's
		// IN6_IS_ADDR_V4COMPAT does.
		return netip.AddrFrom4([4]byte(b[12:])), nil
	}
	return ip, nil
}

// AsPort returns a TCP/UDP port value: the port and whether bit 16 (UDP) is
// set. The reserved upper bits are ignored.
func (a Attr) AsPort() (port uint16, udp bool, err error) {
	v, err := a.AsUint32()
	if err != nil {
		return 0, false, err
	}
	return uint16(v), v&portUDPBit != 0, nil
}

// String formats the attribute for logs, e.g. `iSCSI Name="iqn.x"`.
func (a Attr) String() string {
	if a.IsNil() {
		return a.Tag.String() + "=<nil>"
	}
	var v string
	switch a.Tag.Kind() {
	case KindString:
		s, _ := a.AsString()
		v = strconv.Quote(s)
	case KindUint32:
		switch a.Tag {
		case TagPortalPort, TagSCNPort, TagESIPort, TagPGPortalPort, TagDDMemberPortalPort:
			p, udp, _ := a.AsPort()
			v = fmt.Sprintf("%d/tcp", p)
			if udp {
				v = fmt.Sprintf("%d/udp", p)
			}
		default:
			n, _ := a.AsUint32()
			v = strconv.FormatUint(uint64(n), 10)
		}
	case KindUint64:
		n, _ := a.AsUint64()
		v = strconv.FormatUint(n, 10)
	case KindIP:
		ip, _ := a.AsIP()
		v = ip.String()
	default:
		v = fmt.Sprintf("%x", a.Value)
	}
	return a.Tag.String() + "=" + v
}

// Attrs is a list of attributes in message order.
type Attrs []Attr

// Get returns the first attribute with tag t.
func (as Attrs) Get(t Tag) (Attr, bool) {
	for _, a := range as {
		if a.Tag == t {
			return a, true
		}
	}
	return Attr{}, false
}

// String returns the first string attribute with tag t ("" if absent or nil).
func (as Attrs) String(t Tag) string {
	a, ok := as.Get(t)
	if !ok || a.IsNil() {
		return ""
	}
	s, _ := a.AsString()
	return s
}

// Uint32 returns the first 4-byte attribute with tag t; ok is false if it is
// absent, nil or malformed.
func (as Attrs) Uint32(t Tag) (v uint32, ok bool) {
	a, found := as.Get(t)
	if !found {
		return 0, false
	}
	v, err := a.AsUint32()
	return v, err == nil
}

// Format lists the attributes for logs.
func (as Attrs) Format() string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

// AppendAttr appends the TLV encoding of a: tag, length (Value padded to 4)
// and the padded value.
func AppendAttr(b []byte, a Attr) []byte {
	n := pad4(len(a.Value))
	b = binary.BigEndian.AppendUint32(b, uint32(a.Tag))
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, a.Value...)
	for i := len(a.Value); i < n; i++ {
		b = append(b, 0)
	}
	return b
}

// DecodeAttr decodes the attribute at the start of b and returns it and the
// bytes after it. The value aliases b. Lengths must be multiples of 4 and fit
// the tag's kind (4 for a uint32 tag, 16 for an address, ...); zero is always
// allowed.
func DecodeAttr(b []byte) (Attr, []byte, error) {
	if len(b) < 8 {
		return Attr{}, nil, errorf("decode attribute", ErrTruncated, "%d bytes left, need 8 for tag and length", len(b))
	}
	t := Tag(binary.BigEndian.Uint32(b))
	n := binary.BigEndian.Uint32(b[4:])
	b = b[8:]
	if uint64(n) > uint64(len(b)) {
		return Attr{}, nil, errorf("decode attribute", ErrTruncated, "%v length %d, %d bytes left", t, n, len(b))
	}
	if n%4 != 0 {
		return Attr{}, nil, errorf("decode attribute", ErrField, "%v length %d is not a multiple of 4", t, n)
	}
	if n != 0 {
		want := 0
		switch t.Kind() {
		case KindUint32:
			want = 4
		case KindUint64:
			want = 8
		case KindIP:
			want = 16
		case KindNil:
			return Attr{}, nil, errorf("decode attribute", ErrField, "%v length %d, want 0", t, n)
		}
		if want != 0 && int(n) != want {
			return Attr{}, nil, errorf("decode attribute", ErrField, "%v length %d, want %d", t, n, want)
		}
	}
	a := Attr{Tag: t}
	if n > 0 {
		a.Value = b[:n:n]
	}
	return a, b[n:], nil
}

// DecodeAttrs decodes a whole attribute list. The values alias b.
func DecodeAttrs(b []byte) (Attrs, error) {
	// Every attribute takes at least 8 bytes, so the count is bounded by
	// the input and the slice never grows past len(b)/8 entries.
	out := make(Attrs, 0, min(len(b)/8, 64))
	for len(b) > 0 {
		a, rest, err := DecodeAttr(b)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		b = rest
	}
	return out, nil
}

func pad4(n int) int { return (n + 3) &^ 3 }

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
