package target

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

// writeTimeout bounds every write to an initiator, so a peer that stops
// reading cannot block a sender (or Close) forever.
const writeTimeout = 10 * time.Second

// loginTimeout bounds each read during the login phase.
const loginTimeout = 30 * time.Second

// conn is one TCP connection from an initiator, from its first Login Request
// to its close. One goroutine (serve) reads and handles its PDUs; control
// actions send on it from other goroutines through send.
type conn struct {
	srv   *Server
	nc    *limitedConn
	local string // listener address
	log   *slog.Logger
	r     *pdu.Reader

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc

	// wmu guards w, statSN and the write side of nc, and log where
	// another goroutine may read it (close): the login changes log.
	wmu    sync.Mutex
	w      *pdu.Writer
	statSN uint32

	// Set by the login, then read-only.
	sess      *iscsiSession // nil until the login succeeds
	tgt       *target       // nil for Discovery sessions
	discovery bool
	cid       uint16
	params    connParams
	// loginCmdSN is the CmdSN of the login, ExpCmdSN and MaxCmdSN of the
	// Login Responses before the session exists.
	loginCmdSN uint32

	// Owned by the serve goroutine.
	tasks  map[uint32]*writeTask // by ITT: writes waiting for Data-Out
	bursts map[uint32]*burst     // by TTT: outstanding R2Ts
	queued map[uint32]*pdu.PDU   // by CmdSN: commands that arrived ahead of ExpCmdSN
	text   textExchange

	nextTTT atomic.Uint32 // the last target transfer tag handed out

	pingMu      sync.Mutex // guards the target ping state
	pingTTT     uint32     // outstanding target ping, ReservedTag when none
	pingSent    time.Time
	lastReceive atomic.Int64 // unix nanoseconds of the last PDU received

	logoutTimer *time.Timer // AsyncEvent 1 deadline, guarded by wmu

	closeOnce sync.Once
}

// connParams are the negotiated values that the full feature phase obeys.
type connParams struct {
	maxXmit        int // the initiator's MaxRecvDataSegmentLength: Data-In size
	maxRecv        int // ours: the largest data segment accepted
	maxBurst       int
	firstBurst     int
	initialR2T     bool
	immediateData  bool
	maxOutstanding int
	digests        pdu.Digests
}

func newConn(s *Server, nc net.Conn, local string) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	lc := &limitedConn{Conn: nc}
	lc.limit.Store(-1)
	c := &conn{
		srv: s, nc: lc, local: local, ctx: ctx, cancel: cancel,
		log:   s.log.With("remote", nc.RemoteAddr().String(), "portal", local),
		r:     pdu.NewReader(lc),
		w:     pdu.NewWriter(lc),
		tasks: map[uint32]*writeTask{}, bursts: map[uint32]*burst{}, queued: map[uint32]*pdu.PDU{},
		pingTTT: pdu.ReservedTag, statSN: 1,
	}
	c.lastReceive.Store(time.Now().UnixNano())
	return c
}

// limitedConn closes the connection once a byte budget is spent: the
// "drop after N bytes" control action, which also cuts PDUs in half.
type limitedConn struct {
	net.Conn
	limit atomic.Int64 // bytes left to write; -1 means no limit
}

func (l *limitedConn) Write(b []byte) (int, error) {
	left := l.limit.Load()
	if left < 0 || int64(len(b)) < left {
		if left >= 0 {
			l.limit.Add(-int64(len(b)))
		}
		return l.Conn.Write(b)
	}
	n, _ := l.Conn.Write(b[:left])
	l.Conn.Close()
	return n, fmt.Errorf("connection dropped after its byte budget: %w", net.ErrClosed)
}

// close ends the connection; serve returns soon after.
func (c *conn) close(reason string) {
	c.closeOnce.Do(func() {
		c.cancel()
		c.nc.Close()
		c.wmu.Lock()
		c.log.Info("closing connection", "reason", reason)
		if c.logoutTimer != nil {
			c.logoutTimer.Stop()
		}
		c.wmu.Unlock()
	})
}

// addLogAttrs adds attributes to the connection's log records (see wmu).
func (c *conn) addLogAttrs(args ...any) {
	c.wmu.Lock()
	c.log = c.log.With(args...)
	c.wmu.Unlock()
}

// serve runs the connection: login, then the full feature phase.
func (c *conn) serve() {
	defer c.close("connection ended")
	stop := context.AfterFunc(c.ctx, func() { c.nc.Close() })
	defer stop()
	defer c.leaveSession()
	if err := c.login(); err != nil {
		c.log.Warn("login failed", "err", err)
		return
	}
	if c.srv.cfg.NOPInInterval > 0 {
		c.srv.wg.Add(1)
		go c.pinger()
	}
	for {
		p := new(pdu.PDU)
		err := c.r.Read(p)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) || c.ctx.Err() != nil || errors.Is(err, net.ErrClosed):
			case errors.Is(err, pdu.ErrDataDigest):
				// The PDU was read whole: reject it and go on (§7.8).
				c.log.Error("data digest error", "pdu", p.Header.String(), "err", err)
				c.reject(pdu.RejectDataDigest, &p.Header)
				continue
			default:
				c.log.Error("reading PDU failed; dropping the connection", "err", err)
			}
			return
		}
		c.lastReceive.Store(time.Now().UnixNano())
		if !c.dispatch(p) {
			return
		}
	}
}

// leaveSession removes the connection from its session, and the session from
// its target when it was the last connection.
func (c *conn) leaveSession() {
	if c.sess == nil || c.tgt == nil {
		return
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	ss := c.sess
	for i, x := range ss.conns {
		if x == c {
			ss.conns = append(ss.conns[:i], ss.conns[i+1:]...)
			break
		}
	}
	if len(ss.conns) == 0 && c.tgt.sessions[ss.tsih] == ss {
		delete(c.tgt.sessions, ss.tsih)
		c.log.Info("session ended")
	}
}

// dispatch handles one PDU of the full feature phase; false ends the
// connection.
func (c *conn) dispatch(p *pdu.PDU) bool {
	op := p.Header.Opcode()
	if !op.Known() {
		c.log.Error("unknown opcode from initiator", "pdu", p.Header.String())
		c.reject(pdu.RejectCommandNotSupported, &p.Header)
		return true
	}
	if op.FromTarget() || op == pdu.OpLoginRequest || op == pdu.OpSNACKRequest {
		// SNACK needs ErrorRecoveryLevel > 0, which this target never grants.
		c.log.Error("opcode not valid from an initiator in the full feature phase", "pdu", p.Header.String())
		c.reject(pdu.RejectProtocolError, &p.Header)
		return true
	}
	if len(p.AHS) > 0 && op != pdu.OpSCSICommand {
		c.log.Error("AHS on a PDU that has none", "pdu", p.Header.String())
		c.reject(pdu.RejectProtocolError, &p.Header)
		return true
	}
	if op == pdu.OpDataOut {
		c.dataOut(p)
		return true
	}
	if c.discovery && op != pdu.OpTextRequest && op != pdu.OpLogoutRequest && op != pdu.OpNOPOut {
		c.log.Error("discovery session sent a request only normal sessions may send", "pdu", p.Header.String())
		c.reject(pdu.RejectProtocolError, &p.Header)
		return true
	}
	cmdSN := binary.BigEndian.Uint32(p.Header[24:28])
	if p.Header.Immediate() {
		return c.handle(p)
	}
	return c.ordered(p, cmdSN)
}

// ordered runs non-immediate requests in CmdSN order (§3.2.2.1): the expected
// one now (with any queued successors), later ones inside the window once
// their turn comes, and ones outside the window not at all.
func (c *conn) ordered(p *pdu.PDU, cmdSN uint32) bool {
	ss := c.sess
	ss.cmdMu.Lock()
	exp, window := ss.expCmdSN, ss.window
	ss.cmdMu.Unlock()
	if d := cmdSN - exp; d != 0 {
		if d >= window {
			c.log.Warn("CmdSN outside the command window; ignoring the PDU as RFC 7143 requires",
				"cmdsn", cmdSN, "expcmdsn", exp, "pdu", p.Header.String())
			return true
		}
		c.queued[cmdSN] = p
		return true
	}
	for {
		ss.cmdMu.Lock()
		ss.expCmdSN++
		ss.cmdMu.Unlock()
		if !c.handle(p) {
			return false
		}
		exp++
		next := c.queued[exp]
		if next == nil {
			return true
		}
		delete(c.queued, exp)
		p = next
	}
}

// handle runs one request PDU (other than Data-Out).
func (c *conn) handle(p *pdu.PDU) bool {
	m, err := p.Decode()
	if err != nil {
		c.log.Error("malformed PDU", "pdu", p.Header.String(), "err", err)
		c.reject(pdu.RejectInvalidPDUField, &p.Header)
		return true
	}
	switch m := m.(type) {
	case *pdu.NOPOut:
		c.nopOut(m, p)
	case *pdu.SCSICommand:
		c.scsiCommand(m, p)
	case *pdu.TaskMgmtRequest:
		c.taskMgmt(m)
	case *pdu.TextRequest:
		return c.textRequest(m, p)
	case *pdu.LogoutRequest:
		return c.logout(m)
	}
	return true
}

// stampAndWrite fills StatSN, ExpCmdSN and MaxCmdSN (bytes 24–35 of every
// target PDU) and writes p. advance consumes a StatSN (every PDU that carries
// status does); the others carry the next StatSN without using it. The caller
// holds wmu.
func (c *conn) stampAndWrite(p *pdu.PDU, advance bool) error {
	exp, max := c.window()
	binary.BigEndian.PutUint32(p.Header[24:28], c.statSN)
	binary.BigEndian.PutUint32(p.Header[28:32], exp)
	binary.BigEndian.PutUint32(p.Header[32:36], max)
	if advance {
		c.statSN++
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.w.Write(p)
}

// window returns ExpCmdSN and MaxCmdSN of the connection's session.
func (c *conn) window() (exp, max uint32) {
	if c.sess == nil {
		return c.loginCmdSN, c.loginCmdSN
	}
	return c.sess.cmdWindow()
}

// send encodes m with data and writes it; see stampAndWrite for advance.
func (c *conn) send(m pdu.Message, data []byte, advance bool) error {
	p := &pdu.PDU{Data: data}
	m.Encode(&p.Header)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.stampAndWrite(p, advance); err != nil {
		if c.ctx.Err() == nil {
			c.log.Error("send failed; dropping the connection", "pdu", p.Header.String(), "err", err)
		}
		c.cancel()
		return err
	}
	return nil
}

// reject answers a PDU with a Reject carrying its header (§11.17).
func (c *conn) reject(reason uint8, h *pdu.BHS) {
	c.send(&pdu.Reject{Reason: reason}, h[:], true)
}

// delay waits for the target's configured response delay, or until the
// connection closes.
func (c *conn) delay() {
	if c.tgt == nil {
		return
	}
	c.srv.mu.Lock()
	d := c.tgt.delay
	c.srv.mu.Unlock()
	sleep(c.ctx, d)
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (c *conn) nopOut(m *pdu.NOPOut, p *pdu.PDU) {
	if m.TTT != pdu.ReservedTag {
		// The answer to a target ping.
		c.pingMu.Lock()
		if m.TTT == c.pingTTT {
			c.pingTTT = pdu.ReservedTag
		} else {
			c.log.Warn("NOP-Out answers a ping this target did not send", "ttt", m.TTT)
		}
		c.pingMu.Unlock()
		return
	}
	if m.ITT == pdu.ReservedTag {
		return // no answer wanted
	}
	data := p.Data
	if len(data) > c.params.maxXmit {
		data = data[:c.params.maxXmit]
	}
	c.send(&pdu.NOPIn{LUN: m.LUN, ITT: m.ITT, TTT: pdu.ReservedTag}, data, true)
}

// pinger sends target NOP-In pings when the initiator has been quiet for the
// configured interval and drops a connection whose initiator does not answer.
func (c *conn) pinger() {
	defer c.srv.wg.Done()
	interval := time.Duration(c.srv.cfg.NOPInInterval)
	timeout := time.Duration(c.srv.cfg.NOPInTimeout)
	if timeout == 0 {
		timeout = interval
	}
	tick := time.NewTicker(interval / 4)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-tick.C:
			c.pingMu.Lock()
			outstanding, sent := c.pingTTT != pdu.ReservedTag, c.pingSent
			c.pingMu.Unlock()
			if outstanding {
				if now.Sub(sent) > timeout {
					c.close("initiator did not answer the target's NOP-In ping")
					return
				}
				continue
			}
			if now.Sub(time.Unix(0, c.lastReceive.Load())) < interval {
				continue
			}
			c.pingMu.Lock()
			c.pingTTT, c.pingSent = c.newTTT(), now
			ttt := c.pingTTT
			c.pingMu.Unlock()
			c.send(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: ttt}, nil, false)
		}
	}
}

// textExchange is the state of a Text Request/Response exchange that the
// target answers over several PDUs.
type textExchange struct {
	itt     uint32
	ttt     uint32
	pending []byte // response text not yet sent
	request []byte // request text joined across C-bit PDUs
}

// maxTextRequest bounds a Text Request's text joined across C-bit PDUs.
const maxTextRequest = 64 << 10

func (c *conn) textRequest(m *pdu.TextRequest, p *pdu.PDU) bool {
	x := &c.text
	if m.TTT != pdu.ReservedTag {
		// Continue an answer we split.
		if m.TTT != x.ttt || m.ITT != x.itt {
			c.log.Error("Text Request continues an exchange this target does not have", "itt", m.ITT, "ttt", m.TTT)
			c.reject(pdu.RejectInvalidPDUField, &p.Header)
			return true
		}
		if len(p.Data) > 0 && len(x.pending) > 0 {
			c.log.Error("Text Request continuation carries new text while the answer is unfinished", "itt", m.ITT)
			c.reject(pdu.RejectProtocolError, &p.Header)
			return true
		}
	} else {
		if x.itt != m.ITT {
			*x = textExchange{itt: m.ITT}
		}
		x.pending = nil
	}
	x.request = append(x.request, p.Data...)
	if len(x.request) > maxTextRequest {
		c.log.Error("Text Request text exceeds the limit", "bytes", len(x.request), "limit", maxTextRequest)
		c.reject(pdu.RejectProtocolError, &p.Header)
		*x = textExchange{}
		return true
	}
	if m.Continue {
		x.ttt = c.newTTT()
		c.send(&pdu.TextResponse{ITT: m.ITT, TTT: x.ttt, LUN: m.LUN}, nil, true)
		return true
	}
	if len(x.request) > 0 {
		kvs, err := pdu.ParseText(x.request)
		x.request = nil
		if err != nil {
			c.log.Error("malformed Text Request", "err", err)
			c.reject(pdu.RejectProtocolError, &p.Header)
			return true
		}
		answer, err := c.textAnswer(kvs)
		if err != nil {
			c.log.Error("Text Request negotiation failed; dropping the connection", "err", err)
			return false
		}
		x.pending = answer
	}
	c.delay()
	// Send the next piece: at most the initiator's limit (and the configured
	// cap), ending at a pair boundary when one fits, else with C=1.
	limit := c.params.maxXmit
	if l := c.srv.cfg.TextSegmentLimit; l > 0 && l < limit {
		limit = l
	}
	chunk := x.pending
	resp := pdu.TextResponse{ITT: m.ITT, LUN: m.LUN, TTT: pdu.ReservedTag, Final: true}
	if len(chunk) > limit {
		chunk = chunk[:limit]
		if i := lastNUL(chunk); i >= 0 {
			chunk = chunk[:i+1]
		} else {
			resp.Continue = true
		}
		x.ttt = c.newTTT()
		resp.Final, resp.TTT = false, x.ttt
	}
	x.pending = x.pending[len(chunk):]
	if resp.Final {
		*x = textExchange{}
	}
	c.send(&resp, chunk, true)
	return true
}

// newTTT returns a fresh target transfer tag, never ReservedTag.
func (c *conn) newTTT() uint32 {
	for {
		if t := c.nextTTT.Add(1) & 0x7fffffff; t != 0 {
			return t
		}
	}
}

func lastNUL(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == 0 {
			return i
		}
	}
	return -1
}

// textAnswer computes the answer to a complete Text Request: SendTargets, or
// a renegotiation of the keys the full feature phase allows.
func (c *conn) textAnswer(kvs []pdu.KeyValue) ([]byte, error) {
	var rest []pdu.KeyValue
	var out []byte
	for _, kv := range kvs {
		if kv.Key == "SendTargets" {
			out = append(out, c.sendTargets(kv.Value)...)
			continue
		}
		rest = append(rest, kv)
	}
	if len(rest) == 0 {
		return out, nil
	}
	// Only declarative keys may change in the full feature phase for this
	// target (MaxRecvDataSegmentLength above all); the others are answered as
	// a responder would, with the values already in force.
	wishes := map[string]string{}
	if c.tgt != nil {
		wishes = c.tgt.params
	}
	neg := session.NewNegotiator(session.TargetRole, c.discovery, wishes)
	answers, err := neg.Handle(rest)
	if err != nil {
		return nil, err
	}
	if v, ok := neg.Peer("MaxRecvDataSegmentLength"); ok {
		n, _ := strconv.Atoi(v)
		c.params.maxXmit = n
		c.log.Info("initiator renegotiated MaxRecvDataSegmentLength", "value", n)
	}
	return append(out, pdu.AppendText(nil, answers...)...), nil
}

// sendTargets answers SendTargets=All (every target), =<name> (that one), or
// empty (the session's own target, Normal sessions only).
func (c *conn) sendTargets(which string) []byte {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	var out []byte
	for _, name := range c.srv.order {
		t := c.srv.targets[name]
		switch {
		case which == "All" && c.discovery:
		case which == "" && c.tgt == t:
		case which == name:
		default:
			continue
		}
		out = pdu.AppendText(out, pdu.KeyValue{Key: "TargetName", Value: name})
		for _, p := range t.portals() {
			out = pdu.AppendText(out, pdu.KeyValue{Key: "TargetAddress", Value: p.String()})
		}
	}
	return out
}

func (c *conn) logout(m *pdu.LogoutRequest) bool {
	c.wmu.Lock()
	if c.logoutTimer != nil {
		c.logoutTimer.Stop()
		c.logoutTimer = nil
	}
	c.wmu.Unlock()
	resp := pdu.LogoutResponse{ITT: m.ITT}
	switch {
	case m.Reason == pdu.LogoutRemoveForRecovery:
		resp.Response = pdu.LogoutRecoveryNotSupported
	case m.Reason == pdu.LogoutCloseConnection && m.CID != c.cid:
		resp.Response = pdu.LogoutCIDNotFound
	case m.Reason > pdu.LogoutRemoveForRecovery:
		c.log.Error("logout with a reserved reason code", "reason", m.Reason)
		resp.Response = pdu.LogoutCleanupFailed
	}
	c.log.Info("logout", "reason", m.Reason, "response", resp.Response)
	c.send(&resp, nil, true)
	return resp.Response != pdu.LogoutClosed
}
