package nlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// Transport moves encoded iscsi_uevent messages (without netlink headers) to and
// from the kernel.
type Transport interface {
	// Request sends requests in one exchange (one netlink datagram: the
	// kernel handles its messages in order and answers each) and returns the
	// kernel's unicast replies, one per request. When replyExpected is false
	// (a lone GET_STATS, whose result the kernel multicasts instead) it
	// returns nil unless an error reply is waiting.
	Request(ctx context.Context, msgs [][]byte, replyExpected bool) ([][]byte, error)
	// ReceiveEvent returns the next event multicast to the daemon group.
	ReceiveEvent(ctx context.Context) ([]byte, error)
	// LinkState is what the kernel shows of a connection's state
	// (/sys/class/iscsi_connection/connectionSID:CID/state): "up", "down",
	// "failed" or "bound".
	LinkState(sid, cid uint32) (string, error)
	// Close releases the transport; a blocked ReceiveEvent returns.
	Close() error
}

// ErrEventsLost is returned by a Transport's ReceiveEvent when the kernel dropped
// events because the socket buffer was full (ENOBUFS).
var ErrEventsLost = errors.New("kernel events lost: netlink receive buffer overflowed")

// ErrClosed is returned by a Subscription after its Conn was closed.
var ErrClosed = errors.New("nlink: connection closed")

// DefaultTimeout bounds a request whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// KernelError is a request the kernel refused.
type KernelError struct {
	Op    MessageType
	SID   uint32
	CID   uint32
	Param Param // for SET_PARAM
	// HostParam is SET_HOST_PARAM's parameter.
	HostParam HostParam
	Errno     syscall.Errno
}

func (e *KernelError) Error() string {
	if e.Op == SetParam {
		return fmt.Sprintf("kernel refused %v %v for session %d: %v", e.Op, e.Param, e.SID, e.Errno)
	}
	if e.Op == SetHostParam {
		return fmt.Sprintf("kernel refused %v %v: %v", e.Op, e.HostParam, e.Errno)
	}
	if e.Op == EPConnect || e.Op == EPPoll || e.Op == EPDisconnect {
		// An endpoint belongs to no session yet.
		return fmt.Sprintf("kernel refused %v: %v", e.Op, e.Errno)
	}
	return fmt.Sprintf("kernel refused %v for session %d connection %d: %v", e.Op, e.SID, e.CID, e.Errno)
}

// Unwrap returns the errno, so errors.Is(err, unix.ENOSYS) works.
func (e *KernelError) Unwrap() error { return e.Errno }

// Conn is the daemon's connection to one of the kernel's iSCSI transports:
// every request it sends carries that transport's handle. Conns of other
// transports (iSER beside iscsi_tcp) are views of one Conn ([Conn.ForTransport]):
// one pair of sockets, one request queue and one event reader for all of them,
// because the kernel serialises every transport's requests behind one mutex
// anyway and multicasts every session's events to the same group, and session
// numbers are unique across transports.
type Conn struct {
	*core
	// handle is the kernel transport's handle every request carries: the
	// kernel calls that transport's functions for it, so an iSER session's
	// requests must never carry iscsi_tcp's.
	handle uint64
}

// core is what the views of one Conn share.
type core struct {
	t      Transport
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	// jobs are the exchanges waiting for serve; served is closed when
	// serve has stopped.
	jobs   chan *job
	served chan struct{}

	mu        sync.Mutex
	subs      map[uint32][]*Subscription
	unclaimed *Subscription
	stats     map[[2]uint32]chan *Stats
	closed    bool
}

// New returns a Conn over t for the transport whose kernel handle is handle (read
// from /sys/class/iscsi_transport/tcp/handle; see [Dial]). A nil logger means
// slog.Default.
func New(t Transport, handle uint64, log *slog.Logger) *Conn {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{core: &core{
		t: t, log: log, cancel: cancel, done: make(chan struct{}),
		jobs: make(chan *job, queueLength), served: make(chan struct{}),
		subs: map[uint32][]*Subscription{}, stats: map[[2]uint32]chan *Stats{},
	}, handle: handle}
	go c.readEvents(ctx)
	go c.serve(ctx)
	return c
}

// ForTransport returns a Conn for the kernel transport whose handle is handle
// (from [ReadTransport]) that shares c's sockets, queue and event reader:
// requests through it carry handle, events reach its subscriptions as c's do.
// Closing either closes both.
func (c *Conn) ForTransport(handle uint64) *Conn { return &Conn{core: c.core, handle: handle} }

// Handle is the kernel transport handle c's requests carry.
func (c *Conn) Handle() uint64 { return c.handle }

// Close stops event delivery and closes the transport.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	err := c.t.Close()
	<-c.done
	<-c.served
	c.mu.Lock()
	for _, subs := range c.subs {
		for _, s := range subs {
			s.close()
		}
	}
	if c.unclaimed != nil {
		c.unclaimed.close()
	}
	c.mu.Unlock()
	return err
}

func (c *Conn) request(ctx context.Context, r *Request) (*Reply, error) {
	replies, errs, err := c.exchange(ctx, []*Request{r})
	if err != nil {
		return nil, err
	}
	return &replies[0], errs[0]
}

// exchange sends rs, all for one session (or CREATE_SESSION alone), in one
// exchange when its turn comes, and returns each request's reply and the
// kernel's refusal of it (a *KernelError), or the error that ended the exchange.
//
// ctx bounds the wait for the turn; the kernel then gets DefaultTimeout.
func (c *Conn) exchange(ctx context.Context, rs []*Request) ([]Reply, []error, error) {
	msgs := make([][]byte, len(rs))
	for i, r := range rs {
		r.Handle = c.handle
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, nil, err
		}
		msgs[i] = b
	}
	j, err := c.submit(ctx, msgs, true)
	if j == nil {
		return nil, nil, fmt.Errorf("nlink: %v: waiting for the kernel: %w", rs[0].Type, err)
	}
	bs := j.replies
	if err == nil && len(bs) != len(rs) {
		err = fmt.Errorf("%d replies to %d requests", len(bs), len(rs))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("nlink: %v: %w", rs[0].Type, err)
	}
	replies := make([]Reply, len(rs))
	errs := make([]error, len(rs))
	for i, r := range rs {
		if err := replies[i].UnmarshalBinary(bs[i]); err != nil {
			return nil, nil, err
		}
		if replies[i].Type != r.Type && replies[i].Type != EventIfError {
			return nil, nil, fmt.Errorf("nlink: %v answered with %v", r.Type, replies[i].Type)
		}
		if replies[i].Errno != 0 {
			errs[i] = &KernelError{Op: r.Type, SID: r.SID, CID: r.CID, Param: r.Param, HostParam: r.HostParam, Errno: replies[i].Errno}
		}
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		sid := rs[0].SID
		if rs[0].Type == CreateSession {
			sid = replies[0].SID // the new session
		}
		c.log.Debug("kernel request", "op", rs[0].Type.String(), "n", len(rs), "sid", sid, "err", errors.Join(errs...),
			"wait_ms", ms(j.started.Sub(j.queued)), "took_ms", ms(time.Since(j.started)))
	}
	return replies, errs, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// CreateSession creates a kernel session, and with it a SCSI host, and returns
// the session id and host number.
func (c *Conn) CreateSession(ctx context.Context, initialCmdSN uint32, cmdsMax, queueDepth uint16) (sid, hostNo uint32, err error) {
	r, err := c.request(ctx, &Request{Type: CreateSession, InitialCmdSN: initialCmdSN, CmdsMax: cmdsMax, QueueDepth: queueDepth})
	if err != nil {
		return 0, 0, err
	}
	return r.SID, r.HostNo, nil
}

// CreateConn creates connection cid of session sid.
func (c *Conn) CreateConn(ctx context.Context, sid, cid uint32) (uint32, error) {
	r, err := c.request(ctx, &Request{Type: CreateConn, SID: sid, CID: cid})
	if err != nil {
		return 0, err
	}
	if r.CID == ^uint32(0) {
		return 0, &KernelError{Op: CreateConn, SID: sid, CID: cid, Errno: syscall.EINVAL}
	}
	return r.CID, nil
}

// BindConn hands the connected TCP socket fd (a descriptor of this process,
// which must stay open until the connection is destroyed) to the kernel
// connection.
func (c *Conn) BindConn(ctx context.Context, sid, cid uint32, fd int, leading bool) error {
	_, err := c.request(ctx, &Request{Type: BindConn, SID: sid, CID: cid, FD: uint64(fd), Leading: leading})
	return err
}

// ParamValue is a parameter and the value SetParams gives it.
type ParamValue struct {
	Param Param
	Value string
}

// SetParams sets parameters of a session or connection, in order, in one
// exchange with the kernel. It returns the kernel's refusals joined (each a
// *KernelError naming its parameter; the kernel goes on with the next one), or
// the error that ended the exchange.
func (c *Conn) SetParams(ctx context.Context, sid, cid uint32, params []ParamValue) error {
	if len(params) == 0 {
		return nil
	}
	rs := make([]*Request, len(params))
	for i, p := range params {
		rs[i] = &Request{Type: SetParam, SID: sid, CID: cid, Param: p.Param, Value: p.Value}
	}
	_, errs, err := c.exchange(ctx, rs)
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// SetHostParam sets one parameter of iSCSI host hostNo.
func (c *Conn) SetHostParam(ctx context.Context, hostNo uint32, p HostParam, value string) error {
	_, err := c.request(ctx, &Request{Type: SetHostParam, HostNo: hostNo, HostParam: p, Value: value})
	return err
}

// StartConn starts the connection's full feature phase: the kernel unblocks the
// session's I/O.
func (c *Conn) StartConn(ctx context.Context, sid, cid uint32) error {
	_, err := c.request(ctx, &Request{Type: StartConn, SID: sid, CID: cid})
	return err
}

// StopConn stops a connection; StopRecover keeps the session and its I/O queued
// for a relogin.
func (c *Conn) StopConn(ctx context.Context, sid, cid uint32, flag StopFlag) error {
	_, err := c.request(ctx, &Request{Type: StopConn, SID: sid, CID: cid, Flag: flag})
	return err
}

// SendPDU has the kernel send p on the connection. Login and Text PDUs go out as
// given; for other PDUs the kernel fills in ITT, CmdSN and ExpStatSN.
func (c *Conn) SendPDU(ctx context.Context, sid, cid uint32, p *pdu.PDU) error {
	_, err := c.request(ctx, &Request{Type: SendPDU, SID: sid, CID: cid, PDU: p})
	return err
}

// ConnTeardown says what DestroySession does first with the session's
// connection 0.
type ConnTeardown int

const (
	// NoConn: the session has no connection (never created, or destroyed).
	NoConn ConnTeardown = iota
	// ConnCreated: the connection exists, not bound or already stopped:
	// DESTROY_CONN first.
	ConnCreated
	// ConnBound: the connection is bound: STOP_CONN (StopTerminate), then
	// DESTROY_CONN.
	ConnBound
)

// DestroySession destroys a session and its SCSI host, stopping and destroying
// its connection first as conn says, all in one exchange: a teardown then
// waits for its turn once, not three times behind other sessions' requests (a
// logout storm). The kernel goes on after a refusal; DestroySession returns the
// refusals joined, or the error that ended the exchange.
func (c *Conn) DestroySession(ctx context.Context, sid uint32, conn ConnTeardown) error {
	var rs []*Request
	if conn == ConnBound {
		rs = append(rs, &Request{Type: StopConn, SID: sid, Flag: StopTerminate})
	}
	if conn >= ConnCreated {
		rs = append(rs, &Request{Type: DestroyConn, SID: sid})
	}
	rs = append(rs, &Request{Type: DestroySession, SID: sid})
	_, errs, err := c.exchange(ctx, rs)
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// UnbindSession removes the session's SCSI target and its devices, ahead of a
// logout.
func (c *Conn) UnbindSession(ctx context.Context, sid uint32) error {
	_, err := c.request(ctx, &Request{Type: UnbindSession, SID: sid})
	return err
}

// GetStats returns the connection's statistics. The kernel answers a
// successful GET_STATS by multicast, so the reply comes through the event
// reader.
func (c *Conn) GetStats(ctx context.Context, sid, cid uint32) (*Stats, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	key := [2]uint32{sid, cid}
	ch := make(chan *Stats, 1)
	c.mu.Lock()
	if _, busy := c.stats[key]; busy {
		c.mu.Unlock()
		return nil, fmt.Errorf("nlink: GET_STATS for session %d already in progress", sid)
	}
	c.stats[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.stats, key)
		c.mu.Unlock()
	}()
	r := &Request{Type: GetStats, Handle: c.handle, SID: sid, CID: cid}
	msg, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	j, err := c.submit(ctx, [][]byte{msg}, false)
	if j == nil {
		return nil, fmt.Errorf("nlink: GET_STATS: waiting for the kernel: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("nlink: GET_STATS: %w", err)
	}
	if bs := j.replies; len(bs) == 1 {
		var reply Reply
		if err := reply.UnmarshalBinary(bs[0]); err != nil {
			return nil, err
		}
		if reply.Errno != 0 {
			return nil, &KernelError{Op: GetStats, SID: sid, CID: cid, Errno: reply.Errno}
		}
	}
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("nlink: GET_STATS for session %d: %w", sid, ctx.Err())
	}
}

// readEvents routes every kernel event to the subscribers of its session.
func (c *Conn) readEvents(ctx context.Context) {
	defer close(c.done)
	for {
		b, err := c.t.ReceiveEvent(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, ErrEventsLost) {
				c.log.Error("kernel iSCSI events were lost; every session checks its connection's state", "err", err)
				c.broadcast(Event{Type: EventsLost})
				continue
			}
			c.log.Error("reading kernel iSCSI events", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		var ev Event
		if err := ev.UnmarshalBinary(b); err != nil {
			c.log.Warn("malformed kernel iSCSI event", "err", err)
			continue
		}
		c.route(ev)
	}
}

// broadcast gives ev to every subscription.
func (c *Conn) broadcast(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, subs := range c.subs {
		for _, s := range subs {
			s.push(ev)
		}
	}
	if c.unclaimed != nil {
		c.unclaimed.push(ev)
	}
}

// LinkState returns what the kernel shows of connection sid/cid's state: "up"
// (full feature phase), "down" (stopped), "failed" (a connection error was
// reported) or "bound". Subscribers ask it after EventsLost.
func (c *Conn) LinkState(sid, cid uint32) (string, error) { return c.t.LinkState(sid, cid) }

func (c *Conn) route(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Type == GetStats {
		if ch, ok := c.stats[[2]uint32{ev.SID, ev.CID}]; ok {
			select {
			case ch <- ev.Stats:
			default:
			}
		}
		return
	}
	if subs := c.subs[ev.SID]; len(subs) > 0 {
		for _, s := range subs {
			s.push(ev)
		}
		return
	}
	if c.unclaimed != nil {
		c.unclaimed.push(ev)
	}
}

// Subscribe returns the events of session sid from now on.
func (c *Conn) Subscribe(sid uint32) *Subscription {
	s := newSubscription(func(s *Subscription) {
		c.mu.Lock()
		defer c.mu.Unlock()
		subs := c.subs[sid]
		for i, x := range subs {
			if x == s {
				c.subs[sid] = append(subs[:i:i], subs[i+1:]...)
			}
		}
		if len(c.subs[sid]) == 0 {
			delete(c.subs, sid)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.close()
		return s
	}
	c.subs[sid] = append(c.subs[sid], s)
	return s
}

// SubscribeUnclaimed returns the events of sessions nobody subscribed to: every
// listener of the daemon group sees every session's events, including those of
// sessions another daemon (or a previous goiscsid) created.
func (c *Conn) SubscribeUnclaimed() *Subscription {
	s := newSubscription(func(s *Subscription) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.unclaimed == s {
			c.unclaimed = nil
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.close()
		return s
	}
	c.unclaimed = s
	return s
}

// Subscription is a queue of kernel events. The queue is unbounded, so the
// event reader never waits for a slow subscriber and never drops an event.
type Subscription struct {
	mu       sync.Mutex
	queue    []Event
	signal   chan struct{}
	closed   bool
	onCancel func(*Subscription)
}

func newSubscription(onCancel func(*Subscription)) *Subscription {
	return &Subscription{signal: make(chan struct{}, 1), onCancel: onCancel}
}

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting until one arrives, ctx ends, or the Conn
// is closed (ErrClosed).
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Event{}, ErrClosed
		}
		select {
		case <-s.signal:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Cancel stops the subscription; events already queued are dropped.
func (s *Subscription) Cancel() {
	s.onCancel(s)
	s.close()
}
