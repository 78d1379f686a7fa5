package conf

import (
	"bytes"
	"testing"
)

// BenchmarkParseNodeRecord reads a node record as the daemon and goiscsiadm do
// for every node of a -L all.
func BenchmarkParseNodeRecord(b *testing.B) {
	text, err := NewNodeRecord(nil, "iqn.2003-01.org.example:tgt", "10.0.0.2", 3260, 1, "default").MarshalText()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecordKind(bytes.NewReader(text), "bench", NodeKind); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalNodeRecord writes a node record (discovery writes one per
// target).
func BenchmarkMarshalNodeRecord(b *testing.B) {
	r := NewNodeRecord(nil, "iqn.2003-01.org.example:tgt", "10.0.0.2", 3260, 1, "default")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.MarshalText(); err != nil {
			b.Fatal(err)
		}
	}
}
