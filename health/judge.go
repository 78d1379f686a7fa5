package health

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Verdict is a path's health at one moment: OK, or problems in words an
// operator can act on, such as "3.2% of segments retransmitted over the last
// 5 minutes (412 of 12875)".
type Verdict struct {
	Time    time.Time `json:"time"`
	Healthy bool      `json:"healthy"`
	// Problems, worst first; empty when Healthy.
	Problems []string `json:"problems,omitempty"`
	// Notes are facts worth showing that do not make the path unhealthy
	// (LUNs held back from scans).
	Notes []string `json:"notes,omitempty"`
	// UnhealthySince is when Evaluate last saw the path turn unhealthy, while
	// it has not yet reported it recovered; zero otherwise.
	UnhealthySince time.Time `json:"unhealthy_since,omitzero"`
}

// String returns "OK" or the problems joined by "; ".
func (v Verdict) String() string {
	if v.Healthy {
		return "OK"
	}
	return strings.Join(v.Problems, "; ")
}

// Transition is what Evaluate saw change.
type Transition int

// Transitions.
const (
	NoChange        Transition = iota // as before
	TurnedUnhealthy                   // the path was healthy and now has problems
	Recovered                         // the path has judged OK for Thresholds.Settle
)

// String returns "no change", "turned unhealthy" or "recovered".
func (tr Transition) String() string {
	switch tr {
	case NoChange:
		return "no change"
	case TurnedUnhealthy:
		return "turned unhealthy"
	case Recovered:
		return "recovered"
	}
	return fmt.Sprintf("transition %d", int(tr))
}

// Judge returns the path's health at now under th. It changes nothing, so
// listings and metrics scrapes may call it as often as they like; the daemon's
// sampling loop calls Evaluate instead.
func (t *Tracker) Judge(now time.Time, th Thresholds) Verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.judge(now, th.withDefaults())
}

// Evaluate judges the path like Judge and reports a transition once: when a
// healthy path first shows a problem, TurnedUnhealthy; when an unhealthy one
// has judged OK for th.Settle, Recovered; otherwise NoChange. The daemon
// calls it after each Sample and logs a warning with the verdict on
// TurnedUnhealthy and a notice on Recovered, so a bad path logs once, not
// every 10 seconds.
func (t *Tracker) Evaluate(now time.Time, th Thresholds) (Verdict, Transition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	th = th.withDefaults()
	v := t.judge(now, th)
	tr := NoChange
	switch {
	case !t.unhealthy && !v.Healthy:
		t.unhealthy, t.unhealthySince, t.okSince = true, now, time.Time{}
		tr = TurnedUnhealthy
	case t.unhealthy && !v.Healthy:
		t.okSince = time.Time{}
	case t.unhealthy && v.Healthy:
		if t.okSince.IsZero() {
			t.okSince = now
		}
		if now.Sub(t.okSince) >= th.Settle {
			t.unhealthy, t.unhealthySince, t.okSince = false, time.Time{}, time.Time{}
			tr = Recovered
		}
	}
	v.UnhealthySince = t.unhealthySince
	return v, tr
}

// figures are a window's sums: counter growth and the span it covers.
type figures struct {
	span                time.Duration
	records             int
	c                   counts
	tcp, sentKnown, ooo bool
	iscsi               bool
}

// window sums the records whose sample falls within (now-w, now].
func (t *Tracker) window(now time.Time, w time.Duration) figures {
	var f figures
	from := now.Add(-w)
	var first, last time.Time
	t.samples.each(func(r *record) {
		if !r.end.After(from) || r.end.After(now) {
			return
		}
		if r.start.IsZero() || !(r.hasTCP || r.hasISCSI) {
			return
		}
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
		if r.end.After(last) {
			last = r.end
		}
		f.records++
		f.c.add(&r.d)
		f.tcp = f.tcp || r.hasTCP
		f.sentKnown = f.sentKnown || r.sentKnown
		f.ooo = f.ooo || r.oooKnown
		f.iscsi = f.iscsi || r.hasISCSI
	})
	if f.records > 0 {
		f.span = last.Sub(first)
	}
	return f
}

// recoveriesIn returns the recoveries overlapping (now-w, now], the ongoing
// one included, and the time without I/O they account for within it.
func (t *Tracker) recoveriesIn(now time.Time, w time.Duration) (rs []recovery, stalled time.Duration) {
	from := now.Add(-w)
	overlap := func(s, e time.Time) time.Duration {
		if s.Before(from) {
			s = from
		}
		if e.After(now) {
			e = now
		}
		if e.Before(s) {
			return 0
		}
		return e.Sub(s)
	}
	t.recoveries.each(func(r *recovery) {
		if r.ended.After(from) && !r.started.After(now) {
			rs = append(rs, *r)
			stalled = satDur(stalled, overlap(r.started, r.ended))
		}
	})
	if o := t.ongoing; o != nil && !o.started.After(now) {
		rs = append(rs, *o)
		stalled = satDur(stalled, overlap(o.started, now))
	}
	return rs, stalled
}

// digestErrorsIn counts digest errors within (now-w, now]: connection errors
// for a digest mismatch plus growth of the kernel's digest_err counter.
func (t *Tracker) digestErrorsIn(now time.Time, w time.Duration, f *figures) uint64 {
	n := f.c.digestErr
	from := now.Add(-w)
	t.connErrors.each(func(e *connErrorEvent) {
		if e.digest && e.at.After(from) && !e.at.After(now) {
			n++
		}
	})
	return n
}

// pingsIn returns the NOP round trips within (now-w, now].
func (t *Tracker) pingsIn(now time.Time, w time.Duration) (n int, lo, hi, sum time.Duration) {
	from := now.Add(-w)
	t.pings.each(func(p *pingEvent) {
		if !p.at.After(from) || p.at.After(now) {
			return
		}
		if n == 0 || p.rtt < lo {
			lo = p.rtt
		}
		hi = max(hi, p.rtt)
		sum = satDur(sum, p.rtt)
		n++
	})
	return n, lo, hi, sum
}

// freshTCP returns the latest TCP_INFO if the latest sample, taken within the
// window, carried one: an old socket's figures say nothing after a failure.
func (t *Tracker) freshTCP(now time.Time, w time.Duration) *TCPInfo {
	if t.lastTCP == nil || t.lastTCPTime != t.lastTime || now.Sub(t.lastTime) > w || t.lastTime.After(now) {
		return nil
	}
	return t.lastTCP
}

func (t *Tracker) judge(now time.Time, th Thresholds) Verdict {
	v := Verdict{Time: now, UnhealthySince: t.unhealthySince}
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }

	if o := t.ongoing; o != nil && !o.started.After(now) {
		s := fmt.Sprintf("in recovery for %s", words(now.Sub(o.started)))
		if o.cause != "" {
			s += " after " + o.cause
		}
		if o.attempts > 0 {
			s += fmt.Sprintf(", %d login %s so far", o.attempts, plural(o.attempts, "attempt", "attempts"))
		}
		probs = append(probs, s)
	}
	if rs, stalled := t.recoveriesIn(now, th.RecoveryWindow); th.MaxRecoveries > 0 && len(rs) > th.MaxRecoveries {
		add("%d recoveries in the last %s (%s), %s without I/O",
			len(rs), spanWords(th.RecoveryWindow), causeSummary(rs), words(stalled))
	}

	f := t.window(now, th.Window)
	if ti := t.freshTCP(now, th.Window); ti != nil {
		if th.RTOStreak > 0 && int(ti.Retransmits) >= th.RTOStreak {
			add("no ACK for %s: TCP retransmission timer expired %d times in a row",
				words(ti.LastAckRecv), ti.Retransmits)
		}
		if th.RTT > 0 && ti.RTT > th.RTT {
			add("round-trip time %s (threshold %s)", words(ti.RTT), words(th.RTT))
		}
	}
	if th.RetransPercent > 0 && f.sentKnown && f.c.sentSegs > 0 && f.c.sentSegs >= th.MinSegments {
		if p := percent(f.c.retransSegs, f.c.sentSegs); p > th.RetransPercent {
			add("%s of segments retransmitted over the last %s (%d of %d)",
				fmtPercent(p), spanWords(f.span), f.c.retransSegs, f.c.sentSegs)
		}
	}
	if th.OOOPercent > 0 && f.ooo && f.c.recvSegs > 0 && f.c.recvSegs >= th.MinSegments {
		if p := percent(f.c.oooSegs, f.c.recvSegs); p > th.OOOPercent {
			add("%s of received segments out of order over the last %s (%d of %d): the target's packets are being lost",
				fmtPercent(p), spanWords(f.span), f.c.oooSegs, f.c.recvSegs)
		}
	}
	if n := t.digestErrorsIn(now, th.Window, &f); n > uint64(th.MaxDigestErrors) {
		add("%d digest %s in the last %s", n, plural(int(min(n, 2)), "error", "errors"), spanWords(th.Window))
	}
	if n, _, _, sum := t.pingsIn(now, th.Window); th.RTT > 0 && n > 0 {
		if avg := sum / time.Duration(n); avg > th.RTT {
			add("NOP-Out round trip %s on average over the last %s (threshold %s)",
				words(avg), spanWords(th.Window), words(th.RTT))
		}
	}
	if t.heldBackCount > 0 {
		s := fmt.Sprintf("%d %s held back from scans", t.heldBackCount, plural(t.heldBackCount, "LUN", "LUNs"))
		if len(t.heldBack) > 0 {
			nums := make([]string, len(t.heldBack))
			for i, l := range t.heldBack {
				nums[i] = fmt.Sprint(l)
			}
			s += ": " + strings.Join(nums, ", ")
			if len(t.heldBack) < t.heldBackCount {
				s += ", …"
			}
		}
		v.Notes = append(v.Notes, s)
	}
	v.Problems = probs
	v.Healthy = len(probs) == 0
	return v
}

// causeSummary names the recoveries' causes with counts, most frequent first:
// "ISCSI_ERR_TCP_CONN_CLOSE (1020) ×2, ISCSI_ERR_NOP_TIMEDOUT (1022)".
func causeSummary(rs []recovery) string {
	n := map[string]int{}
	for _, r := range rs {
		c := r.cause
		if c == "" {
			c = "cause unknown"
		}
		n[c]++
	}
	ks := sortedKeys(n)
	sort.SliceStable(ks, func(i, j int) bool { return n[ks[i]] > n[ks[j]] })
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = k
		if n[k] > 1 {
			parts[i] += fmt.Sprintf(" ×%d", n[k])
		}
	}
	return strings.Join(parts, ", ")
}

func percent(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// fmtPercent prints a percentage with two significant figures below 10%
// ("0.35%", "3.2%") and whole numbers above ("41%").
func fmtPercent(p float64) string {
	switch {
	case p >= 10:
		return fmt.Sprintf("%.0f%%", p)
	case p >= 1:
		return fmt.Sprintf("%.1f%%", p)
	case p >= 0.1:
		return fmt.Sprintf("%.2f%%", p)
	}
	return fmt.Sprintf("%.3f%%", p)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// words prints a duration the way a person reads it: "180 ms", "1.5 ms",
// "6.2 s", "41 s", "4 min 50 s", "2 h 5 min".
func words(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + words(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d/time.Microsecond)
	case d < 10*time.Millisecond:
		return trimZero(fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))) + " ms"
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", math.Round(float64(d)/float64(time.Millisecond)))
	case d < 10*time.Second:
		return trimZero(fmt.Sprintf("%.1f", d.Seconds())) + " s"
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", math.Round(d.Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		m, s := d/time.Minute, (d%time.Minute)/time.Second
		if s == 0 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %d s", m, s)
	}
	d = d.Round(time.Minute)
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	if m == 0 {
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

// spanWords names a span after "the last": "hour", "5 minutes", "minute",
// "4 min 50 s". A span within 2% of whole minutes or hours is rounded to them
// (samples come a little late or early).
func spanWords(d time.Duration) string {
	near := func(unit time.Duration) (int64, bool) {
		n := int64(math.Round(float64(d) / float64(unit)))
		if n < 1 {
			return 0, false
		}
		diff := math.Abs(float64(d) - float64(time.Duration(n)*unit))
		return n, diff <= 0.02*float64(d)
	}
	if n, ok := near(time.Hour); ok {
		if n == 1 {
			return "hour"
		}
		return fmt.Sprintf("%d hours", n)
	}
	if n, ok := near(time.Minute); ok {
		if n == 1 {
			return "minute"
		}
		return fmt.Sprintf("%d minutes", n)
	}
	if d >= 10*time.Second && d < time.Minute {
		return fmt.Sprintf("%.0f seconds", math.Round(d.Seconds()))
	}
	return words(d)
}
