package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/session"
)

// Node is a node record decoded for a login: every value checked, typed, and
// in range. It is what goiscsid logs in with, whoever asked for the login
// (goiscsiadm, stock iscsiadm, a boot table).
type Node struct {
	// Target is node.name.
	Target string
	// Address and Port are node.conn[0].address and .port: the persistent
	// portal, which udev's by-path names use.
	Address string
	Port    int
	// TPGT is node.tpgt, -1 when unknown.
	TPGT  int
	Iface Iface
	// InitiatorName is the iface's iface.initiatorname, else the host's
	// (initiatorname.iscsi).
	InitiatorName string
	// Startup is node.startup: manual, automatic or onboot.
	Startup string
	// DiscoveryType is node.discovery_type (send_targets, static, fw, ...).
	DiscoveryType string
	Auth          session.Auth
	// Operational are the values proposed at login.
	Operational session.Operational
	Timeouts    Timeouts
	// CmdsMax and QueueDepth are node.session.cmds_max and .queue_depth.
	CmdsMax    uint16
	QueueDepth uint16
	// NrSessions is node.session.nr_sessions: how many sessions a login of
	// the record makes (at least one, as goiscsiadm has always counted it).
	NrSessions int
	// LoginRetries is node.session.initial_login_retry_max: how many login
	// timeouts a first login may take before it is given up.
	LoginRetries int
	// Scan and AutoscanEn are node.session.scan (auto or manual) and
	// node.session.autoscan_en; package scan combines them into a policy.
	Scan       string
	AutoscanEn bool
}

// Iface is an iface record, or the iface part of a node record: which
// transport a session uses and where its connections leave the host.
type Iface struct {
	// Name is iface.iscsi_ifacename ("default" for the built-in tcp iface).
	Name string
	// Transport is iface.transport_name: tcp or iser.
	Transport string
	// Netdev binds the connection to a network interface
	// (iface.net_ifacename).
	Netdev string
	// HWAddress is iface.hwaddress: the netdev with this MAC address.
	HWAddress string
	// IPAddress is iface.ipaddress.
	IPAddress string
	// InitiatorName is iface.initiatorname, which overrides the host's.
	InitiatorName string
}

// Binding is where the iface's connections leave the host, for netif.Netdev.
func (i Iface) Binding() netif.Binding {
	return netif.Binding{Transport: i.Transport, HWAddress: i.HWAddress, Netdev: i.Netdev, IPAddress: i.IPAddress}
}

// Timeouts are node.session.timeo.*, node.session.err_timeo.*,
// node.session.reopen_max and node.conn[0].timeo.* of a record.
type Timeouts struct {
	// Login bounds a connect plus the whole login phase; Logout the logout.
	Login  time.Duration
	Logout time.Duration
	// Replacement is the kernel's recovery_tmo in seconds: how long it
	// holds I/O while the connection is down (negative: for ever).
	Replacement int
	// NoopInterval is seconds between the kernel's pings (0: none);
	// NoopTimeout how long before a ping counts as lost.
	NoopInterval int
	NoopTimeout  int
	// Abort, LUReset and TgtReset are the SCSI error handler's timeouts in
	// seconds.
	Abort    int
	LUReset  int
	TgtReset int
	// ReopenMax bounds relogin attempts after a connection error (0: for
	// ever, as open-iscsi's node.session.reopen_max).
	ReopenMax int
}

// DefaultTimeouts are the values of the iscsid.conf open-iscsi ships.
func DefaultTimeouts() Timeouts {
	return Timeouts{Login: 15 * time.Second, Logout: 15 * time.Second, Replacement: 120,
		NoopInterval: 5, NoopTimeout: 5, Abort: 15, LUReset: 30, TgtReset: 30}
}

// KeyError is a record value that cannot be used; its message names the key.
type KeyError struct {
	Key, Value, Why string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("node record: %s = %q: %s", e.Key, e.Value, e.Why)
}

// NodeRecordFrom returns the node record that keys describe (open-iscsi key =
// value pairs, as goiscsid receives them): keys it lacks take cfg's node.*
// values (cfg may be nil), then stock's built-in defaults. A key no node
// record has, or a value that does not suit its key, is an error naming both.
func NodeRecordFrom(keys map[string]string, cfg *Config) (*Record, error) {
	r := newRecord(NodeKind)
	r.applyConfig(cfg)
	for k, v := range keys {
		if err := r.Set(k, v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Node decodes a node record for a login. initiatorName is the host's
// (initiatorname.iscsi), used unless the record's iface names its own. The
// error, a *KeyError, names the first value that cannot be used: a value the
// record's types allow but a login cannot (no target name, a port of 0, a
// MaxBurstLength above RFC 7143's limit, a login timeout of 0).
func (r *Record) Node(initiatorName string) (Node, error) {
	d := nodeDecoder{r: r}
	n := Node{
		Target:        d.required("node.name", "a target name is required"),
		Address:       d.required("node.conn[0].address", "a portal address is required"),
		Port:          d.intIn("node.conn[0].port", 1, 65535),
		TPGT:          d.intIn("node.tpgt", -1, 65535),
		Iface:         r.Iface(),
		Startup:       r.Get("node.startup"),
		DiscoveryType: r.Get("node.discovery_type"),
		CmdsMax:       uint16(d.intIn("node.session.cmds_max", 1, 65535)),
		QueueDepth:    uint16(d.intIn("node.session.queue_depth", 1, 65535)),
		NrSessions:    max(d.int("node.session.nr_sessions"), 1),
		LoginRetries:  d.intIn("node.session.initial_login_retry_max", 0, math.MaxInt32),
		Scan:          r.Get("node.session.scan"),
		AutoscanEn:    r.Get("node.session.autoscan_en") != "No",
	}
	n.InitiatorName = n.Iface.InitiatorName
	if n.InitiatorName == "" {
		n.InitiatorName = initiatorName
	}
	if n.InitiatorName == "" && d.err == nil {
		d.err = &KeyError{"iface.initiatorname", "", "no initiator name: set InitiatorName in /etc/iscsi/initiatorname.iscsi"}
	}

	n.Auth.Method = session.AuthNone
	if r.Get("node.session.auth.authmethod") == "CHAP" {
		n.Auth = session.Auth{
			Method:     session.AuthCHAP,
			Username:   r.Get("node.session.auth.username"),
			Password:   session.Secret(r.Get("node.session.auth.password")),
			UsernameIn: r.Get("node.session.auth.username_in"),
			PasswordIn: session.Secret(r.Get("node.session.auth.password_in")),
		}
		// The record's list, as stock offers it; the table's type already
		// refused names that are not algorithms.
		if algs, err := session.ParseCHAPAlgorithms(r.Get("node.session.auth.chap_algs")); err == nil {
			n.Auth.Algorithms = algs
		}
	}

	op := session.Operational{
		HeaderDigest:             r.Get("node.conn[0].iscsi.HeaderDigest"),
		DataDigest:               r.Get("node.conn[0].iscsi.DataDigest"),
		MaxRecvDataSegmentLength: d.key32("node.conn[0].iscsi.MaxRecvDataSegmentLength"),
		MaxBurstLength:           d.key32("node.session.iscsi.MaxBurstLength"),
		FirstBurstLength:         d.key32("node.session.iscsi.FirstBurstLength"),
		InitialR2T:               r.Get("node.session.iscsi.InitialR2T") == "Yes",
		ImmediateData:            r.Get("node.session.iscsi.ImmediateData") == "Yes",
		MaxOutstandingR2T:        d.key32("node.session.iscsi.MaxOutstandingR2T"),
		DefaultTime2Wait:         d.key32("node.session.iscsi.DefaultTime2Wait"),
		DefaultTime2Retain:       d.key32("node.session.iscsi.DefaultTime2Retain"),
	}
	// 0 lets the target's MaxRecvDataSegmentLength alone decide.
	op.MaxXmitDataSegmentLength = uint32(d.intIn("node.conn[0].iscsi.MaxXmitDataSegmentLength", 0, math.MaxInt32))
	n.Operational = op

	// A login or logout without a bound would wait for ever on a target that
	// never answers.
	sec := func(key string) time.Duration { return time.Duration(d.intIn(key, 1, math.MaxInt32)) * time.Second }
	n.Timeouts = Timeouts{
		Login:        sec("node.conn[0].timeo.login_timeout"),
		Logout:       sec("node.conn[0].timeo.logout_timeout"),
		Replacement:  d.int("node.session.timeo.replacement_timeout"),
		NoopInterval: d.intIn("node.conn[0].timeo.noop_out_interval", 0, math.MaxInt32),
		NoopTimeout:  d.intIn("node.conn[0].timeo.noop_out_timeout", 0, math.MaxInt32),
		Abort:        d.intIn("node.session.err_timeo.abort_timeout", 0, math.MaxInt32),
		LUReset:      d.intIn("node.session.err_timeo.lu_reset_timeout", 0, math.MaxInt32),
		TgtReset:     d.intIn("node.session.err_timeo.tgt_reset_timeout", 0, math.MaxInt32),
		ReopenMax:    d.intIn("node.session.reopen_max", 0, math.MaxInt32),
	}
	return n, d.err
}

// Iface returns the iface part of a node record, or an iface record.
func (r *Record) Iface() Iface {
	name := r.Get("iface.iscsi_ifacename")
	if name == "" {
		name = "default"
	}
	return Iface{Name: name, Transport: r.Get("iface.transport_name"), Netdev: r.Get("iface.net_ifacename"),
		HWAddress: r.Get("iface.hwaddress"), IPAddress: r.Get("iface.ipaddress"), InitiatorName: r.Get("iface.initiatorname")}
}

// nodeDecoder reads a record's values, keeping the first error.
type nodeDecoder struct {
	r   *Record
	err error
}

func (d *nodeDecoder) fail(key, why string) {
	if d.err == nil {
		d.err = &KeyError{key, d.r.Get(key), why}
	}
}

func (d *nodeDecoder) required(key, why string) string {
	v := d.r.Get(key)
	if v == "" {
		d.fail(key, why)
	}
	return v
}

// int reads a numeric key; the record's table already made it a number, or
// empty for the default.
func (d *nodeDecoder) int(key string) int {
	v := d.r.Get(key)
	if v == "" {
		v = d.r.kind.layout().info[key].def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		d.fail(key, "not a number")
	}
	return n
}

// intIn is int for a value that must lie in lo..hi, where it is used as a
// narrower type or multiplied into a duration.
func (d *nodeDecoder) intIn(key string, lo, hi int) int {
	n := d.int(key)
	if n < lo || n > hi {
		d.fail(key, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
	return n
}

// key32 reads node.session.iscsi.K or node.conn[0].iscsi.K, which must lie in
// the range RFC 7143 gives K: a target refuses a proposal outside it.
func (d *nodeDecoder) key32(key string) uint32 {
	lo, hi, _ := session.KeyRange(key[strings.LastIndexByte(key, '.')+1:])
	return uint32(d.intIn(key, int(lo), int(hi)))
}

// BindIface gives node record r the settings of iface record iface, as stock's
// iface_copy does when a record is made with -I or its iface changes: every
// iface.* key a node record has, but the name, which is part of the record's
// identity.
func (r *Record) BindIface(iface *Record) {
	for _, k := range iface.kind.layout().show {
		if k != "iface.iscsi_ifacename" && r.Has(k) {
			r.set(k, iface.vals[k])
		}
	}
}
