package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// Path health is goiscsid's (package health): it measures each session's
// connection (TCP_INFO of the socket it owns, the kernel's counters, every
// connection error, recovery and relogin) and judges it under the
// goiscsi.health.* thresholds of its iscsid.conf.
//
//	iscsiadm -m session [-r SID] --health [--json]
//
// prints one line per path, "OK" or "UNHEALTHY" with each problem on a line
// of its own, and exits 4 (ISCSI_ERR_TRANS, a transport problem) when a path
// is unhealthy, 21 when there are no sessions:
//
//	[sid: 1, target: iqn.2003-01.org.x:t1, portal: 10.0.0.1:3260,1, iface: default]: OK
//	[sid: 2, target: iqn.2003-01.org.x:t1, portal: 10.0.1.1:3260,2, iface: default]: UNHEALTHY
//		3.2% of segments retransmitted over the last 5 minutes (960 of 30000)
//		2 recoveries in the last hour (ISCSI_ERR_TCP_CONN_CLOSE (1020) ×2), 41 s without I/O
//
// --json prints {"health": [health.Snapshot...]}. -m session -s prints each
// path's figures (health.Snapshot.WriteText) under "goiscsi Path Health:"
// after all of stock's lines, and with --json {"stats": [sessionStats...]}.

// pathHealth is goiscsid's snapshot of session sid's path, nil when there is
// none to show (no goiscsid, or one without health): -s then prints stock's
// lines alone.
func (e *env) pathHealth(sid int) *health.Snapshot {
	snaps, err := e.c.Health(e.ctx, sid)
	if err != nil || len(snaps) != 1 {
		return nil
	}
	return &snaps[0]
}

// HealthText is the figures of one path as -s prints them after stock's
// lines: a heading, then the snapshot's text indented by a tab.
func HealthText(h *health.Snapshot) string {
	var b strings.Builder
	h.WriteText(&b)
	lines := strings.SplitAfter(strings.TrimSuffix(b.String(), "\n"), "\n")
	return "goiscsi Path Health:\n\t" + strings.Join(lines, "\t") + "\n"
}

// sessionStats is one session in -s --json: stock's counters and goiscsid's
// figures of its path (null without them).
type sessionStats struct {
	SID          int               `json:"sid"`
	Target       string            `json:"target"`
	Address      string            `json:"persistent_address"`
	Port         int               `json:"persistent_port"`
	TxDataOctets uint64            `json:"txdata_octets"`
	RxDataOctets uint64            `json:"rxdata_octets"`
	Counters     map[string]uint64 `json:"counters"`
	Health       *health.Snapshot  `json:"health"`
}

func sessionStatsOf(s initiator.Session, st *mgmt.Stats, h *health.Snapshot) sessionStats {
	return sessionStats{SID: s.SID, Target: s.TargetName, Address: s.PersistentAddress, Port: s.PersistentPort,
		TxDataOctets: st.TxDataOctets, RxDataOctets: st.RxDataOctets, Counters: st.Counters, Health: h}
}

// HealthVerdicts is --health's text: one line per path, its problems and
// notes indented below.
func HealthVerdicts(snaps []health.Snapshot) string {
	var b strings.Builder
	for _, s := range snaps {
		fmt.Fprintf(&b, "[sid: %d, target: %s, portal: %s, iface: %s]: ", s.SID, s.Target, s.Portal, s.Iface)
		if s.Verdict.Healthy {
			b.WriteString("OK\n")
		} else {
			b.WriteString("UNHEALTHY\n")
		}
		for _, p := range s.Verdict.Problems {
			fmt.Fprintf(&b, "\t%s\n", p)
		}
		for _, n := range s.Verdict.Notes {
			fmt.Fprintf(&b, "\tnote: %s\n", n)
		}
	}
	return b.String()
}

func (e *env) health(c *Command) iscsierr.Code {
	sid := max(c.SID, 0)
	snaps, err := e.c.Health(e.ctx, sid)
	if iscsierr.CodeOf(err) == iscsierr.SessNotFound {
		e.errorf("could not read session targetname: 5")
		return e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", sid)
	}
	if err != nil {
		return e.failWith(err)
	}
	if len(snaps) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No active sessions.")
	}
	if c.JSON {
		io.WriteString(e.stdout, marshal(map[string]any{"health": snaps}))
	} else {
		io.WriteString(e.stdout, HealthVerdicts(snaps))
	}
	bad := 0
	for _, s := range snaps {
		if !s.Verdict.Healthy {
			bad++
		}
	}
	if bad > 0 {
		return e.fail(iscsierr.Trans, "%d of %d %s unhealthy", bad, len(snaps), pathWord(len(snaps)))
	}
	return iscsierr.Success
}

func pathWord(n int) string {
	if n == 1 {
		return "path"
	}
	return "paths"
}
