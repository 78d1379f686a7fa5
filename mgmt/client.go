package mgmt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	path := c.Path
	if path == "" {
		path = DefaultSocket
	}
	req.Version = Version
	b, err := json.Marshal(req)
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.Internal, "encode request: %v", err)
	}
	conn, err := dial(ctx, path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, iscsierr.Errorf(iscsierr.ISCSIDNotConn, "goiscsid is not running (no one listens on %s)", path)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, iscsierr.Errorf(iscsierr.Access, "cannot reach goiscsid on %s: permission denied (run as root)", path)
		}
		if ctx.Err() != nil {
			return nil, iscsierr.Errorf(iscsierr.ReqTimedOut, "connecting to goiscsid: %v", ctx.Err())
		}
		return nil, iscsierr.Errorf(iscsierr.ISCSIDNotConn, "cannot reach goiscsid: %v", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, werr := conn.Write(append(b, '\n'))
	// Even when the write fails the daemon may have answered first (it
	// refuses a peer that is not root before reading): that answer says more.
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if werr != nil {
			return nil, c.ioError(ctx, "send request", werr)
		}
		return nil, c.ioError(ctx, "read response", err)
	}
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
