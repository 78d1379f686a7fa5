package initiator

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
)

// Attaching and detaching one LUN are the two halves an attach tool (os-brick,
// a CSI driver) needs: ScanLUN adds exactly one LUN and waits for its multipath
// map, RemoveLUN takes LUN and map away in the safe order of scan.Remover.
// goiscsid does both under the target's lock, so they never interleave; without
// a daemon they are done here through sysfs.

// ScannedLUN is what ScanLUN found:
//
//	{"sid": 1, "lun": 2, "hctl": "2:0:0:2", "disk": "sdc",
//	 "multipathd": true, "multipath": {"name": "dm-1", "dev": "254:1", "dm_name": "mpathb",
//	   "uuid": "mpath-3600140...", "wwid": "3600140...", "slaves": ["sdc"]},
//	 "multipath_wait_ms": 412}
//
// HCTL and Disk are empty when the target has no such LUN; Multipath is nil
// without a map (multipathd not running, the disk not claimed, or no map
// within MultipathWait), and NoMapReason says which.
type ScannedLUN struct {
	SID  int    `json:"sid"`
	LUN  uint64 `json:"lun"`
	HCTL string `json:"hctl"`
	Disk string `json:"disk"`
	// Multipathd says multipathd runs on the host.
	Multipathd bool               `json:"multipathd"`
	Multipath  *scan.MultipathMap `json:"multipath"`
	WaitMS     float64            `json:"multipath_wait_ms,omitempty"`
	// NoMapReason says why Multipath is nil when multipathd runs.
	NoMapReason string `json:"-"`
	// Device is the scanned LUN's device; nil when the target has none.
	Device *scan.Device `json:"-"`
	// Session is the session scanned.
	Session Session `json:"-"`
}

// Waits of ScanLUN.
const (
	// DiskWait bounds the wait for the scanned LUN's disk name: the kernel
	// probes the LUN during the scan and names its disk a moment later (sd
	// probes asynchronously).
	DiskWait = 5 * time.Second
	// MultipathWait bounds the wait for multipathd's map of the new disk:
	// multipathd builds it when udev tells it about the disk.
	MultipathWait = 10 * time.Second
	// pollEvery is how often the waits look at sysfs.
	pollEvery = 50 * time.Millisecond
)

// ScanLUN adds exactly LUN lun of session sid (the L of H:C:T:L), waits for
// its disk and, when multipathd runs and claims the disk, for its map.
func (c *Client) ScanLUN(ctx context.Context, sid int, lun uint64) (*ScannedLUN, error) {
	var s Session
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpScan, SID: sid, LUN: &lun})
	switch {
	case err == nil:
		s = sessionOf(*resp.Session)
		s.Host = &Host{Number: resp.Session.HostNo}
	case noDaemon(err):
		var sp *Session
		if sp, err = c.Session(ctx, sid, ListOptions{}); err == nil {
			s = *sp
			err = c.scanLocally(ctx, s, &lun)
		}
	}
	if err != nil {
		return nil, err
	}
	out := &ScannedLUN{SID: sid, LUN: lun, Session: s}
	if s.Host == nil {
		return out, nil
	}
	found := c.waitForDisk(ctx, s.Host.Number, lun)
	if found == nil {
		return out, nil
	}
	out.Device, out.HCTL, out.Disk = found, found.HCTL(), found.Block
	if found.Block != "" {
		c.waitForMap(ctx, out)
	}
	return out, nil
}

// waitForDisk returns the device of lun on host once it has its disk, or as it
// is after DiskWait; nil when the target has no such LUN.
func (c *Client) waitForDisk(ctx context.Context, host int, lun uint64) *scan.Device {
	deadline := time.Now().Add(DiskWait)
	for {
		var found *scan.Device
		for _, d := range c.Devices(host) {
			if d.LUN == lun {
				found = &d
			}
		}
		if found == nil || found.Block != "" || time.Now().After(deadline) || !pause(ctx, pollEvery) {
			return found
		}
	}
}

// waitForMap waits for multipathd's map above out.Disk, when multipathd runs
// and udev has not said the disk is no path of a map.
func (c *Client) waitForMap(ctx context.Context, out *ScannedLUN) {
	fs := scan.Sysfs{Root: c.sysfs()}
	out.Multipathd = scan.MultipathdRunning(c.proc())
	if !out.Multipathd {
		return
	}
	if b, err := fs.BlockDevOf(out.Disk); err == nil {
		if isPath, known := scan.UdevMultipathVerdict(filepath.Join(c.run(), "udev", "data"), b.Dev); known && !isPath {
			out.NoMapReason = "udev says multipath does not claim it"
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
		if time.Since(start) >= MultipathWait || !pause(ctx, pollEvery) {
			out.NoMapReason = fmt.Sprintf("none after %v", time.Since(start).Round(time.Second))
			return
		}
	}
}

// pause waits d, or less when ctx ends first: it reports whether ctx is
// still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// RemoveLUN says which LUN to remove: LUN of session SID, or of every session
// to Target when SID is 0.
type RemoveLUN struct {
	SID    int
	Target string
	LUN    uint64
	// Force removes a LUN in use (mounted, stacked on, held open); the
	// buffers are still flushed, and the kernel still refuses to remove a
	// map that is open.
	Force bool
	// Tries bounds the attempts while the LUN is held open; 0 means
	// scan.DefaultTries.
	Tries int
}

// removalTimeout bounds a removal done here (with goiscsid, its own bound
// applies): the waits of every try plus flushes and deletes.
const removalTimeout = 10 * time.Minute

// RemoveLUN removes a LUN safely: the multipath map above it first (found in
// sysfs whatever its name, refused while in use, retried while held open,
// flushed, removed and verified gone), then each path, flushed, deleted and
// verified gone. The report says what was done, also when the error says it
// did not finish (codes: NoObjsFound no such LUN, Busy in use, Again flushing
// failed, Internal the device-mapper refused, SysfsLookup a delete failed).
func (c *Client) RemoveLUN(ctx context.Context, r RemoveLUN) (*scan.Report, error) {
	req := &mgmt.Request{Op: mgmt.OpRemoveLUN, SID: r.SID, Target: r.Target, LUN: &r.LUN, Force: r.Force, Tries: r.Tries}
	resp, err := c.do(ctx, req)
	if noDaemon(err) {
		return c.removeLocally(ctx, r)
	}
	if resp == nil || resp.Removal == nil {
		if err == nil {
			err = iscsierr.Errorf(iscsierr.Internal, "goiscsid sent no account of the removal")
		}
		return nil, err
	}
	return resp.Removal, err
}

// removeLocally is goiscsid's removal without goiscsid: the sessions from
// sysfs, no target lock (there is no daemon scanning).
func (c *Client) removeLocally(ctx context.Context, r RemoveLUN) (*scan.Report, error) {
	fs := scan.Sysfs{Root: c.sysfs()}
	all, err := fs.Sessions()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.SysfsLookup, "reading the sessions from sysfs: %v", err)
	}
	var sel []scan.Session
	for _, s := range all {
		if (r.SID != 0 && s.SID == r.SID) || (r.SID == 0 && s.TargetName == r.Target) {
			sel = append(sel, s)
		}
	}
	if len(sel) == 0 {
		if r.SID != 0 {
			return nil, iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", r.SID)
		}
		return nil, iscsierr.Errorf(iscsierr.NoObjsFound, "No session found.")
	}
	plan, err := fs.PlanLUNRemoval(sel, r.LUN)
	if err != nil {
		rep := scan.FailedPlan(r.LUN, err)
		return rep, removalError(rep)
	}
	ctx, cancel := context.WithTimeout(ctx, removalTimeout)
	defer cancel()
	rm := &scan.Remover{Sysfs: fs, Block: c.Block, Proc: c.proc(), Tries: r.Tries, Force: r.Force}
	rep := rm.Remove(ctx, plan)
	return rep, removalError(rep)
}

// removalError is mgmt.RemovalError as an error: nil for a removal that
// finished.
func removalError(rep *scan.Report) error {
	if e := mgmt.RemovalError(rep); e != nil {
		return e
	}
	return nil
}
