package stockipc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// ne is the byte order of every integer in the IPC structs: the host's, and
// open-iscsi runs little-endian on x86_64, the layout measured here.
var ne = binary.LittleEndian

// Fixed places in iscsiadm_req_t, the same in every layout (x86_64).
const (
	offCommand    = 0  // iscsiadm_cmd_e command
	offPayloadLen = 4  // uint32_t payload_len
	offSID        = 8  // u.session.sid (also u.conn.sid)
	offRec        = 16 // u.session.rec (node_rec_t, 8-byte aligned after sid)
)

// fieldKind says how a node_rec_t field is stored and spelled, after the
// __recinfo_* macro idbm_recinfo_node uses for it.
type fieldKind uint8

const (
	// kStr is a char array holding a NUL-terminated string (__recinfo_str).
	kStr fieldKind = iota
	// kInt is a signed integer printed with %d (__recinfo_int); size 4.
	kInt
	// kUint is an unsigned integer of the field's size printed with %u
	// (__recinfo_uint8/16/32; iface.traffic_class is a uint32_t printed by
	// the uint8 macro, whose %u still prints it whole).
	kUint
	// kEnum is an int whose value v is spelled names[v] (__recinfo_int_oN).
	kEnum
	// kAlgList is unsigned chap_algs[5], unused entries ~0, spelled as the
	// comma-separated names of the used ones (__recinfo_int_list).
	kAlgList
)

// branch says for which ifaces idbm lists a key: stock lists the IPv4-only
// keys for an IPv4 iface and the IPv6-only keys for an IPv6 one
// (iface_get_iptype), never both.
type branch uint8

const (
	allIfaces branch = iota
	ipv4Only
	ipv6Only
)

// field is one node record key and where its value lives in node_rec_t.
type field struct {
	key   string
	off   int // from the start of node_rec_t
	size  int
	kind  fieldKind
	names []string // kEnum
	branch
	// hidden keys (IDBM_HIDE: the password lengths) are never written to a
	// record file; stock derives them from the password.
	hidden bool
	// secret keys (IDBM_MASKED) hold CHAP secrets.
	secret bool
}

// layout is one release's iscsiadm_req_t.
type layout struct {
	versions string // the open-iscsi releases that send it
	reqSize  int    // sizeof(iscsiadm_req_t)
	recSize  int    // sizeof(node_rec_t)
	// Offsets in node_rec_t of what iscsid uses but idbm does not list:
	// session.multiple (log in even if a session exists), and the iface
	// fields iface_get_iptype reads.
	sessionMultiple                                    int
	ifaceName, ifaceIPAddress, ifaceBootproto          int
	ifaceNameLen, ifaceIPAddressLen, ifaceBootprotoLen int
	fields                                             []field
}

// Option names, in enum order, as idbm_recinfo_node spells them.
var (
	startupNames    = []string{"manual", "automatic", "onboot"}
	noYesNames      = []string{"No", "Yes"}
	authMethodNames = []string{"None", "CHAP"}
	digestNames     = []string{"None", "CRC32C", "CRC32C,None", "None,CRC32C"}
	scanNames       = []string{"manual", "auto"}
	// Value 3 was SLP (never implemented, a placeholder from 2.1.9 on).
	discTypeNames     = []string{"send_targets", "isns", "offload_send_targets", "slp", "static", "fw"}
	discTypeNamesHead = []string{"send_targets", "isns", "offload_send_targets", "static", "fw"}
)

// chapAlgs are the CHAP algorithm values (AUTH_CHAP_ALG_*, usr/auth.h) and
// their names in node.session.auth.chap_algs.
var chapAlgs = []chapAlg{{"MD5", 5}, {"SHA1", 6}, {"SHA256", 7}, {"SHA3-256", 8}}

type chapAlg struct {
	name  string
	value uint32
}

const (
	chapAlgCount  = 5          // AUTH_CHAP_ALG_MAX_COUNT
	chapAlgUnused = 0xffffffff // ~0
)

// allLayouts are the known request layouts, largest first.
var allLayouts = []*layout{vHead, v2_1_11, v2_1_1, v2_1_0}

// known holds the layouts in use: allLayouts, except while a test plays a
// client of an unknown release.
var known atomic.Pointer[[]*layout]

func init() { known.Store(&allLayouts) }

func layouts() []*layout { return *known.Load() }

// layoutFor returns the layout of a request of n bytes, or nil.
func layoutFor(n int) *layout {
	for _, l := range layouts() {
		if l.reqSize == n {
			return l
		}
	}
	return nil
}

// KnownSizes returns the request sizes this package decodes, largest first.
func KnownSizes() []int {
	ls := layouts()
	s := make([]int, len(ls))
	for i, l := range ls {
		s[i] = l.reqSize
	}
	return s
}

// Versions names the open-iscsi releases whose iscsiadm sends requests of n
// bytes, or returns "" if none known does.
func Versions(n int) string {
	if l := layoutFor(n); l != nil {
		return l.versions
	}
	return ""
}

// maxReqSize is the largest request of any layout.
var maxReqSize = vHead.reqSize

// defaultSize is what EncodeRequest writes when Request.Size is zero: the
// layout of Debian 12's open-iscsi 2.1.8.
const defaultSize = 16104

// UnknownSizeError is a request whose size matches no known layout.
type UnknownSizeError struct {
	Size int
}

func (e *UnknownSizeError) Error() string {
	var sizes []string
	for _, l := range layouts() {
		sizes = append(sizes, fmt.Sprintf("%d (%s)", l.reqSize, l.versions))
	}
	return fmt.Sprintf("stockipc: request of %d bytes matches no known iscsiadm_req_t layout; known sizes: %s",
		e.Size, strings.Join(sizes, ", "))
}

// cstring returns the NUL-terminated string in b, or ok false if b holds
// no NUL (stock would read past the array).
func cstring(b []byte) (s string, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// ipv6Iface says whether stock treats the record's iface as IPv6
// (iface_get_iptype, usr/iface.c): by the name when the address is unset,
// else by an address without a dot unless the iface takes DHCP. 2.1.0 looks
// for "ipv4" in the name before "ipv6"; master also treats the address
// "default" as unset.
func (l *layout) ipv6Iface(rec []byte) bool {
	name, _ := cstring(rec[l.ifaceName : l.ifaceName+l.ifaceNameLen])
	addr, _ := cstring(rec[l.ifaceIPAddress : l.ifaceIPAddress+l.ifaceIPAddressLen])
	boot, _ := cstring(rec[l.ifaceBootproto : l.ifaceBootproto+l.ifaceBootprotoLen])
	unset := addr == "" || addr == "<empty>" || (l == vHead && addr == "default")
	if unset {
		if l == v2_1_0 && strings.Contains(name, "ipv4") {
			return false
		}
		return strings.Contains(name, "ipv6")
	}
	return boot != "dhcp" && !strings.Contains(addr, ".")
}

// decodeRecord turns node_rec_t bytes into the record's keys and values,
// spelled as stock writes them in a record file. Hidden keys are checked,
// not returned.
func (l *layout) decodeRecord(rec []byte) (map[string]string, error) {
	v6 := l.ipv6Iface(rec)
	m := make(map[string]string, len(l.fields))
	for i := range l.fields {
		f := &l.fields[i]
		if (f.branch == ipv4Only && v6) || (f.branch == ipv6Only && !v6) {
			continue
		}
		b := rec[f.off : f.off+f.size]
		var v string
		switch f.kind {
		case kStr:
			s, ok := cstring(b)
			if !ok {
				return nil, fmt.Errorf("stockipc: %s: no NUL within its %d bytes", f.key, f.size)
			}
			if j := strings.IndexFunc(s, isControl); j >= 0 {
				return nil, fmt.Errorf("stockipc: %s: control character at byte %d", f.key, j)
			}
			v = s
		case kInt:
			v = strconv.FormatInt(int64(int32(ne.Uint32(b))), 10)
		case kUint:
			v = strconv.FormatUint(uintOf(b), 10)
		case kEnum:
			n := ne.Uint32(b)
			if n >= uint32(len(f.names)) {
				return nil, fmt.Errorf("stockipc: %s: value %d is none of %s", f.key, int32(n), strings.Join(f.names, ", "))
			}
			v = f.names[n]
		case kAlgList:
			var names []string
			for j := 0; j < chapAlgCount; j++ {
				a := ne.Uint32(b[4*j:])
				if a == chapAlgUnused {
					continue
				}
				k := slices.IndexFunc(chapAlgs, func(c chapAlg) bool { return c.value == a })
				if k < 0 {
					return nil, fmt.Errorf("stockipc: %s: entry %d is %d, no known CHAP algorithm", f.key, j, a)
				}
				names = append(names, chapAlgs[k].name)
			}
			v = strings.Join(names, ",")
		}
		if f.hidden {
			continue
		}
		m[f.key] = v
	}
	// The password lengths are what iscsid hashes with: stock's iscsiadm
	// sets each to the length of its password, and a request where they
	// differ would make a login with another secret than the one shown.
	for _, p := range []string{"node.session.auth.password", "node.session.auth.password_in"} {
		f := l.field(p + "_length")
		if n := int32(ne.Uint32(rec[f.off:])); int(n) != len(m[p]) {
			return nil, fmt.Errorf("stockipc: %s is %d, not the length of %s", f.key, n, p)
		}
	}
	return m, nil
}

// encodeRecord writes the record's values into rec (zeroed, recSize bytes).
// Keys missing from m are left zero (an empty string, 0, the first option);
// a key the layout has not is an error.
func (l *layout) encodeRecord(rec []byte, m map[string]string) error {
	for k := range m {
		if l.field(k) == nil {
			return fmt.Errorf("stockipc: no key %s in the open-iscsi %s record", k, l.versions)
		}
	}
	for i := range l.fields {
		f := &l.fields[i]
		b := rec[f.off : f.off+f.size]
		if f.kind == kAlgList {
			for j := 0; j < chapAlgCount; j++ {
				ne.PutUint32(b[4*j:], chapAlgUnused)
			}
		}
		v, ok := m[f.key]
		if f.hidden {
			// The password lengths follow the passwords.
			v, ok = strconv.Itoa(len(m[strings.TrimSuffix(f.key, "_length")])), true
		}
		if !ok {
			continue
		}
		switch f.kind {
		case kStr:
			if len(v) >= f.size {
				return fmt.Errorf("stockipc: %s: %d bytes do not fit in %d with the NUL", f.key, len(v), f.size)
			}
			if j := strings.IndexFunc(v, isControl); j >= 0 || strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("stockipc: %s: control character in the value", f.key)
			}
			copy(b, v)
		case kInt:
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fmt.Errorf("stockipc: %s: %q is not a 32-bit integer", f.key, v)
			}
			ne.PutUint32(b, uint32(int32(n)))
		case kUint:
			n, err := strconv.ParseUint(v, 10, 8*f.size)
			if err != nil {
				return fmt.Errorf("stockipc: %s: %q is not a %d-bit unsigned integer", f.key, v, 8*f.size)
			}
			putUint(b, n)
		case kEnum:
			n := slices.Index(f.names, v)
			if n < 0 {
				return fmt.Errorf("stockipc: %s: %q is none of %s", f.key, v, strings.Join(f.names, ", "))
			}
			ne.PutUint32(b, uint32(n))
		case kAlgList:
			if v == "" {
				continue
			}
			names := strings.Split(v, ",")
			if len(names) > chapAlgCount {
				return fmt.Errorf("stockipc: %s: %d algorithms, at most %d", f.key, len(names), chapAlgCount)
			}
			for j, name := range names {
				k := slices.IndexFunc(chapAlgs, func(c chapAlg) bool { return c.name == strings.TrimSpace(name) })
				if k < 0 {
					return fmt.Errorf("stockipc: %s: %q is no known CHAP algorithm", f.key, name)
				}
				ne.PutUint32(b[4*j:], chapAlgs[k].value)
			}
		}
	}
	return nil
}

// field returns the layout's field for key, or nil.
func (l *layout) field(key string) *field {
	for i := range l.fields {
		if l.fields[i].key == key {
			return &l.fields[i]
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func uintOf(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(ne.Uint16(b))
	case 4:
		return uint64(ne.Uint32(b))
	}
	return ne.Uint64(b)
}

func putUint(b []byte, n uint64) {
	switch len(b) {
	case 1:
		b[0] = byte(n)
	case 2:
		ne.PutUint16(b, uint16(n))
	case 4:
		ne.PutUint32(b, uint32(n))
	default:
		ne.PutUint64(b, n)
	}
}
