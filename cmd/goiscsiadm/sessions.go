package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/scan"
)

// sessionFilter is the session selection of c's -T, -p and -I (-r is
// handled by the caller).
func sessionFilter(c *Command) initiator.NodeFilter { return filter(c) }

func sessionPortal(s initiator.Session) string {
	return fmt.Sprintf("[sid: %d, target: %s, portal: %s,%d]", s.SID, s.TargetName, s.PersistentAddress, s.PersistentPort)
}

// selectSessions returns the sessions c names: -r SID, or the node selectors.
func (e *env) selectSessions(c *Command, opts initiator.ListOptions) ([]initiator.Session, iscsierr.Code) {
	all, err := e.c.Sessions(e.ctx, opts)
	if err != nil {
		return nil, e.failWith(err)
	}
	if c.SID > 0 {
		for _, s := range all {
			if s.SID == c.SID {
				return []initiator.Session{s}, iscsierr.Success
			}
		}
		e.errorf("could not read session targetname: 5")
		return nil, e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", c.SID)
	}
	return e.c.SelectSessions(e.ctx, all, sessionFilter(c)), iscsierr.Success
}

// ---- login and logout

func (e *env) login(c *Command) iscsierr.Code {
	var recs []*conf.Record
	var err error
	if c.Action == ActLoginAll {
		var all []*conf.Record
		all, err = e.c.Nodes()
		for _, r := range all {
			if startupMatches(r, c.StartupMode) {
				recs = append(recs, r)
			}
		}
	} else {
		recs, err = e.c.FindNodes(e.ctx, filter(c))
	}
	if err != nil {
		return e.failWith(err)
	}
	if len(recs) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No records found")
	}
	return e.loginRecords(recs)
}

// startupMatches is stock's match_startup_mode: -L/-U mode against the
// record's node.startup or, failing that, its node.conn[0].startup (so
// "manual" also picks records whose connection startup is the default
// manual, as in stock).
func startupMatches(r *conf.Record, mode string) bool {
	return mode == "all" || r.Get("node.startup") == mode || r.Get("node.conn[0].startup") == mode
}

func loginPortal(id conf.NodeID) string {
	return fmt.Sprintf("[iface: %s, target: %s, portal: %s,%d]", id.Iface, id.Target, id.Address, id.Port)
}

// loginRecords logs in to the records as stock's iscsi_login_portals does: a
// record that already has its sessions gets a warning and no request (exit
// 15); the others are announced ("Logging in to ...", once per session
// missing of node.session.nr_sessions) and asked of the daemon all at once,
// and each result is printed as it comes, in record order. The exit status is
// the first error, the warnings' 15 before any login failure, as in stock; any
// error ends with "Could not log into all portals". With -W the requests are
// only handed to the daemon: no results are printed.
func (e *env) loginRecords(recs []*conf.Record) iscsierr.Code {
	code := e.loginEach(recs)
	if code != iscsierr.Success {
		e.errorf("Could not log into all portals")
	}
	return code
}

// loginRequest is one session loginEach asks for.
type loginRequest struct {
	r    *conf.Record
	opts initiator.LoginOptions
}

// loginEach is loginRecords without its closing line: stock's
// iscsi_login_portal for each record.
func (e *env) loginEach(recs []*conf.Record) iscsierr.Code {
	counts, err := e.c.SessionCounts(e.ctx)
	if err != nil {
		// Not knowing the sessions, a login could make a second one.
		return e.failWith(err)
	}
	code := iscsierr.Success
	var todo []loginRequest
	for _, r := range recs {
		id := r.ID()
		want, _ := strconv.Atoi(r.Get("node.session.nr_sessions"))
		want = max(want, 1)
		have := counts[id]
		if have >= want {
			e.errorf("%s: %d session%s requested, but %d already present.", id.Iface, want, plural(want), have)
			if code == iscsierr.Success {
				code = iscsierr.SessExists
			}
			continue
		}
		for range want - have {
			todo = append(todo, loginRequest{r, initiator.LoginOptions{Another: want > 1, NoWait: e.noWait}})
		}
	}
	return e.loginRequests(todo, code)
}

// loginRequests announces each request, sends them all at once and prints each
// result in order (none with -W); code is the status so far.
func (e *env) loginRequests(todo []loginRequest, code iscsierr.Code) iscsierr.Code {
	for _, l := range todo {
		multiple := ""
		if l.opts.Another {
			multiple = " (multiple)"
		}
		e.printf("Logging in to %s%s\n", loginPortal(l.r.ID()), multiple)
	}
	done := make([]chan error, len(todo))
	for i, l := range todo {
		done[i] = make(chan error, 1)
		go func() {
			_, err := e.c.Login(e.ctx, l.r, l.opts)
			done[i] <- err
		}()
	}
	for i, l := range todo {
		err := <-done[i]
		if err == nil {
			if !l.opts.NoWait {
				e.printf("Login to %s successful.\n", loginPortal(l.r.ID()))
			}
			continue
		}
		lc := iscsierr.CodeOf(err)
		e.errorf("Could not login to %s.", loginPortal(l.r.ID()))
		e.errorf("%s", lc.Reported())
		var ie *iscsierr.Error
		switch {
		case !errors.As(err, &ie):
		case lc == iscsierr.ISCSIDNotConn:
			e.errorf("%s", ie.Message) // where it looked for goiscsid
		case ie.Message != "":
			e.errorf("goiscsid: %s", ie.Message)
		}
		if code == iscsierr.Success {
			code = lc
		}
	}
	return code
}

// newSession logs in one more session to the node of the session that
// scopeToSession put in c, as stock's -m session -r SID -o new.
func (e *env) newSession(c *Command) iscsierr.Code {
	recs, err := e.c.FindNodes(e.ctx, filter(c))
	if err != nil {
		return e.failWith(err)
	}
	if len(recs) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No records found")
	}
	return e.loginRequests([]loginRequest{{recs[0], initiator.LoginOptions{Another: true, NoWait: e.noWait}}}, iscsierr.Success)
}

func (e *env) logout(c *Command) iscsierr.Code {
	sessions, code := e.selectSessions(c, initiator.ListOptions{Brief: true})
	if code != iscsierr.Success {
		return code
	}
	// A logout that names no session or target (-U, -m session -u, -m node
	// -u) never takes a session whose disks hold the root file system: a
	// host booted from iSCSI would lose its own files. Stock does log
	// those out. -r SID or -T still logs out what it names. A mount table
	// that cannot be read logs out nothing, saying why.
	if c.Action == ActLogoutAll || c.SID <= 0 && c.Target == "" {
		root, err := e.c.RootSessions()
		if err != nil {
			return e.fail(iscsierr.SysfsLookup, "cannot tell which sessions hold the root file system: %v", err)
		}
		sessions = slices.DeleteFunc(sessions, func(s initiator.Session) bool { return root[s.SID] })
	}
	if c.Action == ActLogoutAll {
		// Stock's __logout_by_startup: only sessions with a record, never
		// one whose record starts onboot or came from firmware, and the
		// record's startup must match. A database that cannot be read
		// logs out nothing, saying why.
		recs, err := e.c.Nodes()
		if err != nil {
			return e.failWith(err)
		}
		var keep []initiator.Session
		for _, s := range sessions {
			m := e.c.SelectNodes(e.ctx, recs, initiator.NodeFilter{Target: s.TargetName, Address: s.PersistentAddress,
				Port: s.PersistentPort, Iface: s.Iface.Name})
			if len(m) == 0 {
				continue
			}
			r := m[0]
			if r.Get("node.startup") == "onboot" || r.Get("node.discovery_type") == "fw" || !startupMatches(r, c.StartupMode) {
				continue
			}
			keep = append(keep, s)
		}
		sessions = keep
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No matching sessions found")
	}
	for _, s := range sessions {
		e.printf("Logging out of session %s\n", sessionPortal(s))
	}
	done := make([]chan error, len(sessions))
	for i, s := range sessions {
		done[i] = make(chan error, 1)
		go func() { done[i] <- e.c.Logout(e.ctx, s.SID) }()
	}
	code = iscsierr.Success
	for i, s := range sessions {
		if err := <-done[i]; err != nil {
			e.errorf("Could not logout of %s.", sessionPortal(s))
			e.errorf("%s", iscsierr.CodeOf(err).Reported())
			if code == iscsierr.Success {
				code = iscsierr.CodeOf(err)
			}
			continue
		}
		e.printf("Logout of %s successful.\n", sessionPortal(s))
	}
	if code != iscsierr.Success {
		e.errorf("Could not logout of all requested sessions")
	}
	return code
}

// ---- session listings

func (e *env) listSessions(c *Command) iscsierr.Code {
	// The flat list is the daemon's own, and the names of the sessions are
	// all it needs.
	flat := !c.JSON && c.PrintLevel <= 0
	all, err := e.c.Sessions(e.ctx, initiator.ListOptions{Brief: flat, Secrets: c.ShowSecrets})
	if err != nil {
		return e.failWith(err)
	}
	if c.SID > 0 {
		var one []initiator.Session
		for _, s := range all {
			if s.SID == c.SID {
				one = append(one, s)
			}
		}
		if len(one) == 0 {
			e.errorf("could not read session targetname: 5")
			return e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", c.SID)
		}
		all = one
	}
	// Stock lists sessions in the alphabetical order of their sysfs names,
	// "session<SID>": the order of the SIDs as strings.
	sort.Slice(all, func(i, j int) bool { return strconv.Itoa(all[i].SID) < strconv.Itoa(all[j].SID) })
	if c.JSON {
		if len(all) == 0 {
			return e.fail(iscsierr.NoObjsFound, "No active sessions.")
		}
		io.WriteString(e.stdout, SessionsJSON(all, c.ShowSecrets))
		return iscsierr.Success
	}
	return e.finish(SessionsText(all, c.PrintLevel, c.ShowSecrets, e.c.TransportClassVersion()))
}

func (e *env) listHosts(c *Command) iscsierr.Code {
	all, err := e.c.Sessions(e.ctx, initiator.ListOptions{})
	if err != nil {
		return e.failWith(err)
	}
	var hosts []HostSummary
	for _, s := range all {
		if s.Host == nil {
			continue
		}
		// Host mode shows what the host itself was given, and stock treats
		// "default" (an unbound iface) and "(null)" (never set) as nothing.
		given := func(name string) string {
			if v := e.c.HostAttr(s.Host.Number, name); v != "default" && v != "(null)" {
				return v
			}
			return ""
		}
		ip := s.Iface.IPAddress
		if ip == "default" || ip == "(null)" {
			ip = ""
		}
		hosts = append(hosts, HostSummary{Number: uint32(s.Host.Number), State: s.Host.State,
			Iface: conf.Iface{Transport: "tcp", InitiatorName: given("initiatorname"), IPAddress: ip,
				HWAddress: given("hwaddress"), Netdev: given("netdev")},
			Sessions: []initiator.Session{s}})
	}
	if len(hosts) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No iSCSI hosts.")
	}
	return e.finish(HostsText(hosts, c.PrintLevel, e.c.TransportClassVersion()))
}

// ---- scans and statistics

func (e *env) rescan(c *Command) iscsierr.Code {
	sessions, code := e.selectSessions(c, initiator.ListOptions{})
	if code != iscsierr.Success {
		return code
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No session found.")
	}
	for _, s := range sessions {
		e.printf("Rescanning session %s\n", sessionPortal(s))
		if err := e.c.Rescan(e.ctx, s); err != nil {
			return e.failWith(err)
		}
	}
	return iscsierr.Success
}

func (e *env) scanLUN(c *Command) iscsierr.Code {
	lun := c.ScanLUN
	out, err := e.c.ScanLUN(e.ctx, c.SID, lun)
	if iscsierr.CodeOf(err) == iscsierr.SessNotFound {
		e.errorf("could not read session targetname: 5")
		return e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", c.SID)
	}
	if err != nil {
		return e.failWith(err)
	}
	if c.JSON {
		io.WriteString(e.stdout, marshal(out))
		return iscsierr.Success
	}
	portal := sessionPortal(out.Session)
	d := out.Device
	if d == nil {
		e.printf("Scanned LUN %d of session %s: no such LUN on the target\n", lun, portal)
		return iscsierr.Success
	}
	e.printf("Scanned LUN %d of session %s: scsi%d Channel 00 Id %d Lun: %d disk %s\n",
		lun, portal, d.Host, d.Target, d.LUN, orEmpty(d.Block))
	switch {
	case out.Multipath != nil:
		e.printf("Multipath map of LUN %d: %s (%s, wwid %s) over %s\n", lun, out.Multipath.DMName,
			out.Multipath.Name, out.Multipath.WWID, strings.Join(out.Multipath.Slaves, ", "))
	case out.Multipathd:
		e.printf("Multipath map of LUN %d: none (%s)\n", lun, out.NoMapReason)
	}
	return iscsierr.Success
}

func (e *env) removeLUN(c *Command) iscsierr.Code {
	r := initiator.RemoveLUN{LUN: c.RemoveLUN, Force: c.Force, Tries: c.RemoveTries}
	if c.Mode == ModeSession {
		r.SID = c.SID
	} else {
		r.Target = c.Target
	}
	rep, err := e.c.RemoveLUN(e.ctx, r)
	if rep == nil {
		return e.failWith(err)
	}
	if c.JSON {
		io.WriteString(e.stdout, marshal(rep))
	} else {
		io.WriteString(e.stdout, RemovalText(rep))
	}
	if err != nil {
		return e.failWith(err)
	}
	return iscsierr.Success
}

// RemovalText is --remove-lun's report: what the LUN is, one line per step,
// and the outcome. Errors go to stderr separately, as iscsiadm's do.
//
//	Removing LUN 1: multipath map mpatha (dm-0, wwid 36001405...) over sdb (2:0:0:1) [sid: 1, portal: 127.0.0.1:3260], sdd (3:0:0:1) [sid: 2, portal: 127.0.0.2:3260]
//	  in use: multipath map mpatha (dm-0) is open (open count 1) held open by pid 245 (sleep) (attempt 1)
//	  wait: in use, attempt 1 of 5; next in 1s (attempt 1, 1000 ms)
//	  flush mpatha (dm-0): ok (attempt 2, 2 ms)
//	  remove-map mpatha (dm-0): ok (attempt 2, 31 ms)
//	  verify-map mpatha (dm-0): ok, DM_DEV_STATUS: no such device; not in sysfs
//	  flush sdb (2:0:0:1): ok
//	  delete-path sdb (2:0:0:1): ok (25 ms)
//	  verify-path sdb (2:0:0:1): ok, gone from sysfs
//	  ...
//	Removal of LUN 1 successful: multipath map mpatha and 2 paths removed in 1.1 s.
func RemovalText(rep *scan.Report) string {
	var b strings.Builder
	var paths []string
	for _, p := range rep.Paths {
		s := p.HCTL
		if p.Block != "" {
			s = fmt.Sprintf("%s (%s)", p.Block, p.HCTL)
		}
		if p.SID != 0 {
			s += fmt.Sprintf(" [sid: %d, portal: %s]", p.SID, p.Portal)
		}
		paths = append(paths, s)
	}
	var maps []string
	for _, m := range rep.Maps {
		maps = append(maps, fmt.Sprintf("%s (%s, wwid %s)", m.DMName, m.Name, m.WWID))
	}
	switch {
	case len(rep.Paths) == 0:
		fmt.Fprintf(&b, "Removing LUN %d: not attached\n", rep.LUN)
	case len(maps) > 0:
		fmt.Fprintf(&b, "Removing LUN %d: multipath map %s over %s\n", rep.LUN, strings.Join(maps, ", "), strings.Join(paths, ", "))
	default:
		fmt.Fprintf(&b, "Removing LUN %d: %s (no multipath map)\n", rep.LUN, strings.Join(paths, ", "))
	}
	for _, s := range rep.Steps {
		outcome := "ok"
		if !s.OK {
			outcome = "FAILED"
		}
		if s.Action == "wait" || s.Action == "in-use" {
			outcome = ""
		}
		line := "  " + s.Action + " " + s.Object + ":"
		for _, part := range []string{outcome, s.Detail} {
			if part != "" {
				if !strings.HasSuffix(line, ":") {
					line += ","
				}
				line += " " + part
			}
		}
		var extra []string
		if s.Attempt > 0 {
			extra = append(extra, fmt.Sprintf("attempt %d", s.Attempt))
		}
		if s.MS >= 1 {
			extra = append(extra, fmt.Sprintf("%.0f ms", s.MS))
		}
		if len(extra) > 0 {
			line += " (" + strings.Join(extra, ", ") + ")"
		}
		b.WriteString(line + "\n")
	}
	if rep.Removed {
		what := fmt.Sprintf("%d path%s", len(rep.Paths), plural(len(rep.Paths)))
		if len(rep.Maps) > 0 {
			var names []string
			for _, m := range rep.Maps {
				names = append(names, m.DMName)
			}
			what = "multipath map " + strings.Join(names, ", ") + " and " + what
		}
		fmt.Fprintf(&b, "Removal of LUN %d successful: %s removed in %.1f s.\n", rep.LUN, what, rep.MS/1000)
	}
	return b.String()
}

func (e *env) stats(c *Command) iscsierr.Code {
	sessions, code := e.selectSessions(c, initiator.ListOptions{Brief: true})
	if code != iscsierr.Success {
		return code
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No session found.")
	}
	var all []sessionStats
	for _, s := range sessions {
		st, err := e.c.Stats(e.ctx, s.SID)
		if err != nil {
			return e.fail(iscsierr.CodeOf(err), "Could not execute operation on all sessions: %s", iscsierr.CodeOf(err))
		}
		h := e.pathHealth(s.SID)
		if c.JSON {
			all = append(all, sessionStatsOf(s, st, h))
			continue
		}
		// Stock's session_stats: the 19 kernel counters in their order,
		// then the transport's own under "iSCSI Extended:".
		e.printf("Stats for session %s\n", sessionPortal(s))
		e.printf("iSCSI SNMP:\n")
		e.printf("\ttxdata_octets: %d\n\trxdata_octets: %d\n", st.TxDataOctets, st.RxDataOctets)
		known := map[string]bool{}
		for _, k := range nlink.CounterNames {
			known[k] = true
			e.printf("\t%s: %d\n", k, st.Counters[k])
		}
		var extended []string
		for k := range st.Counters {
			if !known[k] {
				extended = append(extended, k)
			}
		}
		sort.Strings(extended)
		if len(extended) > 0 {
			e.printf("iSCSI Extended:\n")
		}
		for _, k := range extended {
			e.printf("\t%s: %d\n", k, st.Counters[k])
		}
		// goiscsid's own figures come after all of stock's lines.
		if h != nil {
			io.WriteString(e.stdout, HealthText(h))
		}
	}
	if c.JSON {
		io.WriteString(e.stdout, marshal(map[string]any{"stats": all}))
	}
	return iscsierr.Success
}
