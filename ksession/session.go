package ksession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
	"golang.org/x/sys/unix"
)

// Node is what a kernel-backed session of one node record needs: the decoded
// record, and how to name and reach the initiator side.
type Node struct {
	conf.Node
	// Alias is the initiator's alias (InitiatorAlias=, else the host name).
	Alias string
	// Dial opens the TCP connection; nil means a net.Dialer that binds to
	// the iface's network interface (netif.Netdev). The connection must be
	// a *net.TCPConn: the kernel takes over its socket.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// SysfsRoot is where sysfs is mounted, for the interface of an
	// iface.hwaddress; empty means /sys.
	SysfsRoot string
	// Admission, when set, bounds the logins the kernel works on at once
	// without counting those still waiting on the network (see
	// [Admission]); SlowPortals, when set too, is what the logins of a
	// daemon have learnt of portals that do not answer.
	Admission   Admission
	SlowPortals *SlowPortals
}

// LoginConfig is what a login of the node sends; Establish and the relogins
// fill in ISID, TSIH, CID, ITT and the sequence numbers.
func (n *Node) LoginConfig() session.LoginConfig {
	return session.LoginConfig{InitiatorName: n.InitiatorName, InitiatorAlias: n.Alias, TargetName: n.Target,
		Auth: n.Auth, Operational: n.Operational, RDMA: n.ISER()}
}

// Hooks are the daemon's callbacks for what happens to a running session. They
// run on the session's own goroutine and must not block for long.
type Hooks struct {
	// AsyncEvent receives each SCSI asynchronous event (AsyncEvent 0) with its
	// sense data.
	AsyncEvent func(s *Session, lun uint64, sense pdu.Sense)
	// Recovered runs after a relogin that followed a connection error.
	Recovered func(s *Session, attempts int)
	// Failed runs when recovery gives up (node.session.reopen_max) and the
	// session has been torn down.
	Failed func(s *Session, err error)
	// ConnError receives each connection error the kernel reports
	// (CONN_ERROR) in the full feature phase, before recovery begins.
	ConnError func(s *Session, e nlink.ConnError)
	// Recovering runs when recovery begins, with its cause: the connection
	// error, or the target's request (an Async Message).
	Recovering func(s *Session, cause string)
	// Relogin receives each relogin attempt of a recovery: how long it took
	// (connect to the final Login Response) and its error, nil on success.
	Relogin func(s *Session, took time.Duration, err error)
	// StateChanged runs after each change of the session's State once it is
	// established (the LoggedIn that Establish returns with is not reported).
	StateChanged func(s *Session, st State)
}

// Session is one session whose full feature phase runs in the kernel's iscsi_tcp:
// created with [Establish], it keeps itself up through connection errors until
// [Session.Logout].
type Session struct {
	k     *nlink.Conn
	node  Node
	hooks Hooks
	log   *slog.Logger
	sub   *nlink.Subscription

	// SID and Host are the kernel's session number and SCSI host number.
	SID, Host uint32
	// ISID is this session's initiator session ID (00 02 3D plus the SID, as
	// open-iscsi makes it).
	ISID pdu.ISID

	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// sock is the connection's transport side: a TCP socket (net.Conn)
	// or an iSER endpoint (endpoint.go).
	sock    io.Closer
	bound   bool
	result  *session.LoginResult
	state   State
	started time.Time
	times   LoginTimes
	// logoutTimes is where the logout spent its time.
	logoutTimes LogoutTimes
	// leftover is the teardown a destroy that did not happen still owes
	// the kernel; set while the session is in the kernel though Failed.
	leftover *nlink.ConnTeardown
	// pong receives the arrival time of the NOP-In answering Ping's
	// NOP-Out; nil when no ping is in flight.
	pong chan time.Time
}

// LoginTimes is where the latest login of a session spent its time, for logs:
// a slow login shows which step waited.
type LoginTimes struct {
	// Connect is the TCP connection to the portal.
	Connect time.Duration
	// Kernel is the kernel's work before the Login Request: creating the
	// session and connection, binding the socket, setting the identity.
	Kernel time.Duration
	// Login is the Login PDU exchange; PDUs counts the requests sent.
	Login time.Duration
	PDUs  int
	// Start is setting the negotiated values and starting the connection.
	Start time.Duration
}

// LogValue shows the times in milliseconds.
func (t LoginTimes) LogValue() slog.Value {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return slog.GroupValue(slog.Float64("connect_ms", ms(t.Connect)), slog.Float64("kernel_ms", ms(t.Kernel)),
		slog.Float64("login_ms", ms(t.Login)), slog.Int("pdus", t.PDUs), slog.Float64("start_ms", ms(t.Start)))
}

// LogoutTimes is where a logout spent its time, for logs: which of the kernel's
// device removal, the target's answer and the kernel's teardown a slow one
// waited for.
type LogoutTimes struct {
	// Unbind is the kernel removing the session's SCSI devices: its
	// UNBIND_SESSION request and the work it then does until its event
	// (flushing each device's cache through the connection).
	Unbind time.Duration
	// Logout is the Logout PDU exchange.
	Logout time.Duration
	// Kernel is the kernel's netlink requests: UNBIND_SESSION's own answer
	// and the teardown (stopping and destroying the connection and session).
	Kernel time.Duration
}

// LogValue shows the times in milliseconds.
func (t LogoutTimes) LogValue() slog.Value {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return slog.GroupValue(slog.Float64("unbind_ms", ms(t.Unbind)), slog.Float64("logout_ms", ms(t.Logout)),
		slog.Float64("kernel_ms", ms(t.Kernel)))
}

// Times returns where the latest login spent its time.
func (s *Session) Times() LoginTimes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.times
}

// timed adds the time since start to the step *d of the login times.
func (s *Session) timed(d *time.Duration, start time.Time) {
	s.mu.Lock()
	*d += time.Since(start)
	s.mu.Unlock()
}

// ErrConnectionLost is a connection the kernel reported broken (CONN_ERROR) while a
// PDU was awaited.
var ErrConnectionLost = errors.New("connection lost")

// Establish connects to n's portal, creates the kernel session and connection,
// hands the socket to the kernel, logs in through it, sets every parameter and
// starts the connection. On error nothing is left in the kernel. ctx bounds the
// whole login; node.Timeouts.Login is applied on top.
func Establish(ctx context.Context, k *nlink.Conn, n Node, hooks Hooks, log *slog.Logger) (*Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if n.CmdsMax == 0 {
		n.CmdsMax = 128
	}
	if n.QueueDepth == 0 {
		n.QueueDepth = 32
	}
	s := &Session{k: k, node: n, hooks: hooks, log: log, done: make(chan struct{}), state: Failed}
	sock, loginCtx, done, err := s.connectAdmitted(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	t0 := time.Now()
	sid, host, err := s.createSession(loginCtx, sock)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("create kernel session: %w", err)
	}
	s.SID, s.Host = sid, host
	s.ISID = pdu.ISID{0x00, 0x02, 0x3d, byte(sid >> 16), byte(sid >> 8), byte(sid)}
	s.sub = k.Subscribe(sid)
	s.log = log.With("sid", sid)
	if _, err := k.CreateConn(loginCtx, sid, 0); err != nil {
		sock.Close()
		s.destroy(context.WithoutCancel(ctx), false)
		return nil, fmt.Errorf("create kernel connection: %w", err)
	}
	s.timed(&s.times.Kernel, t0)
	if err := s.loginConn(loginCtx, sock, 0); err != nil {
		s.destroy(context.WithoutCancel(ctx), true)
		return nil, err
	}
	s.mu.Lock()
	s.state = LoggedIn
	s.started = time.Now()
	s.mu.Unlock()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = stop
	go s.run(runCtx)
	return s, nil
}

// Adopt takes over a session a previous daemon left running in the kernel (found
// in sysfs at start): its connection keeps working, so nothing is sent; the
// session is handled from now on (events, recovery, logout) as if Establish had
// made it. res holds what sysfs shows of the negotiated values.
func Adopt(k *nlink.Conn, n Node, sid, host uint32, res session.LoginResult, hooks Hooks, log *slog.Logger) *Session {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{k: k, node: n, hooks: hooks, log: log.With("sid", sid), done: make(chan struct{}),
		SID: sid, Host: host, state: LoggedIn, started: time.Now(), result: &res}
	s.ISID = pdu.ISID{0x00, 0x02, 0x3d, byte(sid >> 16), byte(sid >> 8), byte(sid)}
	s.sub = k.Subscribe(sid)
	// The kernel holds its own reference to the old daemon's socket, so the
	// connection counts as bound: a logout or recovery stops it first.
	s.bound = true
	runCtx, stop := context.WithCancel(context.Background())
	s.cancel = stop
	go s.run(runCtx)
	return s
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Node returns the settings s was established with.
func (s *Session) Node() Node { return s.node }

// Result returns the outcome of the latest login.
func (s *Session) Result() session.LoginResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.result == nil {
		return session.LoginResult{}
	}
	return *s.result
}

// State is where the session stands.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Session) setState(st State) {
	s.mu.Lock()
	changed := s.state != st
	s.state = st
	s.mu.Unlock()
	if changed && s.hooks.StateChanged != nil {
		s.hooks.StateChanged(s, st)
	}
}

// ErrPingInFlight is Ping's error when the session's previous ping has not
// been answered yet.
var ErrPingInFlight = errors.New("a ping is in flight")

// Ping sends a NOP-Out ping (RFC 7143 §11.18) on the logged-in connection and
// returns the time until the target's NOP-In answering it reached this
// process: the path's round trip plus the kernel's netlink hops, which are
// microseconds. The kernel gives the NOP-Out a task of its own and forwards
// the answer (libiscsi passes up a NOP-In that answers no ping of the
// kernel's), so Ping does not disturb the kernel's own NOP-Outs. One ping is
// in flight at a time (ErrPingInFlight). A ping that a relogin overtakes is
// never answered: ctx bounds it.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	pong := make(chan time.Time, 1)
	s.mu.Lock()
	switch {
	case s.state != LoggedIn:
		s.mu.Unlock()
		return 0, fmt.Errorf("ping: session %d is %s", s.SID, s.state)
	case s.pong != nil:
		s.mu.Unlock()
		return 0, ErrPingInFlight
	}
	s.pong = pong
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pong == pong {
			s.pong = nil
		}
		s.mu.Unlock()
	}()
	// The kernel writes its own ITT, CmdSN and ExpStatSN; any ITT but the
	// reserved one asks for an answer.
	var p pdu.PDU
	(&pdu.NOPOut{Immediate: true, ITT: 1, TTT: pdu.ReservedTag}).Encode(&p.Header)
	t0 := time.Now()
	if err := s.k.SendPDU(ctx, s.SID, 0, &p); err != nil {
		return 0, fmt.Errorf("ping: send NOP-Out: %w", err)
	}
	select {
	case t1 := <-pong:
		return t1.Sub(t0), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping: no NOP-In: %w", ctx.Err())
	}
}

// ErrNoSocket is WithSocket's error when this process holds no socket of a
// logged-in connection: it is being replaced (recovery) or logged out, the
// session is gone, or it was adopted from a previous daemon, whose socket
// only the kernel still holds, or it runs over iSER, whose connection is
// the kernel's.
var ErrNoSocket = errors.New("the connection has no socket in this process")

// WithSocket runs f with the file descriptor of the logged-in connection's
// TCP socket, for reading its state (TCP_INFO). The socket stays open while f
// runs: a relogin or logout that would close it waits for f, so f never sees
// a closed or reused descriptor. After a relogin it is the new socket's, and
// only once the session is LoggedIn again, after the Relogin hook reported
// the login. f must be quick and must not keep or close fd.
func (s *Session) WithSocket(f func(fd int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sock == nil || s.state != LoggedIn {
		return ErrNoSocket
	}
	if _, ep := s.sock.(*endpoint); ep {
		return ErrNoSocket // the kernel's RDMA connection
	}
	sc, ok := s.sock.(syscall.Conn)
	if !ok {
		return fmt.Errorf("connection %T has no file descriptor", s.sock)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// portal is where the node's logins start, as host:port.
func (n *Node) portal() string { return session.Portal{Address: n.Address, Port: n.Port}.HostPort() }

// connect opens a TCP connection to addr as open-iscsi does: no Nagle, 512 KiB
// socket buffers (node.conn[0].tcp.window_size).
func (s *Session) connect(ctx context.Context, addr string) (net.Conn, error) {
	dial := s.node.Dial
	if dial == nil {
		// Resolved at each connect, as stock does: a relogin after
		// recovery follows the MAC to its interface again.
		netdev, err := netif.Netdev(s.node.SysfsRoot, s.node.Iface.Binding())
		if err != nil {
			return nil, err
		}
		bind := netif.Control(netdev)
		d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				for _, opt := range []int{unix.SO_RCVBUF, unix.SO_SNDBUF} {
					if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 524288); err != nil {
						serr = err
					}
				}
			})
			if serr != nil {
				return serr
			}
			return bind(network, address, c)
		}}
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return c, nil
}

// maxRedirects bounds the redirections one login follows in a row, so that a
// target redirecting to itself (or two redirecting to each other) fails the
// login at once instead of at its timeout.
const maxRedirects = 8

// loginConn binds sock, connected to the node's portal, to the kernel
// connection, logs in through the kernel and starts the connection. A
// redirection (temporary or permanent, RFC 7143 §11.13.5) is followed on a new
// connection to the address it names; the next login starts at the node's
// portal again. tsih is 0 for a new session and for reinstatement.
func (s *Session) loginConn(ctx context.Context, sock io.Closer, tsih uint16) error {
	cfg := s.node.LoginConfig()
	cfg.ISID, cfg.TSIH, cfg.CID, cfg.ITT, cfg.CmdSN = s.ISID, tsih, 0, 0, 0
	// The kernel writes its own CmdSN and ITT into every PDU; the ExpStatSN of
	// a login is ours to choose and 0 is what open-iscsi starts with.
	t := &kernelTransport{s: s}
	addr := s.node.portal()
	for redirects := 0; ; {
		t0 := time.Now()
		if err := s.bind(ctx, sock); err != nil {
			return err
		}
		if err := s.setIdentity(ctx); err != nil {
			return err
		}
		s.timed(&s.times.Kernel, t0)
		t0 = time.Now()
		res, err := session.Login(ctx, t, cfg)
		s.timed(&s.times.Login, t0)
		s.mu.Lock()
		s.times.PDUs, t.sent = s.times.PDUs+t.sent, 0
		s.mu.Unlock()
		var le *session.LoginError
		switch {
		case err == nil:
			t0 = time.Now()
			defer s.timed(&s.times.Start, t0)
			return s.start(ctx, res)
		case errors.As(err, &le) && le.Redirect():
			if redirects++; redirects > maxRedirects {
				return fmt.Errorf("%w: the login was redirected %d times in a row (a redirect loop?)", err, maxRedirects)
			}
			to, perr := session.ParseTargetAddress(le.TargetAddress)
			if perr != nil {
				return fmt.Errorf("%w: %w", err, perr)
			}
			s.log.Info("target redirected the login", "status", le.Status.String(), "to", le.TargetAddress)
			addr = to.HostPort()
		case errors.Is(err, session.ErrCHAPAlgorithms):
			// Old targets drop the connection when offered a list of CHAP
			// algorithms: a fresh one offers MD5 alone (after which Login
			// never asks for this again).
			cfg = cfg.MD5Only()
		default:
			return err
		}
		s.unbind(ctx)
		s.dropStaleEvents(ctx)
		t0 = time.Now()
		if sock, err = s.open(ctx, addr); err != nil {
			return err
		}
		s.timed(&s.times.Connect, t0)
	}
}

// start sets the negotiated values of a login and starts the connection.
func (s *Session) start(ctx context.Context, res *session.LoginResult) error {
	if err := s.setNegotiated(ctx, res); err != nil {
		return err
	}
	if err := s.k.StartConn(ctx, s.SID, 0); err != nil {
		return fmt.Errorf("start kernel connection: %w", err)
	}
	s.mu.Lock()
	s.result = res
	s.mu.Unlock()
	return nil
}

// bind hands sock's file descriptor to the kernel. The kernel looks the number up
// in this process's descriptor table, so sock stays open (and referenced) until
// the connection is stopped.
func (s *Session) bind(ctx context.Context, sock io.Closer) error {
	if ep, ok := sock.(*endpoint); ok {
		return s.bindEndpoint(ctx, ep)
	}
	sc, ok := sock.(syscall.Conn)
	if !ok {
		sock.Close()
		return fmt.Errorf("connection %T has no file descriptor to hand to the kernel", sock)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		sock.Close()
		return err
	}
	var bindErr error
	if err := raw.Control(func(fd uintptr) { bindErr = s.k.BindConn(ctx, s.SID, 0, int(fd), true) }); err != nil {
		bindErr = err
	}
	return s.keep(sock, bindErr)
}

// keep makes sock the connection's transport side, bound to the kernel's
// connection unless bindErr says the binding failed (the socket is kept
// either way, for whoever tears the connection down to close).
func (s *Session) keep(sock io.Closer, bindErr error) error {
	s.mu.Lock()
	s.sock = sock
	s.bound = bindErr == nil
	s.mu.Unlock()
	if bindErr != nil {
		return fmt.Errorf("bind connection to the kernel: %w", bindErr)
	}
	return nil
}

// unbind stops the kernel connection for a relogin (StopRecover: the session
// and its queued I/O stay) and closes the socket.
func (s *Session) unbind(ctx context.Context) {
	sock, bound := s.takeSocket()
	sock = disconnectFirst(sock)
	if bound {
		if err := s.k.StopConn(ctx, s.SID, 0, nlink.StopRecover); err != nil {
			s.log.Warn("stop kernel connection", "flag", nlink.StopRecover, "err", err)
		}
	}
	if sock != nil {
		sock.Close()
	}
}

// takeSocket returns the connection's socket and whether the kernel has it
// bound, and forgets both: whoever takes them stops and closes them.
func (s *Session) takeSocket() (sock io.Closer, bound bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sock, bound = s.sock, s.bound
	s.sock, s.bound = nil, false
	return sock, bound
}

func (s *Session) setIdentity(ctx context.Context) error {
	n := s.node
	var params []nlink.ParamValue
	for _, p := range []nlink.ParamValue{
		{Param: nlink.ParamTargetName, Value: n.Target},
		{Param: nlink.ParamPersistentAddress, Value: n.Address},
		{Param: nlink.ParamPersistentPort, Value: strconv.Itoa(n.Port)},
		{Param: nlink.ParamSessRecoveryTmo, Value: strconv.Itoa(n.Timeouts.Replacement)},
		{Param: nlink.ParamUsername, Value: n.Auth.Username},
		{Param: nlink.ParamUsernameIn, Value: n.Auth.UsernameIn},
		{Param: nlink.ParamPassword, Value: string(n.Auth.Password)},
		{Param: nlink.ParamPasswordIn, Value: string(n.Auth.PasswordIn)},
		{Param: nlink.ParamFastAbort, Value: "1"},
		{Param: nlink.ParamAbortTmo, Value: strconv.Itoa(n.Timeouts.Abort)},
		{Param: nlink.ParamLUResetTmo, Value: strconv.Itoa(n.Timeouts.LUReset)},
		{Param: nlink.ParamTgtResetTmo, Value: strconv.Itoa(n.Timeouts.TgtReset)},
		{Param: nlink.ParamPingTmo, Value: strconv.Itoa(n.Timeouts.NoopTimeout)},
		{Param: nlink.ParamRecvTmo, Value: strconv.Itoa(n.Timeouts.NoopInterval)},
		{Param: nlink.ParamIfaceName, Value: n.Iface.Name},
		{Param: nlink.ParamInitiatorName, Value: n.InitiatorName},
		{Param: nlink.ParamDiscoverySess, Value: "0"},
	} {
		if p.Value != "" {
			params = append(params, p)
		}
	}
	if err := s.setParams(ctx, params); err != nil {
		return err
	}
	return s.setHostParams(ctx)
}

// HostParams are the iface's network device and hardware address as
// iscsiadm -m session -P 1 shows them ("Iface Netdev", "Iface HWaddress"):
// "default" for an unbound iface.
func (n *Node) HostParams() (netdev, hwaddress string) {
	orDefault := func(v string) string {
		if v == "" {
			return "default"
		}
		return v
	}
	return orDefault(n.Iface.Netdev), orDefault(n.Iface.HWAddress)
}

// setHostParams tells the kernel the iface's network device and hardware
// address, as iscsid does: the record's values, none for an unbound iface
// (the host's sysfs netdev and hwaddress then show "(null)", which iscsiadm
// -m host shows as <empty>; measured with iscsid in the VM). A kernel without
// them (ENOSYS, EINVAL) is no error.
func (s *Session) setHostParams(ctx context.Context) error {
	netdev, hwaddress := s.node.Iface.Netdev, s.node.Iface.HWAddress
	for _, p := range []struct {
		p nlink.HostParam
		v string
	}{
		{nlink.HostParamNetdevName, netdev},
		{nlink.HostParamHWAddress, hwaddress},
	} {
		if p.v == "" {
			continue
		}
		err := s.k.SetHostParam(ctx, s.Host, p.p, p.v)
		if err != nil && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("set kernel host parameter %v: %w", p.p, err)
		}
	}
	return nil
}

// setParams sets parameters in one exchange with the kernel, tolerating ENOSYS
// as open-iscsi does (a kernel without that parameter).
func (s *Session) setParams(ctx context.Context, params []nlink.ParamValue) error {
	err := s.k.SetParams(ctx, s.SID, 0, params)
	refused := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		refused = joined.Unwrap()
	}
	for _, e := range refused {
		if e != nil && !errors.Is(e, syscall.ENOSYS) {
			return fmt.Errorf("set kernel parameters: %w", e)
		}
	}
	return nil
}

func (s *Session) setNegotiated(ctx context.Context, r *session.LoginResult) error {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	p := r.Params
	tpgt := s.node.TPGT
	if p.TargetPortalGroupTag >= 0 {
		tpgt = p.TargetPortalGroupTag
	}
	params := []nlink.ParamValue{
		{Param: nlink.ParamMaxRecvDLength, Value: u(p.MaxRecvDataSegmentLength)},
		{Param: nlink.ParamMaxXmitDLength, Value: u(p.MaxXmitDataSegmentLength)},
		{Param: nlink.ParamHdrDigestEn, Value: b(p.HeaderDigest)},
		{Param: nlink.ParamDataDigestEn, Value: b(p.DataDigest)},
		{Param: nlink.ParamInitialR2TEn, Value: b(p.InitialR2T)},
		{Param: nlink.ParamMaxR2T, Value: u(p.MaxOutstandingR2T)},
		{Param: nlink.ParamImmDataEn, Value: b(p.ImmediateData)},
		{Param: nlink.ParamFirstBurst, Value: u(p.FirstBurstLength)},
		{Param: nlink.ParamMaxBurst, Value: u(p.MaxBurstLength)},
		{Param: nlink.ParamPDUInOrderEn, Value: b(p.DataPDUInOrder)},
		{Param: nlink.ParamDataSeqInOrderEn, Value: b(p.DataSequenceInOrder)},
		{Param: nlink.ParamERL, Value: u(p.ErrorRecoveryLevel)},
		{Param: nlink.ParamExpStatSN, Value: u(r.StatSN + 1)},
		{Param: nlink.ParamTPGT, Value: strconv.Itoa(tpgt)},
	}
	if p.TargetAlias != "" {
		params = append(params, nlink.ParamValue{Param: nlink.ParamTargetAlias, Value: p.TargetAlias})
	}
	return s.setParams(ctx, params)
}

// destroy removes the kernel session, stopping and destroying its connection
// first (haveConn: it was created).
//
// ctx should have no deadline: the requests then wait for their turn however
// long the kernel is busy with other sessions (a logout storm of hundreds),
// and only the kernel's own handling of them is bounded (nlink.DefaultTimeout).
// A deadline could end the wait and leave the session in the kernel.
func (s *Session) destroy(ctx context.Context, haveConn bool) error {
	sock, bound := s.takeSocket()
	sock = disconnectFirst(sock)
	conn := nlink.NoConn
	switch {
	case bound:
		conn = nlink.ConnBound
	case haveConn:
		conn = nlink.ConnCreated
	}
	err := s.teardown(ctx, conn)
	if sock != nil {
		sock.Close()
	}
	if s.sub != nil {
		s.sub.Cancel()
	}
	s.setState(Failed)
	return err
}

// teardown sends the kernel the destroy requests of conn and the session,
// and remembers what it still owes when the session is still there: the
// exchange never reached the kernel, or the kernel refused DESTROY_SESSION.
func (s *Session) teardown(ctx context.Context, conn nlink.ConnTeardown) error {
	err := s.k.DestroySession(ctx, s.SID, conn)
	var left *nlink.ConnTeardown
	if err != nil {
		s.log.Warn("destroy kernel session", "err", err)
		var ke *nlink.KernelError
		switch {
		case !errors.As(err, &ke):
			left = &conn // not sent
		case sessionRefused(err):
			left = new(nlink.ConnTeardown) // the connection's part was done
		default:
			err = nil // only the connection's part was refused; the session is gone
		}
	}
	s.mu.Lock()
	s.leftover = left
	s.mu.Unlock()
	if left != nil {
		return fmt.Errorf("session %d is still in the kernel: %w", s.SID, err)
	}
	return nil
}

// sessionRefused reports whether DestroySession's joined refusals include
// DESTROY_SESSION's own.
func sessionRefused(err error) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ke *nlink.KernelError
		if errors.As(e, &ke) && ke.Op == nlink.DestroySession {
			return true
		}
	}
	return false
}

// InKernel reports whether the kernel still has the session: false once a
// logout or a recovery that gave up has destroyed it.
func (s *Session) InKernel() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state != Failed || s.leftover != nil
}

// run handles the kernel's events for the session until Logout cancels ctx.
func (s *Session) run(ctx context.Context) {
	defer close(s.done)
	for {
		ev, err := s.sub.Next(ctx)
		if err != nil {
			return
		}
		switch ev.Type {
		case nlink.EventRecvPDU:
			if failed := s.receivedPDU(ctx, ev.PDU); failed {
				return
			}
		case nlink.EventConnError:
			s.log.Warn("kernel reported connection error", "error", ev.Error.String())
			if s.hooks.ConnError != nil {
				s.hooks.ConnError(s, ev.Error)
			}
			if failed := s.recover(ctx, 0, ev.Error.String()); failed {
				return
			}
		case nlink.EventsLost:
			if failed := s.resync(ctx); failed {
				return
			}
		default:
			s.log.Debug("kernel event", "event", ev.String())
		}
	}
}

// resync asks the kernel where the connection stands after its events were
// lost: a connection error among them would never come again, and the session
// would be listed as logged in with its I/O held until replacement_timeout. A
// connection the kernel shows failed or stopped is recovered as if the error
// had come. It reports whether the session has been torn down.
func (s *Session) resync(ctx context.Context) bool {
	st, err := s.k.LinkState(s.SID, 0)
	if err != nil {
		s.log.Warn("kernel events were lost and the connection's state cannot be read", "err", err)
		return false
	}
	if st == "failed" || st == "down" {
		s.log.Warn("kernel events were lost and the kernel shows the connection "+st+": recovering", "state", st)
		return s.recover(ctx, 0, "kernel events lost, connection "+st)
	}
	s.log.Info("kernel events were lost; the connection is still "+st, "state", st)
	return false
}

// receivedPDU handles a PDU the kernel forwarded in the full feature phase. It
// reports whether the session has been torn down.
func (s *Session) receivedPDU(ctx context.Context, p *pdu.PDU) bool {
	if p.Header.Opcode() == pdu.OpNOPIn {
		s.mu.Lock()
		pong := s.pong
		s.pong = nil
		s.mu.Unlock()
		if pong == nil {
			s.log.Debug("NOP-In that answers no ping of ours")
			return false
		}
		pong <- time.Now()
		return false
	}
	if p.Header.Opcode() != pdu.OpAsyncMessage {
		s.log.Info("ignoring unexpected PDU from the kernel", "opcode", p.Header.Opcode())
		return false
	}
	var m pdu.AsyncMessage
	if err := m.Decode(&p.Header); err != nil {
		s.log.Warn("malformed Async Message", "err", err)
		return false
	}
	log := s.log.With("event", m.Event.String(), "lun", m.LUN.Number())
	switch m.Event {
	case pdu.AsyncSCSIEvent:
		sense, err := pdu.ParseAsyncSCSIEvent(p.Data)
		if err != nil {
			log.Warn("Async Message with unreadable sense data", "err", err)
			return false
		}
		log.Info("target sent a SCSI asynchronous event", "sense", sense.String())
		if s.hooks.AsyncEvent != nil {
			s.hooks.AsyncEvent(s, m.LUN.Number(), sense)
		}
	case pdu.AsyncLogoutRequest, pdu.AsyncRenegotiate:
		// A logout now and a new login with the same ISID is what both ask
		// for; the relogin reinstates the session and keeps queued I/O.
		log.Info("target asked for a new login")
		return s.recover(ctx, 0, "target asked for a new login ("+m.Event.String()+")")
	case pdu.AsyncDropConnection, pdu.AsyncDropAllConnections:
		// The kernel reports the drop itself; wait Time2Wait before the
		// relogin, as the target asked.
		log.Info("target will drop the connection", "time2wait", m.Parameter2)
		return s.recover(ctx, time.Duration(m.Parameter2)*time.Second, "target dropped the connection ("+m.Event.String()+")")
	default:
		log.Info("Async Message not supported")
	}
	return false
}

// recover replaces the broken connection: stop it keeping the session (the kernel
// queues I/O until replacement_timeout), then reconnect and log in again with the
// same ISID until it works, ctx ends, or node.session.reopen_max is reached.
// cause says why, for the Recovering hook. It reports whether the session has
// been torn down.
func (s *Session) recover(ctx context.Context, wait time.Duration, cause string) bool {
	if s.hooks.Recovering != nil {
		s.hooks.Recovering(s, cause)
	}
	s.setState(Reopen)
	s.unbind(ctx)
	if wait == 0 {
		wait = time.Duration(s.Result().Params.DefaultTime2Wait) * time.Second
	}
	delay := wait
	failed := time.Now()
	replacement := time.Duration(s.node.Timeouts.Replacement) * time.Second
	for attempt := 1; ; attempt++ {
		if !sleep(ctx, delay) {
			return false
		}
		took, err := s.relogin(ctx)
		if s.hooks.Relogin != nil && ctx.Err() == nil {
			s.hooks.Relogin(s, took, err)
		}
		if err == nil {
			s.setState(LoggedIn)
			s.log.Info("connection is operational after recovery", "attempts", attempt)
			if s.hooks.Recovered != nil {
				s.hooks.Recovered(s, attempt)
			}
			return false
		}
		if ctx.Err() != nil {
			return false
		}
		s.log.Warn("relogin failed", "attempt", attempt, "err", err)
		var le *session.LoginError
		fatal := errors.As(err, &le) && !le.Retryable() && !le.Redirect()
		if fatal || (s.node.Timeouts.ReopenMax > 0 && attempt >= s.node.Timeouts.ReopenMax) {
			// A logout cancels ctx meanwhile: the teardown must still
			// reach the kernel, or the session stays there unowned.
			if derr := s.destroy(context.WithoutCancel(ctx), true); derr != nil {
				err = fmt.Errorf("%w; %w", err, derr)
			}
			if s.hooks.Failed != nil {
				s.hooks.Failed(s, err)
			}
			return true
		}
		delay = reloginDelay(delay, time.Since(failed), replacement)
	}
}

// reloginDelay is the pause before the next relogin attempt, after one that
// waited prev, down for since, with replacement_timeout replacement. While the
// kernel still holds the session's I/O (the timeout has not run out, or never
// does) it is a second, as with open-iscsi: a target back within the timeout
// must be found before the kernel fails the I/O. Afterwards it doubles up to
// 8 s, so a target that stays down is not hammered.
func reloginDelay(prev, since, replacement time.Duration) time.Duration {
	if replacement < 0 || since < replacement {
		return time.Second
	}
	return min(max(2*prev, time.Second), 8*time.Second)
}

// relogin connects and logs in again; it returns how long that took, from
// the connect on (not the wait for the old connection's events).
func (s *Session) relogin(ctx context.Context) (time.Duration, error) {
	ctx, cancel := withTimeout(ctx, s.node.Timeouts.Login)
	defer cancel()
	s.dropStaleEvents(ctx)
	s.mu.Lock()
	s.times = LoginTimes{}
	s.mu.Unlock()
	t0 := time.Now()
	err := s.reconnect(ctx, t0)
	return time.Since(t0), err
}

// reconnect is a relogin's connection and login, begun at t0.
func (s *Session) reconnect(ctx context.Context, t0 time.Time) error {
	sock, err := s.open(ctx, s.node.portal())
	if err != nil {
		return err
	}
	s.timed(&s.times.Connect, t0)
	if err := s.loginConn(ctx, sock, 0); err != nil {
		s.unbind(ctx)
		return err
	}
	return nil
}

// staleWindow is how long after a stopped connection its last events may still be
// on their way from the kernel: they are multicast, and may be routed after the
// STOP_CONN reply.
const staleWindow = 50 * time.Millisecond

// dropStaleEvents discards the events of a connection that has been stopped (its
// CONN_ERROR, a late login response), so the next login does not take them for
// its own.
func (s *Session) dropStaleEvents(ctx context.Context) {
	for {
		wctx, cancel := context.WithTimeout(ctx, staleWindow)
		ev, err := s.sub.Next(wctx)
		cancel()
		if err != nil {
			return
		}
		s.log.Debug("dropping event of the previous connection", "event", ev.String())
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Logout ends the session: the kernel removes its SCSI devices (UNBIND_SESSION),
// the target gets a Logout Request, then the connection and session are destroyed.
// A session in recovery is torn down without the logout exchange.
func (s *Session) Logout(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("session %d is busy: %w", s.SID, ctx.Err())
	}
	if s.State() == Failed {
		// Recovery gave up; its teardown may not have reached the kernel.
		s.mu.Lock()
		left := s.leftover
		s.mu.Unlock()
		if left == nil {
			return nil
		}
		return s.teardown(context.WithoutCancel(ctx), *left)
	}
	loggedIn := s.State() == LoggedIn
	s.setState(InLogout)
	ctx, cancel := withTimeout(ctx, s.node.Timeouts.Logout)
	defer cancel()
	var times LogoutTimes
	if loggedIn {
		// Unbinding first removes the devices while the connection still
		// works, so their caches are flushed to the target.
		t0 := time.Now()
		err := s.k.UnbindSession(ctx, s.SID)
		times.Kernel = time.Since(t0)
		if err != nil && !errors.Is(err, syscall.ENOSYS) {
			s.log.Warn("unbind session", "err", err)
		} else if err == nil {
			s.awaitUnbind(ctx)
		}
		times.Unbind = time.Since(t0)
		t0 = time.Now()
		if err := session.Logout(ctx, &kernelTransport{s: s}, 0, 0, 0); err != nil {
			s.log.Warn("logout exchange failed; tearing the session down anyway", "err", err)
		}
		times.Logout = time.Since(t0)
	}
	t0 := time.Now()
	err := s.destroy(context.WithoutCancel(ctx), true)
	times.Kernel += time.Since(t0)
	s.mu.Lock()
	s.logoutTimes = times
	s.mu.Unlock()
	return err
}

// LogoutTimes returns where the logout spent its time (zero before one).
func (s *Session) LogoutTimes() LogoutTimes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logoutTimes
}

// awaitUnbind waits for the kernel's UNBIND_SESSION event. The kernel removes the
// session's SCSI target in a work queue after answering the request, flushing
// each device's cache through the connection; the Logout Request must wait for
// that, or the target closes the connection under unflushed writes.
func (s *Session) awaitUnbind(ctx context.Context) {
	for {
		ev, err := s.sub.Next(ctx)
		if err != nil {
			s.log.Warn("no UNBIND_SESSION event from the kernel; logging out anyway", "err", err)
			return
		}
		switch ev.Type {
		case nlink.EventUnbindSession:
			return
		case nlink.EventConnError:
			s.log.Warn("connection error while the kernel removed the devices", "error", ev.Error.String())
			return
		}
	}
}

// kernelTransport carries login and logout PDUs through the kernel: SEND_PDU out,
// RECV_PDU in. The kernel puts its own task tag into each request, so responses
// get the tag of the request they answer back, for the login code's checks.
type kernelTransport struct {
	s       *Session
	lastITT uint32
	sent    int
}

func (t *kernelTransport) Send(ctx context.Context, p *pdu.PDU) error {
	t.lastITT = p.Header.ITT()
	t.sent++
	// libiscsi multicasts a login response before it frees the login task,
	// so on a busy host the next login request can arrive first and be
	// refused with EPERM ("Login/Text in progress"): give the kernel a moment.
	for wait := time.Millisecond; ; wait *= 2 {
		err := t.s.k.SendPDU(ctx, t.s.SID, 0, p)
		op := p.Header.Opcode()
		if !errors.Is(err, syscall.EPERM) || (op != pdu.OpLoginRequest && op != pdu.OpTextRequest) || wait > 256*time.Millisecond {
			return err
		}
		if !sleep(ctx, wait) {
			return err
		}
	}
}

func (t *kernelTransport) Receive(ctx context.Context) (*pdu.PDU, error) {
	for {
		ev, err := t.s.sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		switch ev.Type {
		case nlink.EventRecvPDU:
			switch ev.PDU.Header.Opcode() {
			case pdu.OpLoginResponse, pdu.OpTextResponse, pdu.OpLogoutResponse:
				putITT(&ev.PDU.Header, t.lastITT)
				return ev.PDU, nil
			}
			t.s.log.Debug("PDU ignored while waiting for a response", "opcode", ev.PDU.Header.Opcode())
		case nlink.EventConnError:
			return nil, fmt.Errorf("%w: kernel reported %v", ErrConnectionLost, ev.Error)
		case nlink.EventsLost:
			// The response may have been among them: waiting would
			// only run out the login timeout.
			return nil, fmt.Errorf("%w: kernel events were lost while waiting for a response", ErrConnectionLost)
		}
	}
}

func putITT(b *pdu.BHS, itt uint32) {
	b[16], b[17], b[18], b[19] = byte(itt>>24), byte(itt>>16), byte(itt>>8), byte(itt)
}
