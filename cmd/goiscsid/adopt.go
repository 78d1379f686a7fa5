package main

import (
	"strconv"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/session"
)

// adoptRecord is the record a running session is taken over with: its node
// record (stored, nil when there is none, else one made from iscsid.conf),
// with what sysfs shows of the session over it, so the kernel's values win
// over a record changed since the login. A session without a record (a boot
// login by goiscsistart or iscsistart) takes its CHAP credentials from the
// kernel too, as iscsid does: its relogins after a connection drop need them.
func (d *daemon) adoptRecord(ks scan.Session, stored *conf.Record) (*conf.Record, error) {
	rec := stored
	kv := map[string]string{
		"node.name": ks.TargetName, "node.tpgt": strconv.Itoa(ks.TPGT), "iface.iscsi_ifacename": ks.Iface,
		"iface.initiatorname": ks.InitiatorName, "node.session.timeo.replacement_timeout": ks.RecoveryTmo,
		"node.conn[0].address": ks.PersistentAddress, "node.conn[0].port": strconv.Itoa(ks.PersistentPort),
	}
	if rec == nil {
		rec = conf.NewNodeRecord(d.cfg, ks.TargetName, ks.PersistentAddress, ks.PersistentPort, ks.TPGT, ks.Iface)
		if a := d.sysfs.Auth(ks.SID); a.Username != "" {
			kv["node.session.auth.authmethod"] = "CHAP"
			kv["node.session.auth.username"], kv["node.session.auth.password"] = a.Username, a.Password
			kv["node.session.auth.username_in"], kv["node.session.auth.password_in"] = a.UsernameIn, a.PasswordIn
		}
	} else {
		rec = rec.Clone()
	}
	for k, v := range kv {
		if v == "" {
			continue
		}
		if err := rec.Set(k, v); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// adopt takes over the sessions in the kernel at start, so logout, listing and
// recovery work for them again. Unlike iscsid, it does not log them in again
// (that would stall their I/O): the connection the old daemon handed to the
// kernel keeps working. The scan at start follows each session's policy. find
// returns the node record of a session, nil when there is none.
func (d *daemon) adopt(find func(target, address string, port int, iface string) (*conf.Record, error)) {
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
		if s.Iface == "" {
			s.Iface = "default"
		}
		stored, err := find(s.TargetName, s.PersistentAddress, s.PersistentPort, s.Iface)
		if err != nil {
			d.log.Warn("node record of a running session", "sid", sid, "err", err)
		}
		rec, err := d.adoptRecord(s, stored)
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		cn, err := rec.Node(d.initiatorName)
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		policy, err := policyOf(cn)
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		n := ksession.Node{Node: cn, Alias: d.alias, Dial: d.dial, SysfsRoot: d.sysfs.Root}
		ds := &daemonSession{rec: rec, id: nodeID(cn), policy: policy}
		neg, err := d.sysfs.Negotiated(s.SID)
		if err != nil {
			// Listings would show made-up values, recovery would wait a
			// wrong Time2Wait: say so, and go on with the session.
			d.log.Warn("negotiated values of a running session", "sid", sid, "err", err)
		}
		// An iSER session's requests (recovery, logout) must carry the
		// iser transport's handle.
		nl, err := d.kernelFor(n)
		if err != nil {
			d.log.Error("cannot take over session", "sid", sid, "err", err)
			continue
		}
		ds.k = ksession.Adopt(nl, n, sid, host, adoptedResult(neg, cn), d.hooks(ds), d.log)
		d.mu.Lock()
		d.sessions[sid] = ds
		d.mu.Unlock()
		d.log.Info("took over running session", "sid", sid, "host", host, "target", cn.Target, "scan_policy", policy.String())
		d.reconcileSession(ds, "removed while goiscsid was not running")
		d.scanHost(ds.k, policy, scan.Start)
	}
}

// adoptedResult is the login result of a session taken over, from what sysfs
// shows of it; the values iscsi_tcp does not show are the record's proposals.
func adoptedResult(neg scan.Negotiated, n conf.Node) session.LoginResult {
	p := session.Params{
		HeaderDigest: neg.HeaderDigest, DataDigest: neg.DataDigest,
		MaxRecvDataSegmentLength: neg.MaxRecvDataSegmentLength, MaxXmitDataSegmentLength: neg.MaxXmitDataSegmentLength,
		FirstBurstLength: neg.FirstBurstLength, MaxBurstLength: neg.MaxBurstLength, MaxOutstandingR2T: neg.MaxOutstandingR2T,
		InitialR2T: neg.InitialR2T, ImmediateData: neg.ImmediateData,
		DataPDUInOrder: neg.DataPDUInOrder, DataSequenceInOrder: neg.DataSeqInOrder,
		ErrorRecoveryLevel: neg.ErrorRecoveryLevel, TargetAlias: neg.TargetAlias, TargetPortalGroupTag: neg.TPGT,
		DefaultTime2Wait: n.Operational.DefaultTime2Wait, DefaultTime2Retain: n.Operational.DefaultTime2Retain,
	}
	if neg.DefaultTime2Wait >= 0 {
		p.DefaultTime2Wait = uint32(neg.DefaultTime2Wait)
	}
	if neg.DefaultTime2Retain >= 0 {
		p.DefaultTime2Retain = uint32(neg.DefaultTime2Retain)
	}
	return session.LoginResult{Params: p, StatSN: neg.ExpStatSN - 1}
}
