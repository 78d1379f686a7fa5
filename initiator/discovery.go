package initiator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/session"
)

// DiscoverOptions say how Discover finds targets and what it records.
type DiscoverOptions struct {
	// Ifaces are the ifaces the records found are bound to, one record per
	// portal and iface; empty means default.
	Ifaces []string
	// FromRecord uses the portal's stored discovery record, which must
	// exist (iscsiadm -m discovery -p P -D); else the stored one if there is
	// one, else one made from iscsid.conf.
	FromRecord bool
	// NonPersistent writes neither the discovery record nor node records.
	NonPersistent bool
	// DeleteStale deletes the records an earlier discovery through the
	// portal made that this one does not find (stock's default, and -o
	// delete); a record a session uses stays.
	DeleteStale bool
	// Unreachable is told of each attempt that could not reach the portal,
	// before the next one (stock reports each).
	Unreachable func(err error)
}

// ErrNoDiscoveryRecord is a discovery FromRecord of a portal without one.
var ErrNoDiscoveryRecord = errors.New("no discovery record of the portal")

// UnreachableError ends a discovery whose portal could not be reached
// ReopenMax + 1 times (discovery.sendtargets.reopen_max);
// DiscoverOptions.Unreachable was told of each attempt.
type UnreachableError struct{ ReopenMax int }

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("portal unreachable in %d attempts (reopen_max %d)", e.ReopenMax+1, e.ReopenMax)
}

// DiscoveryRecord returns the SendTargets discovery record of address:port,
// nil when there is none.
func (c *Client) DiscoveryRecord(address string, port int) *conf.Record {
	return c.discoveryRecord(conf.DiscoveryKind, address, port)
}

// ISNSDiscoveryRecord returns the discovery record of the iSNS server at
// address:port, nil when there is none.
func (c *Client) ISNSDiscoveryRecord(address string, port int) *conf.Record {
	return c.discoveryRecord(conf.ISNSDiscoveryKind, address, port)
}

func (c *Client) discoveryRecord(kind conf.Kind, address string, port int) *conf.Record {
	ds, _ := c.DB().Discoveries()
	for _, d := range ds {
		if d.Kind() == kind && d.Get("discovery.sendtargets.address") == address && d.Get("discovery.sendtargets.port") == strconv.Itoa(port) {
			return d
		}
	}
	return nil
}

// Discover runs a SendTargets discovery through portal and returns the node
// records of what it found (one per target, portal and iface), stored unless
// opts.NonPersistent. A record that exists keeps its settings. The error's
// code is stock's: PDUTimeout for an unreachable portal (wrapping an
// *UnreachableError), LoginAuthFailed for a refused CHAP login, FatalLogin for
// another initiator error; the cause (a *session.LoginError) is wrapped.
func (c *Client) Discover(ctx context.Context, portal Portal, opts DiscoverOptions) ([]*conf.Record, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	db := c.DB()
	port := portOr(portal.Port)
	drec := c.DiscoveryRecord(portal.Address, port)
	if drec == nil {
		if opts.FromRecord {
			return nil, iscsierr.Errorf(iscsierr.IDBM, "Discovery record [%s,%d] not found: %w", portal.Address, port, ErrNoDiscoveryRecord)
		}
		drec = conf.NewDiscoveryRecord(cfg, portal.Address, port)
	}
	ifaces, err := c.discoveryIfaces(opts.Ifaces)
	if err != nil {
		return nil, err
	}
	auth := session.Auth{Method: session.AuthNone}
	if strings.EqualFold(drec.Get("discovery.sendtargets.auth.authmethod"), "CHAP") {
		auth = session.Auth{Method: session.AuthCHAP,
			Username: drec.Get("discovery.sendtargets.auth.username"), Password: session.Secret(drec.Get("discovery.sendtargets.auth.password")),
			UsernameIn: drec.Get("discovery.sendtargets.auth.username_in"), PasswordIn: session.Secret(drec.Get("discovery.sendtargets.auth.password_in"))}
	}
	if !opts.NonPersistent {
		// The record is kept even when the portal cannot be reached, as
		// stock does: the operator's settings for it are not lost, and
		// -m discoverydb shows what was tried.
		if err := db.SaveDiscovery(drec); err != nil {
			return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
		}
	}
	// Stock asks once per iface, through that iface's transport and
	// interface and under its initiator name; ifaces that leave the same
	// way under the same name would hear the same answer, so they share
	// one discovery (an iser iface's way is its own endpoint).
	type route struct{ netdev, name string }
	found := map[route][]session.DiscoveredTarget{}
	src := conf.DiscoverySource{Type: "send_targets", Address: portal.Address, Port: port}
	var recs []*conf.Record
	for _, ir := range ifaces {
		// Over iSER there is no socket here: goiscsid runs the
		// Discovery session on a kernel endpoint of the iface's.
		var kiface *conf.Record
		netdev := ""
		switch t := ir.Get("iface.transport_name"); t {
		case "", "tcp":
			if netdev, err = netif.Netdev(c.sysfs(), ir.Iface().Binding()); err != nil {
				return nil, discoveryError(err)
			}
		case "iser":
			kiface, netdev = ir, "iser:"+ir.Get("iface.iscsi_ifacename")
		default:
			return nil, iscsierr.Errorf(iscsierr.TransCaps,
				"SendTargets discovery through iface %s: transport %s is not supported by goiscsi, and it does not fall back to TCP",
				ir.Get("iface.iscsi_ifacename"), t)
		}
		name, err := c.ifaceInitiatorName(ir)
		if err != nil {
			return nil, err
		}
		r := route{netdev, name}
		ts, done := found[r]
		if !done {
			dcfg := session.DiscoveryConfig{InitiatorName: name, Auth: auth}
			if kiface == nil {
				dcfg.Dial = (&net.Dialer{Control: netif.Control(netdev)}).DialContext
			}
			if ts, err = c.sendTargets(ctx, drec, Portal{Address: portal.Address, Port: port}, dcfg, kiface, opts.Unreachable); err != nil {
				return nil, discoveryError(err)
			}
			found[r] = ts
		}
		rs, err := c.discovered(ctx, cfg, ts, []*conf.Record{ir}, src, opts.NonPersistent, opts.DeleteStale)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rs...)
	}
	return recs, nil
}

// ifaceInitiatorName is the name a discovery through iface record ir asks
// under: its iface.initiatorname, else the host's.
func (c *Client) ifaceInitiatorName(ir *conf.Record) (string, error) {
	if name := ir.Get("iface.initiatorname"); name != "" {
		return name, nil
	}
	return c.InitiatorName()
}

// discovered turns what a discovery through src found into node records, one
// per target, portal and iface, as stock's exec_disc_op_on_recs does: unless
// nonPersistent, the stale records of src go (deleteStale), and the new ones
// are stored, a record that exists keeping its settings.
func (c *Client) discovered(ctx context.Context, cfg *conf.Config, found []session.DiscoveredTarget, ifaces []*conf.Record, src conf.DiscoverySource, nonPersistent, deleteStale bool) ([]*conf.Record, error) {
	db := c.DB()
	if !nonPersistent && deleteStale {
		c.deleteStale(ctx, src, found, ifaces)
	}
	var recs []*conf.Record
	for _, t := range found {
		for _, p := range t.Portals {
			for _, ir := range ifaces {
				if !nonPersistent {
					if existing, _ := db.FindNodes(t.Name, p.Address, p.Port, ir.Get("iface.iscsi_ifacename")); len(existing) > 0 {
						r := existing[0]
						// Stock rewrites a record it finds again, and its
						// link with it.
						if err := db.RelinkNode(r); err != nil {
							return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
						}
						if r.ID().TPGT < 0 {
							// A record made by hand without one (-o new):
							// what was found says which group, as stock
							// prints it; the file keeps its layout.
							r = r.Clone()
							r.Set("node.tpgt", strconv.Itoa(p.TPGT))
						}
						recs = append(recs, r)
						continue
					}
				}
				r := conf.NewDiscoveredNode(cfg, t.Name, p.Address, p.Port, p.TPGT, ir, src)
				if !nonPersistent {
					if err := c.SaveNode(r); err != nil {
						return nil, err
					}
				}
				recs = append(recs, r)
			}
		}
	}
	return recs, nil
}

// kernelSendTargets is one SendTargets attempt through kiface, run by
// goiscsid in the kernel. A portal it could not reach comes back as
// ISCSI_ERR_TRANS (so: try again).
func (c *Client) kernelSendTargets(ctx context.Context, drec, kiface *conf.Record) ([]session.DiscoveredTarget, error) {
	keys := drec.Map()
	for k, v := range kiface.Map() {
		keys[k] = v
	}
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpDiscover, Record: keys})
	if err != nil {
		return nil, err
	}
	var found []session.DiscoveredTarget
	for _, t := range resp.Targets {
		dt := session.DiscoveredTarget{Name: t.Name}
		for _, p := range t.Portals {
			dt.Portals = append(dt.Portals, session.Portal{Address: p.Address, Port: p.Port, TPGT: p.TPGT})
		}
		found = append(found, dt)
	}
	return found, nil
}

// discoveryIfaces returns the iface records a discovery binds its records to,
// as stock's idbm_bind_ifaces_to_nodes chooses them: the ones named; with
// none named, every tcp iface record of the host but default, and default
// when there is none.
func (c *Client) discoveryIfaces(names []string) ([]*conf.Record, error) {
	var ifaces []*conf.Record
	for _, n := range names {
		ir, err := c.Iface(n)
		if err != nil {
			return nil, err
		}
		ifaces = append(ifaces, ir)
	}
	if len(names) == 0 {
		all, err := c.DB().Ifaces()
		if err != nil {
			return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
		}
		for _, ir := range all {
			if i := ir.Iface(); i.Name != "default" && (i.Transport == "" || i.Transport == "tcp") {
				ifaces = append(ifaces, ir)
			}
		}
	}
	if len(ifaces) == 0 {
		ir, _ := c.Iface("default")
		ifaces = append(ifaces, ir)
	}
	return ifaces, nil
}

// sendTargets runs a SendTargets discovery with the settings of the discovery
// record drec. A portal that cannot be reached is tried again up to
// discovery.sendtargets.reopen_max times, a second apart, each failure told to
// unreachable; a target that answers but refuses is not tried again.
func (c *Client) sendTargets(ctx context.Context, drec *conf.Record, portal Portal, cfg session.DiscoveryConfig, kiface *conf.Record, unreachable func(error)) ([]session.DiscoveredTarget, error) {
	mrdsl, _ := strconv.Atoi(drec.Get("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength"))
	cfg.MaxRecvDataSegmentLength = uint32(mrdsl)
	timeout, _ := strconv.Atoi(drec.Get("discovery.sendtargets.timeo.login_timeout"))
	reopenMax, _ := strconv.Atoi(drec.Get("discovery.sendtargets.reopen_max"))
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Duration(max(timeout, 5))*time.Second)
		var found []session.DiscoveredTarget
		var err error
		if kiface != nil {
			found, err = c.kernelSendTargets(actx, drec, kiface)
		} else {
			found, err = session.Discover(actx, portal, cfg)
		}
		cancel()
		var le *session.LoginError
		var ie *iscsierr.Error
		if err == nil || errors.As(err, &le) || ctx.Err() != nil || (errors.As(err, &ie) && ie.Code != iscsierr.Trans) {
			return found, err
		}
		if unreachable != nil {
			unreachable(err)
		}
		if attempt >= reopenMax {
			return nil, &UnreachableError{ReopenMax: reopenMax}
		}
		if !pause(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
}

// discoveryError gives a failed SendTargets discovery stock 2.1.8's exit code
// (discovery.c): PDUTimeout for a portal it cannot reach, whatever the cause;
// LoginAuthFailed when the target refuses the credentials; FatalLogin for any
// other initiator error.
func discoveryError(err error) error {
	var le *session.LoginError
	var ie *iscsierr.Error
	code := iscsierr.PDUTimeout
	switch {
	case errors.As(err, &ie) && ie.Code != iscsierr.Trans:
		code = ie.Code // goiscsid's verdict on a discovery through the kernel
	case errors.As(err, &le) && le.AuthFailure():
		code = iscsierr.LoginAuthFailed
	case errors.As(err, &le) && le.Status.Class == 2:
		code = iscsierr.FatalLogin
	}
	return iscsierr.Errorf(code, "Could not perform SendTargets discovery: %w", err)
}

// deleteStale deletes the node records an earlier discovery through src
// made that this one did not find (stock's delete_stale_rec); one a session
// uses stays.
func (c *Client) deleteStale(ctx context.Context, src conf.DiscoverySource, found []session.DiscoveredTarget, ifaces []*conf.Record) {
	seen := map[nodeKey]bool{}
	bound := map[string]bool{}
	for _, ir := range ifaces {
		iface := ir.Get("iface.iscsi_ifacename")
		bound[iface] = true
		for _, t := range found {
			for _, p := range t.Portals {
				seen[nodeKey{t.Name, p.Address, p.Port, iface}] = true
			}
		}
	}
	var counts map[conf.NodeID]int
	for _, r := range c.NodesDiscoveredBy(src.Type, src.Address, src.Port) {
		id := r.ID()
		if !bound[id.Iface] || seen[keyOf(id)] {
			continue
		}
		if counts == nil {
			var err error
			if counts, err = c.SessionCounts(ctx); err != nil {
				return // deleting blind could take a live session's record
			}
		}
		c.deleteNode(r, counts)
	}
}

// NodesDiscoveredBy returns the node records a discovery of type typ
// (node.discovery_type: send_targets or isns) through address:port made.
func (c *Client) NodesDiscoveredBy(typ, address string, port int) []*conf.Record {
	recs, _ := c.DB().Nodes()
	var by []*conf.Record
	for _, r := range recs {
		if r.Get("node.discovery_type") == typ && r.Get("node.discovery_address") == address &&
			r.Get("node.discovery_port") == strconv.Itoa(port) {
			by = append(by, r)
		}
	}
	return by
}
