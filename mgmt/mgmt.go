// Package mgmt is goiscsid's management API: how goiscsiadm asks the daemon to log
// in, log out, list sessions and scan.
//
// One connection carries one request and one response, each a single line of
// JSON on a unix socket that only root may use (the server checks the peer's
// credentials). Every request and response carries the protocol Version; a
// daemon and a client that disagree answer with a clear error instead of
// hanging, which is the failure mode of open-iscsi's unversioned IPC when
// iscsiadm and iscsid come from different releases.
package mgmt

import (
	"fmt"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan"
)

// Version is the protocol version this package speaks.
const Version = 1

// DefaultSocket is where goiscsid listens.
const DefaultSocket = "/run/goiscsid/goiscsid.sock"

// Op names a request.
type Op string

// Operations.
const (
	// OpStatus asks for the daemon's version and state.
	OpStatus Op = "status"
	// OpLogin logs in to one node record; the response carries the session.
	OpLogin Op = "login"
	// OpLogout logs out of session SID.
	OpLogout Op = "logout"
	// OpSessions lists the daemon's sessions.
	OpSessions Op = "sessions"
	// OpStats returns the kernel's statistics of session SID.
	OpStats Op = "stats"
	// OpScan scans session SID's SCSI host: exactly LUN when set, else the
	// whole target (iscsiadm -m session -r SID --rescan).
	OpScan Op = "scan"
	// OpUpdate changes the scan policy of live session SID: Record holds
	// node.session.scan and/or node.session.autoscan_en.
	OpUpdate Op = "update"
	// OpRemoveLUN removes LUN from session SID, or from every session to
	// Target when SID is 0, with the multipath map above it (scan.Remover);
	// the response's Removal says what was done, also when it failed.
	OpRemoveLUN Op = "remove-lun"
	// OpStop ends the daemon once the reply is sent; its sessions stay with
	// the kernel for the next daemon to take over (iscsiadm -k 0).
	OpStop Op = "stop"
	// OpHealth returns the health of session SID's path, or of every
	// session's when SID is 0: the daemon's measurements (TCP_INFO,
	// GET_STATS, recoveries, logins…) taken afresh, and its verdict under
	// the goiscsi.health.* thresholds of iscsid.conf. Added within protocol
	// version 1: a daemon without it answers InvalidMgmtReq, "unknown
	// request".
	OpHealth Op = "health"
	// OpEvents subscribes to the daemon's events: the reply is a stream of
	// Responses, each with one Event, until the client closes the
	// connection, the daemon stops, or the daemon drops the subscriber for
	// falling behind (its last Event is then EventLost). Added within
	// protocol version 1: a daemon without it answers InvalidMgmtReq.
	OpEvents Op = "events"
	// OpDiscover runs one SendTargets discovery attempt through an iface
	// whose transport makes its connections in the kernel (iser): there
	// is no socket for goiscsiadm to talk over, so the daemon runs a
	// kernel Discovery session. Record holds the discovery record's keys
	// (discovery.sendtargets.address, .port, .auth.*, .timeo.*, .iscsi.*)
	// and the iface's (iface.*); the response carries Targets. A portal
	// that could not be reached fails with code 4 (ISCSI_ERR_TRANS), which
	// the caller may try again.
	OpDiscover Op = "discover"
)

// DiscoveredTarget is a target an OpDiscover found, with its portals.
type DiscoveredTarget struct {
	Name    string             `json:"name"`
	Portals []DiscoveredPortal `json:"portals"`
}

// DiscoveredPortal is one TargetAddress of a DiscoveredTarget.
type DiscoveredPortal struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
	TPGT    int    `json:"tpgt"`
}

// EventKind names what happened in an Event.
type EventKind string

// Event kinds.
const (
	// EventLoggedIn: a login made session SID (State LOGGED_IN).
	EventLoggedIn EventKind = "logged_in"
	// EventLoggedOut: session SID ended by a logout.
	EventLoggedOut EventKind = "logged_out"
	// EventConnError: the kernel reported the connection of session SID
	// failed (Detail names the error); recovery follows.
	EventConnError EventKind = "conn_error"
	// EventRecovering: recovery of session SID began (Detail: its cause).
	EventRecovering EventKind = "recovering"
	// EventRecovered: session SID logged in again after a recovery.
	EventRecovered EventKind = "recovered"
	// EventFailed: recovery of session SID gave up (Detail: why).
	EventFailed EventKind = "failed"
	// EventLUNsChanged: the target of session SID reported REPORTED LUNS
	// DATA HAS CHANGED; what was scanned follows the scan policy.
	EventLUNsChanged EventKind = "luns_changed"
	// EventLUNRemoved: LUNs were removed from session SID by a removal
	// request (OpRemoveLUN).
	EventLUNRemoved EventKind = "lun_removed"
	// EventLost: the subscriber fell behind and events were dropped; the
	// stream ends. Read the sessions again and subscribe anew.
	EventLost EventKind = "lost"
)

// Event is something that happened to a session, as goiscsid saw it.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	SID  int       `json:"sid,omitempty"`
	// Target, Portal (ADDR:PORT,TPGT) and Iface name the session's path.
	Target string `json:"target,omitempty"`
	Portal string `json:"portal,omitempty"`
	Iface  string `json:"iface,omitempty"`
	// State is the session's state after the event (LOGGED_IN, FAILED, ...).
	State string `json:"state,omitempty"`
	// LUNs are the LUNs an EventLUNRemoved took.
	LUNs []uint64 `json:"luns,omitempty"`
	// Detail says more in words: the connection error, the recovery's
	// cause, the error that ended it.
	Detail string `json:"detail,omitempty"`
}

// Request is one request to the daemon.
type Request struct {
	Version int `json:"version"`
	Op      Op  `json:"op"`
	// Record is the node record to log in to, as open-iscsi key = value
	// pairs (node.name, node.conn[0].address, node.session.auth.*, ...), for
	// OpLogin; the discovery and iface records' pairs for OpDiscover.
	Record map[string]string `json:"record,omitempty"`
	// SID selects a session for OpLogout, OpStats, OpScan, OpRemoveLUN and
	// OpHealth.
	SID int `json:"sid,omitempty"`
	// Target selects every session to a target for OpRemoveLUN.
	Target string `json:"target,omitempty"`
	// LUN is the one LUN an OpScan adds or an OpRemoveLUN removes.
	LUN *uint64 `json:"lun,omitempty"`
	// Force removes a LUN that is in use (OpRemoveLUN; scan.Remover.Force).
	Force bool `json:"force,omitempty"`
	// Tries bounds an OpRemoveLUN's attempts while the LUN is held open;
	// 0 means scan.DefaultTries.
	Tries int `json:"tries,omitempty"`
	// Another asks OpLogin for one more session even when the record has
	// sessions: open-iscsi's session.multiple, which iscsiadm sets for
	// node.session.nr_sessions above 1 and for -m session -r SID -o new.
	Another bool `json:"another,omitempty"`
	// NoWait has the daemon reply as soon as it has the request, then carry
	// it out (iscsiadm -W): the reply says only that it was taken, and
	// what becomes of it goes to the daemon's log.
	NoWait bool `json:"no_wait,omitempty"`
	// ShowSecrets asks for CHAP passwords in session listings (iscsiadm -S).
	ShowSecrets bool `json:"show_secrets,omitempty"`
	// Brief asks OpSessions for each session's Brief part only, what a flat
	// `-m session` prints: a third of the reply to encode and decode.
	Brief bool `json:"brief,omitempty"`
}

// Response is the daemon's answer. Error is set when the request failed, with
// iscsiadm's exit code for the failure (15 session exists, 24 authentication
// failed, ...) so that goiscsiadm exits with it unchanged; the other fields
// belong to the request's Op.
type Response struct {
	Version  int             `json:"version"`
	Error    *iscsierr.Error `json:"error,omitempty"`
	Status   *Status         `json:"status,omitempty"`
	Session  *Session        `json:"session,omitempty"`
	Sessions []Session       `json:"sessions,omitempty"`
	Stats    *Stats          `json:"stats,omitempty"`
	// Removal is OpRemoveLUN's account of what it did.
	Removal *scan.Report `json:"removal,omitempty"`
	// Health is OpHealth's answer, one Snapshot per session in SID order.
	Health []health.Snapshot `json:"health,omitempty"`
	// Event is one event of an OpEvents stream.
	Event *Event `json:"event,omitempty"`
	// Targets is OpDiscover's answer.
	Targets []DiscoveredTarget `json:"targets,omitempty"`
}

// RemovalError is the error of a LUN removal that did not finish, nil for one
// that did, with iscsiadm's codes in their stock meanings:
//
//	21 ISCSI_ERR_NO_OBJS_FOUND  no session has the LUN: nothing to remove
//	28 ISCSI_ERR_BUSY           in use: mounted, stacked on, or held open
//	                            through every try
//	29 ISCSI_ERR_AGAIN          flushing failed or did not finish (all paths
//	                            down?): a retry may succeed
//	 9 ISCSI_ERR_INTERNAL       the device-mapper refused otherwise, or the
//	                            map was still there after its removal
//	22 ISCSI_ERR_SYSFS_LOOKUP   sysfs could not be read, a SCSI delete
//	                            failed, or the device stayed
//	33 ISCSI_ERR_REQ_TIMEDOUT   the request's time ran out
//
// The message ends with what is left.
func RemovalError(rep *scan.Report) *iscsierr.Error {
	if rep.Removed {
		return nil
	}
	code := iscsierr.Internal
	switch rep.Failure {
	case scan.FailNotFound:
		code = iscsierr.NoObjsFound
	case scan.FailInUse:
		code = iscsierr.Busy
	case scan.FailFlush:
		code = iscsierr.Again
	case scan.FailSysfs:
		code = iscsierr.SysfsLookup
	case scan.FailCanceled:
		code = iscsierr.ReqTimedOut
	}
	msg := fmt.Sprintf("could not remove LUN %d: %s", rep.LUN, rep.Error)
	if len(rep.Left) > 0 {
		msg += "; left: " + strings.Join(rep.Left, ", ")
	}
	return &iscsierr.Error{Code: code, Message: msg}
}

// Status describes the daemon.
type Status struct {
	Version  string `json:"version"` // goiscsid's release
	PID      int    `json:"pid"`
	Sessions int    `json:"sessions"`
}

// Session is what the daemon knows of one session: everything `iscsiadm -m
// session -P 3` prints apart from the SCSI devices, which come from sysfs.
type Session struct {
	SID               int    `json:"sid"`
	HostNo            int    `json:"host_no"`
	TargetName        string `json:"target_name"`
	TargetAlias       string `json:"target_alias,omitempty"`
	TPGT              int    `json:"tpgt"`
	Address           string `json:"address"`
	Port              int    `json:"port"`
	PersistentAddress string `json:"persistent_address"`
	PersistentPort    int    `json:"persistent_port"`
	Iface             string `json:"iface"`
	Transport         string `json:"transport"`
	InitiatorName     string `json:"initiator_name,omitempty"`
	LocalAddress      string `json:"local_address,omitempty"`
	// Netdev and HWAddress are what the daemon set as the session's host's
	// netdev and hwaddress.
	Netdev    string `json:"netdev,omitempty"`
	HWAddress string `json:"hwaddress,omitempty"`
	// ConnState is the connection's state as iscsiadm names it: "LOGGED IN",
	// "TRANSPORT WAIT", "IN LOGIN", ...
	ConnState string `json:"conn_state,omitempty"`
	// InternalState is the recovery stage: "NO CHANGE", "REOPEN", ...
	InternalState string `json:"internal_state,omitempty"`
	// ScanPolicy is the effective scan policy: "auto", "lun0" or "manual".
	ScanPolicy string `json:"scan_policy,omitempty"`
	// HeldLUNs are the LUNs the host removed while the target still
	// reports them, which no broad scan adds back.
	HeldLUNs []scan.HeldLUN `json:"held_luns,omitempty"`
	Timeouts Timeouts       `json:"timeouts,omitzero"`
	CHAP     CHAP           `json:"chap,omitzero"`
	Params   Negotiated     `json:"params,omitzero"`
}

// Brief is the part of s that names it: SID, host, target, portals, iface
// and transport.
func (s Session) Brief() Session {
	return Session{SID: s.SID, HostNo: s.HostNo, TargetName: s.TargetName, TPGT: s.TPGT,
		Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
		Iface: s.Iface, Transport: s.Transport}
}

// Timeouts are a session's error-handling timeouts in seconds.
type Timeouts struct {
	Recovery    int `json:"recovery"`
	TargetReset int `json:"target_reset"`
	LUNReset    int `json:"lun_reset"`
	Abort       int `json:"abort"`
}

// CHAP holds the session's CHAP names; passwords only when the request asked
// with ShowSecrets.
type CHAP struct {
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	UsernameIn string `json:"username_in,omitempty"`
	PasswordIn string `json:"password_in,omitempty"`
}

// Negotiated are the values the login settled.
type Negotiated struct {
	HeaderDigest             string `json:"header_digest"`
	DataDigest               string `json:"data_digest"`
	MaxRecvDataSegmentLength int    `json:"max_recv_data_segment_length"`
	MaxXmitDataSegmentLength int    `json:"max_xmit_data_segment_length"`
	FirstBurstLength         int    `json:"first_burst_length"`
	MaxBurstLength           int    `json:"max_burst_length"`
	ImmediateData            bool   `json:"immediate_data"`
	InitialR2T               bool   `json:"initial_r2t"`
	MaxOutstandingR2T        int    `json:"max_outstanding_r2t"`
}

// Stats are a session's counters as the kernel reports them (GET_STATS).
type Stats struct {
	TxDataOctets uint64            `json:"tx_data_octets"`
	RxDataOctets uint64            `json:"rx_data_octets"`
	Counters     map[string]uint64 `json:"counters"`
}
