package pdu

import (
	"bytes"
	"testing"
)

// BenchmarkBHSDecodeEncode measures one Login Response decode plus one Login
// Request encode: the per-PDU header work of a login.
func BenchmarkBHSDecodeEncode(b *testing.B) {
	var in, out BHS
	(&LoginResponse{Transit: true, CSG: 1, NSG: 3, ISID: ISID{0, 2, 0x3d, 0, 0, 1}, TSIH: 5, StatSN: 9}).Encode(&in)
	var resp LoginResponse
	b.ReportAllocs()
	for b.Loop() {
		if err := resp.Decode(&in); err != nil {
			b.Fatal(err)
		}
		req := LoginRequest{Transit: true, CSG: resp.NSG, NSG: 3, ISID: resp.ISID, TSIH: resp.TSIH, ExpStatSN: resp.StatSN + 1}
		req.Encode(&out)
	}
}

// BenchmarkParseText is the parse of a Login Response's operational keys.
func BenchmarkParseText(b *testing.B) {
	data := AppendText(nil,
		KeyValue{"HeaderDigest", "None"}, KeyValue{"DataDigest", "None"},
		KeyValue{"MaxRecvDataSegmentLength", "262144"}, KeyValue{"MaxBurstLength", "16776192"},
		KeyValue{"FirstBurstLength", "262144"}, KeyValue{"DefaultTime2Wait", "2"},
		KeyValue{"DefaultTime2Retain", "0"}, KeyValue{"MaxOutstandingR2T", "1"},
		KeyValue{"InitialR2T", "No"}, KeyValue{"ImmediateData", "Yes"},
		KeyValue{"DataPDUInOrder", "Yes"}, KeyValue{"DataSequenceInOrder", "Yes"},
		KeyValue{"ErrorRecoveryLevel", "0"}, KeyValue{"TargetPortalGroupTag", "1"})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseText(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRC32C is a digest over a 256 KiB data segment.
func BenchmarkCRC32C(b *testing.B) {
	data := bytes.Repeat([]byte{0x5a}, 256<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		CRC32C(data)
	}
}

// BenchmarkReadPDU reads a Login PDU with 4 KiB of text and both digests.
func BenchmarkReadPDU(b *testing.B) {
	p := loginPDU(bytes.Repeat([]byte("k=v\x00"), 1024))
	wire, _ := p.Append(nil, Digests{Header: true, Data: true})
	rd := bytes.NewReader(wire)
	r := NewReader(rd)
	r.Digests = Digests{Header: true, Data: true}
	var q PDU
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(wire)
		if err := r.Read(&q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPDU encodes the same PDU for the wire, digests included.
func BenchmarkAppendPDU(b *testing.B) {
	p := loginPDU(bytes.Repeat([]byte("k=v\x00"), 1024))
	d := Digests{Header: true, Data: true}
	wire, _ := p.Append(nil, d)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if wire, err = p.Append(wire[:0], d); err != nil {
			b.Fatal(err)
		}
	}
}
