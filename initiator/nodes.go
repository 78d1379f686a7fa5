package initiator

import (
	"context"
	"net"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/session"
)

// NodeFilter selects node records and sessions as iscsiadm's -T, -p and -I do:
// a field left empty (or Port 0) matches anything.
type NodeFilter struct {
	Target string
	// Address matches a portal's address; a host name also matches the
	// addresses it resolves to. Stock matches the portal without its tpgt,
	// so -p ADDR:PORT,TPGT (what -m session prints, and tools pass back)
	// finds the record whatever its tpgt.
	Address string
	Port    int
	Iface   string
}

// resolveTimeout bounds the lookup of a host name in a NodeFilter.
const resolveTimeout = 5 * time.Second

// matcher is a NodeFilter with its host name resolved.
type matcher struct {
	f     NodeFilter
	addrs map[string]bool
}

func (c *Client) matcher(ctx context.Context, f NodeFilter) matcher {
	m := matcher{f: f, addrs: map[string]bool{f.Address: true}}
	if f.Address != "" && net.ParseIP(f.Address) == nil {
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		if ips, err := net.DefaultResolver.LookupHost(rctx, f.Address); err == nil {
			for _, ip := range ips {
				m.addrs[ip] = true
			}
		}
	}
	return m
}

func (m matcher) match(target, address string, port int, iface string) bool {
	return (m.f.Target == "" || m.f.Target == target) &&
		(m.f.Address == "" || m.addrs[address]) &&
		(m.f.Port <= 0 || m.f.Port == port) &&
		(m.f.Iface == "" || m.f.Iface == or(iface, "default"))
}

func (m matcher) record(r *conf.Record) bool {
	id := r.ID()
	return m.match(id.Target, id.Address, id.Port, id.Iface)
}

func (m matcher) session(s Session) bool {
	return m.match(s.TargetName, s.PersistentAddress, s.PersistentPort, s.Iface.Name)
}

// Nodes returns every node record.
func (c *Client) Nodes() ([]*conf.Record, error) {
	recs, err := c.DB().Nodes()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	return recs, nil
}

// FindNodes returns the node records f selects.
func (c *Client) FindNodes(ctx context.Context, f NodeFilter) ([]*conf.Record, error) {
	all, err := c.Nodes()
	if err != nil {
		return nil, err
	}
	return c.SelectNodes(ctx, all, f), nil
}

// SelectNodes returns the records of recs that f selects.
func (c *Client) SelectNodes(ctx context.Context, recs []*conf.Record, f NodeFilter) []*conf.Record {
	m := c.matcher(ctx, f)
	var out []*conf.Record
	for _, r := range recs {
		if m.record(r) {
			out = append(out, r)
		}
	}
	return out
}

// SelectSessions returns the sessions of all that f selects.
func (c *Client) SelectSessions(ctx context.Context, all []Session, f NodeFilter) []Session {
	m := c.matcher(ctx, f)
	var out []Session
	for _, s := range all {
		if m.session(s) {
			out = append(out, s)
		}
	}
	return out
}

// Iface returns iface record name, built in or from the database; its error
// has stock's code for a missing iface, NoMem (3), which consumers test for.
func (c *Client) Iface(name string) (*conf.Record, error) {
	r, err := c.DB().Iface(name)
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.NoMem, "Could not read iface info for %s.", name)
	}
	return r, nil
}

// NewNode makes the node record of target at portal (Port 0 means 3260, TPGT
// -1 unknown) through iface ("" means default), as iscsiadm -m node -o new and
// discovery make it: stock's defaults, iscsid.conf's node.* keys, the iface's
// settings. It is not saved.
func (c *Client) NewNode(target string, portal Portal, iface string) (*conf.Record, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	iface = or(iface, "default")
	ir, err := c.Iface(iface)
	if err != nil {
		return nil, err
	}
	r := conf.NewNodeRecord(cfg, target, portal.Address, portOr(portal.Port), portal.TPGT, iface)
	r.BindIface(ir)
	return r, nil
}

func portOr(p int) int {
	if p <= 0 {
		return DefaultPort
	}
	return p
}

// SaveNode writes r to the node database. A record without a tpgt replaces
// the one of the same portal bound to another iface, as stock keeps one such
// record per portal.
func (c *Client) SaveNode(r *conf.Record) error {
	db := c.DB()
	if id := r.ID(); id.TPGT < 0 {
		if recs, err := db.FindNodes(id.Target, id.Address, id.Port, ""); err == nil {
			for _, o := range recs {
				if oid := o.ID(); oid.TPGT < 0 && oid.Iface != id.Iface && o != r {
					db.DeleteNode(o)
				}
			}
		}
	}
	if err := db.SaveNode(r); err != nil {
		return iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	return nil
}

// nodeKey names a node the way stock matches sessions to records: target,
// portal and iface, not the tpgt.
type nodeKey struct {
	target, address string
	port            int
	iface           string
}

func keyOf(id conf.NodeID) nodeKey {
	return nodeKey{id.Target, id.Address, id.Port, or(id.Iface, "default")}
}

func sessionKey(s Session) nodeKey {
	return nodeKey{s.TargetName, s.PersistentAddress, s.PersistentPort, or(s.Iface.Name, "default")}
}

// SessionCounts counts the running sessions of each node record. It fails
// when the sessions cannot be listed: a safety check that got no answer must
// not pass for "no sessions".
func (c *Client) SessionCounts(ctx context.Context) (map[conf.NodeID]int, error) {
	all, err := c.Sessions(ctx, ListOptions{Brief: true})
	if err != nil {
		return nil, err
	}
	byKey := map[nodeKey]int{}
	for _, s := range all {
		byKey[sessionKey(s)]++
	}
	recs, _ := c.DB().Nodes()
	out := map[conf.NodeID]int{}
	for _, r := range recs {
		if n := byKey[keyOf(r.ID())]; n > 0 {
			out[r.ID()] = n
		}
	}
	return out, nil
}

// DeleteNodes removes node records. A record a session uses stays: its entry
// of the returned errors has code SessExists and stock's message. When the
// sessions cannot be listed, every record stays and the second result says
// why.
func (c *Client) DeleteNodes(ctx context.Context, recs []*conf.Record) ([]error, error) {
	counts, err := c.SessionCounts(ctx)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(recs))
	for i, r := range recs {
		errs[i] = c.deleteNode(r, counts)
	}
	return errs, nil
}

// deleteNode is DeleteNode with the session counts already known.
func (c *Client) deleteNode(r *conf.Record, counts map[conf.NodeID]int) error {
	id := r.ID()
	if counts[id] > 0 {
		return iscsierr.Errorf(iscsierr.SessExists, "This command will remove the record [iface: %s, target: %s, portal: %s,%d], but a session is "+
			"using it. Logout session then rerun command to remove record.", id.Iface, id.Target, id.Address, id.Port)
	}
	if err := c.DB().DeleteNode(r); err != nil {
		return iscsierr.Errorf(iscsierr.IDBM, "%v", err)
	}
	return nil
}

// Portal is a target portal: an address (IP or host name), a TCP port and the
// target portal group tag (-1 when unknown); a Port of 0 means 3260.
type Portal = session.Portal

// DefaultPort is iSCSI's TCP port.
const DefaultPort = session.DefaultPort
