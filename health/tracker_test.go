package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

var testID = PathID{Target: "iqn.2003-01.org.example:tgt1", Portal: "10.0.0.1:3260,1", Iface: "default", SID: 3}

// path builds synthetic TCP_INFO the way a socket's counters grow.
type path struct {
	ti TCPInfo
}

func newPath() *path {
	return &path{ti: TCPInfo{Len: endTotalRTOTime + 32, State: 1, RTT: 400 * time.Microsecond,
		SndMSS: 1448, SndCwnd: 10, PMTU: 1500}}
}

// send moves the counters as if segs data segments went out, retrans of them
// retransmissions, and recv came in with ooo out of order.
func (p *path) send(segs, retrans, recv, ooo uint32) *TCPInfo {
	p.ti.DataSegsOut += segs
	p.ti.SegsOut += segs + recv/2
	p.ti.TotalRetrans += retrans
	p.ti.DataSegsIn += recv
	p.ti.SegsIn += recv + segs/2
	p.ti.RcvOOOPack += ooo
	p.ti.BytesSent += uint64(segs) * 1448
	p.ti.BytesRetrans += uint64(retrans) * 1448
	p.ti.BytesAcked += uint64(segs-retrans) * 1448
	p.ti.BytesReceived += uint64(recv) * 1448
	c := p.ti
	return &c
}

func mustSample(t *testing.T, tr *Tracker, s Sample) {
	t.Helper()
	if err := tr.Sample(s); err != nil {
		t.Fatal(err)
	}
}

func TestRetransmissionsJudged(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	th := DefaultThresholds()
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	for i := 1; i <= 30; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(1000, 32, 500, 0)})
	}
	v := tr.Judge(at(300), th)
	want := "3.2% of segments retransmitted over the last 5 minutes (960 of 30000)"
	if v.Healthy || len(v.Problems) != 1 || v.Problems[0] != want {
		t.Fatalf("verdict %q, want %q", v, want)
	}
	// Samples older than the window drop out: 10 more clean minutes.
	for i := 31; i <= 90; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(1000, 0, 500, 0)})
	}
	if v := tr.Judge(at(900), th); !v.Healthy {
		t.Errorf("after 10 clean minutes: %q", v)
	}
	// Just under the threshold is fine: 1.0% is not more than 1%.
	for i := 91; i <= 120; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(1000, 10, 500, 0)})
	}
	if v := tr.Judge(at(1200), th); !v.Healthy {
		t.Errorf("1.0%% retransmitted: %q", v)
	}
}

func TestIdlePathNotJudged(t *testing.T) {
	// An idle path sends only NOP-Outs: 2 of 60 segments is 3% and means nothing.
	tr := NewTracker(testID, Options{})
	p := newPath()
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	for i := 1; i <= 30; i++ {
		r := uint32(0)
		if i%15 == 0 {
			r = 1
		}
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(2, r, 2, 0)})
	}
	if v := tr.Judge(at(300), DefaultThresholds()); !v.Healthy {
		t.Errorf("idle path: %q", v)
	}
	th := DefaultThresholds()
	th.MinSegments = 10
	if v := tr.Judge(at(300), th); v.Healthy || !strings.Contains(v.Problems[0], "3.3% of segments retransmitted") {
		t.Errorf("min_segments 10: %q", v)
	}
}

func TestOutOfOrderJudged(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	for i := 1; i <= 30; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(100, 0, 2000, 200)})
	}
	v := tr.Judge(at(300), DefaultThresholds())
	want := "10% of received segments out of order over the last 5 minutes (6000 of 60000): the target's packets are being lost"
	if len(v.Problems) != 1 || v.Problems[0] != want {
		t.Errorf("verdict %q, want %q", v, want)
	}
}

func TestCounterWrap(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	p.ti.DataSegsOut = 1<<32 - 500
	p.ti.SegsOut = 1<<32 - 700
	p.ti.TotalRetrans = 1<<32 - 10
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	mustSample(t, tr, Sample{Time: at(10), TCP: p.send(2000, 40, 0, 0)}) // all three wrap
	s := tr.Snapshot(at(10), DefaultThresholds())
	if s.Rates == nil || s.Rates.DataSegmentsSent != 2000 || s.Rates.RetransmittedSegments != 40 {
		t.Fatalf("rates across a wrap: %+v", s.Rates)
	}
	if s.Rates.SpanSeconds != 10 {
		t.Errorf("span %v s, want 10", s.Rates.SpanSeconds)
	}
}

func TestNewSocketAfterLogin(t *testing.T) {
	tr := NewTracker(testID, Options{})
	old := newPath()
	mustSample(t, tr, Sample{Time: at(0), TCP: old.send(5000, 0, 5000, 0)})
	mustSample(t, tr, Sample{Time: at(10), TCP: old.send(1000, 0, 1000, 0)})
	before := tr.Snapshot(at(10), DefaultThresholds()).Totals

	// Recovery: no socket for a while, then a relogin on a new one whose
	// counters start again from zero.
	tr.ConnError(at(12), 1020, "ISCSI_ERR_TCP_CONN_CLOSE (1020)")
	tr.RecoveryStarted(at(12), "")
	mustSample(t, tr, Sample{Time: at(20)})
	tr.Login(at(25), 3*time.Millisecond, nil)
	tr.RecoveryEnded(at(25), 0, nil)
	fresh := newPath()
	mustSample(t, tr, Sample{Time: at(30), TCP: fresh.send(300, 3, 100, 0)})

	s := tr.Snapshot(at(30), DefaultThresholds())
	if got := s.Totals.DataSegmentsSent - before.DataSegmentsSent; got != 300 {
		t.Errorf("new socket added %d data segments to the total, want 300", got)
	}
	if s.Totals.RetransmittedSegments != 3 {
		t.Errorf("retransmitted total %d, want 3", s.Totals.RetransmittedSegments)
	}
	if s.Rates.DataSegmentsSent != 1300 {
		t.Errorf("window data segments %d, want 1000 (old socket) + 300 (new)", s.Rates.DataSegmentsSent)
	}
	if len(s.Recoveries) != 1 || s.Recoveries[0].Cause != "ISCSI_ERR_TCP_CONN_CLOSE (1020)" ||
		s.Recoveries[0].Attempts != 1 || s.Recoveries[0].DurationSeconds != 13 {
		t.Errorf("recoveries %+v", s.Recoveries)
	}

	// Without a Login call, counters running backwards still mark a new socket.
	third := newPath()
	mustSample(t, tr, Sample{Time: at(40), TCP: third.send(50, 0, 10, 0)})
	s2 := tr.Snapshot(at(40), DefaultThresholds())
	if got := s2.Totals.DataSegmentsSent - s.Totals.DataSegmentsSent; got != 50 {
		t.Errorf("unannounced new socket added %d, want 50", got)
	}
}

func TestISCSICountersReset(t *testing.T) {
	tr := NewTracker(testID, Options{})
	st := func(tx, rx, dig uint64) *ISCSIStats {
		return &ISCSIStats{TxDataOctets: tx, RxDataOctets: rx, DigestErr: dig, Custom: map[string]uint64{"eh_abort_cnt": dig}}
	}
	mustSample(t, tr, Sample{Time: at(0), ISCSI: st(1000, 2000, 0)})
	mustSample(t, tr, Sample{Time: at(10), ISCSI: st(11000, 2000, 1)})
	mustSample(t, tr, Sample{Time: at(20), ISCSI: st(500, 100, 0)}) // a new kernel connection
	s := tr.Snapshot(at(20), DefaultThresholds())
	if s.Totals.ISCSI.TxDataOctets != 11500 || s.Totals.ISCSI.RxDataOctets != 2100 {
		t.Errorf("totals tx %d rx %d, want 11500 and 2100", s.Totals.ISCSI.TxDataOctets, s.Totals.ISCSI.RxDataOctets)
	}
	if s.Rates.ISCSITxBytesPerSecond != 10500.0/20 {
		t.Errorf("tx rate %v", s.Rates.ISCSITxBytesPerSecond)
	}
	if s.Totals.DigestErrors != 1 || s.Totals.ISCSI.Custom["eh_abort_cnt"] != 1 {
		t.Errorf("digest %d eh_abort %d, want 1 and 1", s.Totals.DigestErrors, s.Totals.ISCSI.Custom["eh_abort_cnt"])
	}
	if v := tr.Judge(at(20), DefaultThresholds()); v.Healthy || v.Problems[0] != "1 digest error in the last 5 minutes" {
		t.Errorf("verdict %q", v)
	}
}

func TestRecoveriesJudged(t *testing.T) {
	tr := NewTracker(testID, Options{})
	th := DefaultThresholds()
	cause := "ISCSI_ERR_TCP_CONN_CLOSE (1020)"
	tr.ConnError(at(100), 1020, cause)
	tr.RecoveryStarted(at(100), "")
	if v := tr.Judge(at(112), th); v.Healthy || v.Problems[0] != "in recovery for 12 s after "+cause {
		t.Errorf("during the first recovery: %q", v)
	}
	tr.Login(at(105), 2*time.Second, errors.New("connection refused"))
	if v := tr.Judge(at(112), th); v.Problems[0] != "in recovery for 12 s after "+cause+", 1 login attempt so far" {
		t.Errorf("after an attempt: %q", v)
	}
	tr.Login(at(119), 4*time.Millisecond, nil)
	tr.RecoveryEnded(at(120), 0, nil)
	if v := tr.Judge(at(130), th); !v.Healthy {
		t.Errorf("one recovery an hour is allowed: %q", v)
	}
	tr.ConnError(at(1000), 1020, cause)
	tr.RecoveryStarted(at(1000), "")
	tr.RecoveryEnded(at(1021), 1, nil)
	want := "2 recoveries in the last hour (" + cause + " ×2), 41 s without I/O"
	if v := tr.Judge(at(1100), th); v.Healthy || v.Problems[0] != want {
		t.Errorf("verdict %q, want %q", v, want)
	}
	// An hour after the first one ended, only the second counts.
	if v := tr.Judge(at(120+3600+1), th); !v.Healthy {
		t.Errorf("an hour later: %q", v)
	}
	s := tr.Snapshot(at(1100), th)
	if s.Totals.Recoveries != 2 || s.Totals.RecoverySeconds != 41 || s.Totals.ConnectionErrors != 2 ||
		s.Totals.ConnectionErrorsBy[cause] != 2 {
		t.Errorf("totals %+v", s.Totals)
	}
	if s.Logins.OK != 1 || s.Logins.Failed != 1 || s.Logins.Latency == nil || s.Logins.Latency.MaxMS != 4 {
		t.Errorf("logins %+v", s.Logins)
	}
	if s.Recoveries[0].Attempts != 2 || s.Recoveries[1].Attempts != 1 {
		t.Errorf("attempts %d and %d, want 2 and 1", s.Recoveries[0].Attempts, s.Recoveries[1].Attempts)
	}
	// A recovery that gave up says why.
	tr.RecoveryStarted(at(2000), "ISCSI_ERR_NOP_TIMEDOUT (1022)")
	tr.RecoveryEnded(at(2120), 4, errors.New("replacement_timeout 120 s expired"))
	s = tr.Snapshot(at(2200), th)
	if r := s.Recoveries[2]; r.Error != "replacement_timeout 120 s expired" || r.Attempts != 4 || r.Cause != "ISCSI_ERR_NOP_TIMEDOUT (1022)" {
		t.Errorf("failed recovery %+v", r)
	}
}

func TestRTTAndStall(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	th := DefaultThresholds()
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	p.ti.RTT = 180 * time.Millisecond
	mustSample(t, tr, Sample{Time: at(10), TCP: p.send(10, 0, 10, 0)})
	if v := tr.Judge(at(10), th); len(v.Problems) != 1 || v.Problems[0] != "round-trip time 180 ms (threshold 100 ms)" {
		t.Errorf("verdict %q", v)
	}
	// A path that acknowledges nothing: the timer fires again and again.
	p.ti.RTT = 300 * time.Microsecond
	p.ti.Retransmits = 3
	p.ti.LastAckRecv = 6200 * time.Millisecond
	mustSample(t, tr, Sample{Time: at(20), TCP: p.send(0, 3, 0, 0)})
	if v := tr.Judge(at(20), th); len(v.Problems) != 1 || v.Problems[0] != "no ACK for 6.2 s: TCP retransmission timer expired 3 times in a row" {
		t.Errorf("verdict %q", v)
	}
	// During recovery there is no socket: the old socket's figures are not judged.
	mustSample(t, tr, Sample{Time: at(30)})
	if v := tr.Judge(at(30), th); !v.Healthy {
		t.Errorf("sample without TCP_INFO: %q", v)
	}
	// Turned off.
	th.RTT, th.RTOStreak = 0, 0
	p.ti.RTT = time.Second
	mustSample(t, tr, Sample{Time: at(40), TCP: p.send(0, 0, 0, 0)})
	if v := tr.Judge(at(40), th); !v.Healthy {
		t.Errorf("checks off: %q", v)
	}
}

func TestNOPRTT(t *testing.T) {
	tr := NewTracker(testID, Options{})
	th := DefaultThresholds()
	for i, ms := range []int{200, 250, 300} {
		tr.PingRTT(at(10*i), time.Duration(ms)*time.Millisecond)
	}
	if v := tr.Judge(at(30), th); len(v.Problems) != 1 ||
		v.Problems[0] != "NOP-Out round trip 250 ms on average over the last 5 minutes (threshold 100 ms)" {
		t.Errorf("verdict %q", v)
	}
	s := tr.Snapshot(at(30), th)
	if n := s.NOPRTT; n == nil || n.Count != 3 || n.MinMS != 200 || n.AvgMS != 250 || n.MaxMS != 300 || n.LastMS != 300 || n.P50MS != 250 {
		t.Errorf("nop rtt %+v", n)
	}
	if s.Totals.NOPPings != 3 || s.Totals.NOPRTTSecondsSum != 0.75 {
		t.Errorf("totals pings %d sum %v", s.Totals.NOPPings, s.Totals.NOPRTTSecondsSum)
	}
}

func TestDigestConnErrors(t *testing.T) {
	tr := NewTracker(testID, Options{})
	for i := 0; i < 4; i++ {
		tr.ConnError(at(60*i), 1015, "ISCSI_ERR_DATA_DGST (1015)")
	}
	tr.ConnError(at(10), 1022, "ISCSI_ERR_NOP_TIMEDOUT (1022)")
	if v := tr.Judge(at(200), DefaultThresholds()); v.Healthy || v.Problems[0] != "4 digest errors in the last 5 minutes" {
		t.Errorf("verdict %q", v)
	}
	th := DefaultThresholds()
	th.MaxDigestErrors = 4
	if v := tr.Judge(at(200), th); !v.Healthy {
		t.Errorf("4 allowed: %q", v)
	}
}

func TestTransitionsOncePerChange(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	th := DefaultThresholds()
	var log []string
	step := func(sec int, retrans uint32) {
		mustSample(t, tr, Sample{Time: at(sec), TCP: p.send(1000, retrans, 100, 0)})
		v, ch := tr.Evaluate(at(sec), th)
		if ch != NoChange {
			log = append(log, fmt.Sprintf("%d %s: %s", sec, ch, v))
		}
	}
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0)})
	for s := 10; s <= 300; s += 10 {
		step(s, 0)
	}
	for s := 310; s <= 600; s += 10 { // 5% for five minutes
		step(s, 50)
	}
	for s := 610; s <= 1500; s += 10 { // clean again
		step(s, 0)
	}
	// The share passes 1% once 7 of the window's 30 samples are bad (at
	// 370 s: 350 of 30000), and is back at 1.0% (not more than 1%) when only
	// 6 are left (at 840 s); a minute of settling later the path recovers.
	want := []string{
		"370 turned unhealthy: 1.2% of segments retransmitted over the last 5 minutes (350 of 30000)",
		"900 recovered: OK",
	}
	if !reflect.DeepEqual(log, want) {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestTransitionSettles(t *testing.T) {
	// A figure hovering at the threshold must not log every sample.
	tr := NewTracker(testID, Options{})
	th := DefaultThresholds()
	var changes []Transition
	for i := 0; i < 60; i++ {
		if i%2 == 0 {
			tr.PingRTT(at(10*i), 400*time.Millisecond)
		}
		th.Window = 10 * time.Second // only the latest ping counts
		_, ch := tr.Evaluate(at(10*i+5), th)
		if ch != NoChange {
			changes = append(changes, ch)
		}
	}
	if !reflect.DeepEqual(changes, []Transition{TurnedUnhealthy}) {
		t.Errorf("flapping path: transitions %v, want one TurnedUnhealthy", changes)
	}
	// Quiet since the evaluation at 595 s: not yet a minute.
	v, ch := tr.Evaluate(at(10*60+5), th)
	if ch != NoChange || !v.Healthy || v.UnhealthySince != at(5) {
		t.Errorf("quiet for 10 s: %v %q since %v", ch, v, v.UnhealthySince)
	}
	th.Settle = 0
	if _, ch := tr.Evaluate(at(10*60+6), th); ch != Recovered {
		t.Errorf("settle 0: %v", ch)
	}
}

func TestStatesAndHeldBack(t *testing.T) {
	tr := NewTracker(testID, Options{})
	tr.SetState(at(0), "LOGGED_IN")
	tr.SetState(at(100), "FAILED")
	tr.SetState(at(141), "LOGGED_IN")
	tr.SetState(at(150), "LOGGED_IN") // no change
	tr.SetHeldBackLUNs(3, []uint64{1, 2, 5})
	s := tr.Snapshot(at(200), DefaultThresholds())
	want := []StateTime{{State: "FAILED", Seconds: 41, Entered: 1}, {State: "LOGGED_IN", Seconds: 159, Entered: 2}}
	if !reflect.DeepEqual(s.State.Times, want) || s.State.Current != "LOGGED_IN" || s.State.Since != at(141) {
		t.Errorf("states %+v", s.State)
	}
	if !s.Verdict.Healthy || len(s.Verdict.Notes) != 1 || s.Verdict.Notes[0] != "3 LUNs held back from scans: 1, 2, 5" {
		t.Errorf("verdict %+v", s.Verdict)
	}
	for i := 0; i < 100; i++ {
		tr.SetState(at(300+i), fmt.Sprintf("S%d", i))
	}
	if n := len(tr.Snapshot(at(400), DefaultThresholds()).State.Times); n > maxStates+1 {
		t.Errorf("%d state names kept, want at most %d", n, maxStates+1)
	}
}

func TestSampleOrder(t *testing.T) {
	tr := NewTracker(testID, Options{})
	mustSample(t, tr, Sample{Time: at(10)})
	if err := tr.Sample(Sample{Time: at(5)}); err == nil || !strings.Contains(err.Error(), "before the previous one") {
		t.Errorf("sample back in time: %v", err)
	}
	if err := tr.Sample(Sample{}); err == nil {
		t.Error("sample without a time: no error")
	}
}

func TestRingBounded(t *testing.T) {
	tr := NewTracker(testID, Options{Interval: 10 * time.Second, History: time.Minute})
	if got := tr.samples.max; got != 7 || len(tr.samples.buf) != 0 {
		t.Errorf("ring of %d samples, %d allocated before any; want 7, 0", got, len(tr.samples.buf))
	}
	p := newPath()
	for i := 0; i < 1000; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(10, 0, 10, 0)})
		tr.ConnError(at(10*i), uint32(2000+i), "")
		tr.PingRTT(at(10*i), time.Millisecond)
		tr.Login(at(10*i), time.Millisecond, errors.New("refused")) // a success would mean a new socket
	}
	for i := 0; i < maxPings; i++ {
		tr.PingRTT(at(10000), time.Millisecond)
	}
	if tr.samples.n != 7 || tr.connErrors.n != maxConnErrors || tr.pings.n != minPings || tr.logins.n != maxLogins {
		t.Errorf("kept %d samples, %d errors, %d pings, %d logins", tr.samples.n, tr.connErrors.n, tr.pings.n, tr.logins.n)
	}
	if cap(tr.samples.buf) != 7 || cap(tr.pings.buf) != minPings || cap(tr.connErrors.buf) != maxConnErrors {
		t.Errorf("buffers grew to %d samples, %d pings, %d errors: beyond their bounds", cap(tr.samples.buf), cap(tr.pings.buf), cap(tr.connErrors.buf))
	}
	if len(tr.causeCounts) > maxCauses+1 {
		t.Errorf("%d causes kept", len(tr.causeCounts))
	}
	if big := NewTracker(testID, Options{Interval: time.Second, History: 7 * 24 * time.Hour}); big.samples.max != MaxSamples || big.pings.max != maxPings {
		t.Errorf("a week at 1 s: ring of %d samples, %d pings; want %d, %d", big.samples.max, big.pings.max, MaxSamples, maxPings)
	}
	s := tr.Snapshot(at(10000), DefaultThresholds())
	if s.Totals.DataSegmentsSent != 10000 {
		t.Errorf("totals count every sample: %d, want 10000", s.Totals.DataSegmentsSent)
	}
}

func TestSnapshotJSONAndText(t *testing.T) {
	tr := NewTracker(testID, Options{})
	p := newPath()
	tr.SetState(at(0), "LOGGED_IN")
	tr.Login(at(0), 3500*time.Microsecond, nil)
	mustSample(t, tr, Sample{Time: at(0), TCP: p.send(0, 0, 0, 0), ISCSI: &ISCSIStats{}})
	for i := 1; i <= 30; i++ {
		mustSample(t, tr, Sample{Time: at(10 * i), TCP: p.send(1000, 32, 500, 1),
			ISCSI: &ISCSIStats{TxDataOctets: uint64(i) << 20, RxDataOctets: uint64(i) << 19}})
	}
	tr.ConnError(at(295), 1022, "ISCSI_ERR_NOP_TIMEDOUT (1022)")
	tr.RecoveryStarted(at(295), "")
	s := tr.Snapshot(at(300), DefaultThresholds())
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.SID != 3 || back.Target != testID.Target || back.Verdict.Healthy || back.Rates.RetransmittedSegments != 960 ||
		back.TCP.State != "ESTABLISHED" || len(back.Recoveries) != 1 || !back.Recoveries[0].Ongoing {
		t.Errorf("JSON round trip lost something: %s", b)
	}
	for _, key := range []string{`"sid":3`, `"retransmitted_percent":3.2`, `"rtt_ms":0.4`, `"ongoing":true`, `"span_seconds":300`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	var text strings.Builder
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Path: target iqn.2003-01.org.example:tgt1 portal 10.0.0.1:3260,1 iface default sid 3",
		"in recovery for 5 s after ISCSI_ERR_NOP_TIMEDOUT (1022)",
		"sent 30000 data segments, 960 retransmitted (3.2%)",
		"rtt 400 µs",
		"LOGGED_IN: 5 min, entered 1 time",
		"latency: 1, min 3.5 ms",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	t.Logf("\n%s", text.String())
}

func TestConcurrentUse(t *testing.T) {
	tr := NewTracker(testID, Options{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			p := newPath()
			for i := 0; i < 200; i++ {
				now := at(i)
				switch g {
				case 0:
					tr.Sample(Sample{Time: now, TCP: p.send(10, 1, 10, 0)}) // may be refused as out of order
				case 1:
					tr.ConnError(now, 1020, "x")
					tr.RecoveryStarted(now, "")
					tr.Login(now, time.Millisecond, nil)
					tr.RecoveryEnded(now, 0, nil)
				case 2:
					tr.Evaluate(now, DefaultThresholds())
					tr.PingRTT(now, time.Millisecond)
				case 3:
					s := tr.Snapshot(now, DefaultThresholds())
					var b strings.Builder
					s.WriteText(&b)
					tr.SetState(now, "LOGGED_IN")
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestWords(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{400 * time.Microsecond, "400 µs"}, {1500 * time.Microsecond, "1.5 ms"}, {180 * time.Millisecond, "180 ms"},
		{6200 * time.Millisecond, "6.2 s"}, {41 * time.Second, "41 s"}, {290 * time.Second, "4 min 50 s"},
		{5 * time.Minute, "5 min"}, {125 * time.Minute, "2 h 5 min"},
	} {
		if got := words(c.d); got != c.want {
			t.Errorf("words(%v) = %q, want %q", c.d, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{time.Hour, "hour"}, {2 * time.Hour, "2 hours"}, {5 * time.Minute, "5 minutes"}, {299 * time.Second, "5 minutes"},
		{time.Minute, "minute"}, {30 * time.Second, "30 seconds"}, {150 * time.Second, "2 min 30 s"},
	} {
		if got := spanWords(c.d); got != c.want {
			t.Errorf("spanWords(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestHasFields(t *testing.T) {
	old := TCPInfo{Len: 232} // Debian 12's 6.1
	if !old.HasBytesSent() || !old.HasOOO() || old.HasTotalRTO() {
		t.Errorf("6.1 layout: bytes_sent %v ooo %v total_rto %v", old.HasBytesSent(), old.HasOOO(), old.HasTotalRTO())
	}
	ancient := TCPInfo{Len: endTotalRetrans, DataSegsOut: 5, SegsOut: 7}
	if _, ok := ancient.sentSegs(); ok {
		t.Error("a 104-byte struct has no segment counters")
	}
	mid := TCPInfo{Len: endSegsIn, SegsOut: 7}
	if n, ok := mid.sentSegs(); !ok || n != 7 {
		t.Errorf("Linux 4.2 layout: sent %d %v, want segs_out 7", n, ok)
	}
}

// FuzzTracker feeds a Tracker whatever counters and events the bytes say,
// kernel numbers included (they come from outside the daemon), and checks
// that nothing panics, the totals only grow and the figures stay sane.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0, 2, 3, 4, 5, 6})
	f.Add([]byte("\x00\x10\x00\x00\x00\x05\x00\x00\x00\x02\x03\x04\x05\x06\x07\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := NewTracker(testID, Options{Interval: time.Second, History: 30 * time.Second})
		th := DefaultThresholds()
		th.MinSegments = 1
		u32 := func() uint32 {
			if len(b) < 4 {
				b = nil
				return 0
			}
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			b = b[4:]
			return v
		}
		now := t0
		var prev Totals
		for len(b) > 0 {
			op := b[0]
			b = b[1:]
			now = now.Add(time.Duration(op%16) * time.Second)
			switch op % 8 {
			case 0, 1, 2:
				ti := &TCPInfo{Len: int(u32() % 300), TotalRetrans: u32(), DataSegsOut: u32(), SegsOut: u32(),
					DataSegsIn: u32(), RcvOOOPack: u32(), BytesAcked: uint64(u32()) << (op % 40),
					BytesSent: uint64(u32()) << 20, RTT: time.Duration(u32()), Retransmits: uint8(u32()),
					BusyTime: time.Duration(u32()) * time.Microsecond}
				var st *ISCSIStats
				if op&1 == 0 {
					st = &ISCSIStats{TxDataOctets: uint64(u32()) << 30, DigestErr: uint64(u32()),
						Custom: map[string]uint64{fmt.Sprint(u32() % 40): uint64(u32())}}
				}
				tr.Sample(Sample{Time: now, TCP: ti, ISCSI: st})
			case 3:
				tr.ConnError(now, u32(), "")
			case 4:
				tr.RecoveryStarted(now, "")
			case 5:
				tr.RecoveryEnded(now, int(u32()%10), nil)
			case 6:
				tr.Login(now, time.Duration(u32())*time.Millisecond, nil)
				tr.PingRTT(now, time.Duration(int32(u32())))
			case 7:
				tr.SetState(now, fmt.Sprint(u32()%50))
				tr.SetHeldBackLUNs(int(u32()%1000), []uint64{uint64(u32())})
			}
			v, _ := tr.Evaluate(now, th)
			s := tr.Snapshot(now, th)
			if v.Healthy != (len(v.Problems) == 0) {
				t.Fatalf("verdict %+v", v)
			}
			if r := s.Rates; r != nil {
				if r.SpanSeconds < 0 || r.BusyPercent > 100 || r.RetransmittedPercent < 0 {
					t.Fatalf("rates %+v", r)
				}
			}
			c := s.Totals
			if c.DataSegmentsSent < prev.DataSegmentsSent || c.RetransmittedSegments < prev.RetransmittedSegments ||
				c.BytesAcked < prev.BytesAcked || c.ISCSI.TxDataOctets < prev.ISCSI.TxDataOctets ||
				c.Recoveries < prev.Recoveries || c.RecoverySeconds < prev.RecoverySeconds-1e-9 {
				t.Fatalf("totals went down:\n%+v\n%+v", prev, c)
			}
			prev = c
			var sb strings.Builder
			if err := s.WriteText(&sb); err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(s); err != nil {
				t.Fatal(err)
			}
		}
	})
}
