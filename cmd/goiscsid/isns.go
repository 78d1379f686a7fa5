package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/mgmt"
)

// isnsFollower follows the iSNS servers whose discovery record says
// discovery.isns.use_discoveryd = Yes, as stock iscsid's discovery daemon
// does from its start (an isns.Watch each), and acts on what they name: the
// node records of the targets, as `iscsiadm -m discoverydb -t isns
// --discover` stores them (a record that exists keeps its settings); a login
// to each record whose node.startup is automatic; a logout of the sessions
// it made to a target the server reports gone, whose records stay. Stock's
// daemon (measured) writes no records and logs in to every portal it is told
// of.
type isnsFollower struct {
	d   *daemon
	db  *conf.DB
	log *slog.Logger

	wg   sync.WaitGroup
	mu   sync.Mutex
	mine map[int]string // SID -> target of the sessions the follower logged in
	// gone holds the targets reported gone since they were last found: a
	// login to one that was under way then is logged out when it ends.
	gone map[string]bool
}

// followISNS starts a watch for each such record of db and returns the
// function that stops them (they deregister) and waits for them and the
// logins they started.
func (d *daemon) followISNS(ctx context.Context, db *conf.DB, initiatorName string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	f := &isnsFollower{d: d, db: db, log: d.log, mine: map[int]string{}, gone: map[string]bool{}}
	ds, _ := db.Discoveries()
	for _, r := range ds {
		if r.Kind() != conf.ISNSDiscoveryKind || r.Get("discovery.isns.use_discoveryd") != "Yes" {
			continue
		}
		port, _ := strconv.Atoi(r.Get("discovery.sendtargets.port"))
		poll, _ := strconv.Atoi(r.Get("discovery.isns.discoveryd_poll_inval"))
		src := conf.DiscoverySource{Type: "isns", Address: r.Get("discovery.sendtargets.address"), Port: port}
		w := &isns.Watch{Server: net.JoinHostPort(src.Address, strconv.Itoa(port)), Initiator: initiatorName,
			PollInterval: time.Duration(max(poll, 0)) * time.Second, Log: d.log,
			Found: func(ctx context.Context, ts []isns.Target, _ string) { f.found(ctx, src, ts) },
			Gone:  f.targetGone}
		d.log.Info("iSNS: following the server of a discovery record", "server", w.Server, "poll_interval", w.PollInterval)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			w.Run(ctx)
		}()
	}
	return func() {
		cancel()
		f.wg.Wait()
	}
}

// found stores the records of the targets a server named and logs in to
// those whose node.startup is automatic; a record with a session is left
// alone.
func (f *isnsFollower) found(ctx context.Context, src conf.DiscoverySource, ts []isns.Target) {
	iface, err := f.db.Iface("default")
	if err != nil {
		f.log.Error("iSNS: no default iface", "err", err)
		return
	}
	var recs []*conf.Record
	for _, t := range ts {
		for _, p := range t.Portals {
			addr, port, tpgt := p.Address.Unmap().String(), int(p.Port), int(p.PGT)
			if existing, _ := f.db.FindNodes(t.Name, addr, port, "default"); len(existing) > 0 {
				recs = append(recs, existing[0])
				continue
			}
			r := conf.NewDiscoveredNode(f.d.cfg, t.Name, addr, port, tpgt, iface, src)
			id := r.ID()
			if err := f.db.SaveNode(r); err != nil {
				f.log.Error("iSNS: cannot store the node record", "target", id.Target, "portal", id.Portal(), "err", err)
				continue
			}
			f.log.Info("iSNS: node record written", "target", id.Target, "portal", id.Portal(), "startup", r.Get("node.startup"))
			recs = append(recs, r)
		}
	}
	f.mu.Lock()
	for _, r := range recs {
		delete(f.gone, r.ID().Target)
	}
	f.mu.Unlock()
	for _, r := range recs {
		id := r.ID()
		if r.Get("node.startup") != "automatic" {
			f.log.Info("iSNS: not logging in: node.startup is not automatic", "target", id.Target, "portal", id.Portal(),
				"startup", r.Get("node.startup"))
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			rsp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpLogin, Record: r.Map()})
			switch {
			case rsp.Error != nil && rsp.Error.Code == iscsierr.SessExists:
				f.log.Debug("iSNS: already logged in", "target", id.Target, "portal", id.Portal())
			case rsp.Error != nil:
				f.log.Error("iSNS: login failed", "target", id.Target, "portal", id.Portal(), "err", rsp.Error)
			case rsp.Session != nil:
				f.log.Info("iSNS: logged in", "target", id.Target, "portal", id.Portal(), "sid", rsp.Session.SID)
				f.mu.Lock()
				f.mine[rsp.Session.SID] = id.Target
				gone := f.gone[id.Target]
				f.mu.Unlock()
				if gone {
					f.logout(ctx, id.Target)
				}
			}
		}()
	}
}

// targetGone logs out of the sessions the follower made to target, and of
// those its logins under way make; the records stay.
func (f *isnsFollower) targetGone(ctx context.Context, target string) {
	f.mu.Lock()
	f.gone[target] = true
	f.mu.Unlock()
	f.logout(ctx, target)
}

// logout logs out of the sessions the follower made to target.
func (f *isnsFollower) logout(ctx context.Context, target string) {
	f.mu.Lock()
	var sids []int
	for sid, t := range f.mine {
		if t == target {
			sids = append(sids, sid)
			delete(f.mine, sid)
		}
	}
	f.mu.Unlock()
	for _, sid := range sids {
		if rsp := f.d.ServeMgmt(ctx, &mgmt.Request{Op: mgmt.OpLogout, SID: sid}); rsp.Error != nil {
			f.log.Error("iSNS: logout failed", "target", target, "sid", sid, "err", rsp.Error)
			continue
		}
		f.log.Info("iSNS: logged out: the server no longer names the target", "target", target, "sid", sid)
	}
}
