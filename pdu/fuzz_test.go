package pdu

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the PDU reader with every digest setting:
// it must return a PDU or an error, never panic, and a PDU it accepts must encode
// back to the bytes it came from.
func FuzzReader(f *testing.F) {
	p := loginPDU([]byte("TargetName=iqn.2003-01.org.example:t1\x00"))
	for _, d := range []Digests{{}, {Header: true, Data: true}} {
		b, _ := p.Append(nil, d)
		f.Add(b, d.Header, d.Data)
	}
	f.Add(withAHS([]byte{0x00, 0x01, 0x01, 0xaa}), false, false)
	f.Fuzz(func(t *testing.T, in []byte, hd, dd bool) {
		d := Digests{Header: hd, Data: dd}
		r := NewReader(bytes.NewReader(in))
		r.Digests = d
		r.MaxDataSegmentLength = 4096
		var p PDU
		err := r.Read(&p)
		if err != nil {
			var perr *Error
			if err != io.EOF && !errors.As(err, &perr) {
				t.Fatalf("error of unexpected type %T: %v", err, err)
			}
			return
		}
		out, err := p.Append(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		// Padding bytes need not be zero on input; compare up to the data end.
		if !bytes.Equal(out[:48], in[:48]) {
			t.Fatalf("header changed: %x vs %x", out[:48], in[:48])
		}
	})
}

// FuzzDecodeBHS checks decode/encode symmetry: any header that decodes encodes
// to a header that decodes to the same message.
func FuzzDecodeBHS(f *testing.F) {
	for _, m := range []Message{&LoginResponse{Transit: true}, &AsyncMessage{Event: AsyncLogoutRequest}, &NOPIn{ITT: ReservedTag}} {
		var b BHS
		m.Encode(&b)
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var b BHS
		copy(b[:], in)
		m, err := Decode(&b)
		if err != nil {
			return
		}
		var b2 BHS
		m.Encode(&b2)
		m2, err := Decode(&b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		var b3 BHS
		m2.Encode(&b3)
		if b2 != b3 {
			t.Fatalf("encode not stable:\n%x\n%x", b2, b3)
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("HeaderDigest=None,CRC32C\x00MaxRecvDataSegmentLength=262144\x00"))
	f.Add([]byte("TargetName=iqn.x\x00TargetAddress=[fe80::1]:3260,1\x00"))
	f.Add([]byte("CHAP_A=5\x00CHAP_I=0x1f\x00CHAP_C=0bAQIDBA==\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		kvs, err := ParseText(in)
		if err != nil {
			if !errors.Is(err, ErrText) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		again, err := ParseText(AppendText(nil, kvs...))
		if err != nil || len(again) != len(kvs) {
			t.Fatalf("re-parse: %v (%d vs %d pairs)", err, len(again), len(kvs))
		}
		for _, kv := range kvs {
			_, _ = ParseNumber(kv.Value)
			_, _ = ParseBinary(kv.Value)
		}
	})
}

func FuzzParseSense(f *testing.F) {
	f.Add(AppendSenseSegment(nil, AppendFixedSense(nil, UnitAttention, 0x3f, 0x0e)))
	f.Add(AppendSenseSegment(nil, AppendDescriptorSense(nil, UnitAttention, 0x2a, 0x09)))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseAsyncSCSIEvent(in)
		if err != nil {
			return
		}
		_ = s.String()
		if s.ResponseCode < 0x70 || s.ResponseCode > 0x73 {
			t.Fatalf("accepted response code 0x%02x", s.ResponseCode)
		}
	})
}
