package health

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Snapshot is everything a Tracker knows about its path at one moment, in a
// form that marshals to JSON as it is (goiscsiadm --json) and that WriteText
// prints for the text listings. Durations are float seconds or milliseconds,
// as the field names say.
type Snapshot struct {
	PathID
	Time    time.Time `json:"time"`
	Verdict Verdict   `json:"verdict"`
	// WindowSeconds is Thresholds.Window: the span Rates are taken over.
	WindowSeconds float64 `json:"window_seconds"`
	// TCP is the latest TCP_INFO; nil until one was sampled.
	TCP *TCPReport `json:"tcp,omitempty"`
	// ISCSI are the kernel's latest counters; nil until sampled.
	ISCSI *ISCSIStats `json:"iscsi,omitempty"`
	// Rates are counter growth over the window; nil with fewer than two samples.
	Rates *Rates `json:"rates,omitempty"`
	// Totals are lifetime sums, across relogins and new sockets.
	Totals     Totals            `json:"totals"`
	Recoveries []RecoveryReport  `json:"recoveries,omitempty"` // oldest first; the ongoing one last
	ConnErrors []ConnErrorReport `json:"connection_errors,omitempty"`
	State      StateReport       `json:"state"`
	Logins     LoginReport       `json:"logins"`
	// TCPRTT are the smoothed RTTs of the samples in the window.
	TCPRTT *RTTReport `json:"tcp_rtt,omitempty"`
	// NOPRTT are the NOP-Out round trips in the window.
	NOPRTT   *RTTReport     `json:"nop_rtt,omitempty"`
	HeldBack HeldBackReport `json:"held_back_luns"`
}

// TCPReport is the latest TCP_INFO in JSON-friendly units. Fields the kernel
// does not fill (TCPInfo.Len) are zero.
type TCPReport struct {
	KernelLen            int     `json:"kernel_len"`
	State                string  `json:"state"`
	CAState              string  `json:"ca_state"`
	RTTms                float64 `json:"rtt_ms"`
	RTTVarms             float64 `json:"rttvar_ms"`
	MinRTTms             float64 `json:"min_rtt_ms"`
	RTOms                float64 `json:"rto_ms"`
	Retransmits          uint8   `json:"retransmits"` // consecutive timer expiries now
	SndCwnd              uint32  `json:"snd_cwnd"`
	SndMSS               uint32  `json:"snd_mss"`
	PMTU                 uint32  `json:"pmtu"`
	Unacked              uint32  `json:"unacked"`
	Lost                 uint32  `json:"lost"`
	RetransInFlight      uint32  `json:"retrans_in_flight"`
	TotalRetrans         uint32  `json:"total_retrans"`
	SegsOut              uint32  `json:"segs_out"`
	SegsIn               uint32  `json:"segs_in"`
	DataSegsOut          uint32  `json:"data_segs_out"`
	DataSegsIn           uint32  `json:"data_segs_in"`
	BytesSent            uint64  `json:"bytes_sent"`
	BytesRetrans         uint64  `json:"bytes_retrans"`
	BytesAcked           uint64  `json:"bytes_acked"`
	BytesReceived        uint64  `json:"bytes_received"`
	RcvOOOPack           uint32  `json:"rcv_ooopack"`
	DSACKDups            uint32  `json:"dsack_dups"`
	DeliveryRate         uint64  `json:"delivery_rate_bytes_per_second"`
	BusySeconds          float64 `json:"busy_seconds"`
	RwndLimitedSeconds   float64 `json:"rwnd_limited_seconds"`
	SndbufLimitedSeconds float64 `json:"sndbuf_limited_seconds"`
	SndWnd               uint32  `json:"snd_wnd"`
	RcvWnd               uint32  `json:"rcv_wnd"`
	NotsentBytes         uint32  `json:"notsent_bytes"`
	LastAckRecvms        float64 `json:"last_ack_recv_ms"`
	TotalRTO             uint32  `json:"total_rto"`
}

// Rates are the counters' growth over the window (SpanSeconds, measured
// between samples) and the shares and speeds that follow.
type Rates struct {
	SpanSeconds           float64 `json:"span_seconds"`
	DataSegmentsSent      uint64  `json:"data_segments_sent"`
	RetransmittedSegments uint64  `json:"retransmitted_segments"`
	RetransmittedPercent  float64 `json:"retransmitted_percent"`
	DataSegmentsReceived  uint64  `json:"data_segments_received"`
	OutOfOrderSegments    uint64  `json:"out_of_order_segments"`
	OutOfOrderPercent     float64 `json:"out_of_order_percent"`
	BytesSent             uint64  `json:"bytes_sent"`
	BytesRetransmitted    uint64  `json:"bytes_retransmitted"`
	BytesAcked            uint64  `json:"bytes_acked"`
	BytesReceived         uint64  `json:"bytes_received"`
	SendBytesPerSecond    float64 `json:"send_bytes_per_second"`    // acknowledged
	ReceiveBytesPerSecond float64 `json:"receive_bytes_per_second"` // received in order
	ISCSITxBytesPerSecond float64 `json:"iscsi_tx_bytes_per_second"`
	ISCSIRxBytesPerSecond float64 `json:"iscsi_rx_bytes_per_second"`
	// The shares of the span TCP was sending, and was held back by the
	// target's receive window or by our send buffer (Linux 4.10).
	BusyPercent          float64 `json:"busy_percent"`
	RwndLimitedPercent   float64 `json:"rwnd_limited_percent"`
	SndbufLimitedPercent float64 `json:"sndbuf_limited_percent"`
	DigestErrors         uint64  `json:"digest_errors"`
	ConnectionErrors     uint64  `json:"connection_errors"`
}

// Totals are lifetime counts, monotonic for the Tracker's life: what the
// metrics export as counters.
type Totals struct {
	DataSegmentsSent      uint64            `json:"data_segments_sent"`
	RetransmittedSegments uint64            `json:"retransmitted_segments"`
	DataSegmentsReceived  uint64            `json:"data_segments_received"`
	OutOfOrderSegments    uint64            `json:"out_of_order_segments"`
	BytesSent             uint64            `json:"bytes_sent"`
	BytesRetransmitted    uint64            `json:"bytes_retransmitted"`
	BytesAcked            uint64            `json:"bytes_acked"`
	BytesReceived         uint64            `json:"bytes_received"`
	BusySeconds           float64           `json:"busy_seconds"`
	RwndLimitedSeconds    float64           `json:"rwnd_limited_seconds"`
	SndbufLimitedSeconds  float64           `json:"sndbuf_limited_seconds"`
	ISCSI                 ISCSIStats        `json:"iscsi"`
	DigestErrors          uint64            `json:"digest_errors"` // connection errors for digests plus digest_err
	ConnectionErrors      uint64            `json:"connection_errors"`
	ConnectionErrorsBy    map[string]uint64 `json:"connection_errors_by_cause,omitempty"`
	Recoveries            uint64            `json:"recoveries"`
	RecoverySeconds       float64           `json:"recovery_seconds"` // without I/O, the ongoing recovery included
	NOPPings              uint64            `json:"nop_pings"`
	NOPRTTSecondsSum      float64           `json:"nop_rtt_seconds_sum"`
}

// RecoveryReport is one session recovery.
type RecoveryReport struct {
	Started         time.Time `json:"started"`
	Ended           time.Time `json:"ended,omitzero"`
	DurationSeconds float64   `json:"duration_seconds"`
	Ongoing         bool      `json:"ongoing,omitempty"`
	Cause           string    `json:"cause,omitempty"`
	Attempts        int       `json:"attempts"`
	Error           string    `json:"error,omitempty"` // why it gave up; empty when reinstated
}

// ConnErrorReport is one CONN_ERROR.
type ConnErrorReport struct {
	Time  time.Time `json:"time"`
	Code  uint32    `json:"code"`
	Cause string    `json:"cause"`
}

// StateReport is the session's current state and the time spent in each.
type StateReport struct {
	Current string      `json:"current,omitempty"`
	Since   time.Time   `json:"since,omitzero"`
	Times   []StateTime `json:"times,omitempty"`
}

// StateTime is the total time in one state, and how often it was entered.
type StateTime struct {
	State   string  `json:"state"`
	Seconds float64 `json:"seconds"`
	Entered uint64  `json:"entered"`
}

// LoginReport counts logins and gives their latencies.
type LoginReport struct {
	OK     uint64        `json:"ok"`
	Failed uint64        `json:"failed"`
	Recent []LoginRecord `json:"recent,omitempty"` // the last ones kept, oldest first
	// Latency over the kept logins, successful ones only; nil without any.
	Latency *RTTReport `json:"latency,omitempty"`
}

// LoginRecord is one login attempt.
type LoginRecord struct {
	Time      time.Time `json:"time"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

// RTTReport summarises a set of durations in milliseconds.
type RTTReport struct {
	Count  int     `json:"count"`
	MinMS  float64 `json:"min_ms"`
	AvgMS  float64 `json:"avg_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	MaxMS  float64 `json:"max_ms"`
	LastMS float64 `json:"last_ms"`
}

// HeldBackReport lists the LUNs held back from broad scans.
type HeldBackReport struct {
	Count int      `json:"count"`
	LUNs  []uint64 `json:"luns,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rttReport summarises ds (in the order they happened).
func rttReport(ds []time.Duration) *RTTReport {
	if len(ds) == 0 {
		return nil
	}
	last := ds[len(ds)-1]
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum float64
	for _, d := range s {
		sum += float64(d)
	}
	q := func(p float64) float64 { return ms(s[int(math.Ceil(p*float64(len(s))))-1]) }
	return &RTTReport{
		Count: len(s), MinMS: ms(s[0]), MaxMS: ms(s[len(s)-1]), LastMS: ms(last),
		AvgMS: sum / float64(len(s)) / float64(time.Millisecond), P50MS: q(0.5), P90MS: q(0.9),
	}
}

// Snapshot returns the path's figures at now, judged under th.
func (t *Tracker) Snapshot(now time.Time, th Thresholds) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	th = th.withDefaults()
	s := Snapshot{PathID: t.id, Time: now, Verdict: t.judge(now, th), WindowSeconds: th.Window.Seconds()}
	if ti := t.lastTCP; ti != nil {
		s.TCP = tcpReport(ti)
	}
	if t.lastISCSI != nil {
		c := *t.lastISCSI
		c.Custom = copyCustom(c.Custom)
		s.ISCSI = &c
	}

	f := t.window(now, th.Window)
	if f.records > 0 {
		r := &Rates{
			SpanSeconds:      f.span.Seconds(),
			DataSegmentsSent: f.c.sentSegs, RetransmittedSegments: f.c.retransSegs,
			RetransmittedPercent: percent(f.c.retransSegs, f.c.sentSegs),
			DataSegmentsReceived: f.c.recvSegs, OutOfOrderSegments: f.c.oooSegs,
			OutOfOrderPercent: percent(f.c.oooSegs, f.c.recvSegs),
			BytesSent:         f.c.bytesSent, BytesRetransmitted: f.c.bytesRetrans,
			BytesAcked: f.c.bytesAcked, BytesReceived: f.c.bytesReceived,
			DigestErrors: t.digestErrorsIn(now, th.Window, &f),
		}
		if sec := f.span.Seconds(); sec > 0 {
			r.SendBytesPerSecond = float64(f.c.bytesAcked) / sec
			r.ReceiveBytesPerSecond = float64(f.c.bytesReceived) / sec
			r.ISCSITxBytesPerSecond = float64(f.c.txOctets) / sec
			r.ISCSIRxBytesPerSecond = float64(f.c.rxOctets) / sec
			us := float64(f.span / time.Microsecond)
			r.BusyPercent = min(100, 100*float64(f.c.busyUS)/us)
			r.RwndLimitedPercent = min(100, 100*float64(f.c.rwndUS)/us)
			r.SndbufLimitedPercent = min(100, 100*float64(f.c.sndbufUS)/us)
		}
		from := now.Add(-th.Window)
		t.connErrors.each(func(e *connErrorEvent) {
			if e.at.After(from) && !e.at.After(now) {
				r.ConnectionErrors++
			}
		})
		s.Rates = r
	}

	s.Totals = t.totalsAt(now)

	t.recoveries.each(func(r *recovery) {
		s.Recoveries = append(s.Recoveries, RecoveryReport{Started: r.started, Ended: r.ended,
			DurationSeconds: r.ended.Sub(r.started).Seconds(), Cause: r.cause, Attempts: r.attempts, Error: r.err})
	})
	if o := t.ongoing; o != nil {
		s.Recoveries = append(s.Recoveries, RecoveryReport{Started: o.started, Ongoing: true,
			DurationSeconds: max(0, now.Sub(o.started).Seconds()), Cause: o.cause, Attempts: o.attempts})
	}
	t.connErrors.each(func(e *connErrorEvent) {
		s.ConnErrors = append(s.ConnErrors, ConnErrorReport{Time: e.at, Code: e.code, Cause: e.cause})
	})

	s.State = StateReport{Current: t.state, Since: t.stateSince}
	for _, k := range sortedKeys(t.stateTimes) {
		acc := t.stateTimes[k]
		d := acc.total
		if k == t.state && now.After(t.stateSince) {
			d = satDur(d, now.Sub(t.stateSince))
		}
		s.State.Times = append(s.State.Times, StateTime{State: k, Seconds: d.Seconds(), Entered: acc.entered})
	}

	s.Logins = LoginReport{OK: t.loginOK, Failed: t.loginFailed}
	var lat []time.Duration
	t.logins.each(func(e *loginEvent) {
		s.Logins.Recent = append(s.Logins.Recent, LoginRecord{Time: e.at, LatencyMS: ms(e.latency), Error: e.err})
		if e.err == "" {
			lat = append(lat, e.latency)
		}
	})
	s.Logins.Latency = rttReport(lat)

	var rtts []time.Duration
	from := now.Add(-th.Window)
	t.samples.each(func(r *record) {
		if r.rtt > 0 && r.end.After(from) && !r.end.After(now) {
			rtts = append(rtts, r.rtt)
		}
	})
	s.TCPRTT = rttReport(rtts)
	var pings []time.Duration
	t.pings.each(func(p *pingEvent) {
		if p.at.After(from) && !p.at.After(now) {
			pings = append(pings, p.rtt)
		}
	})
	s.NOPRTT = rttReport(pings)

	s.HeldBack = HeldBackReport{Count: t.heldBackCount, LUNs: append([]uint64(nil), t.heldBack...)}
	return s
}

// totalsAt returns the lifetime sums, the ongoing recovery counted up to now.
func (t *Tracker) totalsAt(now time.Time) Totals {
	c := t.tot.counts
	tot := Totals{
		DataSegmentsSent: c.sentSegs, RetransmittedSegments: c.retransSegs,
		DataSegmentsReceived: c.recvSegs, OutOfOrderSegments: c.oooSegs,
		BytesSent: c.bytesSent, BytesRetransmitted: c.bytesRetrans,
		BytesAcked: c.bytesAcked, BytesReceived: c.bytesReceived,
		BusySeconds:          float64(c.busyUS) / 1e6,
		RwndLimitedSeconds:   float64(c.rwndUS) / 1e6,
		SndbufLimitedSeconds: float64(c.sndbufUS) / 1e6,
		ISCSI:                t.tot.iscsi,
		ConnectionErrors:     t.connErrTot,
		Recoveries:           t.recoveryTot,
		NOPPings:             t.pingTot,
		NOPRTTSecondsSum:     t.pingSum.Seconds(),
	}
	tot.ISCSI.Custom = copyCustom(tot.ISCSI.Custom)
	if len(t.causeCounts) > 0 {
		tot.ConnectionErrorsBy = make(map[string]uint64, len(t.causeCounts))
		for k, v := range t.causeCounts {
			tot.ConnectionErrorsBy[k] = v
		}
	}
	tot.DigestErrors = sat(t.tot.iscsi.DigestErr, t.digestConnErrs)
	rec := t.recoveryDur
	if o := t.ongoing; o != nil && now.After(o.started) {
		rec = satDur(rec, now.Sub(o.started))
	}
	tot.RecoverySeconds = rec.Seconds()
	return tot
}

func tcpReport(ti *TCPInfo) *TCPReport {
	return &TCPReport{
		KernelLen: ti.Len, State: ti.StateName(), CAState: ti.CAStateName(),
		RTTms: ms(ti.RTT), RTTVarms: ms(ti.RTTVar), MinRTTms: ms(ti.MinRTT), RTOms: ms(ti.RTO),
		Retransmits: ti.Retransmits, SndCwnd: ti.SndCwnd, SndMSS: ti.SndMSS, PMTU: ti.PMTU,
		Unacked: ti.Unacked, Lost: ti.Lost, RetransInFlight: ti.Retrans, TotalRetrans: ti.TotalRetrans,
		SegsOut: ti.SegsOut, SegsIn: ti.SegsIn, DataSegsOut: ti.DataSegsOut, DataSegsIn: ti.DataSegsIn,
		BytesSent: ti.BytesSent, BytesRetrans: ti.BytesRetrans, BytesAcked: ti.BytesAcked,
		BytesReceived: ti.BytesReceived, RcvOOOPack: ti.RcvOOOPack, DSACKDups: ti.DSACKDups,
		DeliveryRate: ti.DeliveryRate, BusySeconds: ti.BusyTime.Seconds(),
		RwndLimitedSeconds: ti.RwndLimited.Seconds(), SndbufLimitedSeconds: ti.SndbufLimited.Seconds(),
		SndWnd: ti.SndWnd, RcvWnd: ti.RcvWnd, NotsentBytes: ti.NotsentBytes,
		LastAckRecvms: ms(ti.LastAckRecv), TotalRTO: ti.TotalRTO,
	}
}

// WriteText prints the snapshot for goiscsiadm's text listings: one fact a
// line, indented under a heading, units spelled out.
func (s *Snapshot) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	p := func(indent int, format string, a ...any) {
		fmt.Fprintf(b, "%s%s\n", strings.Repeat("\t", indent), fmt.Sprintf(format, a...))
	}
	p(0, "Path: target %s portal %s iface %s sid %d", s.Target, s.Portal, s.Iface, s.SID)
	if s.Verdict.Healthy {
		p(1, "Health: OK")
	} else {
		p(1, "Health: %d %s", len(s.Verdict.Problems), plural(len(s.Verdict.Problems), "problem", "problems"))
		for _, pr := range s.Verdict.Problems {
			p(2, "%s", pr)
		}
	}
	if !s.Verdict.UnhealthySince.IsZero() {
		p(2, "unhealthy since %s", s.Verdict.UnhealthySince.Format(time.RFC3339))
	}
	for _, n := range s.Verdict.Notes {
		p(2, "note: %s", n)
	}
	if c := s.State.Current; c != "" {
		p(1, "State: %s since %s", c, s.State.Since.Format(time.RFC3339))
		for _, st := range s.State.Times {
			p(2, "%s: %s, entered %d %s", st.State, words(seconds(st.Seconds)), st.Entered, plural(int(min(st.Entered, 2)), "time", "times"))
		}
	}
	if t := s.TCP; t != nil {
		p(1, "TCP: %s, congestion state %s", t.State, t.CAState)
		p(2, "rtt %s (variance %s, min %s), rto %s", words(msDur(t.RTTms)), words(msDur(t.RTTVarms)), words(msDur(t.MinRTTms)), words(msDur(t.RTOms)))
		p(2, "cwnd %d segments, mss %d, pmtu %d, in flight %d (lost %d, retransmitted %d)", t.SndCwnd, t.SndMSS, t.PMTU, t.Unacked, t.Lost, t.RetransInFlight)
		p(2, "since connect: %s sent, %s received, %d segments retransmitted (%s)", bytesWords(t.BytesSent), bytesWords(t.BytesReceived), t.TotalRetrans, bytesWords(t.BytesRetrans))
	}
	if r := s.Rates; r != nil {
		p(1, "Over the last %s:", spanWords(seconds(r.SpanSeconds)))
		p(2, "sent %d data segments, %d retransmitted (%s)", r.DataSegmentsSent, r.RetransmittedSegments, fmtPercent(r.RetransmittedPercent))
		p(2, "received %d data segments, %d out of order (%s)", r.DataSegmentsReceived, r.OutOfOrderSegments, fmtPercent(r.OutOfOrderPercent))
		p(2, "TCP %s/s out, %s/s in; iSCSI %s/s tx, %s/s rx", bytesWords(uint64(r.SendBytesPerSecond)), bytesWords(uint64(r.ReceiveBytesPerSecond)),
			bytesWords(uint64(r.ISCSITxBytesPerSecond)), bytesWords(uint64(r.ISCSIRxBytesPerSecond)))
		p(2, "busy %.0f%% of the time; held back by the target's receive window %.0f%%, by the send buffer %.0f%%", r.BusyPercent, r.RwndLimitedPercent, r.SndbufLimitedPercent)
		p(2, "%d connection %s, %d digest %s", r.ConnectionErrors, plural(int(min(r.ConnectionErrors, 2)), "error", "errors"), r.DigestErrors, plural(int(min(r.DigestErrors, 2)), "error", "errors"))
	}
	if x := s.TCPRTT; x != nil {
		p(1, "TCP rtt over the window: %s", rttWords(x))
	}
	if x := s.NOPRTT; x != nil {
		p(1, "NOP-Out round trip over the window: %s", rttWords(x))
	}
	p(1, "Recoveries: %d, %s without I/O in all", s.Totals.Recoveries, words(seconds(s.Totals.RecoverySeconds)))
	for _, r := range s.Recoveries {
		line := fmt.Sprintf("%s: %s", r.Started.Format(time.RFC3339), words(seconds(r.DurationSeconds)))
		if r.Cause != "" {
			line += " after " + r.Cause
		}
		line += fmt.Sprintf(", %d %s", r.Attempts, plural(r.Attempts, "attempt", "attempts"))
		switch {
		case r.Ongoing:
			line += ", in progress"
		case r.Error != "":
			line += ", gave up: " + r.Error
		default:
			line += ", reinstated"
		}
		p(2, "%s", line)
	}
	if len(s.ConnErrors) > 0 {
		p(1, "Connection errors: %d", s.Totals.ConnectionErrors)
		for _, e := range s.ConnErrors {
			p(2, "%s: %s", e.Time.Format(time.RFC3339), e.Cause)
		}
	}
	p(1, "Logins: %d ok, %d failed", s.Logins.OK, s.Logins.Failed)
	if x := s.Logins.Latency; x != nil {
		p(2, "latency: %s", rttWords(x))
	}
	if s.HeldBack.Count > 0 {
		nums := make([]string, len(s.HeldBack.LUNs))
		for i, l := range s.HeldBack.LUNs {
			nums[i] = fmt.Sprint(l)
		}
		p(1, "LUNs held back from scans: %d (%s)", s.HeldBack.Count, strings.Join(nums, ", "))
	}
	if i := s.ISCSI; i != nil {
		p(1, "iSCSI counters: txdata_octets %d rxdata_octets %d scsicmd_pdus %d scsirsp_pdus %d dataout_pdus %d datain_pdus %d r2t_pdus %d digest_err %d timeout_err %d",
			i.TxDataOctets, i.RxDataOctets, i.SCSICmd, i.SCSIRsp, i.DataOut, i.DataIn, i.R2T, i.DigestErr, i.TimeoutErr)
		for _, k := range sortedKeys(i.Custom) {
			p(2, "%s: %d", k, i.Custom[k])
		}
	}
	return b.Flush()
}

// seconds converts float seconds back to a Duration for printing, bounded
// to about 30 years (Duration overflows at 292).
func seconds(s float64) time.Duration {
	if !(s >= 0) {
		return 0
	}
	return time.Duration(min(s, 1e9) * float64(time.Second))
}

func msDur(m float64) time.Duration { return seconds(m / 1000) }

func rttWords(x *RTTReport) string {
	return fmt.Sprintf("%d, min %s, avg %s, p90 %s, max %s", x.Count, words(msDur(x.MinMS)),
		words(msDur(x.AvgMS)), words(msDur(x.P90MS)), words(msDur(x.MaxMS)))
}

// bytesWords prints a byte count with a binary unit: "512 B", "1.5 KiB", "1.0 GiB".
func bytesWords(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 6 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i-1])
}
