package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/test/target"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// healthFixture is a daemon whose target lets a recovery log in at once
// (DefaultTime2Wait 0), with its log kept.
func healthFixture(t *testing.T, iscsidConf string) (*fixture, *logBuffer) {
	t.Helper()
	tc := func(name string) target.TargetConfig {
		return target.TargetConfig{Name: name, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
			LUNs:   []target.LUNConfig{{Number: 0, Size: 1 << 20}},
			Params: map[string]string{"DefaultTime2Wait": "0"}}
	}
	cfg, err := conf.ParseConfig(strings.NewReader(iscsidConf), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	f := newFixtureWith(t, []target.TargetConfig{tc(testIQN), tc(testIQN + "-2")}, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := f.d.startHealth(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	f.rec["node.session.iscsi.DefaultTime2Wait"] = "0"
	return f, logs
}

// portal is the port target name listens on.
func (f *fixture) portal(t *testing.T, name string) int {
	t.Helper()
	ps, err := f.srv.Portals(name)
	if err != nil {
		t.Fatal(err)
	}
	return ps[0].Port
}

func healthOf(t *testing.T, d *daemon, sid int) health.Snapshot {
	t.Helper()
	resp := d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpHealth, SID: sid})
	if resp.Error != nil {
		t.Fatalf("health: %v", resp.Error)
	}
	if len(resp.Health) != 1 {
		t.Fatalf("health of sid %d: %d snapshots", sid, len(resp.Health))
	}
	return resp.Health[0]
}

// waitRecoveries waits until session sid's path has n finished recoveries
// and is logged in again.
func waitRecoveries(t *testing.T, d *daemon, sid int, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := healthOf(t, d, sid)
		done := 0
		for _, r := range s.Recoveries {
			if !r.Ongoing {
				done++
			}
		}
		if done >= n && s.State.Current == "LOGGED_IN" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s: %d recoveries done, state %s, want %d and LOGGED_IN", done, s.State.Current, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection killed twice: the daemon's Tracker has both recoveries with
// their cause and duration, three logins, the new socket's TCP_INFO; the
// verdict names the recoveries; the log says so once; the metrics say what
// the snapshot says.
func TestHealthFollowsSessionThroughRecoveries(t *testing.T) {
	f, logs := healthFixture(t, "goiscsi.health.settle = 0\n")
	s := f.login(t, nil)
	first := healthOf(t, f.d, s.SID)
	if !first.Verdict.Healthy || first.Logins.OK != 1 || first.State.Current != "LOGGED_IN" || first.TCP == nil || first.ISCSI == nil {
		t.Fatalf("after login: verdict %v, logins %+v, state %q, tcp %v, iscsi %v", first.Verdict, first.Logins, first.State.Current, first.TCP, first.ISCSI)
	}
	if first.Target != testIQN || first.SID != uint32(s.SID) || first.Iface != "default" || !strings.HasSuffix(first.Portal, ",1") {
		t.Errorf("path %+v", first.PathID)
	}
	if first.TCP.State != "ESTABLISHED" || first.TCP.BytesAcked == 0 {
		t.Errorf("TCP_INFO of the session's socket: state %s, %d bytes acked", first.TCP.State, first.TCP.BytesAcked)
	}
	ds, _ := f.d.session(uint32(s.SID))
	f.d.ping(context.Background(), ds)
	if p := healthOf(t, f.d, s.SID); p.NOPRTT == nil || p.NOPRTT.Count != 1 || p.NOPRTT.MaxMS <= 0 || p.Totals.NOPPings != 1 {
		t.Errorf("after a ping: NOP RTT %+v, %d pings", p.NOPRTT, p.Totals.NOPPings)
	}
	for i := 1; i <= 2; i++ {
		if err := f.kernel.DropConnection(uint32(s.SID), 0); err != nil {
			t.Fatal(err)
		}
		waitRecoveries(t, f.d, s.SID, i)
	}
	f.d.checkPath(context.Background(), ds)
	f.d.checkPath(context.Background(), ds)
	snap := healthOf(t, f.d, s.SID)
	if snap.Totals.Recoveries != 2 || len(snap.Recoveries) != 2 || snap.Totals.ConnectionErrors != 2 || snap.Logins.OK != 3 {
		t.Fatalf("recoveries %d %+v, connection errors %d, logins %+v", snap.Totals.Recoveries, snap.Recoveries, snap.Totals.ConnectionErrors, snap.Logins)
	}
	for _, r := range snap.Recoveries {
		if r.DurationSeconds <= 0 || r.DurationSeconds > 15 || !strings.Contains(r.Cause, "ISCSI_ERR") || r.Attempts != 1 || r.Error != "" {
			t.Errorf("recovery %+v: want a duration, the connection error as cause, 1 attempt, no error", r)
		}
	}
	if snap.Verdict.Healthy || !strings.Contains(snap.Verdict.String(), "2 recoveries in the last hour") {
		t.Errorf("verdict %q, want the 2 recoveries", snap.Verdict.String())
	}
	if snap.TCP == nil || snap.TCP.State != "ESTABLISHED" {
		t.Errorf("TCP after the relogins: %+v", snap.TCP)
	}
	if n := strings.Count(logs.String(), "path unhealthy"); n != 1 {
		t.Errorf("%d \"path unhealthy\" lines, want 1:\n%s", n, logs)
	}

	for _, lun := range []uint64{3, 4} {
		if _, err := f.d.holds.Hold(nodeKey(ds.k.Node().Node), lun, "removed by the host", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if h := healthOf(t, f.d, s.SID).HeldBack; h.Count != 2 || len(h.LUNs) != 2 || h.LUNs[0] != 3 {
		t.Errorf("held back %+v, want LUNs 3 and 4", h)
	}
	var buf bytes.Buffer
	if err := f.d.writeMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, buf.Bytes())
	labels := map[string]string{"target": testIQN, "portal": snap.Portal, "iface": "default", "sid": strconv.Itoa(s.SID)}
	for name, want := range map[string]float64{
		"goiscsi_session_recoveries_total": 2, "goiscsi_session_healthy": 0, "goiscsi_session_held_back_luns": 2,
	} {
		if got := metricValue(t, fams, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func parseMetrics(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the metrics: %v\n%s", err, b)
	}
	return fams
}

// metricValue is the value of the series of family name with labels.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// The endpoint answers a scrape over its unix socket with text Prometheus
// parses; other paths and methods get their HTTP errors.
func TestMetricsEndpoint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	f, _ := healthFixture(t, "goiscsi.metrics.listen = "+sock+"\n")
	s := f.login(t, nil)
	ds, _ := f.d.session(uint32(s.SID))
	f.d.checkPath(context.Background(), ds)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/metrics", 200}, {"GET", "/metrics?x=1", 200}, {"HEAD", "/metrics", 200},
		{"GET", "/", 404}, {"POST", "/metrics", 405},
	} {
		req, _ := http.NewRequest(tc.method, "http://goiscsid"+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.status)
			continue
		}
		if tc.status != 200 || tc.method == "HEAD" {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q", ct)
		}
		fams := parseMetrics(t, body)
		if got := metricValue(t, fams, "goiscsi_session_healthy", map[string]string{"sid": strconv.Itoa(s.SID)}); got != 1 {
			t.Errorf("healthy = %v, want 1", got)
		}
		if got := metricValue(t, fams, "goiscsi_session_tcp_sent_bytes_total", map[string]string{"sid": strconv.Itoa(s.SID)}); got <= 0 {
			t.Errorf("tcp_sent_bytes_total = %v, want the login's bytes", got)
		}
	}
}

func TestHealthConfig(t *testing.T) {
	for _, tc := range []struct {
		conf   string
		listen string // the addresses, or the error's text
		check  func(healthConfig) bool
	}{
		{"", "", func(h healthConfig) bool {
			return h.th == health.DefaultThresholds() && h.opt == health.DefaultOptions()
		}},
		{"goiscsi.health.retrans_percent = 2.5\ngoiscsi.health.interval = 2\n", "", func(h healthConfig) bool {
			return h.th.RetransPercent == 2.5 && h.opt.Interval == 2*time.Second
		}},
		{"goiscsi.metrics.listen = 9410\n", "tcp 127.0.0.1:9410", nil},
		{"goiscsi.metrics.listen = :9410, /run/goiscsid/metrics.sock\n", "tcp 127.0.0.1:9410;unix /run/goiscsid/metrics.sock", nil},
		{"goiscsi.metrics.listen = 0.0.0.0:9410\n", "tcp 0.0.0.0:9410", nil},
		{"goiscsi.metrics.listen = [::1]:9410\n", "tcp [::1]:9410", nil},
		{"goiscsi.metrics.listen = localhost\n", "error: goiscsi.metrics.listen", nil},
		{"goiscsi.metrics.listen = 127.0.0.1:0\n", "error: goiscsi.metrics.listen", nil},
		{"goiscsi.health.retrans_percent = lots\n", "error: goiscsi.health.retrans_percent", nil},
		{"goiscsi.health.retrans_procent = 2\n", "error: unknown key goiscsi.health.retrans_procent", nil},
	} {
		cfg, err := conf.ParseConfig(strings.NewReader(tc.conf), "iscsid.conf")
		if err != nil {
			t.Fatalf("%q: %v", tc.conf, err)
		}
		if len(cfg.Warnings) != 0 {
			t.Errorf("%q: conf warns %q: goiscsi's own keys must be known", tc.conf, cfg.Warnings)
		}
		h, err := healthConfigOf(cfg)
		if strings.HasPrefix(tc.listen, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tc.listen, "error: ")) {
				t.Errorf("%q: error %v, want one naming %s", tc.conf, err, strings.TrimPrefix(tc.listen, "error: "))
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.conf, err)
			continue
		}
		var got []string
		for _, l := range h.listen {
			got = append(got, l.network+" "+l.address)
		}
		if s := strings.Join(got, ";"); s != tc.listen {
			t.Errorf("%q: listen %q, want %q", tc.conf, s, tc.listen)
		}
		if tc.check != nil && !tc.check(h) {
			t.Errorf("%q: %+v", tc.conf, h)
		}
	}
}

// Sessions a restarted goiscsid took over have no socket in this process:
// their samples carry the kernel's counters and no TCP_INFO. They are named
// before their first sample, so a scrape right after the restart has each
// under its own labels (it once found two unnamed ones and failed).
func TestHealthOfAdoptedSessions(t *testing.T) {
	f, _ := healthFixture(t, "")
	first := f.login(t, nil)
	second := f.login(t, map[string]string{"node.name": testIQN + "-2", "node.conn[0].port": strconv.Itoa(f.portal(t, testIQN+"-2"))})
	restarted := newDaemon(f.d.nl, f.d.sysfs, testIni, "", nil, slog.New(slog.DiscardHandler))
	for _, sid := range []int{first.SID, second.SID} {
		ds, _ := f.d.session(uint32(sid))
		adopted := &daemonSession{rec: ds.rec, id: ds.id, policy: ds.policy}
		adopted.k = ksession.Adopt(restarted.nl, ds.k.Node(), ds.k.SID, ds.k.Host, ds.k.Result(), restarted.hooks(adopted), nil)
		restarted.sessions[ds.k.SID] = adopted
	}
	var buf bytes.Buffer
	if err := restarted.writeMetrics(&buf); err != nil {
		t.Fatalf("metrics before the first sample: %v", err)
	}
	fams := parseMetrics(t, buf.Bytes())
	for _, s := range []*mgmt.Session{first, second} {
		labels := map[string]string{"sid": strconv.Itoa(s.SID), "target": s.TargetName, "iface": "default"}
		if got := metricValue(t, fams, "goiscsi_session_healthy", labels); got != 1 {
			t.Errorf("sid %d healthy = %v", s.SID, got)
		}
	}
	snap := healthOf(t, restarted, first.SID)
	if snap.SID != uint32(first.SID) || snap.State.Current != "LOGGED_IN" || snap.TCP != nil || snap.ISCSI == nil {
		t.Errorf("adopted: sid %d state %q tcp %v iscsi %v", snap.SID, snap.State.Current, snap.TCP, snap.ISCSI)
	}
}
