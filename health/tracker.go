package health

import (
	"fmt"
	"sync"
	"time"
)

// PathID names the path a Tracker measures: one iSCSI session's connection.
// Its fields become the labels of the metrics.
type PathID struct {
	Target string `json:"target"` // target IQN
	Portal string `json:"portal"` // address:port,tpgt as iscsiadm prints it
	Iface  string `json:"iface"`  // iface record name (default, …)
	SID    uint32 `json:"sid"`    // kernel session number
}

// Sample is what the daemon measured at one moment: the socket's TCP_INFO
// and the kernel's iSCSI counters. Either may be nil (no socket during
// recovery, or the read failed); the other still counts.
type Sample struct {
	Time  time.Time
	TCP   *TCPInfo
	ISCSI *ISCSIStats
}

// Bounds on the event lists a Tracker keeps (the oldest go first). The
// totals in metrics count every event regardless.
const (
	maxConnErrors = 256
	maxRecoveries = 256
	maxLogins     = 256
	maxPings      = 1024 // at most; see pingCapacity
	maxStates     = 32   // distinct state names; more are counted as "other"
	maxCauses     = 64   // distinct connection-error causes; more are "other"
	maxHeldBack   = 256  // LUN numbers listed; the count is kept whole
)

// Connection-error numbers (enum iscsi_err, include/scsi/iscsi_if.h) that are
// digest failures: iscsi_tcp ends the connection on a digest mismatch
// (libiscsi_tcp.c), so these are how digest errors reach userspace with it.
const (
	errHdrDigest  = 1014 // ISCSI_ERR_HDR_DGST
	errDataDigest = 1015 // ISCSI_ERR_DATA_DGST
)

// Tracker follows one path: samples in a bounded ring and the events the
// daemon reports. It has no goroutines and no clock: every call carries its
// time, so tests replay hours in microseconds. The times must come from one
// clock (time.Now in the daemon) and events must be reported as they happen.
// All methods are safe for concurrent use.
type Tracker struct {
	mu  sync.Mutex
	id  PathID
	opt Options

	samples     ring[record]
	lastTime    time.Time   // of the latest sample
	lastTCP     *TCPInfo    // latest TCP_INFO, kept across samples without one
	lastTCPTime time.Time   // of the sample lastTCP came with
	lastISCSI   *ISCSIStats // latest counters, likewise
	newSocket   bool        // a login succeeded: the next TCP_INFO is a new socket's
	tot         totals

	connErrors     ring[connErrorEvent]
	connErrTot     uint64
	digestConnErrs uint64 // connection errors for a digest mismatch
	causeCounts    map[string]uint64

	recoveries  ring[recovery]
	ongoing     *recovery
	recoveryTot uint64
	recoveryDur time.Duration // of finished recoveries

	logins      ring[loginEvent]
	loginOK     uint64
	loginFailed uint64

	state      string
	stateSince time.Time
	stateTimes map[string]*stateAcc

	pings   ring[pingEvent]
	pingTot uint64
	pingSum time.Duration

	heldBackCount int
	heldBack      []uint64

	unhealthy      bool
	unhealthySince time.Time
	okSince        time.Time // while unhealthy: since when Judge has said OK
}

// record is one sample reduced to what the window figures need: the counter
// differences since the previous sample, and the RTT then.
type record struct {
	start, end time.Time // end is the sample's time; start the previous sample's
	rtt        time.Duration
	hasTCP     bool
	sentKnown  bool // the kernel counts sent segments (Linux 4.2)
	oooKnown   bool // the kernel counts out-of-order segments (Linux 5.4)
	hasISCSI   bool
	d          counts
}

// counts are differences over one sample (in a record) or sums (in totals).
type counts struct {
	sentSegs, retransSegs, recvSegs, oooSegs           uint64
	bytesSent, bytesRetrans, bytesAcked, bytesReceived uint64
	busyUS, rwndUS, sndbufUS                           uint64
	txOctets, rxOctets, digestErr, timeoutErr          uint64
}

func (c *counts) add(o *counts) {
	c.sentSegs = sat(c.sentSegs, o.sentSegs)
	c.retransSegs = sat(c.retransSegs, o.retransSegs)
	c.recvSegs = sat(c.recvSegs, o.recvSegs)
	c.oooSegs = sat(c.oooSegs, o.oooSegs)
	c.bytesSent = sat(c.bytesSent, o.bytesSent)
	c.bytesRetrans = sat(c.bytesRetrans, o.bytesRetrans)
	c.bytesAcked = sat(c.bytesAcked, o.bytesAcked)
	c.bytesReceived = sat(c.bytesReceived, o.bytesReceived)
	c.busyUS = sat(c.busyUS, o.busyUS)
	c.rwndUS = sat(c.rwndUS, o.rwndUS)
	c.sndbufUS = sat(c.sndbufUS, o.sndbufUS)
	c.txOctets = sat(c.txOctets, o.txOctets)
	c.rxOctets = sat(c.rxOctets, o.rxOctets)
	c.digestErr = sat(c.digestErr, o.digestErr)
	c.timeoutErr = sat(c.timeoutErr, o.timeoutErr)
}

// totals are the lifetime sums the metrics export: differences added up
// across sockets and counter resets, so they only grow, as Prometheus
// counters must.
type totals struct {
	counts
	iscsi ISCSIStats // every iSCSI counter summed the same way
}

// sat adds without wrapping: garbage from a broken kernel read must not turn
// a total small again.
func sat(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// satDur adds non-negative durations without wrapping.
func satDur(a, b time.Duration) time.Duration {
	if b > 0 && a+b < a {
		return 1<<63 - 1
	}
	return a + b
}

// clampDur bounds a duration the daemon reports to [0, a week].
func clampDur(d time.Duration) time.Duration {
	return min(max(d, 0), maxDuration)
}

type connErrorEvent struct {
	at     time.Time
	code   uint32
	cause  string
	digest bool
}

type recovery struct {
	started, ended time.Time
	cause          string
	attempts       int
	err            string
}

type loginEvent struct {
	at      time.Time
	latency time.Duration
	err     string
}

type stateAcc struct {
	total   time.Duration
	entered uint64
}

type pingEvent struct {
	at  time.Time
	rtt time.Duration
}

// minPings is the fewest NOP round trips a Tracker keeps.
const minPings = 64

// pingCapacity is how many NOP round trips a Tracker with a ring of samples
// samples keeps: goiscsid pings once per sampling interval, so as many as the
// samples cover the history, with room for pings taken more often; at most
// maxPings. Kept for every session, 1024 of them were 32 KB of a Tracker's
// 41 KB (measured).
func pingCapacity(samples int) int { return min(max(2*samples, minPings), maxPings) }

// NewTracker returns a Tracker for the path id. Zero Options fields take
// DefaultOptions' values.
func NewTracker(id PathID, opt Options) *Tracker {
	d := DefaultOptions()
	if opt.Interval <= 0 {
		opt.Interval = d.Interval
	}
	if opt.History <= 0 {
		opt.History = d.History
	}
	n := MaxSamples
	if k := opt.History / opt.Interval; k < MaxSamples {
		n = int(k) + 1
	}
	return &Tracker{
		id: id, opt: opt,
		samples:     newRing[record](n),
		connErrors:  newRing[connErrorEvent](maxConnErrors),
		causeCounts: map[string]uint64{},
		recoveries:  newRing[recovery](maxRecoveries),
		logins:      newRing[loginEvent](maxLogins),
		stateTimes:  map[string]*stateAcc{},
		pings:       newRing[pingEvent](pingCapacity(n)),
	}
}

// ID returns the path's names.
func (t *Tracker) ID() PathID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id
}

// SetID renames the path (the kernel gave the session its number after the
// Tracker was made, say).
func (t *Tracker) SetID(id PathID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.id = id
}

// Options returns the Options the Tracker was made with, defaults filled in.
func (t *Tracker) Options() Options { return t.opt }

// Sample records a measurement. The daemon calls it every Options.Interval
// with the socket's TCP_INFO (ReadTCPInfo on the fd it keeps after
// BIND_CONN) and the connection's GET_STATS counters. A sample older than the
// previous one is refused: the window figures need time to run forward.
//
// A new socket (after a relogin) is recognised when Login reported success
// since the last sample, or when its counters run backwards; its counters then
// count from zero. A 32-bit segment counter that moved back by less than 2^31
// wrapped, and is taken modulo 2^32.
func (t *Tracker) Sample(s Sample) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.Time.IsZero() {
		return fmt.Errorf("health: sample without a time")
	}
	if !t.lastTime.IsZero() && s.Time.Before(t.lastTime) {
		return fmt.Errorf("health: sample at %s is before the previous one at %s",
			s.Time.Format(time.RFC3339Nano), t.lastTime.Format(time.RFC3339Nano))
	}
	r := record{start: t.lastTime, end: s.Time}
	if s.TCP != nil {
		cur := *s.TCP
		r.rtt = cur.RTT
		var d counts
		if prev := t.lastTCP; prev != nil {
			reset := t.newSocket || socketReset(prev, &cur)
			d = tcpDiff(prev, &cur, reset)
			r.hasTCP = true
			_, r.sentKnown = cur.sentSegs()
			r.oooKnown = cur.HasOOO()
		} else {
			// First sight of this path: the socket's own counters, from its
			// connect, go into the totals but not into the window (they
			// span an unknown time).
			d = tcpDiff(&TCPInfo{}, &cur, true)
		}
		t.tot.counts.add(&d)
		if r.hasTCP {
			r.d.add(&d)
		}
		t.lastTCP, t.lastTCPTime = &cur, s.Time
		t.newSocket = false
	}
	if s.ISCSI != nil {
		cur := *s.ISCSI
		var d ISCSIStats
		if prev := t.lastISCSI; prev != nil {
			d = iscsiDiff(prev, &cur)
			r.hasISCSI = true
			r.d.txOctets, r.d.rxOctets = d.TxDataOctets, d.RxDataOctets
			r.d.digestErr, r.d.timeoutErr = d.DigestErr, d.TimeoutErr
		} else {
			d = iscsiDiff(&ISCSIStats{}, &cur)
		}
		addISCSI(&t.tot.iscsi, &d)
		t.tot.txOctets = t.tot.iscsi.TxDataOctets
		t.tot.rxOctets = t.tot.iscsi.RxDataOctets
		t.tot.digestErr = t.tot.iscsi.DigestErr
		t.tot.timeoutErr = t.tot.iscsi.TimeoutErr
		cur.Custom = copyCustom(cur.Custom)
		t.lastISCSI = &cur
	}
	t.samples.push(r)
	t.lastTime = s.Time
	return nil
}

// socketReset reports whether cur is a different socket from prev: a 64-bit
// counter went down, or a 32-bit one went back by 2^31 or more (a wrap moves
// it back by less; no path sends 2^31 segments in one interval).
func socketReset(prev, cur *TCPInfo) bool {
	if cur.HasBytesCounters() && prev.HasBytesCounters() &&
		(cur.BytesAcked < prev.BytesAcked || cur.BytesReceived < prev.BytesReceived) {
		return true
	}
	if cur.HasBytesSent() && prev.HasBytesSent() && cur.BytesSent < prev.BytesSent {
		return true
	}
	back := func(c, p uint32) bool { return c-p >= 1<<31 }
	if back(cur.TotalRetrans, prev.TotalRetrans) {
		return true
	}
	return cur.HasSegs() && prev.HasSegs() && back(cur.SegsOut, prev.SegsOut)
}

// tcpDiff returns the counters' growth from prev to cur, or cur's own values
// when cur is a new socket.
func tcpDiff(prev, cur *TCPInfo, reset bool) counts {
	d32 := func(c, p uint32) uint64 {
		if reset {
			return uint64(c)
		}
		if c-p >= 1<<31 { // moved back: this counter restarted
			return uint64(c)
		}
		return uint64(c - p)
	}
	d64 := func(c, p uint64) uint64 {
		if reset || c < p {
			return c
		}
		return c - p
	}
	us := func(d time.Duration) uint64 {
		if d < 0 {
			return 0
		}
		return uint64(d / time.Microsecond)
	}
	var d counts
	d.retransSegs = d32(cur.TotalRetrans, prev.TotalRetrans)
	if n, ok := cur.sentSegs(); ok {
		p, _ := prev.sentSegs()
		d.sentSegs = d32(n, p)
	}
	if cur.HasDataSegs() {
		d.recvSegs = d32(cur.DataSegsIn, prev.DataSegsIn)
	}
	d.oooSegs = d32(cur.RcvOOOPack, prev.RcvOOOPack)
	d.bytesSent = d64(cur.BytesSent, prev.BytesSent)
	d.bytesRetrans = d64(cur.BytesRetrans, prev.BytesRetrans)
	d.bytesAcked = d64(cur.BytesAcked, prev.BytesAcked)
	d.bytesReceived = d64(cur.BytesReceived, prev.BytesReceived)
	d.busyUS = d64(us(cur.BusyTime), us(prev.BusyTime))
	d.rwndUS = d64(us(cur.RwndLimited), us(prev.RwndLimited))
	d.sndbufUS = d64(us(cur.SndbufLimited), us(prev.SndbufLimited))
	return d
}

// iscsiDiff returns each counter's growth; a counter that went down was reset
// (a new kernel connection) and counts from zero.
func iscsiDiff(prev, cur *ISCSIStats) ISCSIStats {
	var d ISCSIStats
	pf, cf, df := prev.counterFields(), cur.counterFields(), d.counterFields()
	for i := range cf {
		c, p := *cf[i].p, *pf[i].p
		if c < p {
			*df[i].p = c
		} else {
			*df[i].p = c - p
		}
	}
	for _, k := range sortedKeys(cur.Custom) {
		if len(d.Custom) >= maxCustom {
			break
		}
		if d.Custom == nil {
			d.Custom = map[string]uint64{}
		}
		c, p := cur.Custom[k], prev.Custom[k]
		if c < p {
			d.Custom[k] = c
		} else {
			d.Custom[k] = c - p
		}
	}
	return d
}

func addISCSI(tot, d *ISCSIStats) {
	tf, df := tot.counterFields(), d.counterFields()
	for i := range tf {
		*tf[i].p = sat(*tf[i].p, *df[i].p)
	}
	for _, k := range sortedKeys(d.Custom) {
		if _, ok := tot.Custom[k]; !ok && len(tot.Custom) >= maxCustom {
			continue
		}
		if tot.Custom == nil {
			tot.Custom = map[string]uint64{}
		}
		tot.Custom[k] = sat(tot.Custom[k], d.Custom[k])
	}
}

func copyCustom(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return nil
	}
	c := make(map[string]uint64, len(m))
	for _, k := range sortedKeys(m) {
		if len(c) >= maxCustom {
			break
		}
		c[k] = m[k]
	}
	return c
}

// ConnError records a connection error the kernel reported (CONN_ERROR):
// code is its enum iscsi_err number, cause its name as the daemon logs it
// (nlink.ConnError's String, e.g. "ISCSI_ERR_NOP_TIMEDOUT (1022)"). Header
// and data digest errors (1014, 1015) also count as digest errors.
func (t *Tracker) ConnError(at time.Time, code uint32, cause string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cause == "" {
		cause = fmt.Sprintf("iscsi_err %d", code)
	}
	digest := code == errHdrDigest || code == errDataDigest
	t.connErrors.push(connErrorEvent{at: at, code: code, cause: cause, digest: digest})
	t.connErrTot++
	if digest {
		t.digestConnErrs++
	}
	key := cause
	if _, ok := t.causeCounts[key]; !ok && len(t.causeCounts) >= maxCauses {
		key = "other"
	}
	t.causeCounts[key]++
}

// RecoveryStarted records that session recovery began (the connection failed
// and I/O is held until a relogin). An empty cause takes the latest
// connection error's. A second start while one is in progress is ignored.
func (t *Tracker) RecoveryStarted(at time.Time, cause string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ongoing != nil {
		return
	}
	if cause == "" {
		if e := t.connErrors.last(); e != nil {
			cause = e.cause
		}
	}
	t.ongoing = &recovery{started: at, cause: cause}
	t.recoveryTot++
}

// RecoveryEnded records that recovery finished at at: err nil when the
// session was reinstated (I/O flows again), else why it gave up (the
// replacement timeout expired, the target refused the login). attempts is the
// number of relogin attempts; 0 takes the number of Login calls made since
// RecoveryStarted. Without a RecoveryStarted it records a recovery of no
// length.
func (t *Tracker) RecoveryEnded(at time.Time, attempts int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.ongoing
	if r == nil {
		r = &recovery{started: at}
		if e := t.connErrors.last(); e != nil {
			r.cause = e.cause
		}
		t.recoveryTot++
	}
	t.ongoing = nil
	r.ended = at
	if at.Before(r.started) {
		r.ended = r.started
	}
	if attempts > 0 {
		r.attempts = attempts
	}
	if err != nil {
		r.err = err.Error()
	}
	t.recoveries.push(*r)
	t.recoveryDur = satDur(t.recoveryDur, r.ended.Sub(r.started))
}

// Login records one login attempt that took latency (TCP connect to the
// final Login Response); err is nil when it succeeded. A success means a new
// TCP socket: the daemon reports it before sampling that socket. Logins
// during a recovery count as its attempts.
func (t *Tracker) Login(at time.Time, latency time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := loginEvent{at: at, latency: clampDur(latency)}
	if err != nil {
		e.err = err.Error()
		t.loginFailed++
	} else {
		t.loginOK++
		t.newSocket = true
	}
	t.logins.push(e)
	if t.ongoing != nil {
		t.ongoing.attempts++
	}
}

// SetState records that the session entered state (the daemon's names, e.g.
// LOGGED_IN, FAILED, FREE), for the time spent in each.
func (t *Tracker) SetState(at time.Time, state string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if state == t.state && !t.stateSince.IsZero() {
		return
	}
	t.closeState(at)
	if _, ok := t.stateTimes[state]; !ok && len(t.stateTimes) >= maxStates {
		state = "other"
	}
	acc := t.stateTimes[state]
	if acc == nil {
		acc = &stateAcc{}
		t.stateTimes[state] = acc
	}
	acc.entered++
	t.state, t.stateSince = state, at
}

// closeState adds the time since the current state began to its total.
func (t *Tracker) closeState(at time.Time) {
	if t.state == "" {
		return
	}
	if d := at.Sub(t.stateSince); d > 0 {
		acc := t.stateTimes[t.state]
		acc.total = satDur(acc.total, d)
	}
	t.stateSince = at
}

// PingRTT records one NOP-Out/NOP-In round trip the daemon measured.
func (t *Tracker) PingRTT(at time.Time, rtt time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rtt = clampDur(rtt)
	t.pings.push(pingEvent{at: at, rtt: rtt})
	t.pingTot++
	t.pingSum = satDur(t.pingSum, rtt)
}

// SetHeldBackLUNs records the LUNs held back from broad scans (the host
// removed them, or goiscsiadm --remove-lun did): count of them, and their
// numbers (at most 256 are kept).
func (t *Tracker) SetHeldBackLUNs(count int, luns []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if count < len(luns) {
		count = len(luns)
	}
	if len(luns) > maxHeldBack {
		luns = luns[:maxHeldBack]
	}
	t.heldBackCount = count
	t.heldBack = append([]uint64(nil), luns...)
}
