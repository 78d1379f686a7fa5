package initiator

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/session"
)

// ISNSOptions say how DiscoverISNS asks an iSNS server and what it records.
type ISNSOptions struct {
	// Ifaces are the ifaces the records found are bound to; empty means
	// default. An iface with its own iface.initiatorname asks the server
	// under that name, as stock does.
	Ifaces []string
	// UseRecord is -m discoverydb: the server's discovery record
	// (isns/<server>,<port>/isns_config) is used, or made from iscsid.conf
	// and stored unless NonPersistent. Without it (-m discovery -t isns)
	// no discovery record is read or written, as in stock.
	UseRecord bool
	// NonPersistent writes neither the discovery record nor node records.
	NonPersistent bool
	// DeleteStale deletes the records an earlier discovery from this
	// server made that this one does not find; a record a session uses
	// stays. As in stock, a discovery that finds nothing deletes nothing.
	DeleteStale bool
	// Timeout bounds the whole conversation with the server: the connect
	// and every request of every iface's query, the registration and
	// deregistration a server that wants the initiator registered costs
	// included, so that a server answering each request just in time
	// cannot stretch the discovery to several timeouts. Zero means
	// isns.DefaultTimeout. Stock's libisns waits 60 s for each request.
	Timeout time.Duration
	// Dial replaces the TCP dialer; nil means net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DiscoverISNS asks the iSNS server at server (port 0 means 3205) which
// targets this initiator may see, as `iscsiadm -m discovery -t isns` does,
// and returns their node records (node.discovery_type = isns, the server as
// discovery address and port), one per target, portal and iface, stored
// unless opts.NonPersistent; a record that exists keeps its settings.
//
// The error's code is stock's: ISNSQuery (25) when the server cannot be
// reached, breaks the connection, sends what is not iSNSP, does not answer
// within opts.Timeout or refuses the query; ISNSRegFailed (26) when it wants
// the initiator registered first and that fails; NoObjsFound (21) when it
// names no target portal.
func (c *Client) DiscoverISNS(ctx context.Context, server Portal, opts ISNSOptions) ([]*conf.Record, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	port := server.Port
	if port <= 0 {
		port = isns.DefaultPort
	}
	if port > 65535 {
		return nil, iscsierr.Errorf(iscsierr.Inval, "Invalid port %d", port)
	}
	if opts.UseRecord && !opts.NonPersistent && c.ISNSDiscoveryRecord(server.Address, port) == nil {
		// As for SendTargets, the record stays even when the server
		// cannot be reached.
		if err := c.DB().SaveDiscovery(conf.NewISNSDiscoveryRecord(cfg, server.Address, port)); err != nil {
			return nil, iscsierr.Errorf(iscsierr.IDBM, "Could not add new discovery record: %v", err)
		}
	}
	ifaces, err := c.discoveryIfaces(opts.Ifaces)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(server.Address, strconv.Itoa(port))
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = isns.DefaultTimeout
	}
	// One deadline for every exchange with the server (see ISNSOptions.Timeout).
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found := map[string][]session.DiscoveredTarget{} // by initiator name
	var names []string                               // the name each iface asks under
	total := 0
	for _, ir := range ifaces {
		name := ir.Get("iface.initiatorname")
		if name == "" {
			if name, err = c.InitiatorName(); err != nil {
				return nil, iscsierr.Errorf(iscsierr.Inval, "Cannot perform discovery. Initiatorname required: %v", err)
			}
		}
		names = append(names, name)
		if _, done := found[name]; done {
			continue
		}
		ts, err := queryISNS(qctx, addr, name, opts)
		if err != nil {
			return nil, err
		}
		found[name] = ts
		total += len(ts)
	}
	if total == 0 {
		return nil, iscsierr.Errorf(iscsierr.NoObjsFound, "No portals found")
	}
	src := conf.DiscoverySource{Type: "isns", Address: server.Address, Port: port}
	var recs []*conf.Record
	for i, ir := range ifaces {
		rs, err := c.discovered(ctx, cfg, found[names[i]], []*conf.Record{ir}, src, opts.NonPersistent, opts.DeleteStale)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rs...)
	}
	return recs, nil
}

// queryISNS asks the server at addr which targets initiator name may see.
func queryISNS(ctx context.Context, addr, name string, opts ISNSOptions) ([]session.DiscoveredTarget, error) {
	copts := []isns.Option{isns.WithTimeout(opts.Timeout)}
	if opts.Dial != nil {
		copts = append(copts, isns.WithDialer(opts.Dial))
	}
	cl, err := isns.Dial(ctx, addr, copts...)
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.ISNSQuery, "iSNS discovery failed: %w", err)
	}
	defer cl.Close()
	ts, err := cl.DiscoverTargets(ctx, name)
	switch {
	case errors.Is(err, isns.ErrRegistration):
		return nil, iscsierr.Errorf(iscsierr.ISNSRegFailed, "Could not register %s with iSNS server: %w", name, err)
	case err != nil:
		return nil, iscsierr.Errorf(iscsierr.ISNSQuery, "iSNS discovery failed: %w", err)
	}
	return discoveredTargets(ts), nil
}

// discoveredTargets are the targets an iSNS query returned, with their
// portal groups, as stock makes node records of them: a target without a
// portal group gives no record.
func discoveredTargets(ts []isns.Target) []session.DiscoveredTarget {
	var out []session.DiscoveredTarget
	for _, t := range ts {
		d := session.DiscoveredTarget{Name: t.Name}
		for _, p := range t.Portals {
			d.Portals = append(d.Portals, session.Portal{Address: p.Address.Unmap().String(), Port: int(p.Port), TPGT: int(p.PGT)})
		}
		if len(d.Portals) > 0 {
			out = append(out, d)
		}
	}
	return out
}
