package health

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func metricsTrackers(t *testing.T) []*Tracker {
	a := NewTracker(PathID{Target: `iqn.2003-01.org.example:"odd"\target`, Portal: "10.0.0.1:3260,1", Iface: "default", SID: 7}, Options{})
	b := NewTracker(PathID{Target: "iqn.2003-01.org.example:tgt2", Portal: "[fd00::1]:3260,1", Iface: "eth1\nnewline", SID: 2}, Options{})
	pa, pb := newPath(), newPath()
	a.SetState(at(0), "LOGGED_IN")
	a.Login(at(0), 4*time.Millisecond, nil)
	b.Login(at(0), 10*time.Millisecond, errors.New("refused"))
	mustSample(t, a, Sample{Time: at(0), TCP: pa.send(0, 0, 0, 0),
		ISCSI: &ISCSIStats{TxDataOctets: 100, Custom: map[string]uint64{"eh_abort_cnt": 0}}})
	for i := 1; i <= 30; i++ {
		mustSample(t, a, Sample{Time: at(10 * i), TCP: pa.send(1000, 32, 100, 0),
			ISCSI: &ISCSIStats{TxDataOctets: 100 + uint64(i)<<20, SCSICmd: uint64(i) * 10, Custom: map[string]uint64{"eh_abort_cnt": 1}}})
		a.PingRTT(at(10*i), time.Duration(i)*time.Millisecond)
	}
	a.ConnError(at(301), 1022, "ISCSI_ERR_NOP_TIMEDOUT (1022)")
	a.RecoveryStarted(at(301), "")
	mustSample(t, b, Sample{Time: at(300), TCP: pb.send(5, 0, 5, 0)})
	b.SetHeldBackLUNs(2, []uint64{1, 2})
	return []*Tracker{a, b}
}

func TestMetricsParse(t *testing.T) {
	trs := metricsTrackers(t)
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, trs, at(310), DefaultThresholds()); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the output: %v\n%s", err, buf.String())
	}
	if testing.Verbose() {
		t.Logf("\n%s", buf.String())
	}
	// Every family defined is written (both paths have something for each).
	for _, d := range metricDefs {
		if fams[d.name] == nil {
			t.Errorf("family %s missing", d.name)
		}
	}
	find := func(name string, sid string, extra ...string) *dto.Metric {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no family %s", name)
		}
	next:
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			if ls["sid"] != sid {
				continue
			}
			for i := 0; i+1 < len(extra); i += 2 {
				if ls[extra[i]] != extra[i+1] {
					continue next
				}
			}
			return m
		}
		t.Fatalf("%s{sid=%s %v} missing", name, sid, extra)
		return nil
	}
	// Labels round-trip, escapes included.
	m := find("goiscsi_session_healthy", "7")
	ls := map[string]string{}
	for _, l := range m.GetLabel() {
		ls[l.GetName()] = l.GetValue()
	}
	if ls["target"] != `iqn.2003-01.org.example:"odd"\target` || ls["portal"] != "10.0.0.1:3260,1" || ls["iface"] != "default" {
		t.Errorf("labels %v", ls)
	}
	if m.GetGauge().GetValue() != 0 {
		t.Error("path 7 should be unhealthy")
	}
	if m := find("goiscsi_session_held_back_luns", "2"); m.GetGauge().GetValue() != 2 {
		t.Errorf("held back %v", m)
	}
	for _, l := range find("goiscsi_session_healthy", "2").GetLabel() {
		if l.GetName() == "iface" && l.GetValue() != "eth1\nnewline" {
			t.Errorf("iface %q", l.GetValue())
		}
	}
	for _, c := range []struct {
		name  string
		sid   string
		extra []string
		want  float64
	}{
		{"goiscsi_session_tcp_retransmitted_segments_total", "7", nil, 960},
		{"goiscsi_session_tcp_data_segments_sent_total", "7", nil, 30000},
		{"goiscsi_session_tcp_sent_bytes_total", "7", nil, 30000 * 1448},
		{"goiscsi_session_iscsi_tx_bytes_total", "7", nil, 100 + 30<<20},
		{"goiscsi_session_iscsi_pdus_total", "7", []string{"pdu", "scsicmd"}, 300},
		{"goiscsi_session_iscsi_transport_counter_total", "7", []string{"counter", "eh_abort_cnt"}, 1},
		{"goiscsi_session_connection_errors_total", "7", []string{"cause", "ISCSI_ERR_NOP_TIMEDOUT (1022)"}, 1},
		{"goiscsi_session_recoveries_total", "7", nil, 1},
		{"goiscsi_session_recovery_seconds_total", "7", nil, 9},
		{"goiscsi_session_logins_total", "7", []string{"result", "ok"}, 1},
		{"goiscsi_session_logins_total", "2", []string{"result", "failed"}, 1},
		{"goiscsi_session_state_seconds_total", "7", []string{"state", "LOGGED_IN"}, 310},
	} {
		if got := find(c.name, c.sid, c.extra...).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s{sid=%s %v} = %v, want %v", c.name, c.sid, c.extra, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		sid  string
		want float64
	}{
		{"goiscsi_session_recovering", "7", 1}, {"goiscsi_session_recovering", "2", 0},
		{"goiscsi_session_rtt_seconds", "7", 0.0004}, {"goiscsi_session_tcp_cwnd_segments", "7", 10},
		{"goiscsi_session_last_login_latency_seconds", "7", 0.004}, {"goiscsi_session_problems", "7", 2},
		{"goiscsi_session_tcp_retransmit_ratio", "7", 0.032},
	} {
		if got := find(c.name, c.sid).GetGauge().GetValue(); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s{sid=%s} = %v, want %v", c.name, c.sid, got, c.want)
		}
	}
	// The NOP summary: quantiles over the window (10 s, 310 s], which holds
	// the pings of 2..30 ms; sum and count of all 30 (1..30 ms).
	s := find("goiscsi_session_nop_rtt_seconds", "7").GetSummary()
	if s.GetSampleCount() != 30 || math.Abs(s.GetSampleSum()-0.465) > 1e-9 || len(s.GetQuantile()) != 4 {
		t.Fatalf("summary %v", s)
	}
	if q := s.GetQuantile(); q[0].GetValue() != 0.002 || q[3].GetValue() != 0.03 || q[1].GetQuantile() != 0.5 {
		t.Errorf("quantiles %v", q)
	}
	// Path 2 has no pings: no NOP series for it.
	for _, m := range fams["goiscsi_session_nop_rtt_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "sid" && l.GetValue() == "2" {
				t.Error("NOP summary for a path without pings")
			}
		}
	}
	// Deterministic: the same input writes the same bytes, whatever the
	// order of the trackers.
	text := buf.String()
	trs[0], trs[1] = trs[1], trs[0]
	var again bytes.Buffer
	if err := WriteMetrics(&again, trs, at(310), DefaultThresholds()); err != nil || again.String() != text {
		t.Error("second write differs")
	}
}

func TestMetricsDuplicatePath(t *testing.T) {
	a, b := NewTracker(testID, Options{}), NewTracker(testID, Options{})
	if err := WriteMetrics(&bytes.Buffer{}, []*Tracker{a, b}, at(0), DefaultThresholds()); err == nil {
		t.Error("two trackers with one PathID: no error")
	}
}

// TestMetricsDocumented keeps doc.go's table and the code in step.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range metricDefs {
		if !strings.Contains(string(doc), "//\t"+d.name+" ") && !strings.Contains(string(doc), "//\t"+d.name+"{") {
			t.Errorf("%s is not in doc.go's table", d.name)
		}
		if !strings.Contains(string(doc), string(d.typ)) {
			t.Errorf("%s: type %s", d.name, d.typ)
		}
	}
	for _, k := range sortedKeys(knownKeys) {
		if !strings.Contains(string(doc), "//\t"+k+" ") {
			t.Errorf("key %s is not in doc.go's table", k)
		}
	}
}
