package ksession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/nlink"
)

// TransportISER is iface.transport_name of an iSER iface: the session's
// connection is an RDMA connection ib_iser makes in the kernel, not a TCP
// socket of this process.
const TransportISER = "iser"

// ISER reports whether n's sessions run over iSER (its iface's transport).
// Such a session must be established through the Conn of the kernel's iser
// transport (nlink.Conn.ForTransport): every request carries the transport's
// handle.
func (n *Node) ISER() bool { return n.Iface.Transport == TransportISER }

// iSER connections, as open-iscsi makes them: TRANSPORT_EP_CONNECT
// (non-blocking) to the portal, TRANSPORT_EP_POLL until it is up or the login
// timeout runs out, CREATE_BOUND_SESSION with the endpoint, CREATE_CONN,
// BIND_CONN with the endpoint's handle as transport_eph; the login PDUs then
// go through the kernel (SEND_PDU, RECV_PDU) exactly as over iscsi_tcp.
// Teardown disconnects the endpoint before it stops the connection
// (TRANSPORT_EP_DISCONNECT, then STOP_CONN), open-iscsi's order; a relogin
// connects a new endpoint.

// Polling an endpoint holds the kernel's iSCSI netlink mutex for the poll's
// timeout, and with it every other session's requests: poll for a
// millisecond, as open-iscsi does, and wait in between here.
const (
	epPollTimeout = time.Millisecond
	epPollMinWait = 5 * time.Millisecond
	epPollMaxWait = 50 * time.Millisecond
)

// endpoint is an iSER connection the kernel made; it stands where an
// iscsi_tcp session's socket does.
type endpoint struct {
	k      *nlink.Conn
	handle uint64
	addr   netip.AddrPort
	s      *Session
}

// Close disconnects the endpoint. The kernel has already done so itself when
// the connection failed or was stopped for recovery, and then no longer
// knows the handle: that refusal is expected.
func (e *endpoint) Close() error {
	err := e.k.EPDisconnect(context.Background(), e.handle)
	if err != nil {
		lvl := e.s.log.Warn
		if errors.Is(err, syscall.EINVAL) {
			lvl = e.s.log.Debug
		}
		lvl("disconnect iSER endpoint", "ep", fmt.Sprintf("%#x", e.handle), "err", err)
	}
	return err
}

// open connects to addr (host:port) the way the node's transport does: a TCP
// socket for iscsi_tcp, a kernel endpoint for iSER.
func (s *Session) open(ctx context.Context, addr string) (io.Closer, error) {
	if !s.node.ISER() {
		return s.connect(ctx, addr)
	}
	return s.connectEndpoint(ctx, addr)
}

// connectEndpoint has the kernel connect an iSER endpoint to addr and waits
// until it is up, for as long as ctx (the login timeout) allows.
func (s *Session) connectEndpoint(ctx context.Context, addr string) (*endpoint, error) {
	ap, err := resolve(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s over iSER: %w", addr, err)
	}
	h, err := s.k.EPConnect(ctx, ap, true)
	if err != nil {
		// ib_iser without an RDMA device on the route: rdma_resolve_addr
		// fails with ENETUNREACH, which iscsid logs as "Received iferror
		// -101: Network is unreachable".
		return nil, fmt.Errorf("connect to %s over iSER: %w", addr, ifError(err))
	}
	ep := &endpoint{k: s.k, handle: h, addr: ap, s: s}
	for wait := epPollMinWait; ; wait = min(2*wait, epPollMaxWait) {
		up, err := s.k.EPPoll(ctx, h, epPollTimeout)
		if err == nil && up {
			return ep, nil
		}
		if err == nil && !sleep(ctx, wait) {
			err = ctx.Err()
		}
		var ke *nlink.KernelError
		if errors.As(err, &ke) && ke.Op == nlink.EPPoll {
			// A negative retcode: the transport gave the connection
			// up (ib_iser: address or route resolution failed, the
			// target refused). Measured without an RDMA device:
			// EP_CONNECT succeeds, EP_POLL returns -1.
			err = fmt.Errorf("%w (TRANSPORT_EP_POLL returned %d)", ErrEndpointDown, -int(ke.Errno))
		}
		if err != nil {
			ep.Close()
			return nil, fmt.Errorf("connect to %s over iSER: %w", addr, ifError(err))
		}
	}
}

// ErrEndpointDown is an iSER endpoint the kernel could not bring up: no RDMA
// device on the route, an unreachable or refusing portal. Like a refused TCP
// connect it is worth another try; open-iscsi retries it and reports a
// connection timeout in the end.
var ErrEndpointDown = errors.New("the iSER connection did not come up")

// ifError adds open-iscsi's wording of a kernel refusal (what iscsid logs:
// "Received iferror -101: Network is unreachable") to err, keeping it
// inspectable.
func ifError(err error) error {
	var ke *nlink.KernelError
	if !errors.As(err, &ke) {
		return err
	}
	return &kernelIfError{errno: ke.Errno, err: err}
}

// kernelIfError is a kernel refusal told in iscsid's words, which operators
// search for.
type kernelIfError struct {
	errno syscall.Errno
	err   error
}

func (e *kernelIfError) Error() string {
	msg := e.errno.Error()
	if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
		msg = string(msg[0]-'a'+'A') + msg[1:] // strerror's capital
	}
	return fmt.Sprintf("Received iferror %d: %s (%v)", -int(e.errno), msg, e.err)
}

func (e *kernelIfError) Unwrap() error { return e.err }

// resolve turns host:port into an address EP_CONNECT takes: the kernel
// resolves nothing itself.
func resolve(ctx context.Context, addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s has no address", host)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(p)), nil
}

// createSession creates the kernel session for the connection sock: bound to
// the endpoint for iSER, whose host the transport made with it.
func (s *Session) createSession(ctx context.Context, sock io.Closer) (sid, host uint32, err error) {
	n := s.node
	if ep, ok := sock.(*endpoint); ok {
		return s.k.CreateBoundSession(ctx, ep.handle, 0, n.CmdsMax, n.QueueDepth)
	}
	return s.k.CreateSession(ctx, 0, n.CmdsMax, n.QueueDepth)
}

// bindEndpoint binds ep to the kernel connection, as bind does a socket.
func (s *Session) bindEndpoint(ctx context.Context, ep *endpoint) error {
	return s.keep(ep, s.k.BindEndpoint(ctx, s.SID, 0, ep.handle, true))
}

// disconnectFirst disconnects sock when it is an iSER endpoint, ahead of
// the STOP_CONN that follows (open-iscsi's order), and returns what is left
// to close after the kernel stopped the connection: a TCP socket, or nil.
func disconnectFirst(sock io.Closer) io.Closer {
	if ep, ok := sock.(*endpoint); ok {
		ep.Close()
		return nil
	}
	return sock
}
