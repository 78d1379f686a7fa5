package nlinktest

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/nlink"
)

// ISERHandle is the transport handle of the fake kernel's iSER transport.
// Its sessions come from endpoints the kernel connects itself
// (TRANSPORT_EP_CONNECT, EP_POLL, CREATE_BOUND_SESSION, BIND_CONN with the
// endpoint's handle, EP_DISCONNECT), as ib_iser's do. The fake has no RDMA:
// an endpoint is a TCP connection the kernel dials, carrying the same PDUs a
// bound iscsi_tcp socket does, which is enough for what userspace sees. Every
// request about an iSER session must carry ISERHandle, and a TCP session's
// Handle: the real kernel would call the other transport's functions.
const ISERHandle uint64 = 0xffff_8888_0000_2000

// endpoint is one connection the kernel makes for userspace.
type endpoint struct {
	handle uint64
	addr   netip.AddrPort
	done   chan struct{} // closed when the dial ended
	sock   net.Conn      // once done, nil if it failed
	err    error
	bound  bool
}

// ISERConn returns an nlink.Conn for k's iSER transport, sharing c's queue and
// events (c from [Kernel.Conn]).
func ISERConn(c *nlink.Conn) *nlink.Conn { return c.ForTransport(ISERHandle) }

// Unreachable makes every endpoint from now on fail as ib_iser's does
// without an RDMA device on the route (measured with 6.1): EP_CONNECT
// succeeds, rdma_resolve_addr fails with -101 in the background, and
// EP_POLL returns -1. False makes them connect again.
func (k *Kernel) Unreachable(yes bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unreachable = yes
}

// Endpoints returns how many endpoints exist (connected, under way or bound).
func (k *Kernel) Endpoints() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.eps)
}

// handleEndpoint runs the endpoint requests with k.mu held; ok is false for
// requests it does not handle.
func (k *Kernel) handleEndpoint(r *nlink.Request) (reply *nlink.Reply, events []nlink.Event, ok bool) {
	fail := func(errno syscall.Errno) (*nlink.Reply, []nlink.Event, bool) {
		return &nlink.Reply{Type: nlink.EventIfError, Errno: errno}, nil, true
	}
	switch r.Type {
	case nlink.EPConnect, nlink.EPPoll, nlink.EPDisconnect, nlink.CreateBoundSession:
		if r.Handle != ISERHandle {
			return fail(syscall.ENOSYS) // iscsi_tcp has no ep_connect
		}
	default:
		return nil, nil, false
	}
	switch r.Type {
	case nlink.EPConnect:
		k.nextEP++
		ep := &endpoint{handle: 0xe000 + k.nextEP, addr: r.Addr, done: make(chan struct{})}
		if k.eps == nil {
			k.eps = map[uint64]*endpoint{}
		}
		k.eps[ep.handle] = ep
		if k.unreachable {
			ep.err = syscall.ENETUNREACH
			close(ep.done)
			return &nlink.Reply{Type: r.Type, EP: ep.handle}, nil, true
		}
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sock, err := (&net.Dialer{}).DialContext(ctx, "tcp", r.Addr.String())
			k.mu.Lock()
			if k.eps[ep.handle] != ep && sock != nil {
				// Disconnected while it dialled.
				sock.Close()
				sock, err = nil, net.ErrClosed
			}
			ep.sock, ep.err = sock, err
			k.mu.Unlock()
			close(ep.done)
		}()
		if !r.NonBlocking {
			k.mu.Unlock()
			<-ep.done
			k.mu.Lock()
			if ep.err != nil {
				delete(k.eps, ep.handle)
				return fail(errnoOf(ep.err))
			}
		}
		return &nlink.Reply{Type: r.Type, EP: ep.handle}, nil, true
	case nlink.EPPoll:
		ep := k.eps[r.EP]
		if ep == nil {
			return fail(syscall.EINVAL)
		}
		// The kernel waits up to the timeout with its lock held; so
		// does the fake, which holds up every other request as the
		// real one does.
		k.mu.Unlock()
		t := time.NewTimer(time.Duration(r.TimeoutMS) * time.Millisecond)
		select {
		case <-ep.done:
		case <-t.C:
		}
		t.Stop()
		k.mu.Lock()
		select {
		case <-ep.done:
		default:
			return &nlink.Reply{Type: r.Type}, nil, true
		}
		if ep.err != nil {
			return &nlink.Reply{Type: r.Type, Errno: syscall.EPERM}, nil, true // retcode -1, as ib_iser
		}
		return &nlink.Reply{Type: r.Type, Connected: true}, nil, true
	case nlink.EPDisconnect:
		ep := k.eps[r.EP]
		if ep == nil {
			return fail(syscall.EINVAL)
		}
		delete(k.eps, r.EP)
		// A bound endpoint's connection is stopped for recovery first,
		// as the kernel does (iscsi_if_disconnect_bound_ep).
		for _, s := range k.sessions {
			for _, c := range s.conns {
				if c.ep == ep {
					c.stopped, c.started, c.ep = true, false, nil
					failTasksLocked(c, syscall.ECONNRESET)
					s.state = "FAILED"
				}
			}
		}
		if ep.sock != nil {
			ep.sock.Close()
		}
		return &nlink.Reply{Type: r.Type}, nil, true
	case nlink.CreateBoundSession:
		ep := k.eps[r.EP]
		if ep == nil || ep.sock == nil {
			return fail(syscall.EINVAL)
		}
		s := &session{sid: k.nextSID, host: k.nextHost, cmdSN: r.InitialCmdSN,
			params: map[nlink.Param]string{}, conns: map[uint32]*conn{}, state: "FREE", iser: true}
		k.nextSID++
		k.nextHost++
		k.sessions[s.sid] = s
		return &nlink.Reply{Type: r.Type, SID: s.sid, HostNo: s.host},
			[]nlink.Event{{Type: nlink.EventCreateSession, SID: s.sid, HostNo: s.host}}, true
	}
	return nil, nil, false
}

// bindEndpoint is BIND_CONN of an iSER session: the endpoint's connection
// becomes the kernel connection's, as a socket does for iscsi_tcp.
func (k *Kernel) bindEndpoint(c *conn, handle uint64) (net.Conn, syscall.Errno) {
	ep := k.eps[handle]
	switch {
	case ep == nil:
		return nil, syscall.EINVAL
	case ep.sock == nil || ep.bound:
		return nil, syscall.EINVAL
	}
	ep.bound = true
	c.ep = ep
	return ep.sock, 0
}
