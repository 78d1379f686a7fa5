package main

import (
	"encoding/json"

	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/scan"
)

// --json is goiscsiadm's own option, for programs that would otherwise parse
// iscsiadm's text: it applies to -m session (with or without -r), -m node
// (the listing), the discoveries (-m discovery -t st, -m discoverydb -D),
// --scan-lun and --remove-lun.
// Its output is one JSON object followed by a newline. The form is stable:
// fields are added, never renamed, removed or given another type. -P makes
// no difference. An empty listing is an empty array and exit 0, not the
// text listings' exit 21; errors are reported as without --json.
//
// Sessions (-m session --json):
//
//	{"sessions": [{
//	  "sid": 1,                          // number
//	  "transport": "tcp",                // "tcp" or "iser"
//	  "flash": false,                    // started by an offload HBA from flash
//	  "target": "iqn.2003-01.org.x:t1",
//	  "tpgt": 1,
//	  "address": "10.0.0.1", "port": 3260,                       // connected portal
//	  "persistent_address": "10.0.0.1", "persistent_port": 3260, // configured portal
//	  "iface": {"name": "default", "transport": "tcp", "initiator_name": "iqn...",
//	            "ip_address": "10.0.0.2", "hw_address": "", "netdev": ""},
//	  "connection_state": "LOGGED IN",   // daemon's view; "" when unknown
//	  "session_state": "LOGGED_IN",      // kernel's view; "" when unknown
//	  "internal_state": "NO CHANGE",     // daemon's recovery stage; "" when unknown
//	  "timeouts": {"recovery": 120, "target_reset": 30, "lun_reset": 30, "abort": 15},
//	  "chap": {"username": "", "password": "********", "username_in": "", "password_in": "********"},
//	  "negotiated": {"header_digest": "None", "data_digest": "None",
//	                 "max_recv_data_segment_length": 262144, "max_xmit_data_segment_length": 262144,
//	                 "first_burst_length": 65536, "max_burst_length": 262144,
//	                 "immediate_data": true, "initial_r2t": true, "max_outstanding_r2t": 1},
//	  "host": {"number": 2, "state": "running"},   // null when the SCSI host is not known
//	  "devices": [{"host": 2, "id": 0, "lun": 0, "disk": "sdb", "state": "running"}],
//	  "scan_policy": "auto",             // "auto", "lun0" or "manual"; "" when unknown
//	  "held_luns": [{"lun": 1, "reason": "removed by the host", "since": "2026-12-03T12:00:00Z"}]
//	}]}
//
// held_luns are the LUNs the host removed while the target still reports
// them, which no rescan adds back ([] when none).
//
// Timeouts and negotiated values the kernel does not report are null;
// unknown strings are "". Passwords are "********" unless -S is given, as in
// the text listing, so that the output does not tell whether one is set.
//
// Nodes (-m node --json) and discovery results (what a discovery found):
//
//	{"nodes": [{"target": "iqn.2003-01.org.x:t1", "address": "10.0.0.1",
//	            "port": 3260, "tpgt": 1, "iface": "default", "scan_policy": "manual"}]}
//
// with "tpgt": -1 when the record's tpgt is unknown, and "scan_policy" the
// record's effective policy ("" when unknown).
//
// --scan-lun N --json prints the scanned LUN and its multipath map (see
// initiator.ScannedLUN). --remove-lun N --json prints the removal's report,
// scan.Report, also when the removal failed (the exit status and the stderr
// line are those of the text form):
//
//	{"lun": 1,
//	 "maps": [{"name": "dm-0", "dev": "254:0", "dm_name": "mpatha", "uuid": "mpath-3600140...",
//	           "wwid": "3600140...", "slaves": ["sdb", "sdd"], "removed": true}],
//	 "paths": [{"hctl": "2:0:0:1", "block": "sdb", "dev": "8:16", "sid": 1,
//	            "target": "iqn...", "portal": "127.0.0.1:3260", "deleted": true}],
//	 "steps": [{"action": "flush", "object": "mpatha (dm-0)", "attempt": 1, "ok": true, "ms": 2.1}, ...],
//	 "removed": true,
//	 "failure": "in-use", "error": "...", "left": ["multipath map mpatha (dm-0)", ...],  // on failure
//	 "ms": 1234.5}
//
// Step actions are in-use, wait, flush, remove-map, verify-map, delete-path
// and verify-path; failures not-found, in-use, flush, device-mapper, sysfs
// and canceled.

// masked is how a password prints without -S.
const masked = "********"

type jsonIface struct {
	Name          string `json:"name"`
	Transport     string `json:"transport"`
	InitiatorName string `json:"initiator_name"`
	IPAddress     string `json:"ip_address"`
	HWAddress     string `json:"hw_address"`
	Netdev        string `json:"netdev"`
}

type jsonTimeouts struct {
	Recovery    *int `json:"recovery"`
	TargetReset *int `json:"target_reset"`
	LUNReset    *int `json:"lun_reset"`
	Abort       *int `json:"abort"`
}

type jsonCHAP struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	UsernameIn string `json:"username_in"`
	PasswordIn string `json:"password_in"`
}

type jsonNegotiated struct {
	HeaderDigest             string `json:"header_digest"`
	DataDigest               string `json:"data_digest"`
	MaxRecvDataSegmentLength *int   `json:"max_recv_data_segment_length"`
	MaxXmitDataSegmentLength *int   `json:"max_xmit_data_segment_length"`
	FirstBurstLength         *int   `json:"first_burst_length"`
	MaxBurstLength           *int   `json:"max_burst_length"`
	ImmediateData            *bool  `json:"immediate_data"`
	InitialR2T               *bool  `json:"initial_r2t"`
	MaxOutstandingR2T        *int   `json:"max_outstanding_r2t"`
}

type jsonHost struct {
	Number int    `json:"number"`
	State  string `json:"state"`
}

type jsonDevice struct {
	Host  int    `json:"host"`
	ID    int    `json:"id"`
	LUN   uint64 `json:"lun"`
	Disk  string `json:"disk"`
	State string `json:"state"`
}

type jsonSession struct {
	SID               int            `json:"sid"`
	Transport         string         `json:"transport"`
	Flash             bool           `json:"flash"`
	Target            string         `json:"target"`
	TPGT              int            `json:"tpgt"`
	Address           string         `json:"address"`
	Port              int            `json:"port"`
	PersistentAddress string         `json:"persistent_address"`
	PersistentPort    int            `json:"persistent_port"`
	Iface             jsonIface      `json:"iface"`
	ConnState         string         `json:"connection_state"`
	SessionState      string         `json:"session_state"`
	InternalState     string         `json:"internal_state"`
	Timeouts          jsonTimeouts   `json:"timeouts"`
	CHAP              jsonCHAP       `json:"chap"`
	Negotiated        jsonNegotiated `json:"negotiated"`
	Host              *jsonHost      `json:"host"`
	Devices           []jsonDevice   `json:"devices"`
	ScanPolicy        string         `json:"scan_policy"`
	HeldLUNs          []scan.HeldLUN `json:"held_luns"`
}

type jsonNode struct {
	Target     string `json:"target"`
	Address    string `json:"address"`
	Port       int    `json:"port"`
	TPGT       int    `json:"tpgt"`
	Iface      string `json:"iface"`
	ScanPolicy string `json:"scan_policy"`
}

// timeout is a timeout for JSON: null when unknown (negative).
func timeout(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}

// SessionsJSON is -m session --json; see the schema above.
func SessionsJSON(sessions []initiator.Session, showSecrets bool) string {
	out := struct {
		Sessions []jsonSession `json:"sessions"`
	}{Sessions: []jsonSession{}}
	for _, s := range sessions {
		chap := jsonCHAP{Username: s.CHAP.Username, Password: masked, UsernameIn: s.CHAP.UsernameIn, PasswordIn: masked}
		if showSecrets {
			chap.Password, chap.PasswordIn = s.CHAP.Password, s.CHAP.PasswordIn
		}
		i := s.Iface
		js := jsonSession{
			SID: s.SID, Transport: s.Transport, Flash: s.Flash, Target: s.TargetName, TPGT: s.TPGT,
			Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
			Iface: jsonIface{Name: i.Name, Transport: i.Transport, InitiatorName: i.InitiatorName, IPAddress: i.IPAddress,
				HWAddress: i.HWAddress, Netdev: i.Netdev},
			ConnState: s.ConnState, SessionState: s.SessionState, InternalState: s.InternalState,
			Timeouts: jsonTimeouts{
				Recovery:    timeout(s.Timeouts.Recovery),
				TargetReset: timeout(s.Timeouts.TargetReset),
				LUNReset:    timeout(s.Timeouts.LUNReset),
				Abort:       timeout(s.Timeouts.Abort),
			},
			CHAP:       chap,
			Devices:    []jsonDevice{},
			ScanPolicy: s.ScanPolicy,
			HeldLUNs:   append([]scan.HeldLUN{}, s.HeldLUNs...),
		}
		if n := s.Params; n != nil {
			js.Negotiated = jsonNegotiated{
				HeaderDigest: n.HeaderDigest, DataDigest: n.DataDigest,
				MaxRecvDataSegmentLength: &n.MaxRecvDataSegmentLength, MaxXmitDataSegmentLength: &n.MaxXmitDataSegmentLength,
				FirstBurstLength: &n.FirstBurstLength, MaxBurstLength: &n.MaxBurstLength,
				ImmediateData: &n.ImmediateData, InitialR2T: &n.InitialR2T, MaxOutstandingR2T: &n.MaxOutstandingR2T,
			}
		}
		if s.Host != nil {
			js.Host = &jsonHost{Number: s.Host.Number, State: s.Host.State}
		}
		for _, d := range s.Devices {
			js.Devices = append(js.Devices, jsonDevice{Host: d.Host, ID: d.Target, LUN: d.LUN, Disk: d.Block, State: d.State})
		}
		out.Sessions = append(out.Sessions, js)
	}
	return marshal(out)
}

// NodesJSON is -m node --json, and what a discovery found with --json; see
// the schema above.
func NodesJSON(nodes []NodeSummary) string {
	out := struct {
		Nodes []jsonNode `json:"nodes"`
	}{Nodes: []jsonNode{}}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, jsonNode(n))
	}
	return marshal(out)
}

// marshal is v as indented JSON and a newline. The error is dropped
// because plain structs of strings, numbers and booleans always encode
// (invalid UTF-8 becomes U+FFFD).
func marshal(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b) + "\n"
}
