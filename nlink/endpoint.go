package nlink

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Endpoints. iscsi_tcp's connection is a TCP socket userspace connects and
// hands over by file descriptor; iSER's (and the offload drivers') is made by
// the kernel: TRANSPORT_EP_CONNECT starts it and returns a handle,
// TRANSPORT_EP_POLL waits for it to come up, CREATE_BOUND_SESSION and
// BIND_CONN take the handle where iscsi_tcp's take nothing and the socket, and
// TRANSPORT_EP_DISCONNECT tears it down. These go through the Conn of that
// transport (ForTransport), like every other request of its sessions.

// Sizes of the socket addresses EP_CONNECT carries after the uevent, as the
// kernel reads them (struct sockaddr_in, struct sockaddr_in6): the transport
// takes the address family from the first two bytes and reads that much.
const (
	sockaddrIn4Size = 16
	sockaddrIn6Size = 28
)

// appendSockaddr appends a as a struct sockaddr_in or sockaddr_in6: family in
// host order, port and address in network order.
func appendSockaddr(b []byte, a netip.AddrPort) ([]byte, error) {
	ip := a.Addr()
	switch {
	case ip.Is4():
		sa := make([]byte, sockaddrIn4Size)
		ne.PutUint16(sa[0:], unix.AF_INET)
		binary16(sa[2:], a.Port())
		v4 := ip.As4()
		copy(sa[4:], v4[:])
		return append(b, sa...), nil
	case ip.Is6():
		sa := make([]byte, sockaddrIn6Size)
		ne.PutUint16(sa[0:], unix.AF_INET6)
		binary16(sa[2:], a.Port())
		v6 := ip.As16()
		copy(sa[8:], v6[:])
		// A link-local address needs its interface: sin6_scope_id is its
		// index, which the zone names.
		if z := ip.Zone(); z != "" {
			idx, err := zoneIndex(z)
			if err != nil {
				return nil, err
			}
			ne.PutUint32(sa[24:], idx)
		}
		return append(b, sa...), nil
	}
	return nil, fmt.Errorf("nlink: TRANSPORT_EP_CONNECT needs an IPv4 or IPv6 address, not %q", a)
}

func binary16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }

// parseSockaddr reads the struct sockaddr_in or sockaddr_in6 at the start of b.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("nlink: TRANSPORT_EP_CONNECT carries %d bytes of address, need a family", len(b))
	}
	port := func() uint16 { return uint16(b[2])<<8 | uint16(b[3]) }
	switch fam := ne.Uint16(b); fam {
	case unix.AF_INET:
		if len(b) < sockaddrIn4Size {
			return netip.AddrPort{}, fmt.Errorf("nlink: TRANSPORT_EP_CONNECT sockaddr_in of %d bytes, need %d", len(b), sockaddrIn4Size)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port()), nil
	case unix.AF_INET6:
		if len(b) < sockaddrIn6Size {
			return netip.AddrPort{}, fmt.Errorf("nlink: TRANSPORT_EP_CONNECT sockaddr_in6 of %d bytes, need %d", len(b), sockaddrIn6Size)
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		if scope := ne.Uint32(b[24:]); scope != 0 {
			ip = ip.WithZone(fmt.Sprint(scope))
		}
		return netip.AddrPortFrom(ip, port()), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("nlink: TRANSPORT_EP_CONNECT with address family %d", fam)
	}
}

// zoneIndex is the interface index an IPv6 zone names (a name or a number).
func zoneIndex(z string) (uint32, error) {
	var n uint32
	if _, err := fmt.Sscan(z, &n); err == nil {
		return n, nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return 0, fmt.Errorf("nlink: zone %q of an IPv6 address: %w", z, err)
	}
	return uint32(ifi.Index), nil
}

// marshalEndpoint encodes the endpoint requests' union and payload into b,
// the uevent.
func (r *Request) marshalEndpoint(b []byte) ([]byte, error) {
	u := b[offU:]
	switch r.Type {
	case CreateBoundSession:
		ne.PutUint64(u[0:], r.EP)
		ne.PutUint32(u[8:], r.InitialCmdSN)
		ne.PutUint16(u[12:], r.CmdsMax)
		ne.PutUint16(u[14:], r.QueueDepth)
	case EPConnect:
		if r.NonBlocking {
			ne.PutUint32(u[0:], 1)
		}
		return appendSockaddr(b, r.Addr)
	case EPPoll:
		ne.PutUint64(u[0:], r.EP)
		ne.PutUint32(u[8:], r.TimeoutMS)
	case EPDisconnect:
		ne.PutUint64(u[0:], r.EP)
	}
	return b, nil
}

// unmarshalEndpoint decodes what marshalEndpoint encoded; u is the request
// union, payload what follows the uevent.
func (r *Request) unmarshalEndpoint(u, payload []byte) error {
	switch r.Type {
	case CreateBoundSession:
		r.EP, r.InitialCmdSN, r.CmdsMax, r.QueueDepth = ne.Uint64(u[0:]), ne.Uint32(u[8:]), ne.Uint16(u[12:]), ne.Uint16(u[14:])
	case EPConnect:
		r.NonBlocking = ne.Uint32(u[0:]) != 0
		a, err := parseSockaddr(payload)
		if err != nil {
			return err
		}
		r.Addr = a
	case EPPoll:
		r.EP, r.TimeoutMS = ne.Uint64(u[0:]), ne.Uint32(u[8:])
	case EPDisconnect:
		r.EP = ne.Uint64(u[0:])
	}
	return nil
}

// EPConnect asks the transport to connect an endpoint to addr and returns its
// handle. With nonBlocking the kernel returns once the connection is under
// way, and EPPoll tells when it is up; that is how open-iscsi asks, so that
// its login timeout bounds the wait. A transport that cannot reach addr
// refuses at once (iSER without an RDMA device on the route: ENETUNREACH,
// which iscsid logs as "Received iferror -101: Network is unreachable").
func (c *Conn) EPConnect(ctx context.Context, addr netip.AddrPort, nonBlocking bool) (uint64, error) {
	r, err := c.request(ctx, &Request{Type: EPConnect, Addr: addr, NonBlocking: nonBlocking})
	if err != nil {
		return 0, err
	}
	if r.EP == 0 {
		// A zero handle names no endpoint; open-iscsi takes it for EIO.
		return 0, &KernelError{Op: EPConnect, Errno: syscall.EIO}
	}
	return r.EP, nil
}

// EPPoll waits up to timeout (whole milliseconds; the kernel holds every
// other request meanwhile, so keep it short) for endpoint ep to come up, and
// reports whether it is. A connection the transport gave up on (refused,
// unreachable, timed out) is an error.
func (c *Conn) EPPoll(ctx context.Context, ep uint64, timeout time.Duration) (bool, error) {
	r, err := c.request(ctx, &Request{Type: EPPoll, EP: ep, TimeoutMS: uint32(timeout.Milliseconds())})
	if err != nil {
		return false, err
	}
	return r.Connected, nil
}

// EPDisconnect tears endpoint ep down. The kernel disconnects a bound
// endpoint itself when its connection fails or is stopped for recovery, and
// then no longer knows the handle (EINVAL): callers that disconnect after
// that may ignore the refusal, as open-iscsi does.
func (c *Conn) EPDisconnect(ctx context.Context, ep uint64) error {
	_, err := c.request(ctx, &Request{Type: EPDisconnect, EP: ep})
	return err
}

// CreateBoundSession creates a kernel session for the connection of endpoint
// ep, on the SCSI host the transport made for it, and returns the session id
// and host number.
func (c *Conn) CreateBoundSession(ctx context.Context, ep uint64, initialCmdSN uint32, cmdsMax, queueDepth uint16) (sid, hostNo uint32, err error) {
	r, err := c.request(ctx, &Request{Type: CreateBoundSession, EP: ep, InitialCmdSN: initialCmdSN, CmdsMax: cmdsMax, QueueDepth: queueDepth})
	if err != nil {
		return 0, 0, err
	}
	return r.SID, r.HostNo, nil
}

// BindEndpoint binds endpoint ep (EPConnect's handle) to connection cid of
// session sid, as BindConn binds iscsi_tcp's socket.
func (c *Conn) BindEndpoint(ctx context.Context, sid, cid uint32, ep uint64, leading bool) error {
	_, err := c.request(ctx, &Request{Type: BindConn, SID: sid, CID: cid, FD: ep, Leading: leading})
	return err
}
