package health

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Prefix is the start of every iscsid.conf key this package reads. The keys
// are goiscsi's own (open-iscsi has no such thing), so they sit under a prefix
// no open-iscsi key uses; stock iscsid ignores unknown keys.
const Prefix = "goiscsi.health."

// Keys of iscsid.conf that ParseThresholds and ParseOptions read. A duration
// is a whole number of seconds ("300") or a Go duration with its unit
// ("5m", "90s", "1h"); 0 for a percentage, count, RTT or settle time turns
// that check off (interval, history, window and recovery_window must be at
// least a second).
const (
	KeyInterval        = Prefix + "interval"          // sampling interval (Options.Interval)
	KeyHistory         = Prefix + "history"           // how far back samples are kept (Options.History)
	KeyWindow          = Prefix + "window"            // Thresholds.Window
	KeyRetransPercent  = Prefix + "retrans_percent"   // Thresholds.RetransPercent
	KeyMinSegments     = Prefix + "min_segments"      // Thresholds.MinSegments
	KeyOOOPercent      = Prefix + "ooo_percent"       // Thresholds.OOOPercent
	KeyRTTms           = Prefix + "rtt_ms"            // Thresholds.RTT, in milliseconds
	KeyRTOStreak       = Prefix + "rto_streak"        // Thresholds.RTOStreak
	KeyMaxRecoveries   = Prefix + "max_recoveries"    // Thresholds.MaxRecoveries
	KeyRecoveryWindow  = Prefix + "recovery_window"   // Thresholds.RecoveryWindow
	KeyMaxDigestErrors = Prefix + "max_digest_errors" // Thresholds.MaxDigestErrors
	KeySettle          = Prefix + "settle"            // Thresholds.Settle
)

// Thresholds say when a path is unhealthy. A zero value of a check's field
// turns that check off; a zero Window or RecoveryWindow means the default.
type Thresholds struct {
	// Window is the span over which rates (retransmissions, out-of-order
	// segments, digest errors, NOP round trips) are taken. Default 5 minutes:
	// long enough that a 10-second sampler has 30 samples and a burst of
	// loss during one backup job shows, short enough that a repaired cable
	// shows as repaired within minutes.
	Window time.Duration
	// RetransPercent: more than this share of sent data segments
	// retransmitted over Window is a problem. Default 1%. A healthy LAN or
	// metro path retransmits well under 0.1%; iSCSI's request/response
	// traffic often has few segments in flight, so a lost segment is
	// repaired by the retransmission timer (at least 200 ms on Linux) rather
	// than by fast retransmit, and 1% loss already turns a 1 GiB restore from
	// seconds into minutes.
	RetransPercent float64
	// MinSegments is the number of data segments sent (for RetransPercent)
	// or received (for OOOPercent) within Window below which that share is
	// not judged: on an idle path
	// that sends only NOP-Outs, 2 retransmissions of 60 segments are 3% and
	// mean nothing. Default 1000 (about 1.4 MB with a 1448-byte MSS).
	MinSegments uint64
	// OOOPercent: more than this share of received data segments arriving
	// out of order over Window is a problem. The initiator cannot see the
	// target's retransmissions, but a segment the target lost makes the
	// ones behind it arrive out of order (TCPInfo.RcvOOOPack, Linux 5.4), so
	// this is the read direction's loss figure. Measured on a paced
	// loopback path with a handful of segments in flight (TestLossInNetns,
	// HEALTH_LOSS_TABLE=1): 0.5% of the target's packets lost gave 0.7–1.2%
	// out of order, 1% gave 1.4–1.7%, 3% gave 5.0–5.5%; with more in flight
	// (a busy LAN) one loss puts more segments out of order. Default 2%:
	// about the 1% retransmission threshold's loss on the least
	// sensitive path, less loss on busier ones.
	OOOPercent float64
	// RTT: a smoothed TCP round-trip time, or an average NOP-Out round trip
	// over Window, above this is a problem. Default 100 ms: iSCSI runs on
	// LANs and metro links (well under 10 ms); with one command in flight
	// every I/O costs at least one round trip, so 100 ms caps a queue slot
	// at 10 I/Os a second, and a LAN path that slow is congested, bloated
	// or misrouted. WAN replication setups raise it.
	RTT time.Duration
	// RTOStreak: the latest sample showing the retransmission timer expired
	// this many times in a row for the same segment (nothing acknowledged
	// for seconds) is a problem. Default 2: one expiry is a lost tail
	// segment, two in a row (over 600 ms of silence) is a path that is down
	// right now, before iSCSI's own NOP timeout (5 s + 5 s by default) ends
	// the connection.
	RTOStreak int
	// MaxRecoveries: more session recoveries (connection failure, relogin)
	// than this within RecoveryWindow is a problem. Default 1: one recovery
	// an hour is a target failover or a switch reboot; two is a path that
	// keeps failing. A recovery in progress is always a problem.
	MaxRecoveries int
	// RecoveryWindow is the span MaxRecoveries counts over. Default 1 hour.
	RecoveryWindow time.Duration
	// MaxDigestErrors: more header or data digest errors than this within
	// Window is a problem. Default 0: a digest error is data damaged in
	// flight although TCP's checksum passed (a bad NIC offload, memory, a
	// middlebox); one is already worth a warning.
	MaxDigestErrors int
	// Settle is how long a path that was unhealthy must judge OK before
	// Evaluate reports it recovered, so a figure hovering at a threshold does
	// not log a warning and a recovery every sample. Default 1 minute.
	Settle time.Duration
}

// DefaultThresholds returns the defaults, each explained at its field.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Window:          5 * time.Minute,
		RetransPercent:  1,
		MinSegments:     1000,
		OOOPercent:      2,
		RTT:             100 * time.Millisecond,
		RTOStreak:       2,
		MaxRecoveries:   1,
		RecoveryWindow:  time.Hour,
		MaxDigestErrors: 0,
		Settle:          time.Minute,
	}
}

// Options size a Tracker.
type Options struct {
	// Interval is how often the daemon samples (TCP_INFO and GET_STATS).
	// Default 10 s: one getsockopt and one netlink round trip per session,
	// 100 a second for 1000 sessions, and fine enough to measure a 41-second
	// stall.
	Interval time.Duration
	// History is how far back samples are kept; it should be at least
	// Thresholds.Window. Default 5 minutes. The ring holds
	// History/Interval+1 samples, at most MaxSamples.
	History time.Duration
}

// MaxSamples bounds a Tracker's sample ring whatever the Options say (a day
// at the default interval).
const MaxSamples = 8640

// DefaultOptions returns the defaults, each explained at its field.
func DefaultOptions() Options {
	return Options{Interval: 10 * time.Second, History: 5 * time.Minute}
}

// maxDuration bounds every configured duration: a week is beyond any useful
// window and keeps sums of durations far from overflowing.
const maxDuration = 7 * 24 * time.Hour

var knownKeys = map[string]bool{
	KeyInterval: true, KeyHistory: true, KeyWindow: true, KeyRetransPercent: true,
	KeyMinSegments: true, KeyOOOPercent: true, KeyRTTms: true, KeyRTOStreak: true,
	KeyMaxRecoveries: true, KeyRecoveryWindow: true, KeyMaxDigestErrors: true, KeySettle: true,
}

// checkKeys refuses a key under Prefix that this package does not know: it is
// goiscsi's own namespace, so an unknown key there is a typo, and a typo must
// not silently leave a default in force.
func checkKeys(m map[string]string) error {
	for _, k := range sortedKeys(m) {
		if strings.HasPrefix(k, Prefix) && !knownKeys[k] {
			return fmt.Errorf("health: unknown key %s (known: %s)", k, strings.Join(sortedKeys(knownKeys), ", "))
		}
	}
	return nil
}

// ParseThresholds returns DefaultThresholds with the values m sets, m being
// iscsid.conf's key = value pairs (keys outside Prefix are ignored). A value
// that is not a number of the right kind, is negative, not finite or out of
// range, or an unknown key under Prefix, is an error naming the key and value.
func ParseThresholds(m map[string]string) (Thresholds, error) {
	th := DefaultThresholds()
	if err := checkKeys(m); err != nil {
		return Thresholds{}, err
	}
	var err error
	set := func(key string, parse func(string) error) {
		v, ok := m[key]
		if !ok || err != nil {
			return
		}
		if perr := parse(strings.TrimSpace(v)); perr != nil {
			err = fmt.Errorf("health: %s = %q: %w", key, v, perr)
		}
	}
	set(KeyWindow, durationInto(&th.Window, false))
	set(KeyRetransPercent, percentInto(&th.RetransPercent))
	set(KeyMinSegments, func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n > 1<<40 {
			return fmt.Errorf("want a whole number of segments from 0 to %d", uint64(1)<<40)
		}
		th.MinSegments = n
		return nil
	})
	set(KeyOOOPercent, percentInto(&th.OOOPercent))
	set(KeyRTTms, func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > float64(maxDuration/time.Millisecond) {
			return fmt.Errorf("want milliseconds from 0 to %d", maxDuration/time.Millisecond)
		}
		th.RTT = time.Duration(f * float64(time.Millisecond))
		return nil
	})
	set(KeyRTOStreak, intInto(&th.RTOStreak, 255)) // tcpi_retransmits is a u8
	set(KeyMaxRecoveries, intInto(&th.MaxRecoveries, 1_000_000))
	set(KeyRecoveryWindow, durationInto(&th.RecoveryWindow, false))
	set(KeyMaxDigestErrors, intInto(&th.MaxDigestErrors, 1_000_000))
	set(KeySettle, durationInto(&th.Settle, true))
	if err != nil {
		return Thresholds{}, err
	}
	return th, nil
}

// ParseOptions returns DefaultOptions with the values m sets (see
// ParseThresholds). Without goiscsi.health.history, History follows
// goiscsi.health.window when that is longer, so the samples cover the window.
func ParseOptions(m map[string]string) (Options, error) {
	o := DefaultOptions()
	if err := checkKeys(m); err != nil {
		return Options{}, err
	}
	for _, kv := range []struct {
		key string
		p   *time.Duration
	}{{KeyInterval, &o.Interval}, {KeyHistory, &o.History}} {
		if v, ok := m[kv.key]; ok {
			if err := durationInto(kv.p, false)(strings.TrimSpace(v)); err != nil {
				return Options{}, fmt.Errorf("health: %s = %q: %w", kv.key, v, err)
			}
		}
	}
	if _, ok := m[KeyHistory]; !ok {
		th, err := ParseThresholds(m)
		if err != nil {
			return Options{}, err
		}
		if th.Window > o.History {
			o.History = th.Window
		}
	}
	return o, nil
}

// durationInto parses whole seconds or a Go duration with a unit, from 1 s
// (0 too if zeroOK) to a week.
func durationInto(p *time.Duration, zeroOK bool) func(string) error {
	return func(s string) error {
		var d time.Duration
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			if n > uint64(maxDuration/time.Second) {
				return fmt.Errorf("more than a week")
			}
			d = time.Duration(n) * time.Second
		} else {
			pd, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("want whole seconds or a duration such as 5m")
			}
			d = pd
		}
		switch {
		case d < 0:
			return fmt.Errorf("negative")
		case d > maxDuration:
			return fmt.Errorf("more than a week")
		case d == 0 && zeroOK:
		case d < time.Second:
			return fmt.Errorf("less than a second")
		}
		*p = d
		return nil
	}
}

func percentInto(p *float64) func(string) error {
	return func(s string) error {
		s = strings.TrimSuffix(s, "%")
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			return fmt.Errorf("want a percentage from 0 to 100")
		}
		*p = f
		return nil
	}
}

func intInto(p *int, max int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > max {
			return fmt.Errorf("want a whole number from 0 to %d", max)
		}
		*p = n
		return nil
	}
}

// withDefaults fills a zero Window or RecoveryWindow from the defaults, so a
// Thresholds{} literal with a few checks set still has spans to judge over.
func (th Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if th.Window <= 0 {
		th.Window = d.Window
	}
	if th.RecoveryWindow <= 0 {
		th.RecoveryWindow = d.RecoveryWindow
	}
	return th
}
