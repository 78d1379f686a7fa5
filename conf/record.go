// Package conf reads and writes open-iscsi's configuration: iscsid.conf, the
// initiator name file, and the node database (node records, SendTargets and
// iSNS discovery records, iface records) in open-iscsi's own layout and format, so
// that switching between open-iscsi and goiscsi keeps every record.
package conf

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// recordVersion is what the first line of a record file says. Stock open-iscsi
// writes its own version there and ignores the line when reading; goiscsi writes
// 2.1.8's, so a record it writes is byte-identical to stock's.
const recordVersion = "2.1.8"

// Stock's record delimiters (usr/idbm_fields.h).
const (
	beginRecord = "# BEGIN RECORD"
	endRecord   = "# END RECORD"
)

// maxLine bounds a record or iscsid.conf line, as open-iscsi does (2047 bytes).
const maxLine = 2047

// maxRecordLines bounds how many lines ParseRecord reads: a real record has
// about 130, and a runaway file must not exhaust memory.
const maxRecordLines = 10000

// emptyValue is how `-o show` prints an unset value (UNKNOWN_VALUE in stock).
const emptyValue = "<empty>"

// Kind says which table of keys a Record uses.
type Kind int

// Record kinds.
const (
	// NodeKind is a node record (nodes/<target>/<portal>,<tpgt>/<iface>).
	NodeKind Kind = iota
	// DiscoveryKind is a SendTargets discovery record (send_targets/<portal>/st_config).
	DiscoveryKind
	// IfaceKind is an iface record (ifaces/<name>).
	IfaceKind
	// ISNSDiscoveryKind is an iSNS discovery record
	// (isns/<server>,<port>/isns_config).
	ISNSDiscoveryKind
)

// String names the kind as messages say it.
func (k Kind) String() string {
	switch k {
	case DiscoveryKind, ISNSDiscoveryKind:
		return "discovery"
	case IfaceKind:
		return "iface"
	}
	return "node"
}

func (k Kind) layout() *layout {
	switch k {
	case DiscoveryKind:
		return discoveryLayout()
	case ISNSDiscoveryKind:
		return isnsLayout()
	case IfaceKind:
		return ifaceLayout()
	}
	return nodeLayout()
}

// Record is a node, discovery or iface record: every key of its kind, listed
// in stock's order. Values are kept for the IPv4 and the IPv6 iface keys alike,
// and the ones for the record's current address family are written.
type Record struct {
	kind Kind
	vals map[string]string
	// given holds goiscsi's own keys that were set (keyInfo.own): only those
	// are kept, so a record stock made takes them from iscsid.conf.
	given map[string]bool
	// path is where DB read the record, relative to the node directory
	// ("iqn.x:t/10.0.0.1,3260" or "iqn.x:t/10.0.0.1,3260,1/default"); a
	// save writes it back there, in its layout. Empty for a new record.
	path string
	// Warnings name, with file and line, each line ParseRecord ignored: a key
	// no record of this kind has, a value its key cannot hold, a line that is
	// not key = value. Stock ignores those too, so a record of a newer
	// release stays readable; a typo must not go unnoticed.
	Warnings []string
}

// newRecord returns a record of kind k holding the built-in defaults.
func newRecord(k Kind) *Record {
	l := k.layout()
	r := &Record{kind: k, vals: make(map[string]string, len(l.info)), given: map[string]bool{}}
	for key, ki := range l.info {
		r.vals[key] = ki.def
	}
	return r
}

// NewNodeRecord returns a node record: stock 2.1.8's built-in defaults, then
// the node.* keys of iscsid.conf (cfg may be nil), then the node's identity.
// tpgt -1 means unknown; iface "" means "default".
func NewNodeRecord(cfg *Config, target, address string, port, tpgt int, iface string) *Record {
	r := newRecord(NodeKind)
	r.applyConfig(cfg)
	if iface == "" {
		iface = "default"
	}
	r.set("node.name", target)
	r.set("node.tpgt", strconv.Itoa(tpgt))
	r.set("node.conn[0].address", address)
	r.set("node.conn[0].port", strconv.Itoa(port))
	r.set("iface.iscsi_ifacename", iface)
	r.given["node.session.autoscan_en"] = true
	return r
}

// NewDiscoveryRecord returns a SendTargets discovery record for a portal, with
// iscsid.conf's discovery.sendtargets.* keys applied.
func NewDiscoveryRecord(cfg *Config, address string, port int) *Record {
	r := newRecord(DiscoveryKind)
	r.applyConfig(cfg)
	r.set("discovery.sendtargets.address", address)
	r.set("discovery.sendtargets.port", strconv.Itoa(port))
	return r
}

// NewISNSDiscoveryRecord returns an iSNS discovery record for the server at
// address:port. Only iscsid.conf's discovery.isns.* keys apply, as stock
// (usr/iscsiadm.c setup_drec_defaults copies only the iSNS part of its
// defaults).
func NewISNSDiscoveryRecord(cfg *Config, address string, port int) *Record {
	r := newRecord(ISNSDiscoveryKind)
	if cfg != nil {
		for _, k := range cfg.Keys() {
			if strings.HasPrefix(k, "discovery.isns.") {
				v, _ := cfg.Get(k)
				if cv, err := canonicalFor(r.kind.layout().info[k], v); err == nil && r.Has(k) {
					r.set(k, cv)
				}
			}
		}
	}
	r.set("discovery.sendtargets.address", address)
	r.set("discovery.sendtargets.port", strconv.Itoa(port))
	return r
}

// NewIfaceRecord returns an iface record named name with stock's defaults
// (transport tcp), as `iscsiadm -m iface -o new` makes it.
func NewIfaceRecord(name string) *Record {
	r := newRecord(IfaceKind)
	r.set("iface.iscsi_ifacename", name)
	return r
}

// applyConfig copies the keys of cfg this record kind has. A value that fails
// validation is skipped: ParseConfig already refused it, so it can only come
// from a Config built another way.
func (r *Record) applyConfig(cfg *Config) {
	if cfg == nil {
		return
	}
	l := r.kind.layout()
	for _, k := range cfg.Keys() {
		ki, ok := l.info[k]
		if !ok || k == "iface.iscsi_ifacename" {
			continue
		}
		v, _ := cfg.Get(k)
		if cv, err := canonicalFor(ki, v); err == nil {
			r.set(k, cv)
		}
	}
}

// set stores value; an empty value for a key that has a built-in default
// restores the default, since a file cannot record "empty" for it (empty values
// are left out of files) and stock reads it back as the default.
func (r *Record) set(key, value string) {
	ki, ok := r.kind.layout().info[key]
	if !ok {
		return
	}
	if value == "" {
		value = ki.def
	}
	r.vals[key] = value
	if ki.own {
		r.given[key] = true
	}
}

// Kind returns the record's kind.
func (r *Record) Kind() Kind { return r.kind }

// Get returns key's value ("" when empty or not a key of this kind).
func (r *Record) Get(key string) string { return r.vals[key] }

// ipv6File reports whether stock's usr/idbm.c treats the record's iface as
// IPv6 (iface_get_iptype): by the address when there is one (no dot and not
// DHCP), else by "ipv6" in the iface name. It picks the keys files hold.
func (r *Record) ipv6File() bool {
	ip := r.vals["iface.ipaddress"]
	if ip == "" || ip == emptyValue {
		return strings.Contains(r.vals["iface.iscsi_ifacename"], "ipv6")
	}
	return r.vals["iface.bootproto"] != "dhcp" && !strings.Contains(ip, ".")
}

// ipv6Show reports whether libopeniscsiusr, which prints `-o show`, treats the
// iface as IPv6: only by "ipv6" in its name.
func (r *Record) ipv6Show() bool {
	return strings.Contains(r.vals["iface.iscsi_ifacename"], "ipv6")
}

// ordered returns the keys of order that exist for the given address family.
func (r *Record) ordered(order []string, v6 bool) []string {
	l := r.kind.layout()
	out := make([]string, 0, len(order))
	for _, k := range order {
		switch l.info[k].sect {
		case secV4:
			if v6 {
				continue
			}
		case secV6:
			if !v6 {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

// Has reports whether key is a key of this record as stock would build it:
// its kind has the key, and an IPv4-only or IPv6-only iface key matches the
// record's address family (stock answers "Invalid param name" otherwise).
func (r *Record) Has(key string) bool {
	ki, ok := r.kind.layout().info[key]
	if !ok {
		return false
	}
	switch ki.sect {
	case secV4:
		return !r.ipv6File()
	case secV6:
		return r.ipv6File()
	}
	return true
}

// Set changes key after checking that the record has it and that value suits
// it (a number in range, Yes/No, one of the listed choices, a list of CHAP
// algorithms); the error names both. "" and "<empty>" clear a value (a key
// with a built-in default gets the default back).
func (r *Record) Set(key, value string) error {
	if !r.Has(key) {
		return fmt.Errorf("unknown record key %q (value %q) for a %s record", key, value, r.kind)
	}
	if value == emptyValue {
		value = ""
	}
	value, err := canonicalFor(r.kind.layout().info[key], value)
	if err != nil {
		return err
	}
	r.set(key, value)
	return nil
}

// keys returns the record's keys in the order stock writes them to a file,
// for the record's address family, empty ones included; goiscsi's own keys
// only when set and own says so, else none.
func (r *Record) keys(own bool) []string {
	keys := r.ordered(r.kind.layout().file, r.ipv6File())
	out := keys[:0]
	for _, k := range keys {
		if !r.kind.layout().info[k].own {
			if !own {
				out = append(out, k)
			}
		} else if own && r.given[k] {
			out = append(out, k)
		}
	}
	return out
}

// Map returns the record as key = value pairs, empty values left out;
// goiscsi's own keys are in it when set (a record stock made has none, and
// takes them from iscsid.conf at login).
func (r *Record) Map() map[string]string {
	m := map[string]string{}
	for _, own := range []bool{false, true} {
		for _, k := range r.keys(own) {
			if v := r.vals[k]; v != "" {
				m[k] = v
			}
		}
	}
	return m
}

// Own returns goiscsi's own keys the record sets, with their values.
func (r *Record) Own() map[string]string {
	m := map[string]string{}
	for _, k := range r.keys(true) {
		m[k] = r.vals[k]
	}
	return m
}

// Clone returns an independent copy of the record.
func (r *Record) Clone() *Record {
	c := &Record{kind: r.kind, vals: make(map[string]string, len(r.vals)), given: map[string]bool{}, path: r.path}
	for k, v := range r.vals {
		c.vals[k] = v
	}
	for k, v := range r.given {
		c.given[k] = v
	}
	return c
}

// MarshalText formats the record as stock 2.1.8 writes it to a file (usr/idbm.c
// idbm_print to a file): file order, empty values left out, secrets stored as
// they are (the file is root-only, and stock needs them to log in).
func (r *Record) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", beginRecord, recordVersion)
	for _, k := range r.keys(false) {
		if v := r.vals[k]; v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	b.WriteString(endRecord + "\n")
	return b.Bytes(), nil
}

// Show formats the record as `iscsiadm -o show` prints it: show order, every
// key, "<empty>" for empty values, and "********" for set secrets unless
// showSecrets (-S). goiscsi's own keys are shown where they are set.
func (r *Record) Show(showSecrets bool) string {
	l := r.kind.layout()
	v6 := r.ipv6File()
	if r.kind != DiscoveryKind && r.kind != ISNSDiscoveryKind {
		v6 = r.ipv6Show()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", beginRecord, recordVersion)
	for _, k := range r.ordered(l.show, v6) {
		if l.info[k].own && !r.given[k] {
			continue
		}
		v := r.vals[k]
		switch {
		case v == "":
			v = emptyValue
		case IsSecretKey(k) && !showSecrets:
			v = "********"
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	b.WriteString(endRecord + "\n")
	return b.String()
}

// ID returns the node identity of a node record.
func (r *Record) ID() NodeID {
	port, _ := strconv.Atoi(r.Get("node.conn[0].port"))
	tpgt, err := strconv.Atoi(r.Get("node.tpgt"))
	if err != nil {
		tpgt = -1
	}
	iface := r.Get("iface.iscsi_ifacename")
	if iface == "" {
		iface = "default"
	}
	return NodeID{Target: r.Get("node.name"), Address: r.Get("node.conn[0].address"), Port: port, TPGT: tpgt, Iface: iface}
}

// kvLine is one key = value line of a record or iscsid.conf.
type kvLine struct {
	n          int
	key, value string
}

// ParseRecord reads a record file or `-o show` output; the kind is told by
// its keys (discovery.* makes a discovery record, an iSNS one when
// discovery.type is isns, iface.* alone an iface record, anything else a node
// record). See ParseRecordKind.
func ParseRecord(rd io.Reader, name string) (*Record, error) {
	lines, warnings, err := readRecordLines(rd, name)
	if err != nil {
		return nil, err
	}
	kind := NodeKind
	ifaceOnly := len(lines) > 0
	for _, l := range lines {
		if l.key == "discovery.type" && l.value == "isns" {
			kind = ISNSDiscoveryKind
			ifaceOnly = false
			break
		}
		if strings.HasPrefix(l.key, "discovery.") {
			kind = DiscoveryKind
			ifaceOnly = false
		}
		if !strings.HasPrefix(l.key, "iface.") {
			ifaceOnly = false
		}
	}
	if ifaceOnly {
		kind = IfaceKind
	}
	return buildRecord(lines, warnings, name, kind)
}

// ParseRecordKind reads a record of a known kind, starting from the built-in
// defaults as stock does. As stock, it goes on past a key no record of the
// kind has, a value that does not suit its key (the key keeps its default)
// and a line that is not "key = value", listing each in Warnings with name and
// line. A record cut short (a "# BEGIN RECORD" without its "# END RECORD", or
// a last line without its newline: a torn write) is an error naming name and
// the line: half a record would log in with half its settings.
func ParseRecordKind(rd io.Reader, name string, kind Kind) (*Record, error) {
	lines, warnings, err := readRecordLines(rd, name)
	if err != nil {
		return nil, err
	}
	return buildRecord(lines, warnings, name, kind)
}

func buildRecord(lines []kvLine, warnings []string, name string, kind Kind) (*Record, error) {
	r := newRecord(kind)
	r.Warnings = warnings
	l := kind.layout()
	for _, kv := range lines {
		v := kv.value
		if v == emptyValue || v == "********" {
			v = ""
		}
		ki, ok := l.info[kv.key]
		if !ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s:%d: unknown %s record key %s (ignored)", name, kv.n, kind, kv.key))
			continue
		}
		cv, err := canonicalFor(ki, v)
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s:%d: %v (ignored)", name, kv.n, err))
			continue
		}
		r.set(kv.key, cv)
	}
	return r, nil
}

// readRecordLines collects a record's key = value lines and checks that the
// record is whole.
func readRecordLines(rd io.Reader, name string) ([]kvLine, []string, error) {
	var (
		lines      []kvLine
		warnings   []string
		begin, end bool
		last       int
	)
	err := scanLines(rd, name, true, func(n int, line string) error {
		last = n
		if n > maxRecordLines {
			return fmt.Errorf("%s:%d: more than %d lines: not a record", name, n, maxRecordLines)
		}
		switch {
		case strings.HasPrefix(line, beginRecord):
			begin = true
			return nil
		case strings.HasPrefix(line, endRecord):
			end = true
			return nil
		}
		k, v, ok, err := splitKeyValue(name, n, line)
		if err != nil {
			warnings = append(warnings, err.Error()+" (ignored)")
			return nil
		}
		if ok {
			lines = append(lines, kvLine{n, k, v})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if begin && !end {
		return nil, nil, fmt.Errorf("%s:%d: record ends without %q (torn write?)", name, last, endRecord)
	}
	return lines, warnings, nil
}

// eachKeyValue calls f with each "key = value" line of open-iscsi's format (both
// sides trimmed; blank lines and "#" comments skipped; lines up to 2047 bytes). A
// line that is not key = value is an error naming name and the line number.
func eachKeyValue(rd io.Reader, name string, f func(line int, key, value string) error) error {
	return scanLines(rd, name, false, func(n int, line string) error {
		k, v, ok, err := splitKeyValue(name, n, line)
		if err != nil || !ok {
			return err
		}
		return f(n, k, v)
	})
}

// scanLines calls f with each line, trimmed. With needNewline a last line
// without its newline is an error: stock skips such a line (it takes it for
// an overlong one), so applying it would read the record differently, and it
// is what a torn write leaves.
func scanLines(rd io.Reader, name string, needNewline bool, f func(n int, line string) error) error {
	br := bufio.NewReaderSize(rd, 4096)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF && line == "" {
			return nil
		}
		if err != nil && err != io.EOF {
			if err == errLineTooLong {
				return fmt.Errorf("%s:%d: line longer than %d bytes", name, n, maxLine)
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		if err == io.EOF && needNewline && strings.TrimSpace(line) != "" {
			return fmt.Errorf("%s:%d: last line has no newline (torn write?)", name, n)
		}
		if ferr := f(n, strings.TrimSpace(line)); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
	}
}

var errLineTooLong = fmt.Errorf("line too long")

// readLine returns one line without its newline; io.EOF with the text of a
// last line that had none. Lines are bounded so a file without newlines
// cannot exhaust memory.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLine+2 {
			return "", errLineTooLong
		}
		switch err {
		case nil:
			return strings.TrimSuffix(string(b[:len(b)-1]), "\r"), nil
		case bufio.ErrBufferFull:
			continue
		default:
			return string(b), err
		}
	}
}

// splitKeyValue splits a trimmed line; ok is false for blank and comment lines.
func splitKeyValue(name string, n int, line string) (key, value string, ok bool, err error) {
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	k, v, found := strings.Cut(line, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !found || k == "" || strings.ContainsAny(k, " \t") {
		return "", "", false, fmt.Errorf("%s:%d: %q is not key = value", name, n, line)
	}
	return k, v, true, nil
}

// IsSecretKey reports whether a key holds a CHAP secret, which listings mask.
// Records store secrets as they are, as stock does.
func IsSecretKey(key string) bool {
	return strings.HasSuffix(key, ".password") || strings.HasSuffix(key, ".password_in")
}

// IsLookupKey reports whether a key identifies a node record; stock refuses to
// change these with -o update.
func IsLookupKey(key string) bool {
	switch key {
	case "node.name", "node.tpgt", "iface.iscsi_ifacename", "node.discovery_address", "node.discovery_port",
		"node.discovery_type", "node.conn[0].address", "node.conn[0].port":
		return true
	}
	return false
}

// lookupKey finds the description of a record key of any kind.
func lookupKey(key string) (*keyInfo, bool) {
	for _, l := range []*layout{nodeLayout(), discoveryLayout(), isnsLayout(), ifaceLayout()} {
		if ki, ok := l.info[key]; ok {
			return ki, true
		}
	}
	return nil, false
}

// canonical checks value against key's type, for keys of any record kind, and
// returns it spelled as stock spells it; other keys (iscsid.*) only must not
// break the line format.
func canonical(key, value string) (string, error) {
	if ki, ok := lookupKey(key); ok {
		return canonicalFor(ki, value)
	}
	return canonicalFor(&keyInfo{key: key}, value)
}

// canonicalFor checks value against ki's type and returns it spelled as stock
// writes it. Yes/No and choices are accepted in any case but stored as stock
// spells them ("chap" becomes "CHAP"): stock reads a value it does not know as
// the default, so a record saying "chap" would log in without CHAP there.
// Numbers are stored as stock prints them ("0064" becomes "64"), and must fit
// the field stock keeps them in: stock would silently wrap them.
func canonicalFor(ki *keyInfo, value string) (string, error) {
	key := ki.key
	if value == "" {
		return "", nil
	}
	if len(value) > maxLine {
		return "", fmt.Errorf("%s: value longer than %d bytes", key, maxLine)
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		return "", fmt.Errorf("%s = %q: value contains a line break or NUL", key, value)
	}
	switch ki.typ {
	case tEnum:
		for _, c := range ki.opts {
			if strings.EqualFold(value, c) {
				return c, nil
			}
		}
		return "", fmt.Errorf("%s = %q: must be one of %s", key, value, strings.Join(ki.opts, ", "))
	case tList:
		var out []string
		seen := map[string]bool{}
		for _, tok := range strings.FieldsFunc(value, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
			found := ""
			for _, c := range ki.opts {
				if strings.EqualFold(tok, c) {
					found = c
				}
			}
			if found == "" {
				return "", fmt.Errorf("%s = %q: %q is not one of %s", key, value, tok, strings.Join(ki.opts, ", "))
			}
			if !seen[found] {
				seen[found] = true
				out = append(out, found)
			}
		}
		return strings.Join(out, ","), nil
	case tInt:
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%s = %q: must be a number from %d to %d", key, value, int32(-1<<31), int32(1<<31-1))
		}
		return strconv.FormatInt(n, 10), nil
	case tU8, tU16, tU32:
		bits := map[valType]int{tU8: 8, tU16: 16, tU32: 32}[ki.typ]
		n, err := strconv.ParseUint(value, 10, bits)
		if err != nil {
			return "", fmt.Errorf("%s = %q: must be a number from 0 to %d", key, value, uint64(1)<<bits-1)
		}
		return strconv.FormatUint(n, 10), nil
	}
	return value, nil
}

// Choices returns the values a record key of a fixed set takes, spelled as
// stock spells them (stock compares with strcmp, and reads any other
// spelling as the key's default); nil for a key that is not such a set.
func Choices(key string) []string {
	ki, ok := lookupKey(key)
	if !ok || ki.typ != tEnum {
		return nil
	}
	return append([]string(nil), ki.opts...)
}

// IsNodeKey reports whether key is a key of node records (of either address
// family's iface part).
func IsNodeKey(key string) bool {
	_, ok := nodeLayout().info[key]
	return ok
}
