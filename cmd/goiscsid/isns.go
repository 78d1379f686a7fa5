package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// isnsFollower follows the iSNS servers whose discovery record says
// discovery.isns.use_discoveryd = Yes, as stock iscsid's discovery daemon
// does from its start (one initiator.ISNSWatch each), and acts on what they
// name: a node record whose node.startup is automatic is logged in to, and
// the sessions it made to a target the server reports gone are logged out,
// as stock's daemon logs out of what it logged in to.
type isnsFollower struct {
	d   *daemon
	log *slog.Logger

	wg   sync.WaitGroup
	mu   sync.Mutex
	mine map[int]string // SID -> target of the sessions the follower logged in
	// gone holds the targets reported gone since they were last found: a
	// login to one that was under way then is logged out when it ends.
	gone map[string]bool
}

// followISNS starts a watch for each such record of root's node database
// and returns the function that stops them (they deregister) and waits for
// them and the logins they started.
func (d *daemon) followISNS(ctx context.Context, root, initiatorName string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	f := &isnsFollower{d: d, log: d.log, mine: map[int]string{}, gone: map[string]bool{}}
	c := &initiator.Client{Root: root, Warn: func(err error) { d.log.Warn("node database", "err", err) }}
	ds, _ := c.DB().Discoveries()
	for _, r := range ds {
		if r.Kind() != conf.ISNSDiscoveryKind || r.Get("discovery.isns.use_discoveryd") != "Yes" {
			continue
		}
		port, _ := strconv.Atoi(r.Get("discovery.sendtargets.port"))
		poll, _ := strconv.Atoi(r.Get("discovery.isns.discoveryd_poll_inval"))
		w := &initiator.ISNSWatch{Client: c, InitiatorName: initiatorName,
			Server:       initiator.Portal{Address: r.Get("discovery.sendtargets.address"), Port: port},
			PollInterval: time.Duration(max(poll, 0)) * time.Second,
			Log:          d.log, Found: f.found, Gone: f.targetGone}
		d.log.Info("iSNS: following the server of a discovery record", "server", r.Get("discovery.sendtargets.address"),
			"port", port, "poll_interval", w.PollInterval)
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

// found logs in to the records whose node.startup is automatic; a record
// with a session already is left alone.
func (f *isnsFollower) found(ctx context.Context, recs []*conf.Record) {
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
// those its logins under way make.
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
