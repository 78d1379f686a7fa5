package main

import (
	"context"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/scan"
)

// The memory of held-back LUNs (issue 20): a LUN the host removed while the
// target still reports it is added back by no broad scan, whoever asks for it,
// until the target stops reporting it, an explicit scan of that LUN asks for
// it, or the host reboots.

// heldDir is where the memory lives: under /run, so a reboot, which takes
// every device away, forgets it, and a goiscsid restart does not.
const heldDir = "/run/goiscsi/held"

// nodeKey is the node whose memory a session's LUNs belong to.
func nodeKey(n conf.Node) scan.NodeKey {
	return scan.NodeKey{Target: n.Target, Address: n.Address, Port: n.Port, Iface: n.Iface.Name}
}

// syncEvents handles the kernel's queued device events before a scan decides
// what it may add: a removal made just before the scan is then known to it.
func (d *daemon) syncEvents() {
	if d.events == nil {
		return
	}
	if err := d.events.Sync(); err != nil {
		d.log.Error("kernel uevents", "err", err)
	}
}

// deviceEvent is the handler of the kernel's SCSI device events.
func (d *daemon) deviceEvent(ev scan.Event) {
	d.mu.Lock()
	ds := d.sessions[uint32(ev.Session)]
	d.mu.Unlock()
	if ev.LUNsChanged() {
		if ds == nil {
			d.log.Info("unit attention for a session goiscsid does not own", "session", ev.Session, "ua", ev.UA)
			return
		}
		go d.scanHost(ds.k, ds.scanPolicy(), scan.UA)
		return
	}
	if ds == nil || ds.k.Host != uint32(ev.Device.Host) {
		return
	}
	key := nodeKey(ds.k.Node().Node)
	log := d.log.With("sid", ev.Session, "lun", ev.Device.LUN, "hctl", ev.Device.HCTL())
	switch ev.Action {
	case "add":
		released, err := d.holds.Attach(key, ev.Device.LUN)
		if err != nil {
			log.Error("held-back LUNs", "err", err)
		}
		if released {
			// goiscsid's own scans never add a held LUN: someone else
			// wrote to the scan file (an attach tool's narrow scan, or
			// another iscsiadm's wildcard), and the host has it again.
			log.Warn("a held-back LUN was added by a scan goiscsid did not make; no longer held back")
		}
	case "remove":
		if ds.leaving.Load() || !d.sysfs.SessionScanned(ev.Session) {
			return // the session's teardown takes its devices with it
		}
		fresh, err := d.holds.Hold(key, ev.Device.LUN, "removed by the host", time.Now())
		if err != nil {
			log.Error("held-back LUNs", "err", err)
		}
		if fresh {
			log.Info("LUN removed by the host: broad scans will not add it back while the target reports it")
		}
	}
}

// eventsLost finds the removals that the kernel's dropped events told of: each
// session's LUNs attached before and without a device now are held back.
func (d *daemon) eventsLost() {
	d.log.Warn("kernel uevents were lost; comparing each session's devices with the last known")
	d.reconcile("removed while the kernel's events were lost")
}

// reconcile holds back, for every session, the LUNs recorded as attached that
// have no device now.
func (d *daemon) reconcile(reason string) {
	for _, ds := range d.allSessions() {
		d.reconcileSession(ds, reason)
	}
}

func (d *daemon) reconcileSession(ds *daemonSession, reason string) {
	devs, err := d.sysfs.Devices(int(ds.k.Host))
	if err != nil {
		d.log.Error("listing a session's devices", "sid", ds.k.SID, "err", err)
		return
	}
	current := make([]uint64, 0, len(devs))
	for _, dev := range devs {
		current = append(current, dev.LUN)
	}
	held, err := d.holds.Reconcile(nodeKey(ds.k.Node().Node), current, reason, time.Now())
	if err != nil {
		d.log.Error("held-back LUNs", "sid", ds.k.SID, "err", err)
	}
	for _, l := range held {
		d.log.Info("LUN removed by the host: broad scans will not add it back while the target reports it", "sid", ds.k.SID, "lun", l, "reason", reason)
	}
}

// heldLUNs are the LUNs of ds's node held back, as listings show them.
func (d *daemon) heldLUNs(ds *daemonSession) []scan.HeldLUN {
	held, err := d.holds.Held(nodeKey(ds.k.Node().Node))
	if err != nil {
		d.log.Error("held-back LUNs", "sid", ds.k.SID, "err", err)
	}
	return held
}

// holdRemoved holds back the LUN of a removal goiscsiadm asked for, on each
// session whose path it deleted (the device events say so too, when they are
// received).
func (d *daemon) holdRemoved(rep *scan.Report) {
	for _, p := range rep.Paths {
		if !p.Deleted {
			continue
		}
		d.mu.Lock()
		ds := d.sessions[uint32(p.SID)]
		d.mu.Unlock()
		if ds == nil {
			continue
		}
		if _, err := d.holds.Hold(nodeKey(ds.k.Node().Node), rep.LUN, "removed by goiscsiadm --remove-lun", time.Now()); err != nil {
			d.log.Error("held-back LUNs", "sid", p.SID, "err", err)
		}
	}
}

// heldPollInterval is how often goiscsid asks the target of each session with
// held-back LUNs which LUNs it reports: a held LUN that the array unexported
// is forgotten within it, so that a new volume the array exports later at that
// number is found by the next rescan. Arrays announce unexports with a unit
// attention only on a later command, which nothing may send.
const heldPollInterval = 5 * time.Second

// watchHeld asks, every heldPollInterval until ctx ends, the targets of the
// sessions with held-back LUNs for their LUNs.
func (d *daemon) watchHeld(ctx context.Context) {
	t := time.NewTicker(heldPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ds := range d.allSessions() {
			d.forgetUnreported(ctx, ds)
		}
	}
}

// forgetUnreported asks ds's target for its LUNs when some are held back for
// its node, and forgets those it no longer reports.
func (d *daemon) forgetUnreported(ctx context.Context, ds *daemonSession) {
	key := nodeKey(ds.k.Node().Node)
	held, err := d.holds.Held(key)
	if err != nil || len(held) == 0 || ds.leaving.Load() {
		return
	}
	devs, err := d.sysfs.Devices(int(ds.k.Host))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reported, err := d.sysfs.ReportLUNs(ctx, int(ds.k.Host), devs)
	if err != nil {
		d.log.Debug("cannot ask the target for its LUNs", "sid", ds.k.SID, "err", err)
		return
	}
	if err := d.forget(ds.k, reported); err != nil {
		d.log.Error("held-back LUNs", "sid", ds.k.SID, "err", err)
	}
}

// forget forgets the LUNs held back for k's node that its target no longer
// reports.
func (d *daemon) forget(k *ksession.Session, reported []uint64) error {
	gone, err := d.holds.Forget(nodeKey(k.Node().Node), reported)
	for _, h := range gone {
		d.log.Info("held-back LUN no longer reported by the target: the next one at that number is new and scans add it", "sid", k.SID, "lun", h.LUN)
	}
	return err
}
