// Package conf reads and writes open-iscsi's configuration: iscsid.conf, the
// initiator name file, and the node database (node records, SendTargets
// discovery records, iface records) in open-iscsi's own layout and format, so
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

type keyDefault struct{ key, def string }

// recordVersion is what the first line of a record file says. Stock open-iscsi
// writes its own version there and ignores the line when reading; goiscsi writes
// 2.1.8's, so a record it writes is byte-identical to stock's.
const recordVersion = "2.1.8"

// maxLine bounds a record or iscsid.conf line, as open-iscsi does (2047 bytes).
const maxLine = 2047

// Kind says which table of keys a Record uses.
type Kind int

// Record kinds.
const (
	// NodeKind is a node record (nodes/<target>/<portal>,<tpgt>/<iface>).
	NodeKind Kind = iota
	// DiscoveryKind is a SendTargets discovery record (send_targets/<portal>/st_config).
	DiscoveryKind
)

func (k Kind) table() []keyDefault {
	if k == DiscoveryKind {
		return discoveryTable
	}
	return nodeTable
}

var (
	nodeIndex      = index(nodeTable)
	discoveryIndex = index(discoveryTable)
)

func index(t []keyDefault) map[string]int {
	m := make(map[string]int, len(t))
	for i, kd := range t {
		m[kd.key] = i
	}
	return m
}

func (k Kind) index() map[string]int {
	if k == DiscoveryKind {
		return discoveryIndex
	}
	return nodeIndex
}

// Record is a node or discovery record: every key of its kind, in stock's order.
type Record struct {
	kind Kind
	vals []string // by table position
}

// newRecord returns a record of kind k holding the built-in defaults.
func newRecord(k Kind) *Record {
	t := k.table()
	r := &Record{kind: k, vals: make([]string, len(t))}
	for i, kd := range t {
		r.vals[i] = kd.def
	}
	return r
}

// NewNodeRecord returns the node record stock open-iscsi creates for a discovered
// or new node: built-in defaults, then the node.* keys of iscsid.conf (cfg may be
// nil), then the node's identity. tpgt -1 means unknown.
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
	return r
}

// NewDiscoveryRecord returns a SendTargets discovery record for a portal, with
// iscsid.conf's discovery.* keys applied.
func NewDiscoveryRecord(cfg *Config, address string, port int) *Record {
	r := newRecord(DiscoveryKind)
	r.applyConfig(cfg)
	r.set("discovery.sendtargets.address", address)
	r.set("discovery.sendtargets.port", strconv.Itoa(port))
	return r
}

// applyConfig copies the keys of cfg this record kind has. A value that fails
// validation is skipped (Config.Warnings already names it).
func (r *Record) applyConfig(cfg *Config) {
	if cfg == nil {
		return
	}
	for _, k := range cfg.Keys() {
		if _, ok := r.kind.index()[k]; ok {
			v, _ := cfg.Get(k)
			if cv, err := canonical(k, v); err == nil {
				r.set(k, cv)
			}
		}
	}
}

// set stores value; an empty value for a key that has a built-in default
// restores the default, since a file cannot record "empty" for it (empty values
// are left out of files) and stock reads it that way too.
func (r *Record) set(key, value string) {
	if i, ok := r.kind.index()[key]; ok {
		if value == "" {
			value = r.kind.table()[i].def
		}
		r.vals[i] = value
	}
}

// Kind returns the record's kind.
func (r *Record) Kind() Kind { return r.kind }

// Get returns key's value ("" when empty or not a key of this kind).
func (r *Record) Get(key string) string {
	if i, ok := r.kind.index()[key]; ok {
		return r.vals[i]
	}
	return ""
}

// Has reports whether key is a key of this record's kind.
func (r *Record) Has(key string) bool {
	_, ok := r.kind.index()[key]
	return ok
}

// Set changes key after checking that the record kind has it and that value
// suits it (a number, Yes/No, one of the listed choices); the error names both.
// "" and "<empty>" clear a value.
func (r *Record) Set(key, value string) error {
	if !r.Has(key) {
		return fmt.Errorf("unknown record key %q", key)
	}
	if value == "<empty>" {
		value = ""
	}
	value, err := canonical(key, value)
	if err != nil {
		return err
	}
	r.set(key, value)
	return nil
}

// Keys returns every key of the record, in stock's order.
func (r *Record) Keys() []string {
	t := r.kind.table()
	out := make([]string, len(t))
	for i, kd := range t {
		out[i] = kd.key
	}
	return out
}

// Map returns the record as key = value pairs, empty values left out.
func (r *Record) Map() map[string]string {
	m := map[string]string{}
	for i, kd := range r.kind.table() {
		if r.vals[i] != "" {
			m[kd.key] = r.vals[i]
		}
	}
	return m
}

// MarshalText formats the record as stock writes it to a file: empty values are
// left out and secrets are stored as they are (the file is root-only).
func (r *Record) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# BEGIN RECORD %s\n", recordVersion)
	for i, kd := range r.kind.table() {
		if r.vals[i] != "" {
			fmt.Fprintf(&b, "%s = %s\n", kd.key, r.vals[i])
		}
	}
	b.WriteString("# END RECORD\n")
	return b.Bytes(), nil
}

// Show formats the record as `iscsiadm -o show` prints it: every key, "<empty>"
// for empty values, and "********" for secrets unless showSecrets (-S).
func (r *Record) Show(showSecrets bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# BEGIN RECORD %s\n", recordVersion)
	for i, kd := range r.kind.table() {
		v := r.vals[i]
		switch {
		case v == "":
			v = "<empty>"
		case IsSecretKey(kd.key) && !showSecrets:
			v = "********"
		}
		fmt.Fprintf(&b, "%s = %s\n", kd.key, v)
	}
	b.WriteString("# END RECORD\n")
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

// ParseRecord reads a record file or `-o show` output of the given kind, starting
// from the built-in defaults as stock does. Unknown keys are ignored (records of
// newer open-iscsi releases stay readable); a line that is not "key = value", or a
// value that does not suit its key, is an error naming name and the line.
func ParseRecord(rd io.Reader, name string, kind Kind) (*Record, error) {
	r := newRecord(kind)
	err := eachKeyValue(rd, name, func(n int, k, v string) error {
		if v == "<empty>" || v == "********" {
			v = ""
		}
		if !r.Has(k) {
			return nil
		}
		cv, err := canonical(k, v)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
		r.set(k, cv)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// eachKeyValue calls f with each "key = value" line of open-iscsi's format (both
// sides trimmed; blank lines and "#" comments skipped; lines up to 2047 bytes). A
// line that is not key = value is an error naming name and the line number.
func eachKeyValue(rd io.Reader, name string, f func(line int, key, value string) error) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), maxLine+2)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("%s:%d: %q is not key = value", name, n, line)
		}
		if err := f(n, k, v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// IsSecretKey reports whether a key holds a CHAP secret, which listings mask.
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

// choices lists the values enum keys accept, as stock spells them.
var choices = map[string][]string{
	"node.startup":                          {"manual", "automatic", "onboot"},
	"node.conn[0].startup":                  {"manual", "automatic", "onboot"},
	"discovery.startup":                     {"manual", "automatic"},
	"node.session.auth.authmethod":          {"None", "CHAP"},
	"discovery.sendtargets.auth.authmethod": {"None", "CHAP"},
	"node.session.scan":                     {"manual", "auto"},
	"node.discovery_type":                   {"static", "send_targets", "isns", "offload_send_targets", "slp", "fw"},
	"discovery.type":                        {"sendtargets", "isns", "offload_send_targets", "slp", "static", "fw"},
	"node.conn[0].iscsi.HeaderDigest":       {"None", "CRC32C", "CRC32C,None", "None,CRC32C"},
	"node.conn[0].iscsi.DataDigest":         {"None", "CRC32C", "CRC32C,None", "None,CRC32C"},
}

// yesNoKeys take Yes or No.
var yesNoKeys = map[string]bool{
	"node.leading_login": true, "node.session.iscsi.FastAbort": true, "node.session.iscsi.InitialR2T": true,
	"node.session.iscsi.ImmediateData": true, "node.conn[0].iscsi.IFMarker": true, "node.conn[0].iscsi.OFMarker": true,
	"node.session.autoscan_en": true, "discovery.sendtargets.use_discoveryd": true,
}

// numberKeys take a decimal integer (negative allowed where stock allows it).
var numberKeys = map[string]bool{
	"node.tpgt": true, "node.discovery_port": true, "node.session.initial_cmdsn": true,
	"node.session.initial_login_retry_max": true, "node.session.xmit_thread_priority": true,
	"node.session.cmds_max": true, "node.session.queue_depth": true, "node.session.nr_sessions": true,
	"node.session.timeo.replacement_timeout": true, "node.session.err_timeo.abort_timeout": true,
	"node.session.err_timeo.lu_reset_timeout": true, "node.session.err_timeo.tgt_reset_timeout": true,
	"node.session.err_timeo.host_reset_timeout": true, "node.session.iscsi.FirstBurstLength": true,
	"node.session.iscsi.MaxBurstLength": true, "node.session.iscsi.DefaultTime2Retain": true,
	"node.session.iscsi.DefaultTime2Wait": true, "node.session.iscsi.MaxConnections": true,
	"node.session.iscsi.MaxOutstandingR2T": true, "node.session.iscsi.ERL": true, "node.session.reopen_max": true,
	"node.conn[0].port": true, "node.conn[0].tcp.window_size": true, "node.conn[0].tcp.type_of_service": true,
	"node.conn[0].timeo.logout_timeout": true, "node.conn[0].timeo.login_timeout": true,
	"node.conn[0].timeo.auth_timeout": true, "node.conn[0].timeo.noop_out_interval": true,
	"node.conn[0].timeo.noop_out_timeout": true, "node.conn[0].iscsi.MaxXmitDataSegmentLength": true,
	"node.conn[0].iscsi.MaxRecvDataSegmentLength": true, "discovery.sendtargets.port": true,
	"discovery.sendtargets.timeo.login_timeout": true, "discovery.sendtargets.discoveryd_poll_inval": true,
	"discovery.sendtargets.reopen_max": true, "discovery.sendtargets.timeo.auth_timeout": true,
	"discovery.sendtargets.timeo.active_timeout": true, "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength": true,
}

// canonical checks value against key's type and returns it spelled as stock
// spells it. Yes/No and choices are accepted in any case but stored as stock
// writes them ("chap" becomes "CHAP"): stock reads a value it does not know as
// the default, so a record saying "chap" would log in without CHAP there.
func canonical(key, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	if len(value) > maxLine {
		return "", fmt.Errorf("%s: value longer than %d bytes", key, maxLine)
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		return "", fmt.Errorf("%s: value contains a line break or NUL", key)
	}
	cs, ok := choices[key]
	if yesNoKeys[key] {
		cs, ok = []string{"Yes", "No"}, true
	}
	if ok {
		for _, c := range cs {
			if strings.EqualFold(value, c) {
				return c, nil
			}
		}
		return "", fmt.Errorf("%s = %q: must be one of %s", key, value, strings.Join(cs, ", "))
	}
	if numberKeys[key] {
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return "", fmt.Errorf("%s = %q: must be a number", key, value)
		}
	}
	return value, nil
}
