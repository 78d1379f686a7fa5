package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Removing a LUN is where hosts lose data: a multipath flush that names the map
// by its WWID silently does nothing when user_friendly_names named it mpatha,
// and a flush that fails with "map in use" on a busy host is not retried, so
// the SCSI paths are deleted with data still unwritten (os-brick's two bugs in
// the seed). Remover does it in the one safe order and stops before anything
// that could lose data:
//
//  1. find the LUN's SCSI devices on the sessions, the multipath map above
//     them from sysfs (holders/dm-N, dm/uuid "mpath-<WWID>", so any map name
//     works), the map's other paths and its kpartx partitions;
//  2. refuse while something permanent uses them (a mount, LVM or md on top);
//     while a process holds them open, wait and retry;
//  3. flush the map, then remove it (DM_DEV_REMOVE), retrying "busy" with
//     exponential backoff, and verify it is gone (DM_DEV_STATUS says ENXIO and
//     sysfs has no device with its uuid);
//  4. only then flush and delete each SCSI path and verify it is gone.
//
// Every step goes into the Report; a failure says exactly what is left.

// Path is one SCSI device of the LUN being removed.
type Path struct {
	Device
	// Dev is the disk's device number ("8:16"), empty without a disk.
	Dev string
	// SID is the iSCSI session the device belongs to, 0 when it is on no
	// session this host knows (a map's path on another transport).
	SID    int
	Target string
	// Portal is the session's portal, "address:port".
	Portal string
}

// LUNRemoval is what removing one LUN touches: its paths and the maps above
// them. PlanLUNRemoval builds it from sysfs.
type LUNRemoval struct {
	LUN   uint64
	Paths []Path
	Maps  []MultipathMap
}

// Targets are the targets of the removal's paths, sorted: what a daemon
// locks so that no scan of those targets runs in the middle of it.
func (p *LUNRemoval) Targets() []string {
	seen := map[string]bool{}
	var out []string
	for _, pa := range p.Paths {
		if pa.Target != "" && !seen[pa.Target] {
			seen[pa.Target] = true
			out = append(out, pa.Target)
		}
	}
	sort.Strings(out)
	return out
}

// ErrNoLUN is PlanLUNRemoval's error when none of the sessions has the LUN.
var ErrNoLUN = errors.New("no such LUN")

// PlanLUNRemoval finds LUN lun on the given sessions, the multipath maps
// above its disks, and the maps' paths on any other session (a map's paths
// are all removed with it, or multipathd would rebuild it from the rest). It
// fails with an error wrapping ErrNoLUN when no session has the LUN.
func (s Sysfs) PlanLUNRemoval(sessions []Session, lun uint64) (*LUNRemoval, error) {
	all, err := s.Sessions()
	if err != nil {
		return nil, err
	}
	// Each iSCSI session has a SCSI host of its own: the host of a map's
	// path names its session. The sessions given win over sysfs's.
	byHost := map[int]Session{}
	for _, ss := range append(all, sessions...) {
		byHost[ss.Host] = ss
	}
	plan := &LUNRemoval{LUN: lun}
	seen := map[string]bool{}
	addPath := func(d Device) {
		if seen[d.HCTL()] {
			return
		}
		seen[d.HCTL()] = true
		p := Path{Device: d}
		if ss, ok := byHost[d.Host]; ok {
			p.SID, p.Target, p.Portal = ss.SID, ss.TargetName, fmt.Sprintf("%s:%d", ss.PersistentAddress, ss.PersistentPort)
		}
		if d.Block != "" {
			if b, err := s.BlockDevOf(d.Block); err == nil {
				p.Dev = b.Dev
			}
		}
		plan.Paths = append(plan.Paths, p)
	}
	for _, ss := range sessions {
		if ss.Host < 0 {
			continue
		}
		devs, err := s.Devices(ss.Host)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			if d.LUN == lun {
				addPath(d)
			}
		}
	}
	if len(plan.Paths) == 0 {
		var sids []string
		for _, ss := range sessions {
			sids = append(sids, fmt.Sprint(ss.SID))
		}
		return nil, fmt.Errorf("LUN %d is not attached on session %s: %w", lun, strings.Join(sids, ", "), ErrNoLUN)
	}
	maps := map[string]bool{}
	for i := 0; i < len(plan.Paths); i++ { // grows while maps add their paths
		p := plan.Paths[i]
		if p.Block == "" {
			continue
		}
		m := s.MultipathOf(p.Block)
		if m == nil || maps[m.UUID] {
			continue
		}
		maps[m.UUID] = true
		plan.Maps = append(plan.Maps, *m)
		for _, slave := range m.Slaves {
			if d, ok := s.SCSIDeviceOf(slave); ok {
				if full, ok := s.device(d); ok {
					addPath(full)
				}
			}
		}
	}
	return plan, nil
}

// FailedPlan is the report of a removal that PlanLUNRemoval could not plan:
// nothing to remove (the LUN is on none of the sessions), or sysfs failed.
func FailedPlan(lun uint64, err error) *Report {
	f := FailSysfs
	if errors.Is(err, ErrNoLUN) {
		f = FailNotFound
	}
	return &Report{LUN: lun, Maps: []MapReport{}, Paths: []PathReport{}, Steps: []Step{}, Failure: f, Error: err.Error()}
}

// device reads SCSI device d's attributes as Devices does.
func (s Sysfs) device(d Device) (Device, bool) {
	devs, err := s.Devices(d.Host)
	if err != nil {
		return Device{}, false
	}
	for _, full := range devs {
		if full.HCTL() == d.HCTL() {
			return full, true
		}
	}
	return Device{}, false
}

// Opener is a process that has a block device open.
type Opener struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

func (o Opener) String() string { return fmt.Sprintf("pid %d (%s)", o.PID, o.Comm) }

// BlockOps is what a LUN removal asks of the kernel besides reading sysfs:
// flushes, device-mapper calls and SCSI deletes. HostBlockOps is the real one;
// tests use a fake.
type BlockOps interface {
	DeviceMapper
	// Flush writes a block device's dirty buffers to it and drops its
	// buffer cache (fsync and BLKFLSBUF).
	Flush(ctx context.Context, b BlockDev) error
	// Claimed reports whether a block device is claimed for exclusive use
	// (mounted in any namespace, or held by a dm, md or other stacked
	// device): an exclusive open of it fails with EBUSY.
	Claimed(b BlockDev) (bool, error)
	// Openers lists, by device number, the processes that have one of
	// devs open.
	Openers(devs []BlockDev) (map[string][]Opener, error)
	// DeleteSCSI removes a SCSI device (device/delete in sysfs).
	DeleteSCSI(ctx context.Context, d Device) error
}

// Failure says why a removal stopped; goiscsiadm maps it to an exit status.
type Failure string

// Failures.
const (
	// FailNotFound: no session has the LUN.
	FailNotFound Failure = "not-found"
	// FailInUse: mounted, something stacked on it, or held open through
	// every retry; nothing was removed unless Report.Left says otherwise.
	FailInUse Failure = "in-use"
	// FailFlush: writing the buffers out failed or did not finish in time
	// (all paths down?); nothing was removed.
	FailFlush Failure = "flush"
	// FailDeviceMapper: the device-mapper refused the removal for another
	// reason than busy, or the map was still there after it.
	FailDeviceMapper Failure = "device-mapper"
	// FailSysfs: reading sysfs or deleting a SCSI device failed, or the
	// device was still there after the delete.
	FailSysfs Failure = "sysfs"
	// FailCanceled: the caller's context ended (a timeout) during the
	// removal.
	FailCanceled Failure = "canceled"
)

// Step is one thing a removal did or found.
type Step struct {
	// Action is one of: in-use, wait, flush, remove-map, verify-map,
	// remove-node, delete-path, verify-path.
	Action string `json:"action"`
	// Object names what the step was about: "mpatha (dm-0)", "sdb (2:0:0:1)".
	Object  string `json:"object"`
	Attempt int    `json:"attempt,omitempty"`
	OK      bool   `json:"ok"`
	Detail  string `json:"detail,omitempty"`
	// MS is how long the step took (for a wait, how long it waited).
	MS float64 `json:"ms"`
}

// PathReport is a path of the LUN and whether it was deleted.
type PathReport struct {
	HCTL    string `json:"hctl"`
	Block   string `json:"block,omitempty"`
	Dev     string `json:"dev,omitempty"`
	SID     int    `json:"sid,omitempty"`
	Target  string `json:"target,omitempty"`
	Portal  string `json:"portal,omitempty"`
	Deleted bool   `json:"deleted"`
}

// MapReport is a multipath map of the LUN and whether it was removed.
type MapReport struct {
	MultipathMap
	Removed bool `json:"removed"`
}

// Report is the whole account of one removal.
type Report struct {
	LUN   uint64       `json:"lun"`
	Maps  []MapReport  `json:"maps"`
	Paths []PathReport `json:"paths"`
	Steps []Step       `json:"steps"`
	// Removed is true when every map and path is gone, verified.
	Removed bool `json:"removed"`
	// Failure and Error say why not.
	Failure Failure `json:"failure,omitempty"`
	Error   string  `json:"error,omitempty"`
	// Left lists what is still there after a failure: "multipath map
	// mpatha (dm-0)", "path sdb (2:0:0:1)".
	Left []string `json:"left,omitempty"`
	// MS is the whole removal's time.
	MS float64 `json:"ms"`
}

// Defaults of a Remover.
const (
	// DefaultTries is how often a removal tries while its map or paths are
	// held open: waits of 1, 2, 4 and 8 s between five tries, 15 s in all.
	DefaultTries = 5
	// DefaultBackoff is the first wait; each next one doubles.
	DefaultBackoff = time.Second
	// MaxTries bounds Tries: ten tries wait 1+2+...+256 s, 8.5 minutes,
	// which still fits in a management request's time.
	MaxTries = 10
	// stepTimeout bounds one flush or one SCSI delete.
	stepTimeout = 2 * time.Minute
	// goneTimeout bounds the wait for sysfs to drop a deleted device. The
	// kernel removes it before the write to device/delete returns, so
	// this is only a grace.
	goneTimeout = time.Second
)

// Remover removes LUNs safely (see PlanLUNRemoval and Remove).
type Remover struct {
	Sysfs Sysfs
	// Block does the flushes, device-mapper calls and deletes; nil means
	// HostBlockOps on Sysfs.
	Block BlockOps
	// Proc is procfs's mount point, for the mount table; empty means /proc.
	Proc string
	// Tries bounds the attempts while something holds the LUN open;
	// 0 means DefaultTries, more than MaxTries means MaxTries.
	Tries int
	// Backoff is the first wait between attempts, doubling after each; 0
	// means DefaultBackoff.
	Backoff time.Duration
	// Force skips the refusal of a LUN that is in use (mounted, stacked on,
	// held open). The buffers are still flushed, and the kernel still
	// refuses to remove a map that is open.
	Force bool
	// Log receives each step (retries as warnings); nil logs nothing.
	Log *slog.Logger
}

func (r *Remover) block() BlockOps {
	if r.Block != nil {
		return r.Block
	}
	return HostBlockOps{Sysfs: r.Sysfs}
}

// run is one removal in progress.
type run struct {
	r      *Remover
	k      BlockOps
	plan   *LUNRemoval
	rep    *Report
	start  time.Time
	gone   map[string]bool // map uuids removed
	failed bool
}

// Remove removes what plan names, in the order of the package comment, and
// reports every step. The report's Failure is set when it stopped early.
func (r *Remover) Remove(ctx context.Context, plan *LUNRemoval) *Report {
	rn := &run{r: r, k: r.block(), plan: plan, start: time.Now(), gone: map[string]bool{},
		rep: &Report{LUN: plan.LUN, Maps: []MapReport{}, Paths: []PathReport{}, Steps: []Step{}}}
	for _, m := range plan.Maps {
		rn.rep.Maps = append(rn.rep.Maps, MapReport{MultipathMap: m})
	}
	for _, p := range plan.Paths {
		rn.rep.Paths = append(rn.rep.Paths, PathReport{HCTL: p.HCTL(), Block: p.Block, Dev: p.Dev, SID: p.SID, Target: p.Target, Portal: p.Portal})
	}
	if rn.removeMaps(ctx) {
		rn.deletePaths(ctx)
	}
	rn.rep.Removed = !rn.failed
	rn.rep.MS = msSince(rn.start)
	return rn.rep
}

func msSince(t time.Time) float64 {
	return float64(time.Since(t).Microseconds()) / 1000
}

func (rn *run) step(s Step, t0 time.Time) {
	s.MS = msSince(t0)
	rn.rep.Steps = append(rn.rep.Steps, s)
	if rn.r.Log == nil {
		return
	}
	attrs := []any{"lun", rn.plan.LUN, "action", s.Action, "object", s.Object, "ok", s.OK, "ms", s.MS}
	if s.Attempt > 0 {
		attrs = append(attrs, "attempt", s.Attempt)
	}
	if s.Detail != "" {
		attrs = append(attrs, "detail", s.Detail)
	}
	switch {
	case s.Action == "wait":
		rn.r.Log.Warn("remove LUN: retrying", attrs...)
	case !s.OK:
		rn.r.Log.Error("remove LUN", attrs...)
	default:
		rn.r.Log.Info("remove LUN", attrs...)
	}
}

// fail ends the removal: what went wrong, and what is still there.
func (rn *run) fail(f Failure, format string, args ...any) {
	rn.failed = true
	rn.rep.Failure = f
	rn.rep.Error = fmt.Sprintf(format, args...)
	s := rn.r.Sysfs
	for i, m := range rn.plan.Maps {
		if _, there := s.FindDMByUUID(m.UUID); there {
			rn.rep.Left = append(rn.rep.Left, "multipath map "+mapName(m))
		} else {
			rn.rep.Maps[i].Removed = true
		}
		for _, pm := range m.Partitions {
			if _, there := s.FindDMByUUID(pm.UUID); there {
				rn.rep.Left = append(rn.rep.Left, "partition map "+dmName(pm))
			}
		}
	}
	for i, p := range rn.plan.Paths {
		if s.DeviceExists(p.Device) {
			rn.rep.Left = append(rn.rep.Left, "path "+pathName(p))
		} else {
			rn.rep.Paths[i].Deleted = true
		}
	}
	if rn.r.Log != nil {
		rn.r.Log.Error("remove LUN failed", "lun", rn.plan.LUN, "failure", string(f), "err", rn.rep.Error, "left", strings.Join(rn.rep.Left, ", "))
	}
}

func mapName(m MultipathMap) string { return dmName(m.DMDevice) }
func dmName(d DMDevice) string      { return fmt.Sprintf("%s (%s)", d.DMName, d.Name) }
func pathName(p Path) string {
	if p.Block == "" {
		return p.HCTL()
	}
	return fmt.Sprintf("%s (%s)", p.Block, p.HCTL())
}

// tries and backoff are the Remover's settings with their defaults.
func (r *Remover) tries() int {
	if r.Tries > 0 {
		return min(r.Tries, MaxTries)
	}
	return DefaultTries
}

func (r *Remover) backoff() time.Duration {
	if r.Backoff > 0 {
		return r.Backoff
	}
	return DefaultBackoff
}

// usage is what holds the LUN: permanent users refuse the removal at once,
// busy ones (open by a process) are waited for.
type usage struct {
	permanent, busy []string
}

// usage looks at the maps, their partitions and the paths.
func (rn *run) usage() (usage, error) {
	var u usage
	s := rn.r.Sysfs
	mounts, err := Mounts(filepath.Join(rn.r.procRoot(), "self", "mountinfo"))
	if err != nil {
		return u, err
	}
	// Every device whose openers matter, for one pass over /proc.
	var devs []BlockDev
	for _, m := range rn.plan.Maps {
		devs = append(devs, m.BlockDev)
		for _, pm := range m.Partitions {
			devs = append(devs, pm.BlockDev)
		}
	}
	pathParts := map[string][]BlockDev{}
	for _, p := range rn.plan.Paths {
		if p.Block == "" || p.Dev == "" {
			continue
		}
		devs = append(devs, BlockDev{Name: p.Block, Dev: p.Dev})
		for _, part := range s.Partitions(p.Block) {
			if b, err := s.BlockDevOf(part); err == nil {
				pathParts[p.Block] = append(pathParts[p.Block], b)
				devs = append(devs, b)
			}
		}
	}
	openers, err := rn.k.Openers(devs)
	if err != nil {
		return u, err
	}
	mounted := func(b BlockDev, what string) {
		for _, mp := range mounts[b.Dev] {
			u.permanent = append(u.permanent, fmt.Sprintf("%s is mounted on %s", what, mp))
		}
	}
	// openBy names b's openers. multipathd keeps every path open for its
	// checker; that open does no I/O of the host's and multipathd lets go
	// when the path goes, so it does not count on a path.
	openBy := func(b BlockDev, isPath bool) string {
		var names []string
		for _, o := range openers[b.Dev] {
			if isPath && o.Comm == "multipathd" {
				continue
			}
			names = append(names, o.String())
		}
		if len(names) == 0 {
			return ""
		}
		return "held open by " + strings.Join(names, ", ")
	}
	for _, m := range rn.plan.Maps {
		if rn.gone[m.UUID] {
			continue
		}
		for _, h := range m.Holders {
			u.permanent = append(u.permanent, fmt.Sprintf("multipath map %s is held by %s", mapName(m), describeHolder(s, h)))
		}
		mounted(m.BlockDev, "multipath map "+mapName(m))
		for _, pm := range m.Partitions {
			mounted(pm.BlockDev, "partition map "+dmName(pm))
			st, err := rn.k.Status(pm.UUID)
			if isGone(err) {
				continue
			}
			if err != nil {
				return u, err
			}
			if st.OpenCount > 0 {
				u.busy = append(u.busy, strings.TrimSpace(fmt.Sprintf("partition map %s is open (open count %d) %s", dmName(pm), st.OpenCount, openBy(pm.BlockDev, false))))
			}
		}
		st, err := rn.k.Status(m.UUID)
		if isGone(err) {
			continue
		}
		if err != nil {
			return u, err
		}
		// Each partition map holds the map open once.
		if extra := st.OpenCount - livePartitions(rn.k, m); extra > 0 {
			u.busy = append(u.busy, strings.TrimSpace(fmt.Sprintf("multipath map %s is open (open count %d) %s", mapName(m), st.OpenCount, openBy(m.BlockDev, false))))
		}
	}
	for _, p := range rn.plan.Paths {
		if p.Block == "" || p.Dev == "" {
			continue
		}
		disk := BlockDev{Name: p.Block, Dev: p.Dev}
		underMap := false
		for _, h := range s.Holders(p.Block) {
			if m := rn.mapOf(h); m != nil {
				underMap = true
				continue
			}
			u.permanent = append(u.permanent, fmt.Sprintf("path %s is held by %s", pathName(p), describeHolder(s, h)))
		}
		mounted(disk, "path "+pathName(p))
		if o := openBy(disk, true); o != "" {
			u.busy = append(u.busy, fmt.Sprintf("path %s is %s", pathName(p), o))
		}
		for _, part := range pathParts[p.Block] {
			for _, h := range s.Holders(part.Name) {
				u.permanent = append(u.permanent, fmt.Sprintf("partition %s is held by %s", part.Name, describeHolder(s, h)))
			}
			mounted(part, "partition "+part.Name)
			if o := openBy(part, true); o != "" {
				u.busy = append(u.busy, fmt.Sprintf("partition %s is %s", part.Name, o))
			}
		}
		if !underMap && len(u.permanent) == 0 {
			// Mounted in another mount namespace, or opened exclusively:
			// only an exclusive open tells.
			if claimed, err := rn.k.Claimed(disk); err != nil {
				return u, err
			} else if claimed {
				u.busy = append(u.busy, fmt.Sprintf("path %s is claimed for exclusive use (mounted in another namespace?)", pathName(p)))
			}
		}
	}
	return u, nil
}

// mapOf returns the plan's map whose dm-N is kernel.
func (rn *run) mapOf(kernel string) *MultipathMap {
	for i := range rn.plan.Maps {
		if rn.plan.Maps[i].Name == kernel {
			return &rn.plan.Maps[i]
		}
	}
	return nil
}

func livePartitions(k BlockOps, m MultipathMap) int {
	n := 0
	for _, pm := range m.Partitions {
		if _, err := k.Status(pm.UUID); err == nil {
			n++
		}
	}
	return n
}

// describeHolder names a stacked device: "dm-5 (vg0-lv0, LVM-...)".
func describeHolder(s Sysfs, kernel string) string {
	if d, err := s.DM(kernel); err == nil {
		if d.UUID != "" {
			return fmt.Sprintf("%s (%s, uuid %s)", kernel, d.DMName, d.UUID)
		}
		return fmt.Sprintf("%s (%s)", kernel, d.DMName)
	}
	return kernel
}

func (r *Remover) procRoot() string {
	if r.Proc != "" {
		return r.Proc
	}
	return "/proc"
}

// removeMaps checks use, flushes and removes the maps, retrying while they
// or the paths are held open. It reports whether the removal may go on to
// the paths.
func (rn *run) removeMaps(ctx context.Context) bool {
	r := rn.r
	wait := r.backoff()
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		u, err := rn.usage()
		if err != nil {
			rn.fail(FailSysfs, "checking whether LUN %d is in use: %v", rn.plan.LUN, err)
			return false
		}
		if len(u.permanent) > 0 {
			rn.step(Step{Action: "in-use", Object: rn.lunName(), Attempt: attempt, OK: r.Force, Detail: strings.Join(u.permanent, "; ")}, t0)
			if !r.Force {
				rn.fail(FailInUse, "LUN %d is in use: %s; nothing was removed (unmount it or take down what is stacked on it first, or use --force)", rn.plan.LUN, strings.Join(u.permanent, "; "))
				return false
			}
		}
		busy := u.busy
		if r.Force {
			busy = nil
		}
		if len(busy) == 0 {
			var ok bool
			if busy, ok = rn.flushAndRemove(ctx, attempt); !ok {
				return false
			}
		} else {
			rn.step(Step{Action: "in-use", Object: rn.lunName(), Attempt: attempt, Detail: strings.Join(busy, "; ")}, t0)
		}
		if len(busy) == 0 {
			return rn.verifyMaps()
		}
		if attempt >= r.tries() {
			rn.fail(FailInUse, "LUN %d is still in use after %d attempts in %.1f s: %s", rn.plan.LUN, attempt, msSince(rn.start)/1000, strings.Join(busy, "; "))
			return false
		}
		t0 = time.Now()
		rn.step(Step{Action: "wait", Object: rn.lunName(), Attempt: attempt,
			Detail: fmt.Sprintf("in use, attempt %d of %d; next in %v", attempt, r.tries(), wait)}, t0)
		select {
		case <-ctx.Done():
			rn.fail(FailCanceled, "LUN %d: gave up waiting: %v", rn.plan.LUN, ctx.Err())
			return false
		case <-time.After(wait):
		}
		rn.rep.Steps[len(rn.rep.Steps)-1].MS = msSince(t0)
		wait *= 2
	}
}

func (rn *run) lunName() string { return fmt.Sprintf("LUN %d", rn.plan.LUN) }

// flushAndRemove flushes each map that is still there and removes it, its
// partition maps first. It returns why it is busy (EBUSY), or ok false when
// the removal failed for good.
func (rn *run) flushAndRemove(ctx context.Context, attempt int) (busy []string, ok bool) {
	for _, m := range rn.plan.Maps {
		if rn.gone[m.UUID] {
			continue
		}
		devs := append(append([]DMDevice(nil), m.Partitions...), m.DMDevice)
		for _, d := range devs {
			t0 := time.Now()
			if _, there := rn.r.Sysfs.FindDMByUUID(d.UUID); !there {
				continue
			}
			fctx, cancel := context.WithTimeout(ctx, stepTimeout)
			err := rn.k.Flush(fctx, d.BlockDev)
			cancel()
			if err != nil {
				rn.step(Step{Action: "flush", Object: dmName(d), Attempt: attempt, Detail: err.Error()}, t0)
				rn.fail(FailFlush, "flushing %s failed: %v; nothing was removed", dmName(d), err)
				return nil, false
			}
			rn.step(Step{Action: "flush", Object: dmName(d), Attempt: attempt, OK: true}, t0)
		}
		for _, d := range devs {
			t0 := time.Now()
			err := rn.k.Remove(d.UUID)
			switch {
			case err == nil:
				rn.step(Step{Action: "remove-map", Object: dmName(d), Attempt: attempt, OK: true}, t0)
			case isGone(err):
				rn.step(Step{Action: "remove-map", Object: dmName(d), Attempt: attempt, OK: true, Detail: "already gone"}, t0)
			case isBusy(err):
				rn.step(Step{Action: "remove-map", Object: dmName(d), Attempt: attempt, Detail: err.Error()}, t0)
				return []string{fmt.Sprintf("%s is busy (%v)", dmName(d), err)}, true
			default:
				rn.step(Step{Action: "remove-map", Object: dmName(d), Attempt: attempt, Detail: err.Error()}, t0)
				rn.fail(FailDeviceMapper, "removing %s failed: %v", dmName(d), err)
				return nil, false
			}
		}
		rn.gone[m.UUID] = true
	}
	return nil, true
}

// verifyMaps checks that every map and partition map is really gone: the
// device-mapper knows no device with its uuid, and neither does sysfs.
func (rn *run) verifyMaps() bool {
	for i, m := range rn.plan.Maps {
		for _, d := range append(append([]DMDevice(nil), m.Partitions...), m.DMDevice) {
			t0 := time.Now()
			_, err := rn.k.Status(d.UUID)
			if err == nil || !isGone(err) {
				detail := "the device-mapper still has it"
				if err != nil {
					detail = err.Error()
				}
				rn.step(Step{Action: "verify-map", Object: dmName(d), Detail: detail}, t0)
				rn.fail(FailDeviceMapper, "%s is still there after its removal: %s", dmName(d), detail)
				return false
			}
			if still, there := rn.r.Sysfs.FindDMByUUID(d.UUID); there {
				rn.step(Step{Action: "verify-map", Object: dmName(d), Detail: "sysfs still shows " + still.Name}, t0)
				rn.fail(FailDeviceMapper, "%s is still in sysfs as %s after its removal", dmName(d), still.Name)
				return false
			}
			rn.step(Step{Action: "verify-map", Object: dmName(d), OK: true, Detail: "DM_DEV_STATUS: no such device; not in sysfs"}, t0)
		}
		rn.rep.Maps[i].Removed = true
	}
	return true
}

// deletePaths flushes and deletes each path once no map is left on it, and
// checks that sysfs no longer has it.
func (rn *run) deletePaths(ctx context.Context) {
	s := rn.r.Sysfs
	for i, p := range rn.plan.Paths {
		if p.Block != "" && p.Dev != "" {
			t0 := time.Now()
			disk := BlockDev{Name: p.Block, Dev: p.Dev}
			// Something may have claimed the path since the map went
			// (multipathd building the map again, LVM scanning it).
			if hs := s.Holders(p.Block); len(hs) > 0 && !rn.r.Force {
				var who []string
				for _, h := range hs {
					who = append(who, describeHolder(s, h))
				}
				rn.step(Step{Action: "in-use", Object: pathName(p), Detail: "held by " + strings.Join(who, ", ")}, t0)
				rn.fail(FailInUse, "path %s was taken again by %s after its map was removed; it was not deleted", pathName(p), strings.Join(who, ", "))
				return
			}
			fctx, cancel := context.WithTimeout(ctx, stepTimeout)
			err := rn.k.Flush(fctx, disk)
			cancel()
			if err != nil {
				rn.step(Step{Action: "flush", Object: pathName(p), Detail: err.Error()}, t0)
				rn.fail(FailFlush, "flushing path %s failed: %v; it was not deleted", pathName(p), err)
				return
			}
			rn.step(Step{Action: "flush", Object: pathName(p), OK: true}, t0)
		}
		t0 := time.Now()
		dctx, cancel := context.WithTimeout(ctx, stepTimeout)
		err := rn.k.DeleteSCSI(dctx, p.Device)
		cancel()
		if err != nil {
			rn.step(Step{Action: "delete-path", Object: pathName(p), Detail: err.Error()}, t0)
			rn.fail(FailSysfs, "deleting path %s failed: %v", pathName(p), err)
			return
		}
		rn.step(Step{Action: "delete-path", Object: pathName(p), OK: true}, t0)
		t0 = time.Now()
		for s.DeviceExists(p.Device) && time.Since(t0) < goneTimeout {
			time.Sleep(20 * time.Millisecond)
		}
		if s.DeviceExists(p.Device) {
			rn.step(Step{Action: "verify-path", Object: pathName(p), Detail: "still in sysfs"}, t0)
			rn.fail(FailSysfs, "path %s is still in sysfs %v after its delete", pathName(p), goneTimeout)
			return
		}
		rn.rep.Paths[i].Deleted = true
		rn.step(Step{Action: "verify-path", Object: pathName(p), OK: true, Detail: "gone from sysfs"}, t0)
	}
}
