package isns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultTimeout bounds each call (dial, send, wait for the response) unless
// the Client is given another with [WithTimeout]. libisns waits up to 60 s;
// a name server that has not answered in 10 s is not going to.
const DefaultTimeout = 10 * time.Second

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("isns: client closed")

// ErrNotRegistered is returned by [Client.Refresh] when the server no longer
// has the entity: it answered No Such Entry or Source Unknown, or (what
// isnsd does) Successful with nothing in it.
var ErrNotRegistered = errors.New("isns: entity not registered")

// ErrRegistration is wrapped by [Client.DiscoverTargets]'s error when the
// server wanted the initiator registered before answering its query and the
// registration failed, or did not make the server answer.
var ErrRegistration = errors.New("isns: registration to query failed")

// Option configures a Client.
type Option func(*clientConfig)

type clientConfig struct {
	timeout    time.Duration
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	maxMessage int
	onSCN      func(Event)
}

// WithTimeout sets the bound on each call; the call's own context may be
// shorter. d <= 0 keeps DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *clientConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithDialer replaces the TCP dialer (tests, binding to a source address).
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *clientConfig) { c.dial = dial }
}

// WithMaxMessage bounds the size of one response (all its PDUs); n <= 0
// keeps DefaultMaxMessage.
func WithMaxMessage(n int) Option {
	return func(c *clientConfig) {
		if n > 0 {
			c.maxMessage = n
		}
	}
}

// WithSCNHandler receives SCNs a server sends on the client's own connection
// (RFC 4171 allows it; open-isns never does, it connects to the SCN port).
// They are answered with SCNRsp whether or not a handler is set. The handler
// runs on the connection's reader and must not block.
func WithSCNHandler(h func(Event)) Option {
	return func(c *clientConfig) { c.onSCN = h }
}

// Client is a connection to an iSNS server. Calls may be made from several
// goroutines; each has its own transaction ID and waits for the response
// with that ID. If the connection breaks (the server closed it or sent
// something unparsable), the calls waiting on it fail and the next call
// dials again.
type Client struct {
	addr string
	cfg  clientConfig

	mu     sync.Mutex
	conn   *clientConn
	xid    uint16
	closed bool
}

type clientConn struct {
	nc      net.Conn
	addr    string
	wmu     sync.Mutex // serialises writes
	mu      sync.Mutex // guards pending
	pending map[uint16]chan *Message
	done    chan struct{} // closed when the reader has exited
	err     error         // why the reader exited; set before done is closed
	failed  error         // set by fail before it closes nc, guarded by mu
	onSCN   func(Event)
	timeout time.Duration
}

// Dial connects to the iSNS server at addr ("host", "host:port", "[v6]:port";
// the port defaults to 3205). ctx bounds the dial only.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	cfg := clientConfig{timeout: DefaultTimeout, maxMessage: DefaultMaxMessage}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.dial == nil {
		d := &net.Dialer{}
		cfg.dial = d.DialContext
	}
	c := &Client{addr: withDefaultPort(addr), cfg: cfg}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.connLocked(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaultPort appends :3205 when addr has no port.
func withDefaultPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() {
		return net.JoinHostPort(addr, strconv.Itoa(DefaultPort))
	}
	if len(addr) > 1 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		return net.JoinHostPort(addr[1:len(addr)-1], strconv.Itoa(DefaultPort))
	}
	return net.JoinHostPort(addr, strconv.Itoa(DefaultPort))
}

// Addr returns the server address the client dials.
func (c *Client) Addr() string { return c.addr }

// LocalAddr returns the local address of the current connection (the
// address the server sees this host at), or nil if there is none.
func (c *Client) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.nc.LocalAddr()
}

// Close closes the connection; calls in progress fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cc := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cc == nil {
		return nil
	}
	err := cc.nc.Close()
	<-cc.done
	return err
}

// connLocked returns a live connection, dialling if there is none or the
// last one broke. c.mu is held.
func (c *Client) connLocked(ctx context.Context) (*clientConn, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if cc := c.conn; cc != nil {
		select {
		case <-cc.done:
			c.conn = nil
		default:
			return cc, nil
		}
	}
	nc, err := c.cfg.dial(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("isns: connect to %s: %w", c.addr, err)
	}
	cc := &clientConn{
		nc: nc, addr: c.addr, pending: map[uint16]chan *Message{}, done: make(chan struct{}),
		onSCN: c.cfg.onSCN, timeout: c.cfg.timeout,
	}
	r := NewReader(nc)
	r.MaxMessage = c.cfg.maxMessage
	go cc.read(r)
	c.conn = cc
	return cc, nil
}

// read delivers responses to waiting calls and answers server requests until
// the connection fails.
func (cc *clientConn) read(r *Reader) {
	var err error
	for {
		var m *Message
		m, err = r.ReadMessage()
		if err != nil {
			break
		}
		if !m.Function.IsResponse() {
			cc.serverRequest(m)
			continue
		}
		cc.mu.Lock()
		ch, ok := cc.pending[m.XID]
		delete(cc.pending, m.XID)
		cc.mu.Unlock()
		if ok {
			ch <- m // buffered; the waiter may have gone
		}
		// A response nobody waits for belongs to a call that timed out.
	}
	cc.mu.Lock()
	failed := cc.failed
	cc.mu.Unlock()
	switch {
	case failed != nil:
		err = failed
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("isns: %s closed the connection", cc.addr)
	case errors.Is(err, net.ErrClosed):
		err = ErrClosed
	default:
		err = fmt.Errorf("isns: connection to %s: %w", cc.addr, err)
	}
	cc.err = err
	cc.nc.Close()
	close(cc.done)
}

// fail closes the connection for reason err, which the calls still waiting
// on it then report.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.failed == nil {
		cc.failed = err
	}
	cc.mu.Unlock()
	cc.nc.Close()
}

// serverRequest answers a request the server sent on this connection.
func (cc *clientConn) serverRequest(m *Message) {
	var rsp *Message
	switch m.Function {
	case ESI:
		rsp = ESIResponse(m)
	case SCN:
		n, err := ParseSCN(m)
		if err != nil {
			rsp = &Message{Function: SCN.Response(), Flags: FlagClient, XID: m.XID, Status: StatusSCNEventRejected}
			break
		}
		rsp = SCNResponse(m)
		if cc.onSCN != nil {
			for _, ev := range n.Events(cc.addr) {
				cc.onSCN(ev)
			}
		}
	default:
		rsp = &Message{Function: m.Function.Response(), Flags: FlagClient, XID: m.XID, Status: StatusMessageNotSupported}
	}
	b, err := rsp.Encode(0)
	if err != nil {
		return
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.nc.SetWriteDeadline(time.Now().Add(cc.timeout))
	cc.nc.Write(b) // a failure shows up on the next read
}

// Call sends request m (its XID is assigned here) and returns the response.
// A response with a non-zero status is returned together with a
// [*StatusError]. The call is bounded by ctx and by the client's timeout.
func (c *Client) Call(ctx context.Context, m *Message) (*Message, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	if m.Function.IsResponse() {
		return nil, fmt.Errorf("isns: call: %v is a response", m.Function)
	}
	c.mu.Lock()
	cc, err := c.connLocked(ctx)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	ch := make(chan *Message, 1)
	cc.mu.Lock()
	if len(cc.pending) >= 0xffff {
		cc.mu.Unlock()
		c.mu.Unlock()
		return nil, fmt.Errorf("isns: %v: too many calls in flight", m.Function)
	}
	for {
		c.xid++
		if _, busy := cc.pending[c.xid]; !busy && c.xid != 0 {
			break
		}
	}
	xid := c.xid
	cc.pending[xid] = ch
	cc.mu.Unlock()
	c.mu.Unlock()

	req := *m
	req.XID = xid
	req.Flags |= FlagClient
	forget := func() {
		cc.mu.Lock()
		delete(cc.pending, xid)
		cc.mu.Unlock()
	}
	b, err := req.Encode(0)
	if err != nil {
		forget()
		return nil, err
	}
	if err := cc.write(ctx, b); err != nil {
		forget()
		if errors.Is(err, net.ErrClosed) {
			// The reader closed the connection first (the server closed
			// it or sent garbage), and is about to say why.
			<-cc.done
			return nil, fmt.Errorf("isns: %v xid %d: %w", req.Function, xid, cc.err)
		}
		err = fmt.Errorf("isns: send %v to %s: %w", req.Function, c.addr, err)
		cc.fail(err) // a half-written PDU leaves the stream unusable
		return nil, err
	}
	check := func(rsp *Message) (*Message, error) {
		if rsp.Function != req.Function.Response() {
			return rsp, errorf("call "+req.Function.String(), ErrUnexpected, "xid %d answered with %v", xid, rsp.Function)
		}
		if rsp.Status != StatusSuccess {
			return rsp, &StatusError{Function: req.Function, Status: rsp.Status}
		}
		return rsp, nil
	}
	select {
	case rsp := <-ch:
		return check(rsp)
	case <-cc.done:
		forget()
		select {
		case rsp := <-ch: // the answer came just before the break
			return check(rsp)
		default:
		}
		return nil, fmt.Errorf("isns: %v xid %d: %w", req.Function, xid, cc.err)
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("isns: %v xid %d to %s: no response: %w", req.Function, xid, c.addr, context.Cause(ctx))
	}
}

func (cc *clientConn) write(ctx context.Context, b []byte) error {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		cc.nc.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { cc.nc.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err := cc.nc.Write(b)
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// Initiator describes what [Client.RegisterInitiator] registers.
type Initiator struct {
	// Name is the initiator's iSCSI Name; it is also the Source of every
	// message.
	Name  string
	Alias string // optional iSCSI Alias

	// EntityID names the Network Entity. Stock iscsid uses the host name
	// (getnameinfo of its portal address). Empty lets the server choose;
	// the chosen one comes back in Registration.EntityID.
	EntityID string

	// SCN, if set, is where the server delivers State Change
	// Notifications: a Portal is registered with its address and port (as
	// Portal TCP/UDP Port and SCN Port, UDP flagged when the listener is
	// UDP, as iscsid does), and an SCNReg with SCNBitmap follows the
	// registration.
	SCN *SCNListener
	// PortalAddr is the address registered for that portal; the zero
	// value uses the local address of the connection to the server, which
	// is the address the server can reach this host at.
	PortalAddr netip.Addr
	// SCNBitmap is the SCNReg bitmap; zero means DefaultSCNBitmap.
	SCNBitmap SCNBitmap
	// ESIInterval, if positive, also registers the SCN listener's port as
	// ESI Port with this interval (seconds), so that the server polls the
	// entity instead of expiring it after the registration period. isnsd
	// clamps it to [ESIMinInterval, ESIMaxInterval] and answers
	// ESI Not Available if ESI is disabled there. Stock iscsid does not use
	// ESI.
	ESIInterval time.Duration
}

// Registration is what the server granted.
type Registration struct {
	EntityID string
	// Period is the entity's Registration Period: the server drops the
	// entity unless some message with a Source of the entity reaches it
	// within that time (see [Client.Refresh]); 0 if none was returned.
	Period time.Duration
	// ESIInterval is the granted ESI interval, 0 if ESI was not asked for
	// or not returned.
	ESIInterval time.Duration
	// Objects are the response's operating attributes grouped.
	Objects []Object
}

// RegisterInitiator registers the initiator as iscsid's discovery daemon
// does: DevAttrReg (replace flag, message key Entity Identifier when one is
// given) with the entity (Entity Identifier, Entity Protocol iSCSI), the SCN
// portal if any (Portal IP Address, Portal TCP/UDP Port, SCN Port, and ESI
// Interval/Port if asked) and the node (iSCSI Name, Node Type initiator,
// iSCSI Alias); then, with an SCN listener, SCNReg for ini.SCNBitmap.
func (c *Client) RegisterInitiator(ctx context.Context, ini Initiator) (*Registration, error) {
	if ini.Name == "" {
		return nil, errors.New("isns: register initiator: empty iSCSI name")
	}
	m := &Message{Function: DevAttrReg, Source: StringAttr(TagISCSIName, ini.Name)}
	if ini.EntityID != "" {
		m.Flags |= FlagReplace
		eid := StringAttr(TagEntityIdentifier, ini.EntityID)
		m.Key = Attrs{eid}
		m.Operating = Attrs{eid, Uint32Attr(TagEntityProtocol, EntityProtocolISCSI)}
	}
	if l := ini.SCN; l != nil {
		addr := ini.PortalAddr
		if !addr.IsValid() {
			la, ok := c.LocalAddr().(*net.TCPAddr)
			if !ok {
				return nil, errors.New("isns: register initiator: no local address for the SCN portal")
			}
			addr = la.AddrPort().Addr().Unmap()
		}
		port := PortValue(l.Port(), l.UDP())
		m.Operating = append(m.Operating,
			IPAttr(TagPortalIPAddress, addr),
			Uint32Attr(TagPortalPort, port),
			Uint32Attr(TagSCNPort, port))
		if ini.ESIInterval > 0 {
			m.Operating = append(m.Operating,
				Uint32Attr(TagESIInterval, uint32(max(1, ini.ESIInterval/time.Second))),
				Uint32Attr(TagESIPort, port))
		}
	}
	m.Operating = append(m.Operating,
		StringAttr(TagISCSIName, ini.Name),
		Uint32Attr(TagISCSINodeType, NodeInitiator))
	if ini.Alias != "" {
		m.Operating = append(m.Operating, StringAttr(TagISCSIAlias, ini.Alias))
	}
	rsp, err := c.Call(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("isns: register %s: %w", ini.Name, err)
	}
	reg := &Registration{Objects: ParseObjects(rsp.Operating)}
	reg.EntityID = rsp.Key.String(TagEntityIdentifier)
	for _, o := range reg.Objects {
		switch o.Type {
		case ObjectEntity:
			if id := o.Attrs.String(TagEntityIdentifier); id != "" {
				reg.EntityID = id
			}
			if p, ok := o.Attrs.Uint32(TagRegistrationPeriod); ok {
				reg.Period = time.Duration(p) * time.Second
			}
		case ObjectPortal:
			if v, ok := o.Attrs.Uint32(TagESIInterval); ok && ini.ESIInterval > 0 {
				reg.ESIInterval = time.Duration(v) * time.Second
			}
		}
	}
	if ini.SCN != nil {
		bm := ini.SCNBitmap
		if bm == 0 {
			bm = DefaultSCNBitmap
		}
		if err := c.RegisterSCN(ctx, ini.Name, bm); err != nil {
			return reg, err
		}
	}
	return reg, nil
}

// RegisterSCN asks for State Change Notifications for node name (SCNReg,
// message key iSCSI Name, operating attribute iSCSI SCN Bitmap). The
// node's entity must have a portal with an SCN Port, else isnsd answers
// SCN Registration Rejected.
func (c *Client) RegisterSCN(ctx context.Context, name string, bitmap SCNBitmap) error {
	m := &Message{Function: SCNReg, Source: StringAttr(TagISCSIName, name),
		Key:       Attrs{StringAttr(TagISCSIName, name)},
		Operating: Attrs{Uint32Attr(TagISCSISCNBitmap, uint32(bitmap))}}
	if _, err := c.Call(ctx, m); err != nil {
		return fmt.Errorf("isns: SCN registration of %s: %w", name, err)
	}
	return nil
}

// DeregisterSCN stops State Change Notifications for node name (SCNDereg).
func (c *Client) DeregisterSCN(ctx context.Context, name string) error {
	m := &Message{Function: SCNDereg, Source: StringAttr(TagISCSIName, name),
		Key: Attrs{StringAttr(TagISCSIName, name)}}
	if _, err := c.Call(ctx, m); err != nil {
		return fmt.Errorf("isns: SCN deregistration of %s: %w", name, err)
	}
	return nil
}

// Deregister removes what source registered (DevDereg): the whole entity
// (its portals and nodes, and with them its SCN registrations) when
// entityID is given, else just the node named source, as iscsiadm does
// after a discovery it had to register for.
func (c *Client) Deregister(ctx context.Context, source, entityID string) error {
	m := &Message{Function: DevDereg, Source: StringAttr(TagISCSIName, source)}
	if entityID != "" {
		m.Operating = Attrs{StringAttr(TagEntityIdentifier, entityID)}
	} else {
		m.Operating = Attrs{StringAttr(TagISCSIName, source)}
	}
	if _, err := c.Call(ctx, m); err != nil {
		return fmt.Errorf("isns: deregister %s: %w", source, err)
	}
	return nil
}

// Refresh keeps a registration alive the way iscsid does between
// registration periods: a DevAttrQry keyed by the Entity Identifier asking
// for the Entity Protocol (any message from the entity's node resets the
// server's timer). An error wrapping ErrNotRegistered means the
// registration is gone: register again.
func (c *Client) Refresh(ctx context.Context, source, entityID string) error {
	m := &Message{Function: DevAttrQry, Source: StringAttr(TagISCSIName, source),
		Key:       Attrs{StringAttr(TagEntityIdentifier, entityID)},
		Operating: Attrs{NilAttr(TagEntityProtocol)}}
	rsp, err := c.Call(ctx, m)
	if errors.Is(err, StatusNoSuchEntry) || errors.Is(err, StatusSourceUnknown) {
		return fmt.Errorf("isns: refresh %s: %w (%w)", entityID, ErrNotRegistered, err)
	}
	if err != nil {
		return fmt.Errorf("isns: refresh %s: %w", entityID, err)
	}
	// isnsd answers a query for a deregistered entity with status 0 and
	// no operating attributes.
	if _, ok := rsp.Operating.Get(TagEntityProtocol); !ok {
		return fmt.Errorf("isns: refresh %s: %w (the answer names no entity)", entityID, ErrNotRegistered)
	}
	return nil
}

// queryTags are the attributes stock iscsiadm asks a DevAttrQry for
// (usr/discovery.c discovery_isns_query), plus the iSCSI Alias.
var queryTags = []Tag{TagISCSIName, TagISCSINodeType, TagISCSIAlias, TagPortalIPAddress, TagPortalPort,
	TagPGISCSIName, TagPGPortalIPAddr, TagPGPortalPort, TagPGTag}

// QueryTargets asks which targets source (an initiator's iSCSI Name) may
// see. With no names it queries as stock iscsiadm does, message key iSCSI
// Node Type = target; with names (what iscsid does on an SCN) one query per
// name, keyed by iSCSI Name. Nothing matching yields no targets and no
// error, whether the server says so with No Such Entry or, as isnsd does,
// with Successful and no attributes; an unregistered source, on a server
// that requires registration, gets an error wrapping StatusSourceUnknown
// (see [Client.DiscoverTargets]).
func (c *Client) QueryTargets(ctx context.Context, source string, names ...string) ([]Target, error) {
	keys := []Attr{Uint32Attr(TagISCSINodeType, NodeTarget)}
	if len(names) > 0 {
		keys = keys[:0]
		for _, n := range names {
			keys = append(keys, StringAttr(TagISCSIName, n))
		}
	}
	var out []Target
	for _, k := range keys {
		m := &Message{Function: DevAttrQry, Source: StringAttr(TagISCSIName, source), Key: Attrs{k}}
		for _, t := range queryTags {
			m.Operating = append(m.Operating, NilAttr(t))
		}
		rsp, err := c.Call(ctx, m)
		if errors.Is(err, StatusNoSuchEntry) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("isns: query targets for %s: %w", source, err)
		}
		out = append(out, Targets(rsp.Operating)...)
	}
	return out, nil
}

// DiscoverTargets does what `iscsiadm -m discovery -t isns` does: query;
// if the server does not know the source (Source Unknown), register a bare
// initiator node (DevAttrReg with iSCSI Name and Node Type only, no message
// key), query again and deregister the node. If that registration fails, or
// the server still does not know the source, the error wraps
// ErrRegistration (stock's "iSNS registration failed").
func (c *Client) DiscoverTargets(ctx context.Context, initiator string) ([]Target, error) {
	ts, err := c.QueryTargets(ctx, initiator)
	if !errors.Is(err, StatusSourceUnknown) {
		return ts, err
	}
	reg := &Message{Function: DevAttrReg, Source: StringAttr(TagISCSIName, initiator),
		Operating: Attrs{StringAttr(TagISCSIName, initiator), Uint32Attr(TagISCSINodeType, NodeInitiator)}}
	if _, rerr := c.Call(ctx, reg); rerr != nil {
		return nil, fmt.Errorf("%w: register %s: %w", ErrRegistration, initiator, rerr)
	}
	ts, err = c.QueryTargets(ctx, initiator)
	// Like stock, the deregistration's outcome does not change the result.
	_ = c.Deregister(ctx, initiator, "")
	if errors.Is(err, StatusSourceUnknown) {
		err = fmt.Errorf("%w: %s still unknown to the server after registering: %w", ErrRegistration, initiator, err)
	}
	return ts, err
}
