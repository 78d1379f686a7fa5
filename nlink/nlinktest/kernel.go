// Package nlinktest is an in-memory iSCSI kernel for tests: it implements
// nlink.Transport the way scsi_transport_iscsi and iscsi_tcp answer it, so that
// session code runs unchanged without root or a kernel module.
//
// Like iscsi_tcp it takes over the TCP socket handed to it with BIND_CONN and
// does the connection's I/O itself: PDUs sent with SEND_PDU go out on that
// socket (with the kernel's ITT, CmdSN and ExpStatSN written in), and Login,
// Text and Logout responses and Async Messages coming back are forwarded as
// RECV_PDU events; target pings are answered; a closed socket or a broken PDU is
// reported as CONN_ERROR. It checks the order of requests and refuses what the
// kernel refuses, with the kernel's errno. [Kernel.Command] runs SCSI commands
// on a started connection as the SCSI midlayer has iscsi_tcp do, checking the
// target's answers as libiscsi does, and the kernel pings a quiet target when
// recv_tmo and ping_tmo are set. A second transport, iSER ([ISERHandle]),
// connects endpoints itself (endpoint.go).
package nlinktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"golang.org/x/sys/unix"
)

// Handle is the transport handle the fake kernel expects in every request.
const Handle uint64 = 0xffff_8888_0000_1000

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu       sync.Mutex
	nextSID  uint32
	nextHost uint32
	sessions map[uint32]*session
	requests []nlink.Request
	failNext map[nlink.MessageType]syscall.Errno
	events   chan []byte
	// loseNext drops the next event; lost then tells ReceiveEvent to
	// report the loss, as a full netlink buffer does (ENOBUFS).
	loseNext bool
	lost     chan struct{}
	closed   chan struct{}
	wg       sync.WaitGroup
	// The iSER transport's endpoints (endpoint.go).
	eps         map[uint64]*endpoint
	nextEP      uint64
	unreachable bool
}

type session struct {
	sid, host  uint32
	cmdSN      uint32 // the kernel's session CmdSN, from CREATE_SESSION
	age        uint32 // bumped on every relogin, part of kernel ITTs
	params     map[nlink.Param]string
	hostParams map[nlink.HostParam]string
	conns      map[uint32]*conn
	state      string // LOGGED_IN, FAILED, FREE
	unbound    bool
	loggingOut bool
	// iser: made by CREATE_BOUND_SESSION; its requests carry ISERHandle.
	iser bool
}

type conn struct {
	cid       uint32
	sock      net.Conn
	started   bool
	stopped   bool
	expStatSN uint32
	loginITT  uint32
	wmu       sync.Mutex
	w         *pdu.Writer
	rdone     chan struct{}
	params    map[nlink.Param]string
	// failed is set once a connection error has been reported for the
	// bound socket: the kernel reports each failure once.
	failed   bool
	tasks    map[uint32]*task // SCSI commands in flight, by ITT
	nextTask uint32
	lastRecv time.Time // when the last PDU arrived
	pingSent time.Time // when the outstanding ping went out; zero when none
	// ep is the iSER endpoint bound to the connection.
	ep *endpoint
}

// New returns a fake kernel; Close it when done.
func New() *Kernel {
	return &Kernel{
		nextSID: 1, nextHost: 2, sessions: map[uint32]*session{},
		failNext: map[nlink.MessageType]syscall.Errno{},
		events:   make(chan []byte, 4096), closed: make(chan struct{}), lost: make(chan struct{}, 1),
	}
}

// LoseNextEvent makes the kernel lose its next event, as an overflowing
// netlink receive buffer does: it is not delivered, and the event reader gets
// nlink.ErrEventsLost instead.
func (k *Kernel) LoseNextEvent() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loseNext = true
}

// LinkState implements nlink.Transport as the kernel's connection state
// attribute shows it: "bound" once bound, "up" once started, "failed" after a
// connection error, "down" once stopped.
func (k *Kernel) LinkState(sid, cid uint32) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[sid]
	if s == nil || s.conns[cid] == nil {
		return "", fmt.Errorf("nlinktest: no connection %d:%d", sid, cid)
	}
	c := s.conns[cid]
	switch {
	case c.failed:
		return "failed", nil
	case c.stopped:
		return "down", nil
	case c.started:
		return "up", nil
	case c.sock != nil:
		return "bound", nil
	}
	return "down", nil
}

// Conn returns an nlink.Conn talking to k.
func (k *Kernel) Conn() *nlink.Conn { return nlink.New(k, Handle, nil) }

// FailNext makes the next request of type t fail with errno.
func (k *Kernel) FailNext(t nlink.MessageType, errno syscall.Errno) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failNext[t] = errno
}

// Requests returns the requests received so far, in order.
func (k *Kernel) Requests() []nlink.Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]nlink.Request(nil), k.requests...)
}

// Sessions returns the ids of the sessions that exist.
func (k *Kernel) Sessions() []uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []uint32
	for sid := range k.sessions {
		ids = append(ids, sid)
	}
	return ids
}

// Param returns a session's parameter as last set (connection parameters of
// cid 0 included), and whether it was set.
func (k *Kernel) Param(sid uint32, p nlink.Param) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[sid]
	if s == nil {
		return "", false
	}
	if c := s.conns[0]; c != nil {
		if v, ok := c.params[p]; ok {
			return v, true
		}
	}
	v, ok := s.params[p]
	return v, ok
}

// Started reports whether connection cid of sid is in the full feature phase.
func (k *Kernel) Started(sid, cid uint32) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[sid]
	return s != nil && s.conns[cid] != nil && s.conns[cid].started
}

// HostParam returns what SET_HOST_PARAM set for parameter p of host hostNo.
func (k *Kernel) HostParam(hostNo uint32, p nlink.HostParam) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.sessions {
		if s.host == hostNo {
			return s.hostParams[p]
		}
	}
	return ""
}

// DropConnection closes the TCP socket of sid/cid under the session, as a
// network failure would; the kernel then reports a connection error.
func (k *Kernel) DropConnection(sid, cid uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sessions[sid]
	if s == nil || s.conns[cid] == nil || s.conns[cid].sock == nil {
		return fmt.Errorf("nlinktest: session %d connection %d has no socket", sid, cid)
	}
	return s.conns[cid].sock.Close()
}

// Close stops the kernel: sockets are closed and ReceiveEvent returns.
func (k *Kernel) Close() error {
	k.mu.Lock()
	select {
	case <-k.closed:
		k.mu.Unlock()
		return nil
	default:
	}
	close(k.closed)
	for _, s := range k.sessions {
		for _, c := range s.conns {
			if c.sock != nil {
				c.sock.Close()
			}
		}
	}
	for _, ep := range k.eps {
		if ep.sock != nil {
			ep.sock.Close()
		}
	}
	k.mu.Unlock()
	k.wg.Wait()
	return nil
}

// ReceiveEvent implements nlink.Transport.
func (k *Kernel) ReceiveEvent(ctx context.Context) ([]byte, error) {
	select {
	case b := <-k.events:
		return b, nil
	case <-k.lost:
		return nil, nlink.ErrEventsLost
	case <-k.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (k *Kernel) emit(ev nlink.Event) {
	b, err := ev.MarshalBinary()
	if err != nil {
		panic("nlinktest: " + err.Error()) // a bug in the fake itself
	}
	k.mu.Lock()
	lose := k.loseNext
	k.loseNext = false
	k.mu.Unlock()
	if lose {
		select {
		case k.lost <- struct{}{}:
		default:
		}
		return
	}
	select {
	case k.events <- b:
	case <-k.closed:
	}
}

// Request implements nlink.Transport: like the kernel, it handles the messages
// one after the other and answers each.
func (k *Kernel) Request(ctx context.Context, msgs [][]byte, replyExpected bool) ([][]byte, error) {
	select {
	case <-k.closed:
		return nil, net.ErrClosed
	default:
	}
	replies := make([][]byte, len(msgs))
	for i, msg := range msgs {
		replies[i] = k.request(msg)
	}
	if !replyExpected && len(msgs) == 1 && replies[0] == nil {
		return nil, nil
	}
	return replies, nil
}

// request handles one message and returns its reply, nil for a successful
// GET_STATS (whose answer is an event).
func (k *Kernel) request(msg []byte) []byte {
	var r nlink.Request
	if err := r.UnmarshalBinary(msg); err != nil {
		return errReply(syscall.EINVAL)
	}
	if r.Handle != Handle && r.Handle != ISERHandle {
		return errReply(syscall.EINVAL)
	}
	k.mu.Lock()
	k.requests = append(k.requests, r)
	if errno, ok := k.failNext[r.Type]; ok {
		delete(k.failNext, r.Type)
		k.mu.Unlock()
		return errReply(errno)
	}
	reply, events := k.handle(&r)
	k.mu.Unlock()
	for _, ev := range events {
		k.emit(ev)
	}
	if reply == nil {
		return nil
	}
	b, _ := reply.MarshalBinary()
	return b
}

func errReply(errno syscall.Errno) []byte {
	b, _ := (&nlink.Reply{Type: nlink.EventIfError, Errno: errno}).MarshalBinary()
	return b
}

// handle runs one request with k.mu held. It returns the reply (nil for a
// successful GET_STATS, whose answer is an event) and events to send after.
func (k *Kernel) handle(r *nlink.Request) (*nlink.Reply, []nlink.Event) {
	fail := func(errno syscall.Errno) (*nlink.Reply, []nlink.Event) {
		return &nlink.Reply{Type: nlink.EventIfError, Errno: errno}, nil
	}
	retcode := func(errno syscall.Errno) (*nlink.Reply, []nlink.Event) {
		return &nlink.Reply{Type: r.Type, Errno: errno}, nil
	}
	ok := &nlink.Reply{Type: r.Type}
	if reply, events, handled := k.handleEndpoint(r); handled {
		return reply, events
	}
	if r.Type == nlink.CreateSession && r.Handle == ISERHandle {
		return fail(syscall.EINVAL) // ib_iser: "no ep"
	}
	if r.Type == nlink.CreateSession {
		s := &session{sid: k.nextSID, host: k.nextHost, cmdSN: r.InitialCmdSN,
			params: map[nlink.Param]string{}, conns: map[uint32]*conn{}, state: "FREE"}
		k.nextSID++
		k.nextHost++
		k.sessions[s.sid] = s
		return &nlink.Reply{Type: r.Type, SID: s.sid, HostNo: s.host},
			[]nlink.Event{{Type: nlink.EventCreateSession, SID: s.sid, HostNo: s.host}}
	}
	if r.Type == nlink.SetHostParam {
		// iscsi_tcp has one host per session.
		for _, s := range k.sessions {
			if s.host == r.HostNo {
				if s.hostParams == nil {
					s.hostParams = map[nlink.HostParam]string{}
				}
				s.hostParams[r.HostParam] = r.Value
				return ok, nil
			}
		}
		return fail(syscall.ENODEV)
	}
	s := k.sessions[r.SID]
	if s == nil {
		if r.Type == nlink.GetStats || r.Type == nlink.CreateConn {
			return fail(syscall.EEXIST)
		}
		return fail(syscall.EINVAL)
	}
	if s.iser != (r.Handle == ISERHandle) {
		// The kernel would run the wrong transport's code on it.
		return fail(syscall.EINVAL)
	}
	c := s.conns[r.CID]
	switch r.Type {
	case nlink.CreateConn:
		if c != nil {
			return fail(syscall.EEXIST)
		}
		s.conns[r.CID] = &conn{cid: r.CID, params: map[nlink.Param]string{}}
		return &nlink.Reply{Type: r.Type, SID: s.sid, CID: r.CID}, nil
	case nlink.DestroySession:
		if len(s.conns) > 0 {
			return fail(syscall.EBUSY)
		}
		delete(k.sessions, s.sid)
		return ok, []nlink.Event{{Type: nlink.EventDestroySession, SID: s.sid, HostNo: s.host}}
	case nlink.UnbindSession:
		s.unbound = true
		return ok, []nlink.Event{{Type: nlink.EventUnbindSession, SID: s.sid, HostNo: s.host}}
	}
	if c == nil {
		return fail(syscall.EINVAL)
	}
	switch r.Type {
	case nlink.DestroyConn:
		if c.sock != nil && !c.stopped {
			return fail(syscall.EBUSY)
		}
		delete(s.conns, r.CID)
		return ok, nil
	case nlink.BindConn:
		if c.sock != nil && !c.stopped {
			return retcode(syscall.EEXIST)
		}
		var sock net.Conn
		if s.iser {
			var errno syscall.Errno
			if sock, errno = k.bindEndpoint(c, r.FD); errno != 0 {
				return retcode(errno)
			}
		} else {
			var err error
			if sock, err = takeSocket(int(r.FD)); err != nil {
				return retcode(errnoOf(err))
			}
		}
		c.sock, c.stopped, c.started, c.failed = sock, false, false, false
		c.w = pdu.NewWriter(sock)
		c.rdone = make(chan struct{})
		c.tasks, c.lastRecv, c.pingSent = map[uint32]*task{}, time.Now(), time.Time{}
		s.age++
		c.loginITT = s.age<<28 | loginTag
		k.wg.Add(1)
		go k.readLoop(s, c, sock, c.rdone)
		return ok, nil
	case nlink.SetParam:
		if r.Param == nlink.ParamSessRecoveryTmo {
			if _, err := strconv.Atoi(r.Value); err != nil {
				return fail(syscall.EINVAL)
			}
		}
		if r.Param == nlink.ParamExpStatSN {
			n, err := strconv.ParseUint(r.Value, 10, 32)
			if err != nil {
				return fail(syscall.EINVAL)
			}
			c.expStatSN = uint32(n)
		}
		if sessionParam(r.Param) {
			s.params[r.Param] = r.Value
		} else {
			c.params[r.Param] = r.Value
		}
		return ok, nil
	case nlink.StartConn:
		if c.sock == nil || c.stopped {
			return retcode(syscall.ENOTCONN)
		}
		c.started = true
		s.state = "LOGGED_IN"
		c.wmu.Lock()
		c.w.Digests = pdu.Digests{Header: c.params[nlink.ParamHdrDigestEn] == "1", Data: c.params[nlink.ParamDataDigestEn] == "1"}
		c.wmu.Unlock()
		recv, ping := paramInt(c.params, nlink.ParamRecvTmo, 0), paramInt(c.params, nlink.ParamPingTmo, 0)
		if recv > 0 && ping > 0 {
			k.wg.Add(1)
			go k.pinger(s, c, c.sock, c.rdone, time.Duration(recv)*time.Second, time.Duration(ping)*time.Second)
		}
		return ok, nil
	case nlink.StopConn:
		if c.sock != nil {
			c.sock.Close()
		}
		c.stopped, c.started = true, false
		failTasksLocked(c, errors.New("nlinktest: connection stopped"))
		if c.ep != nil && r.Flag != nlink.StopTerminate {
			// The kernel disconnects a bound endpoint itself when the
			// connection stops for recovery; its handle is gone.
			delete(k.eps, c.ep.handle)
			c.ep = nil
		}
		if r.Flag == nlink.StopRecover {
			s.state = "FAILED"
		} else {
			s.state = "FREE"
		}
		return ok, nil
	case nlink.SendPDU:
		return k.sendPDU(s, c, r.PDU)
	case nlink.GetStats:
		return nil, []nlink.Event{{Type: nlink.GetStats, SID: s.sid, CID: c.cid, Stats: &nlink.Stats{}}}
	}
	return fail(syscall.EINVAL)
}

// sendPDU writes a PDU as libiscsi does: it overwrites CmdSN with the session's,
// ITT with its own, and ExpStatSN for PDUs other than Login and Text; a PDU other
// than Login or Text must carry no data.
func (k *Kernel) sendPDU(s *session, c *conn, p *pdu.PDU) (*nlink.Reply, []nlink.Event) {
	if c.sock == nil || c.stopped {
		return &nlink.Reply{Type: nlink.SendPDU, Errno: syscall.ENOTCONN}, nil
	}
	op := p.Header.Opcode()
	loginOrText := op == pdu.OpLoginRequest || op == pdu.OpTextRequest
	if !loginOrText && len(p.Data) > 0 {
		return &nlink.Reply{Type: nlink.SendPDU, Errno: syscall.EINVAL}, nil
	}
	if s.loggingOut {
		return &nlink.Reply{Type: nlink.SendPDU, Errno: syscall.ENOTCONN}, nil
	}
	out := *p
	h := &out.Header
	if !loginOrText {
		put32(h, 28, c.expStatSN)
	}
	put32(h, 24, s.cmdSN)
	if get32(h, 16) != pdu.ReservedTag {
		put32(h, 16, c.loginITT)
		if c.started && !p.Header.Immediate() {
			s.cmdSN++
		}
	}
	if op == pdu.OpLogoutRequest {
		s.loggingOut = true
	}
	c.wmu.Lock()
	err := c.w.Write(&out)
	c.wmu.Unlock()
	if err != nil {
		return &nlink.Reply{Type: nlink.SendPDU, Errno: syscall.EPIPE}, nil
	}
	return &nlink.Reply{Type: nlink.SendPDU}, nil
}

func put32(b *pdu.BHS, off int, v uint32) {
	b[off], b[off+1], b[off+2], b[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func get32(b *pdu.BHS, off int) uint32 {
	return uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3])
}

// readLoop is iscsi_tcp's receive side for one bound socket.
func (k *Kernel) readLoop(s *session, c *conn, sock net.Conn, done chan struct{}) {
	defer k.wg.Done()
	defer close(done)
	for {
		// The digests and the data segment limit change at START_CONN, maybe
		// while a read waits: they apply from the first byte of the PDU after
		// it, so they are looked up once its first bytes are in.
		var first [1]byte
		_, err := io.ReadFull(sock, first[:])
		var p pdu.PDU
		if err == nil {
			r := pdu.NewReader(io.MultiReader(bytes.NewReader(first[:]), sock))
			k.mu.Lock()
			if c.started {
				r.Digests = pdu.Digests{Header: c.params[nlink.ParamHdrDigestEn] == "1", Data: c.params[nlink.ParamDataDigestEn] == "1"}
				r.MaxDataSegmentLength = paramInt(c.params, nlink.ParamMaxRecvDLength, pdu.DefaultMaxRecvDataSegmentLength)
			}
			k.mu.Unlock()
			err = r.Read(&p)
		}
		k.mu.Lock()
		current := c.sock == sock && !c.stopped && !c.failed
		started := c.started
		if err == nil {
			c.lastRecv = time.Now()
		}
		k.mu.Unlock()
		if !current {
			return // stopped, failed or rebound: errors on the old socket are not news
		}
		if err != nil {
			code := nlink.ErrTCPConnClose
			switch {
			case errors.Is(err, pdu.ErrHeaderDigest):
				code = nlink.ErrHdrDigest
			case errors.Is(err, pdu.ErrDataDigest):
				code = nlink.ErrDataDigest
			case errors.Is(err, pdu.ErrTooLong) && started:
				// libiscsi_tcp: a data segment over max_recv_dlength.
				code = nlink.ErrDataLen
			case errors.Is(err, pdu.ErrTooLong), errors.Is(err, pdu.ErrBadAHS):
				code = nlink.ErrProto
			}
			k.connError(s, c, sock, code)
			return
		}
		if code := k.receive(s, c, &p); code != 0 {
			k.connError(s, c, sock, code)
			return
		}
	}
}

// receive handles one PDU from the target; a non-zero result is a connection
// error.
func (k *Kernel) receive(s *session, c *conn, p *pdu.PDU) nlink.ConnError {
	op := p.Header.Opcode()
	k.mu.Lock()
	started := c.started
	switch {
	case op == pdu.OpLoginResponse, op == pdu.OpReject, op == pdu.OpR2T:
	case op == pdu.OpDataIn && p.Header[1]&0x01 == 0:
		// StatSN counts statuses: a Data-In without one carries none.
	default:
		c.expStatSN = get32(&p.Header, 24) + 1
	}
	k.mu.Unlock()
	forward := func() nlink.ConnError {
		k.emit(nlink.Event{Type: nlink.EventRecvPDU, SID: s.sid, CID: c.cid, PDU: p})
		return 0
	}
	switch op {
	case pdu.OpLoginResponse, pdu.OpTextResponse, pdu.OpLogoutResponse:
		if p.Header.ITT() != c.loginITT {
			return nlink.ErrBadITT
		}
		if op == pdu.OpLoginResponse && started {
			return nlink.ErrProto
		}
		return forward()
	case pdu.OpAsyncMessage:
		if len(p.Data) > pdu.DefaultMaxRecvDataSegmentLength {
			return nlink.ErrProto
		}
		return forward()
	case pdu.OpNOPIn:
		var nop pdu.NOPIn
		nop.Decode(&p.Header)
		if nop.ITT != pdu.ReservedTag {
			// The answer to a NOP-Out userspace sent (it got the
			// connection's task tag, as libiscsi gives it a task):
			// passed up, as libiscsi's iscsi_nop_out_rsp does.
			k.mu.Lock()
			userPing := started && nop.ITT == c.loginITT
			k.mu.Unlock()
			if userPing {
				return forward()
			}
			// The answer to the kernel's ping, or to nothing.
			k.mu.Lock()
			ours := nop.ITT == s.age<<28|pingTag && !c.pingSent.IsZero()
			c.pingSent = time.Time{}
			k.mu.Unlock()
			if !ours {
				return nlink.ErrBadITT
			}
			return 0
		}
		if len(p.Data) > 0 {
			return nlink.ErrProto
		}
		if nop.TTT == pdu.ReservedTag {
			return 0
		}
		reply := pdu.PDU{}
		(&pdu.NOPOut{Immediate: true, LUN: nop.LUN, ITT: pdu.ReservedTag, TTT: nop.TTT}).Encode(&reply.Header)
		k.mu.Lock()
		put32(&reply.Header, 24, s.cmdSN)
		put32(&reply.Header, 28, c.expStatSN)
		k.mu.Unlock()
		c.wmu.Lock()
		err := c.w.Write(&reply)
		c.wmu.Unlock()
		if err != nil {
			return nlink.ErrXmitFailed
		}
		return 0
	case pdu.OpReject:
		return 0 // libiscsi handles Rejects itself
	case pdu.OpSCSIResponse, pdu.OpDataIn, pdu.OpR2T:
		if !started {
			return nlink.ErrProto
		}
		return k.taskPDU(c, p)
	case pdu.OpTaskMgmtResponse:
		return nlink.ErrBadITT // this kernel sends no task management requests
	}
	return nlink.ErrBadOpcode
}

// connError reports a failure of sock, the socket bound to c, once; the
// commands in flight fail with it.
func (k *Kernel) connError(s *session, c *conn, sock net.Conn, code nlink.ConnError) {
	k.mu.Lock()
	if c.sock != sock || c.stopped || c.failed {
		k.mu.Unlock()
		return
	}
	c.failed = true
	failTasksLocked(c, fmt.Errorf("nlinktest: connection error %v", code))
	s.state = "FAILED"
	k.mu.Unlock()
	k.emit(nlink.Event{Type: nlink.EventConnError, SID: s.sid, CID: c.cid, Error: code})
}

// takeSocket does what sockfd_lookup does for iscsi_tcp: it gets hold of the
// caller's socket by descriptor number.
func takeSocket(fd int) (net.Conn, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	if _, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		unix.Close(dup)
		return nil, syscall.ENOTSOCK
	}
	f := os.NewFile(uintptr(dup), "bound-socket")
	defer f.Close()
	return net.FileConn(f)
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EINVAL
}

// sessionParam reports whether p belongs to the session rather than to the
// connection (as sysfs shows them).
func sessionParam(p nlink.Param) bool {
	switch p {
	case nlink.ParamMaxRecvDLength, nlink.ParamMaxXmitDLength, nlink.ParamHdrDigestEn, nlink.ParamDataDigestEn,
		nlink.ParamExpStatSN, nlink.ParamPersistentAddress, nlink.ParamPersistentPort, nlink.ParamPingTmo,
		nlink.ParamRecvTmo, nlink.ParamConnAddress, nlink.ParamConnPort:
		return false
	}
	return true
}
