//go:build vm

package vm

import (
	"os"
	"testing"
)

// BenchmarkVMStorm boots the storm scenario once per iteration for each
// initiator and reports the medians of its rounds as metrics (milliseconds; RSS
// in kB), so that `benchstat` can compare stock and goiscsi, or two goiscsi
// commits, run in the same conditions. Under TCG compare ratios, not absolute
// times. Small by default (8 targets, 50 ms each way, 3 rounds); the
// GOISCSI_STORM_N, _DELAY and _ROUNDS variables change it:
//
//	go test -tags vm -run '^$' -bench VMStorm -benchtime 1x ./test/vm/
func BenchmarkVMStorm(b *testing.B) {
	env := map[string]string{"N": "8", "DELAY": "50ms", "ROUNDS": "3"}
	for k := range env {
		if v := os.Getenv("GOISCSI_STORM_" + k); v != "" {
			env[k] = v
		}
	}
	for _, initiator := range []string{"stock", "goiscsi"} {
		b.Run(initiator, func(b *testing.B) {
			e := map[string]string{"INITIATOR": initiator}
			for k, v := range env {
				e[k] = v
			}
			var rounds, rss []Record
			for i := 0; i < b.N; i++ {
				res := boot(b, "storm", e)
				rounds = append(rounds, res.Find("storm")...)
				rss = append(rss, res.Find("rss")...)
			}
			if len(rounds) == 0 {
				b.Fatal("no round finished")
			}
			for _, k := range []string{"single_ms", "login_all_ms", "devices_ms", "session_ms", "session_p3_ms", "logout_all_ms"} {
				var xs []float64
				for _, r := range rounds {
					xs = append(xs, r.Float(k))
				}
				_, med := SortedFloats(xs)
				b.ReportMetric(med, k)
			}
			for _, phase := range []string{"idle", "sessions"} {
				var xs []float64
				for _, r := range rss {
					if r["phase"] == phase {
						xs = append(xs, r.Float("kb"))
					}
				}
				if len(xs) > 0 {
					_, med := SortedFloats(xs)
					b.ReportMetric(med, "rss_"+phase+"_kB")
				}
			}
			// The wall time of a boot is not what is measured.
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: %d rounds of %s targets, delay %s", initiator, len(rounds), env["N"], env["DELAY"])
		})
	}
}
