package health

import (
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/health/promtext"
)

// metricDef is one metric family: its name, type and help, and the samples
// one path contributes (labels prefixed with the path's own).
type metricDef struct {
	name string
	typ  promtext.Type
	help string
	of   func(s *Snapshot, e *emitter)
}

func lbl(name, value string) promtext.Label { return promtext.Label{Name: name, Value: value} }

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ifTCP adds v only when the path has a TCP sample: a gauge of an unknown
// value is better absent than 0.
func ifTCP(f func(t *TCPReport) float64) func(*Snapshot, *emitter) {
	return func(s *Snapshot, e *emitter) {
		if s.TCP != nil {
			e.add(f(s.TCP))
		}
	}
}

func total(f func(t *Totals) float64) func(*Snapshot, *emitter) {
	return func(s *Snapshot, e *emitter) { e.add(f(&s.Totals)) }
}

// metricDefs are the metrics, in the order of the package doc's table.
var metricDefs = []metricDef{
	{"goiscsi_session_healthy", promtext.Gauge, "1 when the health checks find no problem on the path, else 0.",
		func(s *Snapshot, e *emitter) { e.add(boolf(s.Verdict.Healthy)) }},
	{"goiscsi_session_problems", promtext.Gauge, "Number of problems the health checks find on the path.",
		func(s *Snapshot, e *emitter) { e.add(float64(len(s.Verdict.Problems))) }},
	{"goiscsi_session_recovering", promtext.Gauge, "1 while session recovery is in progress (I/O held), else 0.",
		func(s *Snapshot, e *emitter) {
			n := len(s.Recoveries)
			e.add(boolf(n > 0 && s.Recoveries[n-1].Ongoing))
		}},
	{"goiscsi_session_rtt_seconds", promtext.Gauge, "Smoothed TCP round-trip time of the connection (tcpi_rtt).",
		ifTCP(func(t *TCPReport) float64 { return t.RTTms / 1000 })},
	{"goiscsi_session_rtt_variance_seconds", promtext.Gauge, "TCP round-trip time mean deviation (tcpi_rttvar).",
		ifTCP(func(t *TCPReport) float64 { return t.RTTVarms / 1000 })},
	{"goiscsi_session_min_rtt_seconds", promtext.Gauge, "Lowest TCP round-trip time seen recently (tcpi_min_rtt).",
		ifTCP(func(t *TCPReport) float64 { return t.MinRTTms / 1000 })},
	{"goiscsi_session_tcp_rto_seconds", promtext.Gauge, "TCP retransmission timeout (tcpi_rto).",
		ifTCP(func(t *TCPReport) float64 { return t.RTOms / 1000 })},
	{"goiscsi_session_tcp_cwnd_segments", promtext.Gauge, "TCP congestion window (tcpi_snd_cwnd).",
		ifTCP(func(t *TCPReport) float64 { return float64(t.SndCwnd) })},
	{"goiscsi_session_tcp_unacked_segments", promtext.Gauge, "Segments sent and not yet acknowledged (tcpi_unacked).",
		ifTCP(func(t *TCPReport) float64 { return float64(t.Unacked) })},
	{"goiscsi_session_tcp_lost_segments", promtext.Gauge, "Segments in flight the stack believes lost (tcpi_lost).",
		ifTCP(func(t *TCPReport) float64 { return float64(t.Lost) })},
	{"goiscsi_session_tcp_delivery_rate_bytes_per_second", promtext.Gauge, "Recent TCP delivery rate (tcpi_delivery_rate).",
		ifTCP(func(t *TCPReport) float64 { return float64(t.DeliveryRate) })},
	{"goiscsi_session_tcp_retransmit_ratio", promtext.Gauge, "Share of data segments retransmitted over the health window, 0 to 1.",
		func(s *Snapshot, e *emitter) {
			if s.Rates != nil {
				e.add(s.Rates.RetransmittedPercent / 100)
			}
		}},
	{"goiscsi_session_tcp_data_segments_sent_total", promtext.Counter, "Data segments sent, retransmissions included (tcpi_data_segs_out, summed over the session's sockets).",
		total(func(t *Totals) float64 { return float64(t.DataSegmentsSent) })},
	{"goiscsi_session_tcp_retransmitted_segments_total", promtext.Counter, "Segments retransmitted (tcpi_total_retrans, summed over the session's sockets).",
		total(func(t *Totals) float64 { return float64(t.RetransmittedSegments) })},
	{"goiscsi_session_tcp_data_segments_received_total", promtext.Counter, "Data segments received (tcpi_data_segs_in).",
		total(func(t *Totals) float64 { return float64(t.DataSegmentsReceived) })},
	{"goiscsi_session_tcp_out_of_order_segments_total", promtext.Counter, "Data segments received out of order (tcpi_rcv_ooopack): the target's losses.",
		total(func(t *Totals) float64 { return float64(t.OutOfOrderSegments) })},
	{"goiscsi_session_tcp_sent_bytes_total", promtext.Counter, "TCP payload bytes sent, retransmissions included (tcpi_bytes_sent).",
		total(func(t *Totals) float64 { return float64(t.BytesSent) })},
	{"goiscsi_session_tcp_retransmitted_bytes_total", promtext.Counter, "TCP payload bytes retransmitted (tcpi_bytes_retrans).",
		total(func(t *Totals) float64 { return float64(t.BytesRetransmitted) })},
	{"goiscsi_session_tcp_acked_bytes_total", promtext.Counter, "TCP payload bytes the target acknowledged (tcpi_bytes_acked).",
		total(func(t *Totals) float64 { return float64(t.BytesAcked) })},
	{"goiscsi_session_tcp_received_bytes_total", promtext.Counter, "TCP payload bytes received (tcpi_bytes_received).",
		total(func(t *Totals) float64 { return float64(t.BytesReceived) })},
	{"goiscsi_session_tcp_busy_seconds_total", promtext.Counter, "Time TCP had data in flight (tcpi_busy_time).",
		total(func(t *Totals) float64 { return t.BusySeconds })},
	{"goiscsi_session_tcp_rwnd_limited_seconds_total", promtext.Counter, "Time sending was held back by the target's receive window (tcpi_rwnd_limited).",
		total(func(t *Totals) float64 { return t.RwndLimitedSeconds })},
	{"goiscsi_session_tcp_sndbuf_limited_seconds_total", promtext.Counter, "Time sending was held back by the send buffer (tcpi_sndbuf_limited).",
		total(func(t *Totals) float64 { return t.SndbufLimitedSeconds })},
	{"goiscsi_session_iscsi_tx_bytes_total", promtext.Counter, "Bytes iscsi_tcp sent on the connection (GET_STATS txdata_octets).",
		total(func(t *Totals) float64 { return float64(t.ISCSI.TxDataOctets) })},
	{"goiscsi_session_iscsi_rx_bytes_total", promtext.Counter, "Bytes iscsi_tcp received on the connection (GET_STATS rxdata_octets).",
		total(func(t *Totals) float64 { return float64(t.ISCSI.RxDataOctets) })},
	{"goiscsi_session_iscsi_pdus_total", promtext.Counter, "iSCSI PDUs by kind (GET_STATS *_pdus; iscsi_tcp counts scsicmd, scsirsp, dataout, datain, r2t, tmfcmd, tmfrsp).",
		func(s *Snapshot, e *emitter) {
			for _, f := range s.Totals.ISCSI.counterFields() {
				if kind, ok := strings.CutSuffix(f.name, "_pdus"); ok {
					e.add(float64(*f.p), lbl("pdu", kind))
				}
			}
		}},
	{"goiscsi_session_iscsi_digest_errors_total", promtext.Counter, "Header and data digest errors: connection errors for a digest mismatch plus GET_STATS digest_err.",
		total(func(t *Totals) float64 { return float64(t.DigestErrors) })},
	{"goiscsi_session_iscsi_timeout_errors_total", promtext.Counter, "GET_STATS timeout_err (iscsi_tcp leaves it 0; its NOP timeouts are connection errors).",
		total(func(t *Totals) float64 { return float64(t.ISCSI.TimeoutErr) })},
	{"goiscsi_session_iscsi_transport_counter_total", promtext.Counter, "The transport's own GET_STATS counters by name (iscsi_tcp: eh_abort_cnt, tx_sendpage_failures, rx_discontiguous_hdr).",
		func(s *Snapshot, e *emitter) {
			for _, k := range sortedKeys(s.Totals.ISCSI.Custom) {
				e.add(float64(s.Totals.ISCSI.Custom[k]), lbl("counter", k))
			}
		}},
	{"goiscsi_session_connection_errors_total", promtext.Counter, "Connection errors the kernel reported (CONN_ERROR), by cause.",
		func(s *Snapshot, e *emitter) {
			for _, k := range sortedKeys(s.Totals.ConnectionErrorsBy) {
				e.add(float64(s.Totals.ConnectionErrorsBy[k]), lbl("cause", k))
			}
		}},
	{"goiscsi_session_recoveries_total", promtext.Counter, "Session recoveries begun.",
		total(func(t *Totals) float64 { return float64(t.Recoveries) })},
	{"goiscsi_session_recovery_seconds_total", promtext.Counter, "Time spent in session recovery, without I/O.",
		total(func(t *Totals) float64 { return t.RecoverySeconds })},
	{"goiscsi_session_logins_total", promtext.Counter, "Login attempts by result (ok, failed).",
		func(s *Snapshot, e *emitter) {
			e.add(float64(s.Logins.OK), lbl("result", "ok"))
			e.add(float64(s.Logins.Failed), lbl("result", "failed"))
		}},
	{"goiscsi_session_last_login_latency_seconds", promtext.Gauge, "Time the latest successful login took, TCP connect to final Login Response.",
		func(s *Snapshot, e *emitter) {
			if l := s.Logins.Latency; l != nil {
				e.add(l.LastMS / 1000)
			}
		}},
	{"goiscsi_session_state_seconds_total", promtext.Counter, "Time the session spent in each state.",
		func(s *Snapshot, e *emitter) {
			for _, st := range s.State.Times {
				e.add(st.Seconds, lbl("state", st.State))
			}
		}},
	{"goiscsi_session_nop_rtt_seconds", promtext.Summary, "NOP-Out to NOP-In round trips; quantiles over the health window, sum and count over the session's life.",
		func(s *Snapshot, e *emitter) {
			if s.Totals.NOPPings == 0 {
				return
			}
			q := map[string]float64{"0": math.NaN(), "0.5": math.NaN(), "0.9": math.NaN(), "1": math.NaN()}
			if r := s.NOPRTT; r != nil {
				q["0"], q["0.5"], q["0.9"], q["1"] = r.MinMS/1000, r.P50MS/1000, r.P90MS/1000, r.MaxMS/1000
			}
			for _, k := range sortedKeys(q) {
				e.add(q[k], lbl("quantile", k))
			}
			e.addSuffix("_sum", s.Totals.NOPRTTSecondsSum)
			e.addSuffix("_count", float64(s.Totals.NOPPings))
		}},
	{"goiscsi_session_held_back_luns", promtext.Gauge, "LUNs held back from scans (removed by the host or --remove-lun).",
		func(s *Snapshot, e *emitter) { e.add(float64(s.HeldBack.Count)) }},
}

// emitter collects one family's samples for one path.
type emitter struct {
	f    *promtext.Family
	base []promtext.Label
}

// add adds a sample with the path's labels and extra ones.
func (e *emitter) add(v float64, extra ...promtext.Label) {
	e.addSuffix("", v, extra...)
}

// addSuffix adds a sample of the family's name+suffix line (a summary's _sum, _count).
func (e *emitter) addSuffix(suffix string, v float64, extra ...promtext.Label) {
	ls := make([]promtext.Label, 0, len(e.base)+len(extra))
	ls = append(append(ls, e.base...), extra...)
	e.f.Samples = append(e.f.Samples, promtext.Sample{Suffix: suffix, Labels: ls, Value: v})
}

// Families returns the metrics of the trackers at now, judged under th, as
// promtext families: each path's samples carry the labels target, portal,
// iface and sid. The daemon may append its own families and write them all
// with promtext.Write. Two trackers with the same labels make Write fail.
func Families(trackers []*Tracker, now time.Time, th Thresholds) []promtext.Family {
	snaps := make([]Snapshot, 0, len(trackers))
	for _, t := range trackers {
		snaps = append(snaps, t.Snapshot(now, th))
	}
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].SID < snaps[j].SID })
	fams := make([]promtext.Family, 0, len(metricDefs))
	for _, d := range metricDefs {
		f := promtext.Family{Name: d.name, Type: d.typ, Help: d.help}
		for i := range snaps {
			s := &snaps[i]
			base := []promtext.Label{lbl("target", s.Target), lbl("portal", s.Portal),
				lbl("iface", s.Iface), lbl("sid", strconv.FormatUint(uint64(s.SID), 10))}
			d.of(s, &emitter{f: &f, base: base})
		}
		if len(f.Samples) > 0 {
			fams = append(fams, f)
		}
	}
	return fams
}

// WriteMetrics writes the trackers' metrics at now in the Prometheus text
// format (Content-Type promtext.ContentType).
func WriteMetrics(w io.Writer, trackers []*Tracker, now time.Time, th Thresholds) error {
	return promtext.Write(w, Families(trackers, now, th))
}
