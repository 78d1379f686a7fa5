package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/goiscsi/goiscsi/internal/sockserve"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// Handler answers requests. The context ends when the server shuts down; a
// client that goes away does not cancel its request (a login carries on, as
// with iscsid).
type Handler interface {
	ServeMgmt(ctx context.Context, req *Request) *Response
}

// EventSource is a Handler that also streams events (OpEvents).
type EventSource interface {
	Handler
	// SubscribeEvents returns the events from now on and a function that
	// ends the subscription. The source closes the channel when it drops a
	// subscriber that fell behind, or when it stops.
	SubscribeEvents() (events <-chan Event, cancel func())
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) *Response

// ServeMgmt calls f.
func (f HandlerFunc) ServeMgmt(ctx context.Context, req *Request) *Response { return f(ctx, req) }

// Server accepts management connections.
type Server struct {
	Handler Handler
	Logger  *slog.Logger
	// ReadTimeout bounds how long a client may take to send its request;
	// zero means 10 seconds.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the response; zero means 10 seconds.
	WriteTimeout time.Duration
	// MaxRequestBytes bounds a request line; zero means 64 KiB (a login's
	// node record takes a few).
	MaxRequestBytes int
	// MaxConns bounds the connections served at once; zero means 1024. More
	// clients wait in the socket's backlog, as with iscsid, so a flood costs
	// at most MaxConns × MaxRequestBytes of memory.
	MaxConns int
	// Authorize says whether a peer that is not root may use the socket;
	// nil means none may. goiscsid leaves it nil; tests of programs that
	// talk to a fake daemon as their own unprivileged user set it.
	Authorize func(uid uint32) bool
	// peerUID returns the uid of the connected process; tests replace it.
	peerUID func(net.Conn) (uint32, error)
}

// Listen makes the daemon's socket at path, in a directory only root can
// enter, with mode 0600. (A socket systemd passed is taken with
// sockserve.Activated instead.)
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// A socket left by a daemon that died is in the way; a live daemon is not
	// (connecting to it works), and then this one must not start.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another goiscsid is listening", path)
	}
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve accepts connections on ln until ctx ends, then closes ln and waits for
// the requests in progress. Running out of file descriptors or memory delays
// the next accept; it does not end Serve.
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
	log := s.logger()
	reply := func(resp *Response) error {
		resp.Version = Version
		b, err := json.Marshal(resp)
		if err != nil {
			b, _ = json.Marshal(&Response{Version: Version, Error: iscsierr.Errorf(iscsierr.Internal, "encode response: %v", err)})
		}
		c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, 10*time.Second)))
		if _, err := c.Write(append(b, '\n')); err != nil {
			log.Debug("management client went away before the reply", "err", err)
			return err
		}
		return nil
	}
	peer := s.peerUID
	if peer == nil {
		peer = sockserve.PeerUID
	}
	uid, err := peer(c)
	if err != nil {
		log.Warn("management connection without peer credentials", "err", err)
		reply(&Response{Error: iscsierr.Errorf(iscsierr.Access, "cannot identify the peer: %v", err)})
		return
	}
	if uid != 0 && (s.Authorize == nil || !s.Authorize(uid)) {
		log.Warn("management connection refused: not root", "uid", uid)
		reply(&Response{Error: iscsierr.Errorf(iscsierr.Access, "goiscsid access denied: uid %d is not root", uid)})
		return
	}
	c.SetReadDeadline(time.Now().Add(orDefault(s.ReadTimeout, 10*time.Second)))
	limit := orDefault(s.MaxRequestBytes, 64<<10)
	line, err := bufio.NewReader(io.LimitReader(c, int64(limit)+1)).ReadBytes('\n')
	if len(line) > limit {
		err = fmt.Errorf("longer than %d bytes", limit)
	}
	var req Request
	if err != nil {
		log.Debug("management request not received", "err", err)
		reply(&Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "request not received: %v", err)})
		return
	}
	if err := json.Unmarshal(line, &req); err != nil {
		reply(&Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "request is not valid JSON: %v", err)})
		return
	}
	if req.Version != Version {
		reply(&Response{Error: iscsierr.Errorf(iscsierr.ISCSIDCommErr,
			"client speaks management protocol %d, goiscsid speaks %d: use the goiscsiadm of the same release", req.Version, Version)})
		return
	}
	c.SetReadDeadline(time.Time{})
	if req.Op == OpEvents {
		s.streamEvents(ctx, c, reply)
		return
	}
	if req.NoWait {
		reply(&Response{})
		c.Close()
		if resp := s.Handler.ServeMgmt(ctx, &req); resp != nil && resp.Error != nil {
			log.Info("request taken without waiting failed", "op", req.Op, "err", resp.Error)
		}
		return
	}
	resp := s.Handler.ServeMgmt(ctx, &req)
	if resp == nil {
		resp = &Response{Error: iscsierr.Errorf(iscsierr.Internal, "no response")}
	}
	reply(resp)
}

// streamEvents writes each event of the handler's as a Response until the
// client closes the connection, ctx ends, or the source drops the subscriber
// (an EventLost is written last).
func (s *Server) streamEvents(ctx context.Context, c net.Conn, reply func(*Response) error) {
	src, ok := s.Handler.(EventSource)
	if !ok {
		reply(&Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "this daemon has no events")})
		return
	}
	events, cancel := src.SubscribeEvents()
	defer cancel()
	// The client sends nothing more: a read returns when it goes away.
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(gone)
	}()
	// An empty reply first: the subscription is in place once the client
	// has it, so no event after that is missed.
	if reply(&Response{}) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case e, ok := <-events:
			if !ok {
				reply(&Response{Event: &Event{Time: time.Now(), Kind: EventLost}})
				return
			}
			if reply(&Response{Event: &e}) != nil {
				return // a client that stopped reading
			}
		}
	}
}
