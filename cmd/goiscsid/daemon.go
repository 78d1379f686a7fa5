package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/session"
)

// version is goiscsid's release, shown by goiscsiadm -m session and status.
const version = "0.1.0"

// daemon owns the kernel sessions and answers goiscsiadm.
type daemon struct {
	nl            *nlink.Conn
	sysfs         scan.Sysfs
	initiatorName string
	alias         string
	// cfg is iscsid.conf, whose node.* keys fill what a record leaves out;
	// configPath is where it is, which stock iscsiadm asks for.
	cfg        *conf.Config
	configPath string
	// db is the node database, where goiscsi's own keys of the records
	// stock iscsiadm logs in with are; nil in tests without one.
	db  *conf.DB
	log *slog.Logger
	// dial opens TCP connections; nil means a net.Dialer (tests use it to
	// count or fail connections).
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// transports are the Conns of the kernel transports other than
	// iscsi_tcp's d.nl (transport.go).
	transports transports

	// block flushes, removes maps and deletes devices for LUN
	// removals; nil means the host's (tests use a fake).
	block scan.BlockOps
	// proc is procfs's mount point for LUN removals; empty means /proc.
	proc string
	// targets serializes the sysfs work on each target.
	targets targetLocks
	// holds remembers the LUNs the host removed, which broad scans do not
	// add back (held.go).
	holds *scan.Holds
	// events are the kernel's SCSI device events; nil when they could not
	// be received.
	events *scan.UeventListener
	// bus carries session events to OpEvents subscribers.
	bus eventBus
	// stop ends the daemon (mgmt.OpStop); nil when it cannot be asked to.
	stop func()

	// inFlight holds a token for each login in the kernel's hands and
	// each logout (see maxInFlight); connecting one for each login
	// attempt (see maxConnecting).
	inFlight, connecting chan struct{}
	// slowPortals are the portals whose connects outlasted
	// ksession.ConnectGrace: their logins take no kernel place until
	// they have connected.
	slowPortals ksession.SlowPortals
	// health is the per-session health settings (health.go); nil: defaults.
	health *healthMonitor

	mu       sync.Mutex
	sessions map[uint32]*daemonSession
	// logins counts the logins in progress of each node identity, so a
	// second login of the same node is refused instead of racing the first
	// (unless it asks for another session).
	logins map[string]int
}

// removalTimeout bounds a LUN removal in the daemon: under goiscsiadm's
// 10-minute wait for the answer, above the waits of scan.MaxTries tries.
const removalTimeout = 9 * time.Minute

// targetLocks keeps scans and LUN removals on each target apart: a removal holds
// its target's lock alone, and every scan (at login, after an AEN or unit
// attention, on request) shares it, so an attach's scan never runs between a
// detach's removal of a map and its deletion of the paths, and cannot bring
// back a LUN half removed. Scans share the lock because each session's is of
// its own SCSI host: the sessions of one target over several portals (a
// multipath host's paths) scan at once, as different targets do.
type targetLocks struct {
	mu sync.Mutex
	m  map[string]*sync.RWMutex
}

// of returns target n's lock.
func (l *targetLocks) of(n string) *sync.RWMutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*sync.RWMutex{}
	}
	m := l.m[n]
	if m == nil {
		m = &sync.RWMutex{}
		l.m[n] = m
	}
	return m
}

// lock takes the locks of targets alone, in sorted order so that two callers
// locking overlapping sets cannot deadlock, and returns their release.
func (l *targetLocks) lock(targets ...string) (unlock func()) {
	names := append([]string(nil), targets...)
	sort.Strings(names)
	var held []*sync.RWMutex
	for i, n := range names {
		if i > 0 && n == names[i-1] {
			continue
		}
		m := l.of(n)
		m.Lock()
		held = append(held, m)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}

// share takes target's lock shared with other scans, and returns its release.
func (l *targetLocks) share(target string) (unlock func()) {
	m := l.of(target)
	m.RLock()
	return m.RUnlock
}

// daemonSession is one logged-in session and the record it came from.
type daemonSession struct {
	k  *ksession.Session
	id string

	// leaving is set when goiscsid starts to log the session out: the
	// devices the kernel removes with it are not held back.
	leaving atomic.Bool
	// health follows the session's path (health.go, set by withHealth).
	health *health.Tracker

	mu     sync.Mutex
	rec    *conf.Record
	policy scan.Policy
}

func (s *daemonSession) scanPolicy() scan.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy
}

// maxConnecting bounds the login attempts under way at once, connecting or
// logging in: enough that a storm's silent portals (each holding its place for
// a login timeout) leave room, few enough that no target sees hundreds of
// SYNs at once and a connected login waits for the kernel (maxInFlight) a few
// seconds at most, well within the login timeout a target allows before the
// first PDU.
const maxConnecting = 128

// maxInFlight bounds the logins past their connect and the logouts under way
// at once. The kernel does the iSCSI work of one request at a time, creating
// and destroying a session being the slowest (70-100 ms each under TCG,
// measured), so in a storm of hundreds the later ones would wait there for
// tens of seconds with their login or logout timeouts running, and fail. 32 at
// once keep the kernel busy while the others' login PDUs cross the network,
// yet each waits for at most 31 others.
const maxInFlight = 32

// begin waits for one of the maxInFlight places; end gives it back.
func (d *daemon) begin(ctx context.Context) error {
	select {
	case d.inFlight <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *daemon) end() { <-d.inFlight }

// inFlight is the daemon's maxInFlight places as a login's
// ksession.Admission.
type inFlight struct{ d *daemon }

func (a inFlight) TryAcquire() bool {
	select {
	case a.d.inFlight <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a inFlight) Acquire(ctx context.Context) error { return a.d.begin(ctx) }
func (a inFlight) Release()                          { a.d.end() }

func newDaemon(nl *nlink.Conn, sysfs scan.Sysfs, initiatorName, alias string, cfg *conf.Config, log *slog.Logger) *daemon {
	return &daemon{nl: nl, sysfs: sysfs, initiatorName: initiatorName, alias: alias, cfg: cfg,
		inFlight: make(chan struct{}, maxInFlight), connecting: make(chan struct{}, maxConnecting), holds: &scan.Holds{},
		log: log, sessions: map[uint32]*daemonSession{}, logins: map[string]int{}}
}

// ServeMgmt answers one goiscsiadm request.
func (d *daemon) ServeMgmt(ctx context.Context, req *mgmt.Request) *mgmt.Response {
	switch req.Op {
	case mgmt.OpStatus:
		d.mu.Lock()
		n := len(d.sessions)
		d.mu.Unlock()
		return &mgmt.Response{Status: &mgmt.Status{Version: version, PID: os.Getpid(), Sessions: n}}
	case mgmt.OpLogin:
		return d.login(ctx, req.Record, req.Another)
	case mgmt.OpLogout:
		return d.logout(ctx, uint32(req.SID))
	case mgmt.OpSessions:
		return d.list(req.ShowSecrets, req.Brief)
	case mgmt.OpStats:
		return d.stats(ctx, uint32(req.SID))
	case mgmt.OpScan:
		return d.scanRequest(ctx, req)
	case mgmt.OpUpdate:
		return d.update(req)
	case mgmt.OpRemoveLUN:
		return d.removeLUN(ctx, req)
	case mgmt.OpHealth:
		return d.healthRequest(ctx, req)
	case mgmt.OpDiscover:
		return d.discover(ctx, req.Record)
	case mgmt.OpStop:
		if d.stop == nil {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "this goiscsid cannot be stopped by request")}
		}
		// The server sends this reply before it stops serving.
		d.log.Info("stopping: asked to by goiscsiadm -k 0; sessions stay logged in")
		d.stop()
		return &mgmt.Response{}
	}
	return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "unknown request %q", req.Op)}
}

// nodeID identifies a node the way open-iscsi matches a session to a record.
func nodeID(n conf.Node) string {
	return fmt.Sprintf("%s|%s|%d|%s", n.Target, n.Address, n.Port, n.Iface.Name)
}

// policyOf is the scan policy of a decoded record.
func policyOf(n conf.Node) (scan.Policy, error) {
	autoscan := "Yes"
	if !n.AutoscanEn {
		autoscan = "No"
	}
	return scan.PolicyFor(n.Scan, autoscan)
}

// login logs in to the node record keys. A node with a session, or a login
// under way, is refused (15) unless another asks for one more session
// (open-iscsi's session.multiple).
func (d *daemon) login(ctx context.Context, keys map[string]string, another bool) *mgmt.Response {
	rec, err := conf.NodeRecordFrom(keys, d.cfg)
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%v", err)}
	}
	cn, err := rec.Node(d.initiatorName)
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%v", err)}
	}
	policy, err := policyOf(cn)
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "node record: %v", err)}
	}
	n := ksession.Node{Node: cn, Alias: d.alias, Dial: d.dial, SysfsRoot: d.sysfs.Root}
	id := nodeID(cn)
	d.mu.Lock()
	if !another && (d.logins[id] > 0 || d.nodeSessions(id) > 0) {
		d.mu.Unlock()
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SessExists, "session exists")}
	}
	d.logins[id]++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.logins[id]--; d.logins[id] == 0 {
			delete(d.logins, id)
		}
		d.mu.Unlock()
	}()

	log := d.log.With("target", cn.Target, "portal", fmt.Sprintf("%s,%d", net.JoinHostPort(cn.Address, fmt.Sprint(cn.Port)), cn.TPGT), "iface", cn.Iface.Name)
	ds := &daemonSession{rec: rec, id: id, policy: policy}
	k, err := d.establish(ctx, n, d.hooks(ds), cn.LoginRetries, log)
	if err != nil {
		log.Error("login failed", "err", err)
		return &mgmt.Response{Error: loginError(err)}
	}
	ds.k = k
	d.healthLoggedIn(ds)
	d.mu.Lock()
	first := d.nodeSessions(id) == 0
	d.sessions[k.SID] = ds
	d.mu.Unlock()
	if first {
		// Devices recorded for the node belonged to an earlier
		// session, which took them with it when it ended; another
		// session of the node still has its own.
		if err := d.holds.Detached(nodeKey(cn)); err != nil {
			log.Error("held-back LUNs", "err", err)
		}
	}
	log.Info("connection is operational now", "sid", k.SID, "host", k.Host, "scan_policy", policy.String(), "times", k.Times())
	d.event(mgmt.EventLoggedIn, k, "")
	d.scanHost(k, policy, scan.Login)
	info := d.info(ds, false)
	return &mgmt.Response{Session: &info}
}

// nodeSessions counts the sessions of node identity id. d.mu must be held.
func (d *daemon) nodeSessions(id string) int {
	n := 0
	for _, s := range d.sessions {
		if s.id == id {
			n++
		}
	}
	return n
}

// hooks connect a session's events to the daemon: scans after LUN-change
// events and relogins, and forgetting a session whose recovery gave up.
func (d *daemon) hooks(ds *daemonSession) ksession.Hooks {
	return d.withHealth(ds, ksession.Hooks{
		AsyncEvent: func(k *ksession.Session, _ uint64, sense pdu.Sense) {
			if sense.ReportedLUNsDataChanged() {
				d.event(mgmt.EventLUNsChanged, k, "")
				go d.scanHost(k, ds.scanPolicy(), scan.AEN)
			}
		},
		ConnError:  func(k *ksession.Session, e nlink.ConnError) { d.event(mgmt.EventConnError, k, e.String()) },
		Recovering: func(k *ksession.Session, cause string) { d.event(mgmt.EventRecovering, k, cause) },
		Recovered: func(k *ksession.Session, _ int) {
			d.event(mgmt.EventRecovered, k, "")
			go d.scanHost(k, ds.scanPolicy(), scan.Relogin)
		},
		Failed: func(k *ksession.Session, err error) {
			d.event(mgmt.EventFailed, k, err.Error())
			if k.InKernel() {
				// Listed as FAILED until a logout gets the kernel to
				// let it go: forgetting it would leave it there unowned.
				d.log.Error("session recovery gave up; the kernel still has the session, log it out to remove it", "sid", k.SID, "err", err)
				return
			}
			d.log.Error("session recovery gave up; session removed", "sid", k.SID, "err", err)
			d.mu.Lock()
			delete(d.sessions, k.SID)
			d.mu.Unlock()
		},
	})
}

// establish logs in, retrying failures a later attempt may overcome (no answer,
// connection refused, a target busy) for initial_login_retry_max login timeouts,
// as open-iscsi does.
//
// At most maxConnecting attempts are under way at once and the others wait
// their turn before their login timeout starts; at most maxInFlight of them
// (with the logouts) hold a kernel place, which a login takes before it
// connects (see ksession.Admission), so a portal that never answers holds
// one for ksession.ConnectGrace once, and none after that.
func (d *daemon) establish(ctx context.Context, n ksession.Node, hooks ksession.Hooks, retries int, log *slog.Logger) (*ksession.Session, error) {
	n.Admission, n.SlowPortals = inFlight{d}, &d.slowPortals
	var deadline time.Time
	for attempt := 1; ; attempt++ {
		select {
		case d.connecting <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a turn to connect: %w", ctx.Err())
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Duration(max(retries, 1)) * max(n.Timeouts.Login, time.Second))
		}
		nl, err := d.kernelFor(n)
		if err != nil {
			<-d.connecting
			return nil, err
		}
		k, err := ksession.Establish(ctx, nl, n, hooks, log)
		<-d.connecting
		if err == nil || !ksession.Retryable(err) || time.Now().Add(time.Second).After(deadline) {
			return k, err
		}
		log.Warn("login attempt failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// loginError maps a login failure to iscsiadm's exit code and message.
func loginError(err error) *iscsierr.Error {
	var le *session.LoginError
	var ae *session.AuthError
	var be *netif.BindError
	var ie *iscsierr.Error
	switch {
	case errors.As(err, &ie):
		return ie // the daemon's own verdict (a transport it cannot drive)
	case errors.As(err, &be):
		// Stock's code after its connect retries (8), at once.
		return iscsierr.Errorf(iscsierr.TransTimeout, "%v", err)
	case errors.As(err, &le) && le.AuthFailure():
		return iscsierr.Errorf(iscsierr.LoginAuthFailed, "iSCSI login failed due to authorization failure: %v", err)
	case errors.As(err, &ae):
		return iscsierr.Errorf(iscsierr.FatalLogin, "%v", err)
	case errors.As(err, &le):
		return iscsierr.Errorf(iscsierr.FatalLogin, "iSCSI login failed: %v", err)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, ksession.ErrEndpointDown):
		return iscsierr.Errorf(iscsierr.TransTimeout, "connection timed out: %v", err)
	}
	var ke *nlink.KernelError
	if errors.As(err, &ke) {
		return iscsierr.Errorf(iscsierr.Internal, "kernel refused: %v", err)
	}
	return iscsierr.Errorf(iscsierr.Login, "login failed: %v", err)
}

// scanHost scans k's SCSI host as policy decides for trigger t. Event-driven
// scans run in their own goroutine, so a session's event handling never waits
// for the kernel's SCSI scan.
func (d *daemon) scanHost(k *ksession.Session, policy scan.Policy, t scan.Trigger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if scan.Decide(policy, t).Kind == scan.None {
		// Nothing to write: log the decision without waiting for a
		// removal on the target.
		d.sysfs.Apply(ctx, d.log, int(k.SID), int(k.Host), policy, t, nil)
		return
	}
	defer d.targets.share(k.Node().Target)()
	if err := d.broadScan(ctx, k, policy, t); err != nil {
		d.log.Error("scan failed", "sid", k.SID, "trigger", t.String(), "err", err)
	}
}

// broadScan scans k's host as policy decides for t, adding no LUN held back
// for its node, and forgets the held LUNs the target no longer reports. The
// caller holds the target's lock. A memory that cannot be read fails closed:
// nothing is scanned.
func (d *daemon) broadScan(ctx context.Context, k *ksession.Session, policy scan.Policy, t scan.Trigger) error {
	d.syncEvents()
	held, err := d.holds.Held(nodeKey(k.Node().Node))
	if err != nil {
		return fmt.Errorf("not scanning: %w", err)
	}
	luns := make([]uint64, len(held))
	for i, h := range held {
		luns[i] = h.LUN
	}
	out, err := d.sysfs.Apply(ctx, d.log, int(k.SID), int(k.Host), policy, t, luns)
	if out.Reported != nil {
		err = errors.Join(err, d.forget(k, out.Reported))
	}
	return err
}

// allSessions returns the sessions goiscsid owns now, in no order.
func (d *daemon) allSessions() []*daemonSession {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := make([]*daemonSession, 0, len(d.sessions))
	for _, ds := range d.sessions {
		all = append(all, ds)
	}
	return all
}

func (d *daemon) session(sid uint32) (*daemonSession, *iscsierr.Error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, ok := d.sessions[sid]
	if !ok {
		return nil, iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", sid)
	}
	return ds, nil
}

func (d *daemon) logout(ctx context.Context, sid uint32) *mgmt.Response {
	ds, e := d.session(sid)
	if e != nil {
		return &mgmt.Response{Error: e}
	}
	info := d.info(ds, false)
	if err := d.begin(ctx); err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Logout, "%v", err)}
	}
	ds.leaving.Store(true)
	err := ds.k.Logout(ctx)
	d.end()
	if err != nil && ds.k.InKernel() {
		ds.leaving.Store(false)
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Logout, "%v", err)}
	}
	// The kernel's device events of the logout come before its reply:
	// handle them while leaving is set, then forget the devices.
	d.syncEvents()
	if err := d.holds.Detached(nodeKey(ds.k.Node().Node)); err != nil {
		d.log.Error("held-back LUNs", "sid", sid, "err", err)
	}
	d.mu.Lock()
	delete(d.sessions, sid)
	d.mu.Unlock()
	d.log.Info("logged out", "sid", sid, "target", info.TargetName, "times", ds.k.LogoutTimes())
	d.event(mgmt.EventLoggedOut, ds.k, "")
	return &mgmt.Response{Session: &info}
}

func (d *daemon) list(showSecrets, brief bool) *mgmt.Response {
	// Held-back LUNs as of every device event before the request.
	d.syncEvents()
	all := d.allSessions()
	sort.Slice(all, func(i, j int) bool { return all[i].k.SID < all[j].k.SID })
	out := make([]mgmt.Session, 0, len(all))
	for _, ds := range all {
		s := d.info(ds, showSecrets)
		if brief {
			s = s.Brief()
		}
		out = append(out, s)
	}
	return &mgmt.Response{Sessions: out}
}

func (d *daemon) stats(ctx context.Context, sid uint32) *mgmt.Response {
	ds, e := d.session(sid)
	if e != nil {
		return &mgmt.Response{Error: e}
	}
	st, err := ds.k.Stats(ctx)
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Internal, "kernel statistics of session %d: %v", sid, err)}
	}
	return &mgmt.Response{Stats: statsOf(st)}
}

// scanRequest scans a session's host on request: one LUN when req.LUN is set,
// else what the session's policy does for an explicit scan.
func (d *daemon) scanRequest(ctx context.Context, req *mgmt.Request) *mgmt.Response {
	ds, e := d.session(uint32(req.SID))
	if e != nil {
		return &mgmt.Response{Error: e}
	}
	defer d.targets.share(ds.k.Node().Target)()
	if req.LUN == nil {
		if err := d.broadScan(ctx, ds.k, ds.scanPolicy(), scan.Request); err != nil {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SysfsLookup, "%v", err)}
		}
	} else {
		// An explicit scan of one LUN is the one way back for a held LUN.
		released, err := d.holds.Release(nodeKey(ds.k.Node().Node), *req.LUN)
		if err != nil {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SysfsLookup, "%v", err)}
		}
		d.log.Info("scan", "sid", req.SID, "trigger", scan.Request.String(), "lun", *req.LUN, "was_held_back", released)
		if err := d.sysfs.ScanLUN(ctx, int(ds.k.Host), *req.LUN); err != nil {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SysfsLookup, "%v", err)}
		}
	}
	info := d.info(ds, false)
	return &mgmt.Response{Session: &info}
}

// removeLUN removes LUN req.LUN from session req.SID, or from every session to
// req.Target, with the multipath map above it, holding the lock of every
// target it touches.
func (d *daemon) removeLUN(ctx context.Context, req *mgmt.Request) *mgmt.Response {
	// goiscsiadm waits 10 minutes for the answer; a removal the client has
	// given up on must not go on behind its back.
	ctx, cancel := context.WithTimeout(ctx, removalTimeout)
	defer cancel()
	if req.LUN == nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "remove-lun without a LUN")}
	}
	var sel []scan.Session
	d.mu.Lock()
	for _, ds := range d.sessions {
		n := ds.k.Node()
		if (req.SID != 0 && int(ds.k.SID) == req.SID) || (req.SID == 0 && req.Target != "" && n.Target == req.Target) {
			sel = append(sel, scan.Session{SID: int(ds.k.SID), Host: int(ds.k.Host), TargetName: n.Target,
				PersistentAddress: n.Address, PersistentPort: n.Port})
		}
	}
	d.mu.Unlock()
	if len(sel) == 0 {
		if req.SID != 0 {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", req.SID)}
		}
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.NoObjsFound, "no session to target %q", req.Target)}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].SID < sel[j].SID })
	locked := map[string]bool{}
	for _, s := range sel {
		locked[s.TargetName] = true
	}
	// The map's other paths may be on sessions to other targets (arrays
	// with a target per port): plan under the locks held, and once more
	// with theirs too if so.
	for round := 0; ; round++ {
		var names []string
		for n := range locked {
			names = append(names, n)
		}
		unlock := d.targets.lock(names...)
		plan, err := d.sysfs.PlanLUNRemoval(sel, *req.LUN)
		if err != nil {
			unlock()
			rep := scan.FailedPlan(*req.LUN, err)
			return &mgmt.Response{Removal: rep, Error: mgmt.RemovalError(rep)}
		}
		more := false
		for _, t := range plan.Targets() {
			if !locked[t] {
				locked[t], more = true, true
			}
		}
		if more && round == 0 {
			unlock()
			continue
		}
		r := &scan.Remover{Sysfs: d.sysfs, Block: d.block, Proc: d.proc, Tries: req.Tries, Force: req.Force,
			Log: d.log.With("op", "remove-lun")}
		rep := r.Remove(ctx, plan)
		d.holdRemoved(rep)
		unlock()
		for _, p := range rep.Paths {
			if ds, e := d.session(uint32(p.SID)); e == nil && p.Deleted {
				d.event(mgmt.EventLUNRemoved, ds.k, "", rep.LUN)
			}
		}
		return &mgmt.Response{Removal: rep, Error: mgmt.RemovalError(rep)}
	}
}

// update changes a live session's scan policy (node.session.scan and
// node.session.autoscan_en); other keys apply at the next login.
func (d *daemon) update(req *mgmt.Request) *mgmt.Response {
	ds, e := d.session(uint32(req.SID))
	if e != nil {
		return &mgmt.Response{Error: e}
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	next := ds.rec.Clone()
	for k, v := range req.Record {
		switch k {
		case "node.session.scan", "node.session.autoscan_en":
			if err := next.Set(k, v); err != nil {
				return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%v", err)}
			}
		default:
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%s cannot be changed on a live session; update the node record and log in again", k)}
		}
	}
	p, err := scan.PolicyFor(next.Get("node.session.scan"), next.Get("node.session.autoscan_en"))
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%v", err)}
	}
	ds.rec, ds.policy = next, p
	d.log.Info("scan policy changed", "sid", req.SID, "scan_policy", p.String())
	return &mgmt.Response{}
}

// info describes ds for goiscsiadm.
func (d *daemon) info(ds *daemonSession, showSecrets bool) mgmt.Session {
	n := ds.k.Node()
	res := ds.k.Result()
	p := res.Params
	digest := func(on bool) string {
		if on {
			return "CRC32C"
		}
		return "None"
	}
	state := ds.k.State()
	s := mgmt.Session{
		SID: int(ds.k.SID), HostNo: int(ds.k.Host), TargetName: n.Target, TargetAlias: p.TargetAlias,
		TPGT: n.TPGT, Address: n.Address, Port: n.Port, PersistentAddress: n.Address, PersistentPort: n.Port,
		Iface: n.Iface.Name, Transport: transportName(n.Iface.Transport), InitiatorName: n.InitiatorName,
		ConnState: state.ConnState(), InternalState: state.InternalState(), ScanPolicy: ds.scanPolicy().String(),
		HeldLUNs: d.heldLUNs(ds),
		Timeouts: mgmt.Timeouts{Recovery: n.Timeouts.Replacement, TargetReset: n.Timeouts.TgtReset,
			LUNReset: n.Timeouts.LUReset, Abort: n.Timeouts.Abort},
		CHAP: mgmt.CHAP{Username: n.Auth.Username, UsernameIn: n.Auth.UsernameIn},
		Params: mgmt.Negotiated{HeaderDigest: digest(p.HeaderDigest), DataDigest: digest(p.DataDigest),
			MaxRecvDataSegmentLength: int(p.MaxRecvDataSegmentLength), MaxXmitDataSegmentLength: int(p.MaxXmitDataSegmentLength),
			FirstBurstLength: int(p.FirstBurstLength), MaxBurstLength: int(p.MaxBurstLength),
			ImmediateData: p.ImmediateData, InitialR2T: p.InitialR2T, MaxOutstandingR2T: int(p.MaxOutstandingR2T)},
	}
	s.Netdev, s.HWAddress = n.HostParams()
	if p.TargetPortalGroupTag >= 0 {
		s.TPGT = p.TargetPortalGroupTag
	}
	if showSecrets {
		s.CHAP.Password, s.CHAP.PasswordIn = string(n.Auth.Password), string(n.Auth.PasswordIn)
	}
	return s
}

func statsOf(st *nlink.Stats) *mgmt.Stats {
	out := &mgmt.Stats{TxDataOctets: st.TxDataOctets, RxDataOctets: st.RxDataOctets, Counters: map[string]uint64{}}
	for i, name := range nlink.CounterNames {
		out.Counters[name] = uint64(st.Counters[i])
	}
	for _, c := range st.Custom {
		out.Counters[c.Name] = c.Value
	}
	return out
}
