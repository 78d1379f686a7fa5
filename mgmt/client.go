package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
)

// Client sends requests to goiscsid.
type Client struct {
	// Path is the daemon's socket; empty means DefaultSocket.
	Path string
}

// Do sends req and returns the daemon's response. It fails with an *iscsierr.Error
// carrying iscsierr.ISCSIDNotConn when no daemon listens, iscsierr.ReqTimedOut when ctx
// ends first, and iscsierr.ISCSIDCommErr when the daemon speaks another protocol
// version or answers garbage. A response that reports a failed request is
// returned as is, with its Error set.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	conn, r, werr, err := c.send(ctx, req)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return c.receive(ctx, r, werr)
}

// Events subscribes to the daemon's events (OpEvents). It returns once the
// subscription is in place: every event from then on comes from the stream's
// Next, in order. ctx bounds the whole subscription. It fails as Do does when
// the daemon cannot be reached or refuses.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	conn, r, werr, err := c.send(ctx, &Request{Op: OpEvents})
	if err != nil {
		return nil, err
	}
	// A stream has no deadline but ctx's end.
	conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.receive(ctx, r, werr)
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	return &EventStream{ctx: ctx, c: c, conn: conn, r: r, stop: stop}, nil
}

// EventStream is a subscription to the daemon's events.
type EventStream struct {
	ctx  context.Context
	c    *Client
	conn net.Conn
	r    *bufio.Reader
	stop func() bool
}

// Next returns the next event. It returns io.EOF when the daemon ended the
// stream (after an EventLost when it dropped this subscriber for falling
// behind: read the sessions again and subscribe anew), and ctx's error once
// the subscription's ctx ended.
func (s *EventStream) Next() (Event, error) {
	for {
		line, err := s.r.ReadBytes('\n')
		if s.ctx.Err() != nil {
			return Event{}, s.ctx.Err()
		}
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return Event{}, io.EOF
		}
		if err != nil {
			return Event{}, s.c.ioError(s.ctx, "read event", err)
		}
		resp, err := decode(line)
		if err != nil {
			return Event{}, err
		}
		if resp.Event != nil {
			return *resp.Event, nil
		}
	}
}

// Close ends the subscription.
func (s *EventStream) Close() error {
	s.stop()
	return s.conn.Close()
}

// send connects to the daemon and writes req. A failed write is returned as
// werr beside the connection: the daemon may have answered first.
func (c *Client) send(ctx context.Context, req *Request) (conn net.Conn, r *bufio.Reader, werr, err error) {
	path := c.Path
	if path == "" {
		path = DefaultSocket
	}
	req.Version = Version
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, nil, iscsierr.Errorf(iscsierr.Internal, "encode request: %v", err)
	}
	conn, err = dial(ctx, path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, nil, iscsierr.Errorf(iscsierr.ISCSIDNotConn, "goiscsid is not running (no one listens on %s)", path)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, nil, nil, iscsierr.Errorf(iscsierr.Access, "cannot reach goiscsid on %s: permission denied (run as root)", path)
		}
		if ctx.Err() != nil {
			return nil, nil, nil, iscsierr.Errorf(iscsierr.ReqTimedOut, "connecting to goiscsid: %v", ctx.Err())
		}
		return nil, nil, nil, iscsierr.Errorf(iscsierr.ISCSIDNotConn, "cannot reach goiscsid: %v", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	_, werr = conn.Write(append(b, '\n'))
	return conn, bufio.NewReader(conn), werr, nil
}

// receive reads one response. Even when the request's write failed (werr) the
// daemon may have answered first (it refuses a peer that is not root before
// reading): that answer says more.
func (c *Client) receive(ctx context.Context, r *bufio.Reader, werr error) (*Response, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		if werr != nil {
			return nil, c.ioError(ctx, "send request", werr)
		}
		return nil, c.ioError(ctx, "read response", err)
	}
	return decode(line)
}

// decode parses one response line of this protocol version.
func decode(line []byte) (*Response, error) {
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, iscsierr.Errorf(iscsierr.ISCSIDCommErr, "goiscsid sent a malformed response: %v", err)
	}
	if resp.Version != Version {
		msg := fmt.Sprintf("goiscsid speaks management protocol %d, this goiscsiadm speaks %d: use the goiscsiadm of the same release", resp.Version, Version)
		if resp.Error != nil {
			msg += " (daemon said: " + resp.Error.Message + ")"
		}
		return nil, iscsierr.Errorf(iscsierr.ISCSIDCommErr, "%s", msg)
	}
	return &resp, nil
}

func (c *Client) ioError(ctx context.Context, what string, err error) error {
	// The socket deadline equals ctx's deadline and may fire a moment before
	// ctx's own timer, so a socket timeout counts as the context's.
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return iscsierr.Errorf(iscsierr.ReqTimedOut, "goiscsid did not answer in time (%s): %v", what, err)
	}
	return iscsierr.Errorf(iscsierr.ISCSIDCommErr, "%s: %v", what, err)
}

// dial connects to the daemon's socket. A full backlog (the daemon serving as
// many clients as it takes at once) makes a non-blocking connect fail with
// EAGAIN where a blocking one would wait for room: so wait, until ctx ends.
func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if !errors.Is(err, syscall.EAGAIN) {
			return conn, err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}
