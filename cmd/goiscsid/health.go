package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/health/scrape"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/nlink"
)

// Per-session health (package health): each daemonSession has a Tracker that
// the session's hooks tell of connection errors, recoveries, relogins and
// state changes, and that a sampler feeds every goiscsi.health.interval with
// the socket's TCP_INFO, the kernel's GET_STATS counters and the round trip
// of a NOP-Out ping. goiscsiadm -s
// and --health ask for its snapshots (mgmt.OpHealth); the metrics endpoint
// serves them in the Prometheus text format.

// keyMetricsListen is goiscsi's own iscsid.conf key for the metrics
// endpoint: where to serve it, a comma-separated list of TCP addresses
// (host:port; a bare port or :port is 127.0.0.1's) and unix socket paths
// (absolute). Unset or empty: no endpoint.
const keyMetricsListen = "goiscsi.metrics.listen"

// healthConfig is the health settings of iscsid.conf.
type healthConfig struct {
	opt health.Options
	th  health.Thresholds
	// listen are the metrics endpoint's addresses: "tcp" or "unix" and
	// where.
	listen []listenAddr
}

type listenAddr struct{ network, address string }

// defaultHealth is what a daemon without configured health settings (tests)
// uses: the package's defaults.
var defaultHealth = &healthMonitor{cfg: healthConfig{opt: health.DefaultOptions(), th: health.DefaultThresholds()}}

// healthMonitor is the daemon's health state beside the trackers.
type healthMonitor struct {
	cfg healthConfig
	// sampling serializes samples, so each Tracker gets them in time order
	// whether the sampler or a request takes them.
	sampling sync.Mutex
}

// healthConfigOf reads the goiscsi.health.* and goiscsi.metrics.* keys of
// cfg (nil: none set). A bad value is an error naming key and value:
// goiscsid does not start with thresholds other than those written.
func healthConfigOf(cfg *conf.Config) (healthConfig, error) {
	m := map[string]string{}
	if cfg != nil {
		for _, k := range cfg.Keys() {
			if strings.HasPrefix(k, "goiscsi.") {
				m[k], _ = cfg.Get(k)
			}
		}
	}
	var hc healthConfig
	var err error
	if hc.th, err = health.ParseThresholds(m); err != nil {
		return healthConfig{}, err
	}
	if hc.opt, err = health.ParseOptions(m); err != nil {
		return healthConfig{}, err
	}
	for _, a := range strings.Split(m[keyMetricsListen], ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		la, err := parseListen(a)
		if err != nil {
			return healthConfig{}, fmt.Errorf("%s = %q: %w", keyMetricsListen, m[keyMetricsListen], err)
		}
		hc.listen = append(hc.listen, la)
	}
	return hc, nil
}

// parseListen reads one metrics address: an absolute path is a unix socket;
// anything else is host:port or a port, the host 127.0.0.1 when left out,
// so that the endpoint is not on the network unless asked.
func parseListen(a string) (listenAddr, error) {
	if strings.HasPrefix(a, "/") {
		return listenAddr{"unix", filepath.Clean(a)}, nil
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = "", a
	}
	if n, err := net.LookupPort("tcp", port); err != nil || n == 0 {
		return listenAddr{}, fmt.Errorf("%q: want host:port, a port from 1 to 65535, or an absolute unix socket path", a)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return listenAddr{"tcp", net.JoinHostPort(host, port)}, nil
}

// healthMon returns the daemon's health settings.
func (d *daemon) healthMon() *healthMonitor {
	if d.health == nil {
		return defaultHealth
	}
	return d.health
}

// withHealth gives ds its Tracker and returns h with hooks that report the
// session's events to it, calling h's own too.
func (d *daemon) withHealth(ds *daemonSession, h ksession.Hooks) ksession.Hooks {
	t := health.NewTracker(health.PathID{}, d.healthMon().cfg.opt)
	ds.health = t
	recovered, failed := h.Recovered, h.Failed
	h.Recovered = func(k *ksession.Session, attempts int) {
		t.RecoveryEnded(time.Now(), attempts, nil)
		if recovered != nil {
			recovered(k, attempts)
		}
	}
	h.Failed = func(k *ksession.Session, err error) {
		t.RecoveryEnded(time.Now(), 0, err)
		if failed != nil {
			failed(k, err)
		}
	}
	connError, recovering := h.ConnError, h.Recovering
	h.ConnError = func(k *ksession.Session, e nlink.ConnError) {
		t.ConnError(time.Now(), uint32(e), e.String())
		if connError != nil {
			connError(k, e)
		}
	}
	h.Recovering = func(k *ksession.Session, cause string) {
		t.RecoveryStarted(time.Now(), cause)
		if recovering != nil {
			recovering(k, cause)
		}
	}
	h.Relogin = func(_ *ksession.Session, took time.Duration, err error) { t.Login(time.Now(), took, err) }
	h.StateChanged = func(_ *ksession.Session, st ksession.State) { t.SetState(time.Now(), st.String()) }
	return h
}

// healthLoggedIn tells ds's Tracker of the login that established ds.k,
// before the sampler sees the session.
func (d *daemon) healthLoggedIn(ds *daemonSession) {
	if ds.health == nil {
		return
	}
	now := time.Now()
	tm := ds.k.Times()
	ds.health.SetID(pathID(ds.k))
	ds.health.Login(now, tm.Connect+tm.Kernel+tm.Login+tm.Start, nil)
	ds.health.SetState(now, ds.k.State().String())
}

// pathID names k's path as the metrics label it.
func pathID(k *ksession.Session) health.PathID {
	n := k.Node()
	tpgt := n.TPGT
	if p := k.Result().Params; p.TargetPortalGroupTag >= 0 {
		tpgt = p.TargetPortalGroupTag
	}
	return health.PathID{Target: n.Target, Portal: fmt.Sprintf("%s,%d", net.JoinHostPort(n.Address, fmt.Sprint(n.Port)), tpgt),
		Iface: n.Iface.Name, SID: k.SID}
}

// sampleTimeout bounds one session's GET_STATS in the sampler.
const sampleTimeout = 5 * time.Second

// sample measures ds now: TCP_INFO of its socket (none while it is being
// replaced, or for a session adopted from a previous daemon), GET_STATS of
// its connection, the LUNs held back for its node. It returns the time of
// the sample.
func (d *daemon) sample(ctx context.Context, ds *daemonSession) time.Time {
	m := d.healthMon()
	m.sampling.Lock()
	defer m.sampling.Unlock()
	t := ds.health
	var s health.Sample
	var ti health.TCPInfo
	err := ds.k.WithSocket(func(fd int) (err error) {
		ti, err = health.ReadTCPInfo(fd)
		return err
	})
	if err == nil {
		s.TCP = &ti
	} else if err != ksession.ErrNoSocket {
		d.log.Debug("health: TCP_INFO", "sid", ds.k.SID, "err", err)
	}
	gctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	st, err := ds.k.Stats(gctx)
	cancel()
	if err == nil {
		is := iscsiStatsOf(st)
		s.ISCSI = &is
	} else if ds.k.InKernel() {
		d.log.Debug("health: GET_STATS", "sid", ds.k.SID, "err", err)
	}
	// The LUNs held back from broad scans (held.go), for the listings'
	// notes and goiscsi_session_held_back_luns.
	if held, err := d.holds.Held(nodeKey(ds.k.Node().Node)); err == nil {
		luns := make([]uint64, len(held))
		for i, h := range held {
			luns[i] = h.LUN
		}
		t.SetHeldBackLUNs(len(luns), luns)
	}
	s.Time = time.Now()
	if err := t.Sample(s); err != nil {
		d.log.Debug("health: sample refused", "sid", ds.k.SID, "err", err)
	}
	return s.Time
}

// iscsiStatsOf is GET_STATS's answer as the Tracker takes it.
func iscsiStatsOf(st *nlink.Stats) health.ISCSIStats {
	m := map[string]uint64{"txdata_octets": st.TxDataOctets, "rxdata_octets": st.RxDataOctets}
	for i, n := range nlink.CounterNames {
		m[n] = uint64(st.Counters[i])
	}
	for _, c := range st.Custom {
		m[c.Name] = c.Value
	}
	is, err := health.ISCSIStatsFromMap(m)
	if err != nil {
		// More custom counters than the kernel sends: keep the fixed ones.
		for _, c := range st.Custom {
			delete(m, c.Name)
		}
		is, _ = health.ISCSIStatsFromMap(m)
	}
	return is
}

// tracked reports whether ds, a session of d.sessions, has a Tracker, and
// names the Tracker of a session adopted from a previous daemon (no login
// told it its path), so that no two Trackers share the metrics' labels.
func tracked(ds *daemonSession) bool {
	if ds.health == nil {
		return false
	}
	if ds.health.ID().SID == 0 {
		ds.health.SetID(pathID(ds.k))
		ds.health.SetState(time.Now(), ds.k.State().String())
	}
	return true
}

// trackedSessions returns the sessions with a Tracker, in SID order.
func (d *daemon) trackedSessions() []*daemonSession {
	d.mu.Lock()
	all := make([]*daemonSession, 0, len(d.sessions))
	for _, ds := range d.sessions {
		if tracked(ds) {
			all = append(all, ds)
		}
	}
	d.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].k.SID < all[j].k.SID })
	return all
}

// sampleHealth checks every session's path each interval until ctx ends.
func (d *daemon) sampleHealth(ctx context.Context) {
	tick := time.NewTicker(d.healthMon().cfg.opt.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		all := d.trackedSessions()
		for _, ds := range all {
			go d.ping(ctx, ds)
		}
		for _, ds := range all {
			if ctx.Err() != nil {
				return
			}
			d.checkPath(ctx, ds)
		}
	}
}

// maxPingWait bounds a NOP round trip: longer, and the path has bigger
// problems than its RTT (the kernel's own NOP timeout is 5 s).
const maxPingWait = 5 * time.Second

// ping times one NOP-Out round trip on ds's connection, waiting at most an
// interval; the next interval's ping waits for none still in flight.
func (d *daemon) ping(ctx context.Context, ds *daemonSession) {
	ctx, cancel := context.WithTimeout(ctx, min(d.healthMon().cfg.opt.Interval, maxPingWait))
	defer cancel()
	rtt, err := ds.k.Ping(ctx)
	if err != nil {
		d.log.Debug("health: NOP ping", "sid", ds.k.SID, "err", err)
		return
	}
	ds.health.PingRTT(time.Now(), rtt)
}

// checkPath samples ds and judges its path, logging once when it turns
// unhealthy (a warning with the problems) and once when it has been healthy
// again for goiscsi.health.settle.
func (d *daemon) checkPath(ctx context.Context, ds *daemonSession) {
	th := d.healthMon().cfg.th
	now := d.sample(ctx, ds)
	v, tr := ds.health.Evaluate(now, th)
	id := ds.health.ID()
	switch tr {
	case health.TurnedUnhealthy:
		d.log.Warn("path unhealthy", "sid", id.SID, "target", id.Target, "portal", id.Portal, "iface", id.Iface,
			"problems", v.String())
	case health.Recovered:
		d.log.Info("path healthy again", "sid", id.SID, "target", id.Target, "portal", id.Portal, "iface", id.Iface,
			"settle", th.Settle.String())
	}
}

// healthRequest answers mgmt.OpHealth: session req.SID's snapshot, or every
// session's, each sampled afresh.
func (d *daemon) healthRequest(ctx context.Context, req *mgmt.Request) *mgmt.Response {
	var sel []*daemonSession
	if req.SID != 0 {
		ds, e := d.session(uint32(req.SID))
		if e != nil {
			return &mgmt.Response{Error: e}
		}
		if !tracked(ds) {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Internal, "session %d has no health tracker", req.SID)}
		}
		sel = []*daemonSession{ds}
	} else {
		sel = d.trackedSessions()
	}
	th := d.healthMon().cfg.th
	out := make([]health.Snapshot, 0, len(sel))
	for _, ds := range sel {
		now := d.sample(ctx, ds)
		out = append(out, ds.health.Snapshot(now, th))
	}
	return &mgmt.Response{Health: out}
}

// writeMetrics writes every session's metrics as of its latest sample.
func (d *daemon) writeMetrics(w io.Writer) error {
	all := d.trackedSessions()
	ts := make([]*health.Tracker, len(all))
	for i, ds := range all {
		ts[i] = ds.health
	}
	return health.WriteMetrics(w, ts, time.Now(), d.healthMon().cfg.th)
}

// startHealth configures the daemon's health from cfg and starts the sampler
// and the metrics endpoint, which run until ctx ends. A unix socket for the
// metrics is made readable by everyone (the figures are no secret; CHAP
// names are not among them) and removed first if a previous daemon left it.
func (d *daemon) startHealth(ctx context.Context, cfg *conf.Config) error {
	hc, err := healthConfigOf(cfg)
	if err != nil {
		return err
	}
	d.health = &healthMonitor{cfg: hc}
	var lns []net.Listener
	for _, la := range hc.listen {
		if la.network == "unix" {
			if err := os.MkdirAll(filepath.Dir(la.address), 0o755); err != nil {
				return fmt.Errorf("metrics socket: %w", err)
			}
			if fi, err := os.Lstat(la.address); err == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(la.address)
			}
		}
		ln, err := net.Listen(la.network, la.address)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("metrics endpoint (%s): %w", keyMetricsListen, err)
		}
		if la.network == "unix" {
			os.Chmod(la.address, 0o666)
		}
		lns = append(lns, ln)
	}
	go d.sampleHealth(ctx)
	srv := &scrape.Server{Write: d.writeMetrics, Log: d.log}
	for _, ln := range lns {
		d.log.Info("serving metrics", "network", ln.Addr().Network(), "address", ln.Addr().String())
		go func() {
			if err := srv.Serve(ctx, ln); err != nil {
				d.log.Error("metrics endpoint stopped", "address", ln.Addr().String(), "err", err)
			}
		}()
	}
	return nil
}
