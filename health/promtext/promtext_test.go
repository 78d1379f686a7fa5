package promtext

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads text with Prometheus's own parser (the one its scraper uses
// for this format).
func parse(t testing.TB, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the output: %v\n%s", err, text)
	}
	return fams
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestWriteRoundTrip(t *testing.T) {
	nasty := "a\\b\"c\nd – ünïcödé {x=\"y\"}"
	fams := []Family{
		{Name: "z_gauge", Help: "last family, written last", Type: Gauge, Samples: []Sample{
			{Labels: []Label{{"sid", "2"}}, Value: math.Inf(1)},
			{Labels: []Label{{"sid", "1"}}, Value: math.NaN()},
			{Labels: []Label{{"sid", "3"}}, Value: math.Inf(-1)},
		}},
		{Name: "a_total", Help: "help with \\ and\nnewline and \"quotes\"", Type: Counter, Samples: []Sample{
			{Labels: []Label{{"target", nasty}, {"portal", "10.0.0.1:3260,1"}}, Value: 1 << 40},
			{Labels: []Label{{"target", ""}, {"portal", "p"}}, Value: 0.0042},
			{Value: 1.8e19},
		}},
		{Name: "m_seconds", Help: "a summary", Type: Summary, Samples: []Sample{
			{Suffix: "_count", Labels: []Label{{"sid", "1"}}, Value: 3},
			{Labels: []Label{{"sid", "1"}, {"quantile", "1"}}, Value: 0.3},
			{Labels: []Label{{"sid", "1"}, {"quantile", "0.5"}}, Value: 0.25},
			{Suffix: "_sum", Labels: []Label{{"sid", "1"}}, Value: 0.75},
			{Labels: []Label{{"sid", "1"}, {"quantile", "0"}}, Value: 0.2},
		}},
		{Name: "h", Type: Histogram, Samples: []Sample{
			{Suffix: "_bucket", Labels: []Label{{"le", "+Inf"}}, Value: 4},
			{Suffix: "_bucket", Labels: []Label{{"le", "0.1"}}, Value: 1},
			{Suffix: "_sum", Value: 2.5},
			{Suffix: "_count", Value: 4},
		}},
		{Name: "u:colon", Type: Untyped, Samples: []Sample{{Value: -7}}},
	}
	var b bytes.Buffer
	if err := Write(&b, fams); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	t.Logf("\n%s", text)

	// Families sorted by name; samples sorted by labels; quantiles in order.
	wantOrder := []string{"# HELP a_total", "# TYPE h histogram", `h_bucket{le="0.1"} 1`, `h_bucket{le="+Inf"} 4`,
		`m_seconds{sid="1",quantile="0"} 0.2`, `m_seconds{sid="1",quantile="0.5"} 0.25`, `m_seconds{sid="1",quantile="1"} 0.3`,
		`m_seconds_sum{sid="1"} 0.75`, `m_seconds_count{sid="1"} 3`, "u:colon -7",
		`z_gauge{sid="1"} NaN`, `z_gauge{sid="2"} +Inf`, `z_gauge{sid="3"} -Inf`}
	pos := 0
	for _, w := range wantOrder {
		i := strings.Index(text[pos:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order", w)
		}
		pos += i
	}
	for _, w := range []string{
		`a_total{target="a\\b\"c\nd – ünïcödé {x=\"y\"}",portal="10.0.0.1:3260,1"} 1099511627776`,
		`a_total{target="",portal="p"} 0.0042`, "a_total 1.8e+19",
		`# HELP a_total help with \\ and\nnewline and "quotes"`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("output lacks %s", w)
		}
	}

	got := parse(t, b.Bytes())
	if len(got) != len(fams) {
		t.Fatalf("parsed %d families, wrote %d", len(got), len(fams))
	}
	a := got["a_total"]
	if a.GetType() != dto.MetricType_COUNTER || a.GetHelp() != "help with \\ and\nnewline and \"quotes\"" {
		t.Errorf("a_total: type %v help %q", a.GetType(), a.GetHelp())
	}
	found := false
	for _, m := range a.GetMetric() {
		if labelMap(m)["target"] == nasty {
			found = true
			if m.GetCounter().GetValue() != 1<<40 {
				t.Errorf("value %v", m.GetCounter().GetValue())
			}
		}
	}
	if !found {
		t.Errorf("label value did not round-trip: %v", a.GetMetric())
	}
	z := got["z_gauge"].GetMetric()
	if !math.IsNaN(z[0].GetGauge().GetValue()) || !math.IsInf(z[1].GetGauge().GetValue(), 1) || !math.IsInf(z[2].GetGauge().GetValue(), -1) {
		t.Errorf("special values: %v", z)
	}
	s := got["m_seconds"].GetMetric()[0].GetSummary()
	if s.GetSampleCount() != 3 || s.GetSampleSum() != 0.75 || len(s.GetQuantile()) != 3 || s.GetQuantile()[1].GetValue() != 0.25 {
		t.Errorf("summary %v", s)
	}
	if h := got["h"].GetMetric()[0].GetHistogram(); h.GetSampleCount() != 4 || len(h.GetBucket()) != 2 {
		t.Errorf("histogram %v", h)
	}
}

func TestWriteRefuses(t *testing.T) {
	for name, f := range map[string]Family{
		"bad name":       {Name: "9lives", Type: Gauge},
		"dash in name":   {Name: "a-b", Type: Gauge},
		"bad label":      {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"1x", "v"}}}}},
		"reserved label": {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"__name__", "v"}}}}},
		"label twice":    {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"x", "1"}, {"x", "2"}}}}},
		"line twice":     {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"x", "1"}, {"y", "2"}}}, {Labels: []Label{{"y", "2"}, {"x", "1"}}}}},
		"bucket twice": {Name: "h", Type: Histogram, Samples: []Sample{{Suffix: "_bucket", Labels: []Label{{"le", "1"}}},
			{Suffix: "_bucket", Labels: []Label{{"le", "1"}}}, {Suffix: "_bucket", Labels: []Label{{"le", "+Inf"}}}, {Suffix: "_sum"}, {Suffix: "_count"}}},
		"bad utf-8":         {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"x", "\xff"}}}}},
		"suffix on gauge":   {Name: "a", Type: Gauge, Samples: []Sample{{Suffix: "_sum"}}},
		"summary no q":      {Name: "a", Type: Summary, Samples: []Sample{{}}},
		"bucket without le": {Name: "a", Type: Histogram, Samples: []Sample{{Suffix: "_bucket"}}},
		"quantile on gauge": {Name: "a", Type: Gauge, Samples: []Sample{{Labels: []Label{{"quantile", "0.5"}}}}},
		"unknown type":      {Name: "a", Type: "meter"},
	} {
		var b bytes.Buffer
		if err := Write(&b, []Family{f}); err == nil {
			t.Errorf("%s: no error", name)
		} else if b.Len() != 0 {
			t.Errorf("%s: wrote %q before failing", name, b.String())
		}
	}
	if err := Write(&bytes.Buffer{}, []Family{{Name: "a", Type: Gauge}, {Name: "a", Type: Counter}}); err == nil {
		t.Error("family twice: no error")
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", -3: "-3", 1 << 52: "4503599627370496", 1e15: "1000000000000000",
		0.5: "0.5", 1.0 / 3: "0.3333333333333333", 1 << 60: "1.152921504606847e+18", 1e-9: "1e-09",
	} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
	if FormatValue(math.Copysign(0, -1)) != "0" {
		t.Error("-0")
	}
}

// FuzzLabelValue writes a label value and HELP text from fuzz bytes and
// checks that Prometheus's parser reads back exactly what went in.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "plain", `back\slash`, `"quoted"`, "new\nline", "\\n literal", "ünï", "}{,=\"", "\t\r\x00"} {
		f.Add(s, s, 1.5)
	}
	f.Fuzz(func(t *testing.T, value, help string, v float64) {
		fam := Family{Name: "fuzz_metric", Help: help, Type: Gauge,
			Samples: []Sample{{Labels: []Label{{"l", value}, {"m", "x"}}, Value: v}}}
		var b bytes.Buffer
		err := Write(&b, []Family{fam})
		if !utf8.ValidString(value) || !utf8.ValidString(help) {
			if err == nil {
				t.Fatalf("invalid UTF-8 accepted: %q %q", value, help)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused valid input %q %q: %v", value, help, err)
		}
		got := parse(t, b.Bytes())["fuzz_metric"]
		if got == nil || len(got.GetMetric()) != 1 {
			t.Fatalf("parsed %v from %q", got, b.String())
		}
		// The parser skips blanks between the name and the text, so
		// leading blanks of HELP text do not survive in any writer's output.
		if gh, want := got.GetHelp(), strings.TrimLeft(help, " \t"); gh != want {
			t.Fatalf("help %q came back as %q", help, gh)
		}
		m := got.GetMetric()[0]
		if lv := labelMap(m)["l"]; lv != value {
			t.Fatalf("label %q came back as %q\n%s", value, lv, b.String())
		}
		gv := m.GetGauge().GetValue()
		if !(gv == v || math.IsNaN(v) && math.IsNaN(gv)) {
			t.Fatalf("value %v came back as %v (%s)", v, gv, FormatValue(v))
		}
	})
}

// BenchmarkWrite is a scrape of goiscsid with 64 sessions: 40 families of 64
// series with the target, portal, iface and sid labels.
func BenchmarkWrite(b *testing.B) {
	fams := make([]Family, 40)
	for m := range fams {
		fams[m] = Family{Name: fmt.Sprintf("goiscsi_metric_%d", m), Help: "a metric", Type: Gauge}
		for s := range 64 {
			fams[m].Samples = append(fams[m].Samples, Sample{Labels: []Label{
				{"target", fmt.Sprintf("iqn.2003-01.org.example:t%d", s)}, {"portal", fmt.Sprintf("10.0.%d.1:3260,1", s)},
				{"iface", "default"}, {"sid", fmt.Sprint(s + 1)}}, Value: float64(s*m) + 0.5})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(io.Discard, fams); err != nil {
			b.Fatal(err)
		}
	}
}
