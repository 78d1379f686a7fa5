package main

import (
	"strconv"

	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/session"
)

// sessionRecord turns what sysfs shows of a session into record keys, so the
// kernel's values win over a record changed since the login.
func sessionRecord(ks scan.Session) record {
	rec := record{
		"node.name": ks.TargetName, "node.tpgt": strconv.Itoa(ks.TPGT), "iface.iscsi_ifacename": ks.Iface,
		"iface.initiatorname": ks.InitiatorName, "node.session.timeo.replacement_timeout": ks.RecoveryTmo,
		"node.conn[0].address": ks.PersistentAddress, "node.conn[0].port": strconv.Itoa(ks.PersistentPort),
	}
	for k, v := range rec {
		if v == "" {
			delete(rec, k)
		}
	}
	return rec
}

// adopt takes over the sessions in the kernel at start, so logout, listing and
// recovery work for them again. Unlike iscsid, it does not log them in again
// (that would stall their I/O): the connection the old daemon handed to the
// kernel keeps working. The scan at start follows each session's policy. find
// returns the node record of a session, nil when there is none.
func (d *daemon) adopt(find func(target, address string, port int, iface string) (map[string]string, error)) {
	all, err := d.sysfs.Sessions()
	if err != nil {
		d.log.Error("reading the kernel's sessions", "err", err)
		return
	}
	for _, s := range all {
		if s.Flash || s.Host < 0 {
			continue // an offload HBA's own session, or one being torn down
		}
		sid, host := uint32(s.SID), uint32(s.Host)
		rec := d.withDefaults(nil)
		iface := s.Iface
		if iface == "" {
			iface = "default"
		}
		stored, err := find(s.TargetName, s.PersistentAddress, s.PersistentPort, iface)
		if err != nil {
			d.log.Warn("node record of a running session", "sid", sid, "err", err)
		}
		for k, v := range stored {
			rec[k] = v
		}
		// What the kernel runs with beats a record changed since.
		for k, v := range sessionRecord(s) {
			rec[k] = v
		}
		n, err := rec.node(d.initiatorName, d.alias)
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		n.Dial = d.dial
		policy, err := scan.PolicyFor(rec.str("node.session.scan", ""), rec.str("node.session.autoscan_en", ""))
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		ds := &daemonSession{rec: rec, id: nodeID(n), policy: policy}
		ds.k = session.Adopt(d.kernel, n, sid, host, session.LoginResult{Params: session.Params{TargetPortalGroupTag: -1}}, d.hooks(ds), d.log)
		d.mu.Lock()
		d.sessions[sid] = ds
		d.mu.Unlock()
		d.log.Info("took over running session", "sid", sid, "host", host, "target", n.Login.TargetName, "scan_policy", policy.String())
		d.scanHost(ds.k, policy, scan.Start)
	}
}
