package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
)

// Attaching and detaching one LUN, the two halves an attach tool (os-brick, a
// CSI driver) needs: --scan-lun adds exactly one LUN and waits for its
// multipath map, --remove-lun takes LUN and map away in the safe order of
// scan.Remover. goiscsid does both under the target's lock, so they never
// interleave; without a daemon goiscsiadm does them itself through sysfs.

// removalTimeout bounds a removal done here (with a daemon, requestTimeout
// applies): the waits of every try plus flushes and deletes.
const removalTimeout = 10 * time.Minute

func (e *env) removeLUN(c *Command) *Exit {
	lun := c.RemoveLUN
	req := &mgmt.Request{Op: mgmt.OpRemoveLUN, LUN: &lun, Force: c.Force, Tries: c.RemoveTries}
	if c.Mode == ModeSession {
		req.SID = c.SID
	} else {
		req.Target = c.Target
	}
	resp, me := e.do(req)
	if me != nil && me.Code == iscsierr.ISCSIDNotConn {
		// No goiscsid: the same removal from here, as --scan-lun's scan.
		resp, me = e.removeLocally(req)
	}
	if resp == nil || resp.Removal == nil {
		code := iscsierr.Internal
		msg := "goiscsid sent no account of the removal"
		if me != nil {
			code, msg = me.Code, me.Message
		}
		return e.fail(code, "%s", msg)
	}
	rep := resp.Removal
	if c.JSON {
		e.stdout.WriteString(marshal(rep))
	} else {
		e.stdout.WriteString(RemovalText(rep))
	}
	if me != nil {
		return e.fail(me.Code, "%s", me.Message)
	}
	return e.exit(iscsierr.Success)
}

// removeLocally is goiscsid's removeLUN without goiscsid: the sessions from
// sysfs, no target lock (there is no daemon scanning).
func (e *env) removeLocally(req *mgmt.Request) (*mgmt.Response, *iscsierr.Error) {
	fs := scan.Sysfs{Root: e.sysfs}
	all, err := fs.Sessions()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.SysfsLookup, "reading the sessions from sysfs: %v", err)
	}
	var sel []scan.Session
	for _, s := range all {
		if (req.SID != 0 && s.SID == req.SID) || (req.SID == 0 && s.TargetName == req.Target) {
			sel = append(sel, s)
		}
	}
	if len(sel) == 0 {
		if req.SID != 0 {
			return nil, iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", req.SID)
		}
		return nil, iscsierr.Errorf(iscsierr.NoObjsFound, "No session found.")
	}
	plan, err := fs.PlanLUNRemoval(sel, *req.LUN)
	if err != nil {
		rep := scan.FailedPlan(*req.LUN, err)
		return &mgmt.Response{Removal: rep}, mgmt.RemovalError(rep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), removalTimeout)
	defer cancel()
	r := &scan.Remover{Sysfs: fs, Block: e.block, Proc: e.proc, Tries: req.Tries, Force: req.Force}
	rep := r.Remove(ctx, plan)
	return &mgmt.Response{Removal: rep}, mgmt.RemovalError(rep)
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

// mpathWait bounds how long --scan-lun waits for multipathd's map of the new
// disk: multipathd builds it when udev tells it about the disk.
const mpathWait = 10 * time.Second

// scannedLUN is --scan-lun's outcome, also its --json form:
//
//	{"sid": 1, "lun": 2, "hctl": "2:0:0:2", "disk": "sdc",
//	 "multipathd": true, "multipath": {"name": "dm-1", "dev": "254:1", "dm_name": "mpathb",
//	   "uuid": "mpath-3600140...", "wwid": "3600140...", "slaves": ["sdc"]},
//	 "multipath_wait_ms": 412}
//
// hctl and disk are "" when the target has no such LUN; multipath is null
// without a map (multipathd not running, the disk not claimed, or no map
// within 10 s).
type scannedLUN struct {
	SID        int                `json:"sid"`
	LUN        uint64             `json:"lun"`
	HCTL       string             `json:"hctl"`
	Disk       string             `json:"disk"`
	Multipathd bool               `json:"multipathd"`
	Multipath  *scan.MultipathMap `json:"multipath"`
	WaitMS     float64            `json:"multipath_wait_ms,omitempty"`
	// why says why there is no map, for the text form.
	why string
}

// waitForMap waits for multipathd's map above disk, when multipathd runs and
// udev has not said the disk is no path of a map.
func (e *env) waitForMap(out *scannedLUN) {
	fs := scan.Sysfs{Root: e.sysfs}
	out.Multipathd = scan.MultipathdRunning(e.proc)
	if !out.Multipathd {
		return
	}
	if b, err := fs.BlockDevOf(out.Disk); err == nil {
		if isPath, known := scan.UdevMultipathVerdict(filepath.Join(e.run, "udev", "data"), b.Dev); known && !isPath {
			out.why = "udev says multipath does not claim it"
			return
		}
	}
	start := time.Now()
	for {
		if m := fs.MultipathOf(out.Disk); m != nil {
			out.Multipath = m
			out.WaitMS = float64(time.Since(start).Microseconds()) / 1000
			return
		}
		if time.Since(start) >= mpathWait {
			out.why = fmt.Sprintf("none after %v", mpathWait)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
