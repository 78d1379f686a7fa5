package health

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestParseThresholds(t *testing.T) {
	th, err := ParseThresholds(map[string]string{
		"node.session.timeo.replacement_timeout": "120", // not ours: ignored
		KeyWindow:                                "10m",
		KeyRetransPercent:                        " 0.5 ",
		KeyMinSegments:                           "200",
		KeyOOOPercent:                            "0",
		KeyRTTms:                                 "2.5",
		KeyRTOStreak:                             "3",
		KeyMaxRecoveries:                         "0",
		KeyRecoveryWindow:                        "7200",
		KeyMaxDigestErrors:                       "2",
		KeySettle:                                "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Thresholds{Window: 10 * time.Minute, RetransPercent: 0.5, MinSegments: 200, OOOPercent: 0,
		RTT: 2500 * time.Microsecond, RTOStreak: 3, MaxRecoveries: 0, RecoveryWindow: 2 * time.Hour,
		MaxDigestErrors: 2, Settle: 0}
	if th != want {
		t.Errorf("got %+v\nwant %+v", th, want)
	}
	if th, err := ParseThresholds(nil); err != nil || th != DefaultThresholds() {
		t.Errorf("no keys: %+v %v", th, err)
	}
}

func TestParseThresholdsErrors(t *testing.T) {
	for _, c := range []struct{ key, val string }{
		{KeyWindow, "0"}, {KeyWindow, "-5m"}, {KeyWindow, "five"}, {KeyWindow, "500ms"}, {KeyWindow, "999999999999"},
		{KeyWindow, "9000h"}, {KeyRetransPercent, "101"}, {KeyRetransPercent, "NaN"}, {KeyRetransPercent, "-1"},
		{KeyRetransPercent, "1e400"}, {KeyMinSegments, "-1"}, {KeyMinSegments, "1.5"}, {KeyRTTms, "Inf"},
		{KeyRTTms, "-3"}, {KeyRTOStreak, "256"}, {KeyMaxRecoveries, "lots"}, {KeyRecoveryWindow, ""},
		{KeySettle, "-1"}, {KeyMaxDigestErrors, "0x10"},
	} {
		_, err := ParseThresholds(map[string]string{c.key: c.val})
		if err == nil {
			t.Errorf("%s = %q: no error", c.key, c.val)
			continue
		}
		if !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.val) {
			t.Errorf("%s = %q: error %q does not name key and value", c.key, c.val, err)
		}
	}
	_, err := ParseThresholds(map[string]string{"goiscsi.health.retrans_pct": "2"})
	if err == nil || !strings.Contains(err.Error(), "goiscsi.health.retrans_pct") {
		t.Errorf("misspelt key: %v", err)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(map[string]string{KeyInterval: "5", KeyWindow: "15m"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Interval != 5*time.Second || o.History != 15*time.Minute {
		t.Errorf("options %+v: history should follow the window", o)
	}
	o, err = ParseOptions(map[string]string{KeyHistory: "1h", KeyWindow: "15m"})
	if err != nil || o.History != time.Hour || o.Interval != 10*time.Second {
		t.Errorf("options %+v %v", o, err)
	}
	if _, err := ParseOptions(map[string]string{KeyInterval: "0"}); err == nil {
		t.Error("interval 0: no error")
	}
	if _, err := ParseOptions(map[string]string{KeyWindow: "soon"}); err == nil {
		t.Error("bad window: no error from ParseOptions")
	}
}

// confLines splits iscsid.conf-style text into key = value pairs, as
// goiscsid's conf package hands them over.
func confLines(s string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

func FuzzParseThresholds(f *testing.F) {
	for _, s := range []string{
		"goiscsi.health.window = 5m\ngoiscsi.health.retrans_percent = 1\n",
		"goiscsi.health.rtt_ms = 0.5\ngoiscsi.health.min_segments = 18446744073709551615\n",
		"goiscsi.health.recovery_window = 604800\ngoiscsi.health.settle = 0s\n",
		"goiscsi.health.interval = 1\ngoiscsi.health.history = 168h\n",
		"goiscsi.health.rto_streak = 255\ngoiscsi.health.ooo_percent = 100%\n",
		"goiscsi.health.bogus = 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := confLines(s)
		th, err := ParseThresholds(m)
		if err == nil {
			if th.Window < time.Second || th.Window > maxDuration || th.RecoveryWindow > maxDuration ||
				th.RTT < 0 || th.RTT > maxDuration || th.Settle < 0 || th.Settle > maxDuration ||
				!(th.RetransPercent >= 0 && th.RetransPercent <= 100) || !(th.OOOPercent >= 0 && th.OOOPercent <= 100) ||
				th.RTOStreak < 0 || th.MaxRecoveries < 0 || th.MaxDigestErrors < 0 {
				t.Fatalf("accepted out-of-range thresholds %+v from %q", th, s)
			}
			// Any accepted thresholds judge a tracker without trouble.
			tr := NewTracker(testID, Options{})
			tr.Sample(Sample{Time: at(0), TCP: &TCPInfo{Len: 280}})
			tr.Judge(at(1), th)
		} else {
			for k := range m {
				if strings.Contains(err.Error(), k) {
					return
				}
			}
			t.Fatalf("error %q names no key of %q", err, s)
		}
		o, err := ParseOptions(m)
		if err == nil && (o.Interval < time.Second || o.History < time.Second || o.History > maxDuration) {
			t.Fatalf("accepted options %+v from %q", o, s)
		}
	})
}
