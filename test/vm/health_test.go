//go:build vm

package vm

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/health"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestVMHealth proves per-path health on a real kernel (issue 23): 2% loss
// during a 64 MiB write makes goiscsid's retransmission figures rise, and
// they are what the kernel's ss shows for the session's socket; --health
// names the path and exits 4; the metrics endpoint serves text Prometheus's
// parser reads, with the same counters as --json; loss removed, the path is
// OK again and the log says each change once. Under 50 ms delay each way a
// NOP round trip is about 100 ms; a connection killed twice gives two
// recoveries with their durations.
func TestVMHealth(t *testing.T) {
	res := boot(t, "health", map[string]string{"INITIATOR": "goiscsi"})
	if b := res.First("before"); b == nil || b["rc"] != "0" || !strings.HasSuffix(string(b.Bytes("out")), "]: OK\n") {
		t.Errorf("before the loss: %v %q %q", b, b.Bytes("out"), b.Bytes("err"))
	}
	if w := res.First("write"); w == nil || w["rc"] != "0" {
		t.Fatalf("64 MiB write under 2%% loss: %v", w)
	} else {
		t.Logf("64 MiB written under 2%% loss in %s ms", w["ms"])
	}

	sick := res.First("sick")
	if sick == nil || sick["json_rc"] != "4" || sick["metrics_rc"] != "0" {
		t.Fatalf("under loss: %v (json %s)", sick, sick.Bytes("json"))
	}
	var j struct{ Health []health.Snapshot }
	if err := json.Unmarshal(sick.Bytes("json"), &j); err != nil || len(j.Health) != 1 || j.Health[0].TCP == nil {
		t.Fatalf("--health --json: %v %s", err, sick.Bytes("json"))
	}
	snap := j.Health[0]
	sid := strconv.Itoa(int(snap.SID))
	// ss -ti's "retrans:IN_FLIGHT/TOTAL" of the connection to the portal.
	m := regexp.MustCompile(`retrans:\d+/(\d+)`).FindSubmatch(sick.Bytes("ss"))
	if m == nil {
		t.Fatalf("no retrans in ss -ti:\n%s", sick.Bytes("ss"))
	}
	ssRetrans, _ := strconv.Atoi(string(m[1]))
	got := int(snap.TCP.TotalRetrans)
	// ss reads the socket a moment after goiscsid: a NOP-Out lost in between
	// may add one or two.
	if got == 0 || ssRetrans < got || ssRetrans > got+2 {
		t.Errorf("goiscsid read %d retransmissions, ss -ti %d a moment later:\n%s", got, ssRetrans, sick.Bytes("ss"))
	}
	if snap.Totals.RetransmittedSegments < uint64(got) || snap.Rates == nil || snap.Rates.RetransmittedSegments == 0 {
		t.Errorf("totals %d retransmitted, window %+v", snap.Totals.RetransmittedSegments, snap.Rates)
	}
	t.Logf("retransmitted %d segments (ss: %d), window %.1f%% of %d; verdict %q", got, ssRetrans,
		snap.Rates.RetransmittedPercent, snap.Rates.DataSegmentsSent, snap.Verdict.String())
	if snap.Verdict.Healthy || !strings.Contains(snap.Verdict.String(), "retransmitted") {
		t.Errorf("verdict under loss %q, want the retransmissions", snap.Verdict.String())
	}

	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(sick.Bytes("metrics")))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the metrics: %v\n%s", err, sick.Bytes("metrics"))
	}
	labels := map[string]string{"target": snap.Target, "portal": snap.Portal, "iface": snap.Iface, "sid": sid}
	value := func(name string) float64 {
		t.Helper()
		f := fams[name]
	next:
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && l.GetValue() != want {
					continue next
				}
			}
			return metricNumber(mt)
		}
		t.Errorf("no %s%v in the metrics", name, labels)
		return -1
	}
	// The scrape came after --json's fresh sample: the same counters, or
	// a sample later.
	if v := value("goiscsi_session_tcp_retransmitted_segments_total"); v < float64(snap.Totals.RetransmittedSegments) ||
		v > float64(snap.Totals.RetransmittedSegments)+2 {
		t.Errorf("metrics: %v retransmitted segments, --json %d", v, snap.Totals.RetransmittedSegments)
	}
	if v := value("goiscsi_session_iscsi_tx_bytes_total"); v < float64(snap.Totals.ISCSI.TxDataOctets) || v < 64<<20 {
		t.Errorf("metrics: iSCSI tx bytes %v, --json %d, want the 64 MiB written", v, snap.Totals.ISCSI.TxDataOctets)
	}
	if v := value("goiscsi_session_healthy"); v != 0 {
		t.Errorf("metrics: healthy %v under loss", v)
	}

	txt := res.First("sick_text")
	out := string(txt.Bytes("out"))
	if want := "[sid: " + sid + ", target: " + snap.Target + ", portal: " + snap.Portal + ", iface: default]: UNHEALTHY\n"; txt == nil ||
		txt["rc"] != "4" || !strings.HasPrefix(out, want) || !strings.Contains(out, "retransmitted") {
		t.Errorf("--health under loss: exit %s\n%s\nstderr %s; want exit 4 and %q first", txt["rc"], out, txt.Bytes("err"), want)
	}

	after := res.First("after")
	if after == nil || after["rc"] != "0" || after["unhealthy_logs"] != "1" || after["healthy_logs"] != "1" {
		t.Errorf("after the loss: %v\n%s\nlog:\n%s", after, after.Bytes("out"), after.Bytes("log"))
	} else {
		t.Logf("OK again %s ms after the loss ended; log:\n%s", after["ms"], after.Bytes("log"))
	}
	delayed := res.First("delayed")
	var dl struct{ Health []health.Snapshot }
	if delayed == nil || json.Unmarshal(delayed.Bytes("json"), &dl) != nil || len(dl.Health) != 1 || dl.Health[0].NOPRTT == nil {
		t.Errorf("under 50 ms delay: %v %s", delayed, delayed.Bytes("json"))
	} else if n := dl.Health[0].NOPRTT; n.LastMS < 90 || n.LastMS > 300 {
		t.Errorf("NOP round trip under 50 ms delay each way: %.1f ms, want about 100", n.LastMS)
	} else {
		t.Logf("NOP round trip under 50 ms delay each way: %.1f ms (TCP rtt %.1f ms); verdict %q", n.LastMS, dl.Health[0].TCP.RTTms, dl.Health[0].Verdict.String())
	}

	killed := res.First("killed")
	var k struct{ Health []health.Snapshot }
	if killed == nil || json.Unmarshal(killed.Bytes("json"), &k) != nil || len(k.Health) != 1 {
		t.Fatalf("after two kills: %v %s", killed, killed.Bytes("json"))
	}
	ks := k.Health[0]
	if ks.Totals.Recoveries != 2 || len(ks.Recoveries) != 2 || killed["rc"] != "4" || !strings.Contains(ks.Verdict.String(), "2 recoveries") {
		t.Errorf("after two kills: exit %s, %d recoveries %+v, verdict %q", killed["rc"], ks.Totals.Recoveries, ks.Recoveries, ks.Verdict.String())
	}
	for _, r := range ks.Recoveries {
		if r.Ongoing || r.DurationSeconds <= 0 || r.Cause == "" || r.Error != "" {
			t.Errorf("recovery %+v: want one finished, with a duration and a cause", r)
		} else {
			t.Logf("recovery after %s: %.2f s, %d attempt(s)", r.Cause, r.DurationSeconds, r.Attempts)
		}
	}
	if r := res.First("rss"); r == nil || !strings.HasSuffix(string(r.Bytes("adopted")), "]: OK\n") {
		t.Errorf("after a restart: %v %s", r, r.Bytes("adopted"))
	} else {
		t.Logf("goiscsid RSS with one adopted session, endpoint on (after a scrape) %s kB, off %s kB", r["endpoint_on"], r["endpoint_off"])
	}
}

func metricNumber(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}
