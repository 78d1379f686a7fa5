package stockipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/internal/sockserve"
	"github.com/goiscsi/goiscsi/iscsierr"
	"golang.org/x/sys/unix"
)

// Name is the abstract socket name stock iscsiadm connects to (without the
// leading NUL; Go spells it with a leading '@'). Abstract names belong to a
// network namespace: a container with its own sees only its own daemon.
const Name = "ISCSIADM_ABSTRACT_NAMESPACE"

// Listen binds the abstract socket stock iscsiadm connects to. The address
// length is exactly stock's (the NUL and the name, no trailing NUL), or
// iscsiadm would not find it. A socket systemd passed (iscsid.socket's
// ListenStream=@ISCSIADM_ABSTRACT_NAMESPACE) can be served instead: Serve
// takes any listener.
func Listen() (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + Name, Net: "unix"})
	if errors.Is(err, unix.EADDRINUSE) {
		return nil, fmt.Errorf("stockipc: @%s is taken: another iscsid or goiscsid serves this network namespace: %w", Name, err)
	}
	return ln, err
}

// Handler answers the requests of stock iscsiadm. The context ends when the
// server shuts down; a client that goes away does not cancel its request
// (stock iscsiadm waits for a login's answer as long as it takes, and a
// login carries on in stock iscsid when iscsiadm is killed). The server sets
// the response's Command to the request's, as stock does.
type Handler interface {
	ServeStock(ctx context.Context, req *Request) *Response
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) *Response

// ServeStock calls f.
func (f HandlerFunc) ServeStock(ctx context.Context, req *Request) *Response { return f(ctx, req) }

// Server serves stock iscsiadm's requests. It answers by itself what needs no
// daemon: a peer that is not root (ISCSI_ERR_ACCESS, 13, as stock iscsid by
// default), a request of unknown size or a command stock iscsiadm does not
// send (ISCSI_ERR_INVALID_MGMT_REQ, 16; CONN_ADD and CONN_REMOVE get
// ISCSI_ERR, 1, as from stock), and a record it cannot decode
// (ISCSI_ERR_INVAL, 7). Everything else goes to the Handler.
type Server struct {
	Handler Handler
	Logger  *slog.Logger
	// ReadTimeout bounds how long a client may take to send its request;
	// zero means 10 seconds. Stock iscsiadm writes it whole right after
	// connecting.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the response; zero means 10 seconds. The
	// handler itself has no time limit: a login's answer comes when the
	// login is done, and stock iscsiadm waits for it without one.
	WriteTimeout time.Duration
	// MaxConns bounds the connections served at once; zero means 1024.
	// Further clients wait in the socket's backlog. A connection costs a
	// request buffer of 16 KiB while it is read.
	MaxConns int
	// peerUID returns the uid of the connected process; tests replace it.
	peerUID func(net.Conn) (uint32, error)
	// tap, if set, sees each request's bytes as read; tests record them.
	tap func([]byte)
	// settle replaces settleTime in tests.
	settle time.Duration
}

// settleTime is how long the server waits for more bytes once some have
// arrived but no known size is complete: stock iscsiadm writes its request
// with one write and then only reads, so a pause this long means the
// request is all there.
const settleTime = 100 * time.Millisecond

// maxDrain bounds what the server reads past the largest request before it
// closes a connection.
const maxDrain = 64 << 10

// Serve accepts connections on ln until ctx ends, then closes ln and waits
// for the connections in progress, each of which ends once its handler
// returns and its answer is written (or WriteTimeout passes). Running out of
// file descriptors or memory delays the next accept; it does not end Serve.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return sockserve.Serve(ctx, ln, orDefault(s.MaxConns, 1024), s.logger(), s.serveConn)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault[T ~int | ~int64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	// Bytes left unread when the socket closes make the client's read of
	// the answer fail (ECONNRESET): a client that sent more than any
	// request gets them read first, within limits.
	defer func() {
		if waiting(c) > 0 {
			c.SetReadDeadline(time.Now().Add(orDefault(s.settle, settleTime)))
			io.CopyN(io.Discard, c, maxDrain)
		}
	}()
	log := s.logger()
	// A shutdown ends a read in progress at once.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	b, rerr := s.readRequest(c)
	stop()
	if s.tap != nil {
		s.tap(b)
	}
	reply := func(resp *Response) {
		out, err := EncodeResponse(resp)
		if err != nil {
			log.Error("iscsiadm answer not encodable; answering internal error", "command", resp.Command, "err", err)
			out, _ = EncodeResponse(&Response{Command: resp.Command, Err: iscsierr.Internal})
		}
		c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, 10*time.Second)))
		if _, err := c.Write(out); err != nil {
			log.Debug("iscsiadm went away before its answer", "command", resp.Command, "err", err)
		}
	}
	// The peer is checked after the read so that an unauthorized client
	// is not cut off while it still writes (it would get EPIPE, or
	// ECONNRESET instead of the answer). Stock answers command 0 here.
	peer := s.peerUID
	if peer == nil {
		peer = sockserve.PeerUID
	}
	uid, perr := peer(c)
	if perr != nil || uid != 0 {
		log.Warn("iscsiadm connection refused: the peer is not root (ISCSI_ERR_ACCESS)", "uid", uid, "err", perr)
		reply(&Response{Err: iscsierr.Access})
		return
	}
	if len(b) == 0 {
		log.Debug("iscsiadm connection sent no request", "err", rerr)
		return
	}
	var cmd Command
	if len(b) >= 4 {
		cmd = Command(ne.Uint32(b))
	}
	req, err := DecodeRequest(b)
	if err != nil {
		var us *UnknownSizeError
		if errors.As(err, &us) {
			log.Warn("iscsiadm request of a release goiscsid does not know; answering ISCSI_ERR_INVALID_MGMT_REQ",
				"command", cmd, "err", err)
			reply(&Response{Command: cmd, Err: iscsierr.InvalidMgmtReq})
			return
		}
		log.Warn("iscsiadm request refused", "command", cmd, "err", err)
		reply(&Response{Command: cmd, Err: iscsierr.Inval})
		return
	}
	if req.Unsupported != "" {
		code := iscsierr.InvalidMgmtReq
		if req.Command == CmdConnAdd || req.Command == CmdConnRemove {
			code = iscsierr.Unknown
		}
		log.Warn("iscsiadm request not supported", "req", req)
		reply(&Response{Command: req.Command, Err: code})
		return
	}
	log.Debug("iscsiadm request", "req", req)
	resp := s.Handler.ServeStock(ctx, req)
	if resp == nil {
		log.Error("iscsiadm request got no answer from the daemon", "req", req)
		resp = &Response{Err: iscsierr.Internal}
	}
	r := *resp
	r.Command = req.Command
	reply(&r)
}

// readRequest reads one request: whatever the client writes, up to one byte
// more than the largest known layout. It stops as soon as the bytes read
// make a known size and no more are waiting in the socket, when the client
// stops writing for the settle time, at end of file, or at the read
// deadline, whichever is first; the caller then judges the length. So a
// client of an unknown release gets an answer rather than a hang.
func (s *Server) readRequest(c net.Conn) ([]byte, error) {
	buf := make([]byte, maxReqSize+1)
	deadline := time.Now().Add(orDefault(s.ReadTimeout, 10*time.Second))
	n := 0
	for n < len(buf) {
		d := deadline
		if n > 0 {
			d = earliest(deadline, time.Now().Add(orDefault(s.settle, settleTime)))
		}
		if err := c.SetReadDeadline(d); err != nil {
			return buf[:n], err
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				return buf[:n], nil
			}
			return buf[:n], err
		}
		if layoutFor(n) != nil && waiting(c) == 0 {
			return buf[:n], nil
		}
	}
	return buf[:n], nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// waiting returns how many bytes wait unread in c's socket (SIOCINQ), or -1
// if it cannot tell; the caller then reads on.
func waiting(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}
