// Package promtext writes the Prometheus text exposition format, version
// 0.0.4: what a /metrics endpoint serves with Content-Type
// "text/plain; version=0.0.4; charset=utf-8" and what every Prometheus
// server and agent scrapes.
//
// A [Family] is one metric: a name, HELP text, a TYPE and its samples. [Write]
// checks names and labels, sorts the families by name and each family's
// samples by label set, and writes HELP and TYPE lines and one line per
// sample. Label values are escaped (backslash, double quote, newline), HELP
// text too (backslash, newline); values are written as Prometheus parses
// them: integers without an exponent, other numbers in Go's shortest form,
// +Inf, -Inf and NaN.
//
// Why not prometheus/client_golang: goiscsid exports a few dozen series per
// session from figures it already has, so it needs a writer, not a registry
// with collectors, descriptors and protobuf. Measured (Go 1.26.8, linux/amd64,
// CGO_ENABLED=0 go build -trimpath; throwaway mains that set three gauges
// with the four session labels for four sessions and serve them with
// net/http on 127.0.0.1; VmRSS from /proc/self/status once curl's scrape is
// answered, 5 runs each):
//
//	                                         binary      VmRSS after one scrape
//	client_golang v1.25.0, promhttp.Handler  12,657,760  8,520–8,608 kB (10.3 kB scraped: Go and process collectors)
//	client_golang v1.25.0, own registry      12,564,536  8,220–8,568 kB (1.7 kB scraped)
//	promtext                                  8,356,693  5,700–5,880 kB (1.7 kB scraped)
//	net/http alone, no metrics                8,282,556  5,496–5,516 kB
//
// So client_golang adds 4.3 MB of binary and about 2.7 MB of RSS where
// promtext adds 74 kB and about 0.3 MB. net/http is the larger part of
// either: goiscsid does not link it today, and a net/http listener added to
// goiscsid grows it from 6,896,636 to 11,068,941 bytes; an endpoint that
// answers GET /metrics on its own listener avoids that too.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the Content-Type of the format Write writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's TYPE.
type Type string

// The TYPEs of the text format.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Summary   Type = "summary"
	Histogram Type = "histogram"
	Untyped   Type = "untyped"
)

// Label is one name="value" pair.
type Label struct {
	Name, Value string
}

// Sample is one line of a family. Suffix is appended to the family's name:
// "" for counters, gauges, untyped values and a summary's quantiles (with a
// "quantile" label); "_sum" and "_count" for summaries and histograms;
// "_bucket" (with an "le" label) for histograms.
type Sample struct {
	Suffix string
	Labels []Label
	Value  float64
}

// Family is one metric family.
type Family struct {
	Name    string
	Help    string
	Type    Type
	Samples []Sample
}

// ValidMetricName reports whether s is a metric name the 0.0.4 format
// allows: [a-zA-Z_:][a-zA-Z0-9_:]*.
func ValidMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidLabelName reports whether s is a label name the format allows:
// [a-zA-Z_][a-zA-Z0-9_]*, and not beginning with "__" (reserved for
// Prometheus's own use).
func ValidLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// EscapeLabelValue escapes a label value for use between double quotes:
// backslash, double quote and line feed become \\, \" and \n.
func EscapeLabelValue(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// escapeHelp escapes HELP text: backslash and line feed (a double quote is
// literal there).
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// FormatValue formats a sample value as the format expects: "+Inf", "-Inf",
// "NaN", a whole number below 2^53 in magnitude without exponent or point
// ("1048576"), anything else in Go's shortest round-tripping form ("0.0042",
// "1.8e+19").
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// checkSuffix says whether s suits a family of type t: which Suffix each
// Type takes, and which of the quantile and le labels its lines carry.
func checkSuffix(t Type, s *Sample) error {
	has := func(name string) bool {
		for _, l := range s.Labels {
			if l.Name == name {
				return true
			}
		}
		return false
	}
	switch t {
	case Counter, Gauge, Untyped:
		if s.Suffix != "" {
			return fmt.Errorf("a %s has no %q lines", t, s.Suffix)
		}
		if has("quantile") || has("le") {
			return fmt.Errorf("label quantile or le on a %s", t)
		}
	case Summary:
		switch s.Suffix {
		case "":
			if !has("quantile") {
				return fmt.Errorf("summary line without a quantile label")
			}
		case "_sum", "_count":
			if has("quantile") {
				return fmt.Errorf("summary %s line with a quantile label", s.Suffix)
			}
		default:
			return fmt.Errorf("a summary has no %q lines", s.Suffix)
		}
		if has("le") {
			return fmt.Errorf("label le on a summary")
		}
	case Histogram:
		switch s.Suffix {
		case "_bucket":
			if !has("le") {
				return fmt.Errorf("histogram bucket without an le label")
			}
		case "_sum", "_count":
			if has("le") {
				return fmt.Errorf("histogram %s line with an le label", s.Suffix)
			}
		default:
			return fmt.Errorf("a histogram has no %q lines", s.Suffix)
		}
		if has("quantile") {
			return fmt.Errorf("label quantile on a histogram")
		}
	default:
		return fmt.Errorf("unknown type %q", t)
	}
	return nil
}

// sortKey orders a family's samples: by the labels other than quantile and
// le (so each summary's or histogram's lines stay together), then quantile
// or bucket lines by their bound, then _sum, then _count. Two samples with
// equal keys are the same series twice.
type sortKey struct {
	labels string
	rank   int
	bound  float64
	// special is the raw quantile or le value, suffix the sample's: with
	// labels they say which series it is.
	special, suffix string
}

func keyOf(s *Sample) sortKey {
	k := sortKey{bound: math.Inf(-1), suffix: s.Suffix}
	// Label sets are small: sort their indexes in place, then join once.
	var small [8]int
	idx := small[:0]
	size := 0
	for i, l := range s.Labels {
		if l.Name == "quantile" || l.Name == "le" {
			k.special = l.Value
			if f, err := strconv.ParseFloat(l.Value, 64); err == nil {
				k.bound = f
			}
			continue
		}
		j := len(idx)
		idx = append(idx, i)
		for ; j > 0 && s.Labels[idx[j-1]].Name > l.Name; j-- {
			idx[j] = idx[j-1]
		}
		idx[j] = i
		size += len(l.Name) + len(l.Value) + 2
	}
	var b strings.Builder
	b.Grow(size)
	for n, i := range idx {
		if n > 0 {
			b.WriteByte('\x01')
		}
		b.WriteString(s.Labels[i].Name)
		b.WriteByte('\x00')
		b.WriteString(s.Labels[i].Value)
	}
	k.labels = b.String()
	switch s.Suffix {
	case "_sum":
		k.rank = 1
	case "_count":
		k.rank = 2
	}
	return k
}

func less(a, b sortKey) bool {
	if a.labels != b.labels {
		return a.labels < b.labels
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	if a.bound != b.bound {
		return a.bound < b.bound
	}
	if a.special != b.special {
		return a.special < b.special
	}
	return a.suffix < b.suffix
}

// Write writes the families in the text format, sorted by name, each
// family's samples sorted by label set. It checks everything first and
// writes nothing when a family is wrong: an invalid metric or label name, a
// label twice on one line, a line twice in a family, a family twice, a
// label value that is not UTF-8, or lines that do not suit the TYPE.
func Write(w io.Writer, fams []Family) error {
	sorted := make([]Family, len(fams))
	copy(sorted, fams)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i := range sorted {
		f := &sorted[i]
		if err := check(f); err != nil {
			return err
		}
		if i > 0 && sorted[i-1].Name == f.Name {
			return fmt.Errorf("promtext: family %s twice", f.Name)
		}
		ss := f.Samples
		keys := make([]sortKey, len(ss))
		for j := range ss {
			keys[j] = keyOf(&ss[j])
		}
		idx := make([]int, len(ss))
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return less(keys[idx[a]], keys[idx[b]]) })
		out := make([]Sample, len(ss))
		for j, k := range idx {
			out[j] = ss[k]
			if j > 0 && keys[k] == keys[idx[j-1]] {
				return fmt.Errorf("promtext: %s%s: the same labels twice (%s)", f.Name, ss[k].Suffix, labelsString(ss[k].Labels))
			}
		}
		f.Samples = out
	}
	bw := bufio.NewWriter(w)
	for _, f := range sorted {
		if f.Help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", f.Name, escapeHelp(f.Help))
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", f.Name, f.Type)
		for _, s := range f.Samples {
			bw.WriteString(f.Name)
			bw.WriteString(s.Suffix)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l.Name)
					bw.WriteString(`="`)
					bw.WriteString(EscapeLabelValue(l.Value))
					bw.WriteByte('"')
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(FormatValue(s.Value))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// check validates one family before anything is written.
func check(f *Family) error {
	if !ValidMetricName(f.Name) {
		return fmt.Errorf("promtext: invalid metric name %q", f.Name)
	}
	if !utf8.ValidString(f.Help) {
		return fmt.Errorf("promtext: %s: HELP text is not UTF-8", f.Name)
	}
	switch f.Type {
	case Counter, Gauge, Summary, Histogram, Untyped:
	default:
		return fmt.Errorf("promtext: %s: unknown type %q", f.Name, f.Type)
	}
	for i := range f.Samples {
		s := &f.Samples[i]
		if err := checkSuffix(f.Type, s); err != nil {
			return fmt.Errorf("promtext: %s: %w", f.Name, err)
		}
		for j, l := range s.Labels {
			if !ValidLabelName(l.Name) {
				return fmt.Errorf("promtext: %s: invalid label name %q", f.Name, l.Name)
			}
			for _, o := range s.Labels[:j] {
				if o.Name == l.Name {
					return fmt.Errorf("promtext: %s: label %s twice on one line", f.Name, l.Name)
				}
			}
			if !utf8.ValidString(l.Value) {
				return fmt.Errorf("promtext: %s: label %s value %q is not UTF-8", f.Name, l.Name, l.Value)
			}
		}
	}
	return nil
}

func labelsString(ls []Label) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.Name, l.Value)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
