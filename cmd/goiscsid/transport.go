package main

import (
	"sync"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
)

// transports are the kernel iSCSI transports goiscsid has used beside
// iscsi_tcp: each a view of the daemon's one netlink Conn whose requests
// carry that transport's handle (nlink.Conn.ForTransport), made at the first
// login through it.
type transports struct {
	mu    sync.Mutex
	conns map[string]*nlink.Conn
	// load reads a transport's handle, loading its module; nil means
	// nlink.LoadTransport (tests use a fake).
	load func(sysfsRoot, name string) (nlink.TransportInfo, error)
}

// kernelFor returns the Conn for the transport of n's iface. An iface of
// transport iser gets ib_iser's, loading the module when its class is
// missing, as iscsid does; a transport goiscsid cannot drive fails the login
// (exit 12) rather than falling back to TCP, which would put the session on
// another network than the iface names.
func (d *daemon) kernelFor(n ksession.Node) (*nlink.Conn, error) {
	name := n.Iface.Transport
	switch name {
	case "", "tcp":
		return d.nl, nil
	case ksession.TransportISER:
	default:
		return nil, iscsierr.Errorf(iscsierr.TransNotFound,
			"iface %s: iSCSI transport %q is not supported by goiscsid (tcp and iser are)", n.Iface.Name, name)
	}
	t := &d.transports
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.conns[name]; c != nil {
		return c, nil
	}
	load := t.load
	if load == nil {
		load = nlink.LoadTransport
	}
	info, err := load(d.sysfs.Root, name)
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.TransNotFound, "iface %s: %v", n.Iface.Name, err)
	}
	if t.conns == nil {
		t.conns = map[string]*nlink.Conn{}
	}
	t.conns[name] = d.nl.ForTransport(info.Handle)
	return t.conns[name], nil
}

// transportName is the name -m session shows for an iface's transport.
func transportName(iface string) string {
	if iface == "" {
		return "tcp"
	}
	return iface
}
