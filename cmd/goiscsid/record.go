package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/session"
)

// record is a node record as goiscsiadm sends it: open-iscsi's key = value pairs.
// Keys it leaves out take the values of the iscsid.conf open-iscsi ships.
type record map[string]string

// recordError is a record value the daemon cannot use; its message names the key.
type recordError struct{ key, value, why string }

func (e *recordError) Error() string {
	return fmt.Sprintf("node record: %s = %q: %s", e.key, e.value, e.why)
}

func (r record) str(key, def string) string {
	if v, ok := r[key]; ok && v != "" && v != "<empty>" {
		return v
	}
	return def
}

func (r record) int(key string, def int) (int, error) {
	v := r.str(key, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &recordError{key, v, "not a number"}
	}
	return n, nil
}

// intIn is int for a value that must lie in lo..hi, where it is used as a
// narrower type or multiplied into a duration.
func (r record) intIn(key string, def, lo, hi int) (int, error) {
	n, err := r.int(key, def)
	if err == nil && (n < lo || n > hi) {
		err = &recordError{key, r[key], fmt.Sprintf("must be between %d and %d", lo, hi)}
	}
	return n, err
}

func (r record) uint32(key string, def uint32) (uint32, error) {
	n, err := r.int(key, int(def))
	if err == nil && n < 0 {
		err = &recordError{key, r[key], "must not be negative"}
	}
	return uint32(n), err
}

func (r record) yes(key string, def bool) (bool, error) {
	switch strings.ToLower(r.str(key, "")) {
	case "":
		return def, nil
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, &recordError{key, r[key], "must be Yes or No"}
}

// node turns the record into what a kernel session needs. initiatorName is
// /etc/iscsi/initiatorname.iscsi's, used unless the iface names its own.
func (r record) node(initiatorName, alias string) (session.Node, error) {
	var n session.Node
	var errs []error
	num := func(key string, def int) int {
		v, err := r.int(key, def)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	numIn := func(key string, def, lo, hi int) int {
		v, err := r.intIn(key, def, lo, hi)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	u32 := func(key string, def uint32) uint32 {
		v, err := r.uint32(key, def)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	// op32 reads node.session.iscsi.K or node.conn[0].iscsi.K, which must lie in
	// the range RFC 7143 gives K: a target refuses a proposal outside it.
	op32 := func(key string, def uint32) uint32 {
		v := u32(key, def)
		lo, hi, _ := session.KeyRange(key[strings.LastIndexByte(key, '.')+1:])
		if _, set := r[key]; set && (uint64(v) < lo || uint64(v) > hi) {
			errs = append(errs, &recordError{key, r[key], fmt.Sprintf("must be between %d and %d", lo, hi)})
		}
		return v
	}
	yes := func(key string, def bool) bool {
		v, err := r.yes(key, def)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	n.Login.TargetName = r.str("node.name", "")
	if n.Login.TargetName == "" {
		return n, &recordError{"node.name", "", "a target name is required"}
	}
	n.Login.InitiatorName = r.str("iface.initiatorname", initiatorName)
	if n.Login.InitiatorName == "" {
		return n, &recordError{"iface.initiatorname", "", "no initiator name: set InitiatorName in /etc/iscsi/initiatorname.iscsi"}
	}
	n.Login.InitiatorAlias = alias
	n.Address = r.str("node.conn[0].address", "")
	if n.Address == "" {
		return n, &recordError{"node.conn[0].address", "", "a portal address is required"}
	}
	n.Port = numIn("node.conn[0].port", session.DefaultPort, 1, 65535)
	n.TPGT = numIn("node.tpgt", -1, -1, 65535)
	n.Iface = r.str("iface.iscsi_ifacename", "default")
	n.Netdev = r.str("iface.net_ifacename", "")
	n.HWAddress = r.str("iface.hwaddress", "")
	n.CmdsMax = uint16(numIn("node.session.cmds_max", 128, 1, 65535))
	n.QueueDepth = uint16(numIn("node.session.queue_depth", 32, 1, 65535))

	switch m := r.str("node.session.auth.authmethod", "None"); strings.ToUpper(m) {
	case "NONE":
		n.Login.Auth.Method = session.AuthNone
	case "CHAP":
		n.Login.Auth = session.Auth{
			Method:     session.AuthCHAP,
			Username:   r.str("node.session.auth.username", ""),
			Password:   session.Secret(r.str("node.session.auth.password", "")),
			UsernameIn: r.str("node.session.auth.username_in", ""),
			PasswordIn: session.Secret(r.str("node.session.auth.password_in", "")),
		}
	default:
		errs = append(errs, &recordError{"node.session.auth.authmethod", m, "must be None or CHAP"})
	}

	op := session.DefaultOperational()
	digest := func(key, def string) string {
		switch v := r.str(key, def); v {
		case "None", "CRC32C", "CRC32C,None", "None,CRC32C":
			return v
		default:
			errs = append(errs, &recordError{key, v, "must be None, CRC32C, CRC32C,None or None,CRC32C"})
			return def
		}
	}
	op.HeaderDigest = digest("node.conn[0].iscsi.HeaderDigest", op.HeaderDigest)
	op.DataDigest = digest("node.conn[0].iscsi.DataDigest", op.DataDigest)
	op.MaxRecvDataSegmentLength = op32("node.conn[0].iscsi.MaxRecvDataSegmentLength", op.MaxRecvDataSegmentLength)
	op.MaxXmitDataSegmentLength = u32("node.conn[0].iscsi.MaxXmitDataSegmentLength", 0)
	op.MaxBurstLength = op32("node.session.iscsi.MaxBurstLength", op.MaxBurstLength)
	op.FirstBurstLength = op32("node.session.iscsi.FirstBurstLength", op.FirstBurstLength)
	op.InitialR2T = yes("node.session.iscsi.InitialR2T", op.InitialR2T)
	op.ImmediateData = yes("node.session.iscsi.ImmediateData", op.ImmediateData)
	op.MaxOutstandingR2T = op32("node.session.iscsi.MaxOutstandingR2T", op.MaxOutstandingR2T)
	op.DefaultTime2Wait = op32("node.session.iscsi.DefaultTime2Wait", op.DefaultTime2Wait)
	op.DefaultTime2Retain = op32("node.session.iscsi.DefaultTime2Retain", op.DefaultTime2Retain)
	n.Login.Operational = op

	to := session.DefaultTimeouts()
	// A login or logout without a bound would wait for ever on a target that
	// never answers (and a huge value overflows into none).
	sec := func(key string, def time.Duration) time.Duration {
		return time.Duration(numIn(key, int(def/time.Second), 1, math.MaxInt32)) * time.Second
	}
	to.Login = sec("node.conn[0].timeo.login_timeout", to.Login)
	to.Logout = sec("node.conn[0].timeo.logout_timeout", to.Logout)
	to.Replacement = num("node.session.timeo.replacement_timeout", to.Replacement)
	to.NoopInterval = num("node.conn[0].timeo.noop_out_interval", to.NoopInterval)
	to.NoopTimeout = num("node.conn[0].timeo.noop_out_timeout", to.NoopTimeout)
	to.Abort = num("node.session.err_timeo.abort_timeout", to.Abort)
	to.LUReset = num("node.session.err_timeo.lu_reset_timeout", to.LUReset)
	to.TgtReset = num("node.session.err_timeo.tgt_reset_timeout", to.TgtReset)
	to.ReopenMax = num("node.session.reopen_max", 0)
	n.Timeouts = to
	if len(errs) > 0 {
		return n, errs[0]
	}
	return n, nil
}

// loginRetries is node.session.initial_login_retry_max: how many login timeouts
// a first login may take before it is given up.
func (r record) loginRetries() (int, error) { return r.int("node.session.initial_login_retry_max", 8) }
