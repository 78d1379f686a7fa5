package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

// Server is a running test target: its listeners, targets, LUNs and sessions.
// Its methods are the control API; every one is safe for concurrent use and
// logs what it did.
type Server struct {
	log *slog.Logger
	cfg Config

	ctx    context.Context // cancelled by Close; every goroutine watches it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	targets   map[string]*target
	order     []string // target names in configuration order, for SendTargets
	listeners []*portalListener
	conns     map[*conn]struct{}
	nextTSIH  uint16
	faults    map[string][]*pendingFault // by target name; "" is discovery sessions
	refusals  map[string]*LoginRefusal   // by target name; "" is discovery sessions
	control   net.Listener
	closed    bool
	// challenges are the last CHAP challenges sent, for the reflection check.
	challenges    [64][]byte
	nextChallenge int
}

// target is one configured iSCSI target and its live state, guarded by
// Server.mu.
type target struct {
	name        string
	alias       string
	auth        AuthConfig
	params      map[string]string
	window      uint32
	splitStatus bool
	groups      []PortalGroupConfig // portals as configured
	lus         map[uint64]*logicalUnit
	lunChangeUA bool
	delay       time.Duration
	sessions    map[uint16]*iscsiSession // by TSIH
}

// portalListener is one TCP listener; several targets may share it.
type portalListener struct {
	configured string // the address as the configuration spells it
	ln         net.Listener
}

// New opens the LUNs of cfg and listens on every portal. log receives one
// record per action and per protocol error; nil means slog.Default().
func New(cfg *Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		log: log, cfg: *cfg, ctx: ctx, cancel: cancel,
		targets: map[string]*target{}, conns: map[*conn]struct{}{},
		faults: map[string][]*pendingFault{}, refusals: map[string]*LoginRefusal{},
	}
	fail := func(err error) (*Server, error) {
		s.Close()
		return nil, err
	}
	for _, tc := range cfg.Targets {
		t := &target{
			name: tc.Name, alias: tc.Alias, auth: tc.Auth, params: DefaultParams(), window: 64,
			splitStatus: tc.SplitStatus, groups: tc.PortalGroups, lus: map[uint64]*logicalUnit{},
			lunChangeUA: tc.LUNChangeUA == nil || *tc.LUNChangeUA, sessions: map[uint16]*iscsiSession{},
		}
		for k, v := range tc.Params {
			t.params[k] = v
		}
		if tc.CmdWindow > 0 {
			t.window = uint32(tc.CmdWindow)
		}
		for _, lc := range tc.LUNs {
			lu, err := newLogicalUnit(tc.Name, lc)
			if err != nil {
				return fail(fmt.Errorf("target %s: %w", tc.Name, err))
			}
			t.lus[lc.Number] = lu
		}
		s.targets[t.name] = t
		s.order = append(s.order, t.name)
	}
	// Listen on each distinct address once, then replace port 0 by the port
	// the kernel picked so that SendTargets announces reachable addresses.
	seen := map[string]*portalListener{}
	for _, name := range s.order {
		t := s.targets[name]
		for gi := range t.groups {
			g := &t.groups[gi]
			g.Portals = slices.Clone(g.Portals)
			for pi, addr := range g.Portals {
				pl := seen[addr]
				if pl == nil || strings.HasSuffix(addr, ":0") {
					// Port 0 asks for a port of its own each time.
					ln, err := listenLoopback(addr)
					if err != nil {
						return fail(err)
					}
					pl = &portalListener{configured: addr, ln: ln}
					seen[addr] = pl
					s.listeners = append(s.listeners, pl)
				}
				g.Portals[pi] = pl.ln.Addr().String()
			}
		}
	}
	for _, pl := range s.listeners {
		s.wg.Add(1)
		go s.accept(pl)
		s.log.Info("listening", "portal", pl.ln.Addr().String())
	}
	return s, nil
}

// listenLoopback listens on a loopback address only: the target is for tests
// and must not be reachable from elsewhere.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("portal %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("portal %q: only loopback addresses (127.0.0.1, ::1) are served", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("portal %q: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) accept(pl *portalListener) {
	defer s.wg.Done()
	for {
		nc, err := pl.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept failed; portal closed", "portal", pl.ln.Addr().String(), "err", err)
			}
			return
		}
		if !s.startConn(nc, pl.ln.Addr().String()) {
			return
		}
	}
}

// startConn serves nc, accepted on the portal with address local, in its own
// goroutine; false means the server is closing and nc was closed.
func (s *Server) startConn(nc net.Conn, local string) bool {
	c := newConn(s, nc, local)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	return true
}

// Close stops the listeners and the control socket, drops every connection,
// waits for every goroutine of the server to end and closes the LUN backings.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	for _, pl := range s.listeners {
		pl.ln.Close()
	}
	if s.control != nil {
		s.control.Close()
	}
	for c := range s.conns {
		c.close("server closing")
	}
	s.mu.Unlock()
	s.wg.Wait()
	var errs []error
	for _, t := range s.targets {
		for _, lu := range t.lus {
			errs = append(errs, lu.close())
		}
	}
	s.log.Info("server closed")
	return errors.Join(errs...)
}

// Portals returns the portals of a target with the ports actually listened
// on, in configuration order.
func (s *Server) Portals(targetName string) ([]session.Portal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(targetName)
	if err != nil {
		return nil, err
	}
	return t.portals(), nil
}

func (t *target) portals() []session.Portal {
	var out []session.Portal
	for _, g := range t.groups {
		for _, a := range g.Portals {
			host, port, _ := net.SplitHostPort(a)
			n, _ := strconv.Atoi(port)
			out = append(out, session.Portal{Address: host, Port: n, TPGT: g.Tag})
		}
	}
	return out
}

// tpgtFor returns the portal group tag under which t is served on the
// listener with address local, or false when t is not served there.
func (t *target) tpgtFor(local string) (int, bool) {
	for _, g := range t.groups {
		if slices.Contains(g.Portals, local) {
			return g.Tag, true
		}
	}
	return 0, false
}

// lunNumbers returns the LUN numbers in ascending order.
func (t *target) lunNumbers() []uint64 {
	out := make([]uint64, 0, len(t.lus))
	for n := range t.lus {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// target looks a target up; the caller holds s.mu.
func (s *Server) target(name string) (*target, error) {
	t := s.targets[name]
	if t == nil {
		return nil, fmt.Errorf("no target %q", name)
	}
	return t, nil
}

// allocTSIH returns a TSIH no live session uses; the caller holds s.mu.
func (s *Server) allocTSIH() uint16 {
	for {
		s.nextTSIH++
		if s.nextTSIH == 0 {
			continue // 0 means "new session" on the wire
		}
		used := false
		for _, t := range s.targets {
			if t.sessions[s.nextTSIH] != nil {
				used = true
				break
			}
		}
		if !used {
			return s.nextTSIH
		}
	}
}

// iscsiSession is a logged-in Normal session (Discovery sessions have no
// shared state). Its fields other than the CmdSN window are guarded by
// Server.mu.
type iscsiSession struct {
	tsih      uint16
	isid      pdu.ISID
	initiator string
	target    *target
	tpgt      int
	conns     []*conn
	// ua holds the Unit Attentions pending per LUN, oldest first.
	ua map[uint64][]SenseCode

	cmdMu    sync.Mutex // guards the CmdSN window, read by every sender
	expCmdSN uint32
	window   uint32
}

// maxPendingUA bounds the Unit Attention queue of one LUN.
const maxPendingUA = 16

// addUA queues a Unit Attention on lun unless the same one is pending; the
// caller holds Server.mu.
func (ss *iscsiSession) addUA(lun uint64, s SenseCode) {
	q := ss.ua[lun]
	if slices.Contains(q, s) || len(q) >= maxPendingUA {
		return
	}
	ss.ua[lun] = append(q, s)
}

// takeUA removes and returns the oldest Unit Attention of lun; the caller
// holds Server.mu.
func (ss *iscsiSession) takeUA(lun uint64) *SenseCode {
	q := ss.ua[lun]
	if len(q) == 0 {
		return nil
	}
	s := q[0]
	if len(q) == 1 {
		delete(ss.ua, lun)
	} else {
		ss.ua[lun] = q[1:]
	}
	return &s
}

// clearLUNsChanged drops REPORTED LUNS DATA HAS CHANGED from every LUN, which
// REPORT LUNS does for its I_T nexus (SPC-4 §6.33); the caller holds
// Server.mu.
func (ss *iscsiSession) clearLUNsChanged() {
	for lun, q := range ss.ua {
		q = slices.DeleteFunc(q, func(s SenseCode) bool { return s == senseLUNsChanged })
		if len(q) == 0 {
			delete(ss.ua, lun)
		} else {
			ss.ua[lun] = q
		}
	}
}

// cmdWindow returns ExpCmdSN and MaxCmdSN.
func (ss *iscsiSession) cmdWindow() (exp, max uint32) {
	ss.cmdMu.Lock()
	defer ss.cmdMu.Unlock()
	return ss.expCmdSN, ss.expCmdSN + ss.window - 1
}
