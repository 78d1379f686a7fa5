package session

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// ConnTransport is a Transport over a plain net.Conn, for discovery sessions and
// tests. Receive and Send honour the context's deadline and cancellation.
type ConnTransport struct {
	conn net.Conn
	r    *pdu.Reader
	wmu  sync.Mutex
	w    *pdu.Writer
}

// NewConnTransport returns a transport over c with no digests and the login
// phase's 8192-byte data segment limit.
func NewConnTransport(c net.Conn) *ConnTransport {
	return &ConnTransport{conn: c, r: pdu.NewReader(c), w: pdu.NewWriter(c)}
}

// SetFullFeature applies the negotiated digests and receive limit once the login
// has finished.
func (t *ConnTransport) SetFullFeature(p Params) {
	d := pdu.Digests{Header: p.HeaderDigest, Data: p.DataDigest}
	t.r.Digests, t.r.MaxDataSegmentLength = d, int(p.MaxRecvDataSegmentLength)
	t.wmu.Lock()
	t.w.Digests = d
	t.wmu.Unlock()
}

// Send writes p.
func (t *ConnTransport) Send(ctx context.Context, p *pdu.PDU) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return withDeadline(ctx, t.conn.SetWriteDeadline, func() error { return t.w.Write(p) })
}

// Receive reads the next PDU.
func (t *ConnTransport) Receive(ctx context.Context) (*pdu.PDU, error) {
	p := new(pdu.PDU)
	err := withDeadline(ctx, t.conn.SetReadDeadline, func() error { return t.r.Read(p) })
	return p, err
}

// Close closes the connection.
func (t *ConnTransport) Close() error { return t.conn.Close() }

// withDeadline runs an I/O call under ctx: its deadline becomes the I/O deadline
// and cancellation interrupts the call; the error then says why.
func withDeadline(ctx context.Context, set func(time.Time) error, io func() error) error {
	d, hasDeadline := ctx.Deadline()
	if err := set(d); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { set(time.Unix(1, 0)) })
	err := io()
	stop()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket deadline can fire a moment before the context
		// reports it: report the context's reason either way.
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if hasDeadline && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
	}
	return err
}
