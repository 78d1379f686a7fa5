package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bhsFromHex(t testing.TB, s string) *BHS {
	t.Helper()
	var b BHS
	raw := mustHex(t, s)
	if len(raw) != BHSLength {
		t.Fatalf("fixture is %d bytes", len(raw))
	}
	copy(b[:], raw)
	return &b
}

// Golden headers written out by hand from RFC 7143 §11, field by field, so the
// encoder is not checked against itself.
func TestGoldenHeaders(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		msg  Message
	}{{
		name: "login request security to operational",
		hex: `43 81 00 00 00 00 00 2a  00 02 3d 00 00 05 00 00
		      00 00 00 07 00 00 00 00  00 00 00 01 00 00 00 00
		      00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00`,
		msg: &LoginRequest{Transit: true, CSG: SecurityNegotiation, NSG: LoginOperationalNegotiation,
			ISID: ISID{0x00, 0x02, 0x3d, 0x00, 0x00, 0x05}, ITT: 7, CmdSN: 1},
	}, {
		name: "final login response with TSIH and auth failure status",
		hex: `23 87 00 00 00 00 00 00  00 02 3d 00 00 05 01 02
		      00 00 00 07 00 00 00 00  11 22 33 44 00 00 00 01
		      00 00 00 20 02 01 00 00  00 00 00 00 00 00 00 00`,
		msg: &LoginResponse{Transit: true, CSG: LoginOperationalNegotiation, NSG: FullFeaturePhase,
			ISID: ISID{0x00, 0x02, 0x3d, 0x00, 0x00, 0x05}, TSIH: 0x0102, ITT: 7,
			StatSN: 0x11223344, ExpCmdSN: 1, MaxCmdSN: 0x20, Status: LoginAuthFailure},
	}, {
		name: "async message SCSI event on LUN 3",
		hex: `32 80 00 00 00 00 00 14  00 03 00 00 00 00 00 00
		      ff ff ff ff 00 00 00 00  00 00 00 09 00 00 00 0a
		      00 00 00 2a 00 00 00 00  00 00 00 00 00 00 00 00`,
		msg: &AsyncMessage{LUN: NewLUN(3), StatSN: 9, ExpCmdSN: 10, MaxCmdSN: 42, Event: AsyncSCSIEvent},
	}, {
		name: "async logout request within 10 s",
		hex: `32 80 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		      ff ff ff ff 00 00 00 00  00 00 00 09 00 00 00 0a
		      00 00 00 2a 01 00 00 00  00 00 00 0a 00 00 00 00`,
		msg: &AsyncMessage{StatSN: 9, ExpCmdSN: 10, MaxCmdSN: 42, Event: AsyncLogoutRequest, Parameter3: 10},
	}, {
		name: "immediate logout request close session",
		hex: `46 80 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		      00 00 00 0b 00 00 00 00  00 00 00 05 00 00 00 06
		      00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00`,
		msg: &LogoutRequest{Immediate: true, Reason: LogoutCloseSession, ITT: 11, CmdSN: 5, ExpStatSN: 6},
	}, {
		name: "NOP-In target ping",
		hex: `20 80 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		      ff ff ff ff 00 00 00 99  00 00 00 03 00 00 00 04
		      00 00 00 05 00 00 00 00  00 00 00 00 00 00 00 00`,
		msg: &NOPIn{ITT: ReservedTag, TTT: 0x99, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5},
	}, {
		name: "SCSI command read 10",
		hex: `01 c1 00 00 00 00 00 00  00 01 00 00 00 00 00 00
		      00 00 00 21 00 00 10 00  00 00 00 07 00 00 00 08
		      28 00 00 00 00 00 00 00  08 00 00 00 00 00 00 00`,
		msg: &SCSICommand{Final: true, Read: true, Attr: AttrSimple, LUN: NewLUN(1), ITT: 0x21,
			ExpectedDataTransferLength: 4096, CmdSN: 7, ExpStatSN: 8,
			CDB: [16]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := bhsFromHex(t, tt.hex)
			var got BHS
			got[4], got[5], got[6], got[7] = want[4], want[5], want[6], want[7]
			tt.msg.Encode(&got)
			if got != *want {
				t.Errorf("encode:\n got %x\nwant %x", got, *want)
			}
			decoded, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decoded, tt.msg) {
				t.Errorf("decode:\n got %+v\nwant %+v", decoded, tt.msg)
			}
		})
	}
}

// Every opcode struct survives encode → decode with every field set.
func TestRoundTripAllOpcodes(t *testing.T) {
	lun := NewLUN(300)
	msgs := []Message{
		&NOPOut{Immediate: true, LUN: lun, ITT: 1, TTT: 2, CmdSN: 3, ExpStatSN: 4},
		&NOPIn{LUN: lun, ITT: 1, TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5},
		&SCSICommand{Immediate: true, Final: true, Write: true, Attr: AttrOrdered, LUN: lun, ITT: 1,
			ExpectedDataTransferLength: 2, CmdSN: 3, ExpStatSN: 4, CDB: [16]byte{0x2a, 1, 2, 3}},
		&SCSIResponse{BidiOverflow: true, Underflow: true, Response: 1, Status: 2, ITT: 3, SNACKTag: 4,
			StatSN: 5, ExpCmdSN: 6, MaxCmdSN: 7, ExpDataSN: 8, BidiResidual: 9, Residual: 10},
		&TaskMgmtRequest{Immediate: true, Function: TMFLogicalUnitReset, LUN: lun, ITT: 1, ReferencedTaskTag: 2,
			CmdSN: 3, ExpStatSN: 4, RefCmdSN: 5, ExpDataSN: 6},
		&TaskMgmtResponse{Response: TMFLUNDoesNotExist, ITT: 1, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4},
		&LoginRequest{Continue: true, CSG: LoginOperationalNegotiation, NSG: FullFeaturePhase, VersionMax: 1,
			VersionMin: 0, ISID: ISID{1, 2, 3, 4, 5, 6}, TSIH: 7, ITT: 8, CID: 9, CmdSN: 10, ExpStatSN: 11},
		&LoginResponse{Transit: true, CSG: SecurityNegotiation, NSG: LoginOperationalNegotiation, VersionMax: 1,
			ISID: ISID{1, 2, 3, 4, 5, 6}, TSIH: 7, ITT: 8, StatSN: 9, ExpCmdSN: 10, MaxCmdSN: 11, Status: LoginTargetMovedTemp},
		&TextRequest{Immediate: true, Continue: true, LUN: lun, ITT: 1, TTT: 2, CmdSN: 3, ExpStatSN: 4},
		&TextResponse{Final: true, LUN: lun, ITT: 1, TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5},
		&DataOut{Final: true, LUN: lun, ITT: 1, TTT: 2, ExpStatSN: 3, DataSN: 4, BufferOffset: 5},
		&DataIn{Final: true, Acknowledge: true, Overflow: true, HasStatus: true, Status: 2, LUN: lun, ITT: 1,
			TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5, DataSN: 6, BufferOffset: 7, Residual: 8},
		&LogoutRequest{Reason: LogoutRemoveForRecovery, ITT: 1, CID: 2, CmdSN: 3, ExpStatSN: 4},
		&LogoutResponse{Response: LogoutCleanupFailed, ITT: 1, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4, Time2Wait: 5, Time2Retain: 6},
		&SNACKRequest{Type: SNACKStatus, LUN: lun, ITT: 1, TTT: 2, ExpStatSN: 3, BegRun: 4, RunLength: 5},
		&Reject{Reason: RejectProtocolError, StatSN: 1, ExpCmdSN: 2, MaxCmdSN: 3, DataSN: 4},
		&R2T{LUN: lun, ITT: 1, TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5, R2TSN: 6, BufferOffset: 7, DesiredDataTransferLength: 8},
		&AsyncMessage{LUN: lun, StatSN: 1, ExpCmdSN: 2, MaxCmdSN: 3, Event: AsyncDropAllConnections, VendorCode: 4,
			Parameter1: 5, Parameter2: 6, Parameter3: 7},
	}
	seen := map[Opcode]bool{}
	for _, m := range msgs {
		var b BHS
		m.Encode(&b)
		if b.Opcode() != m.Opcode() {
			t.Errorf("%v: encoded opcode %v", m.Opcode(), b.Opcode())
		}
		got, err := Decode(&b)
		if err != nil {
			t.Fatalf("%v: %v", m.Opcode(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%v round trip:\n got %+v\nwant %+v", m.Opcode(), got, m)
		}
		seen[m.Opcode()] = true
	}
	for op := range opcodeNames {
		if !seen[op] {
			t.Errorf("no round-trip case for %v", op)
		}
	}
}

func TestDecodeWrongOpcode(t *testing.T) {
	var b BHS
	(&NOPIn{}).Encode(&b)
	var m LoginResponse
	if err := m.Decode(&b); !errors.Is(err, ErrOpcode) {
		t.Fatalf("got %v, want ErrOpcode", err)
	}
	b[0] = 0x3a // unassigned
	if _, err := Decode(&b); !errors.Is(err, ErrOpcode) {
		t.Fatalf("unknown opcode: got %v, want ErrOpcode", err)
	}
}

func TestLUN(t *testing.T) {
	tests := []struct {
		n    uint64
		wire string
	}{
		{0, "0000000000000000"},
		{5, "0005000000000000"},
		{255, "00ff000000000000"},
		{256, "0100000000000000"},         // Linux int_to_scsilun: peripheral, bus 1 (as LIO reports it)
		{16640, "4100000000000000"},       // a flat-space LUN 256 from other arrays
		{0x0001_0000, "0000000100000000"}, // second level
	}
	for _, tt := range tests {
		l := NewLUN(tt.n)
		if got := hex.EncodeToString(l[:]); got != tt.wire {
			t.Errorf("NewLUN(%d) = %s, want %s", tt.n, got, tt.wire)
		}
		if got := l.Number(); got != tt.n {
			t.Errorf("Number of %s = %d, want %d", tt.wire, got, tt.n)
		}
	}
}

// RFC 7143 Appendix A.4 (RFC 3720 B.4) CRC32C vectors, and their wire order.
func TestCRC32CVectors(t *testing.T) {
	inc := make([]byte, 32)
	dec := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
		dec[i] = byte(31 - i)
	}
	tests := []struct {
		name string
		data []byte
		crc  uint32
		wire string
	}{
		{"32 zeros", make([]byte, 32), 0x8a9136aa, "aa36918a"},
		{"32 0xff", bytes.Repeat([]byte{0xff}, 32), 0x62a8ab43, "43aba862"},
		{"incrementing", inc, 0x46dd794e, "4e79dd46"},
		{"decrementing", dec, 0x113fdb5c, "5cdb3f11"},
	}
	for _, tt := range tests {
		if got := CRC32C(tt.data); got != tt.crc {
			t.Errorf("%s: CRC32C = %08x, want %08x", tt.name, got, tt.crc)
		}
		if got := CRC32C(tt.data[:10], tt.data[10:]); got != tt.crc {
			t.Errorf("%s: CRC32C over two segments = %08x, want %08x", tt.name, got, tt.crc)
		}
		if got := hex.EncodeToString(AppendDigest(nil, tt.crc)); got != tt.wire {
			t.Errorf("%s: wire digest %s, want %s", tt.name, got, tt.wire)
		}
	}
}

func loginPDU(data []byte) *PDU {
	p := &PDU{Data: data}
	(&LoginResponse{Transit: true, NSG: LoginOperationalNegotiation, ITT: 1}).Encode(&p.Header)
	return p
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, d := range []Digests{{}, {Header: true}, {Data: true}, {Header: true, Data: true}} {
		for _, n := range []int{0, 1, 3, 4, 5, 8192} {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.Digests = d
			in := loginPDU(bytes.Repeat([]byte{'k'}, n))
			in.AHS = []byte{0x00, 0x01, 0x01, 0xaa} // one AHS: length 1, type 1
			if err := w.Write(in); err != nil {
				t.Fatal(err)
			}
			wantLen := 48 + 4 + n + padding(n)
			if d.Header {
				wantLen += 4
			}
			if d.Data && n > 0 {
				wantLen += 4
			}
			if buf.Len() != wantLen {
				t.Errorf("%+v n=%d: wire length %d, want %d", d, n, buf.Len(), wantLen)
			}
			r := NewReader(&buf)
			r.Digests = d
			var out PDU
			if err := r.Read(&out); err != nil {
				t.Fatalf("%+v n=%d: %v", d, n, err)
			}
			if out.Header != in.Header || !bytes.Equal(out.Data, in.Data) || !bytes.Equal(out.AHS, in.AHS) {
				t.Errorf("%+v n=%d: PDU changed in transit", d, n)
			}
			if err := r.Read(&out); err != io.EOF {
				t.Errorf("after last PDU: %v, want io.EOF", err)
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	wire := func(p *PDU, d Digests) []byte {
		b, err := p.Append(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := wire(loginPDU([]byte("TargetName=iqn.x\x00")), Digests{Header: true, Data: true})

	tests := []struct {
		name    string
		input   []byte
		digests Digests
		limit   int
		want    error
	}{
		{"truncated header", good[:20], Digests{Header: true, Data: true}, 0, ErrTruncated},
		{"truncated data", good[:60], Digests{Header: true, Data: true}, 0, ErrTruncated},
		{"truncated data digest", good[:len(good)-2], Digests{Header: true, Data: true}, 0, ErrTruncated},
		{"header digest mismatch", flip(good, 10), Digests{Header: true, Data: true}, 0, ErrHeaderDigest},
		{"data digest mismatch", flip(good, 60), Digests{Header: true, Data: true}, 0, ErrDataDigest},
		{"over negotiated limit", wire(loginPDU(make([]byte, 600)), Digests{}), Digests{}, 512, ErrTooLong},
		{"over default limit", wire(loginPDU(make([]byte, 8193)), Digests{}), Digests{}, 0, ErrTooLong},
		{"AHS length beyond total", withAHS([]byte{0x00, 0x09, 0x01, 0x00}), Digests{}, 0, ErrBadAHS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input))
			r.Digests = tt.digests
			r.MaxDataSegmentLength = tt.limit
			var p PDU
			err := r.Read(&p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) || perr.Detail == "" {
				t.Errorf("error %q carries no detail", err)
			}
		})
	}
}

// A header that claims more data than the limit must not make the reader
// allocate what it claims.
func TestReaderDoesNotAllocateClaimedLength(t *testing.T) {
	b := loginPDU(nil).Header
	b[5], b[6], b[7] = 0xff, 0xff, 0xff
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		r := NewReader(bytes.NewReader(b[:]))
		r.MaxDataSegmentLength = 512
		var q PDU
		if err := r.Read(&q); !errors.Is(err, ErrTooLong) {
			t.Fatalf("got %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRead := (after.TotalAlloc - before.TotalAlloc) / 100; perRead > 4096 {
		t.Errorf("%d bytes allocated per rejected PDU", perRead)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

func withAHS(ahs []byte) []byte {
	p := loginPDU(nil)
	p.AHS = ahs
	b, _ := p.Append(nil, Digests{})
	return b
}

func TestSetLengthsLimits(t *testing.T) {
	var b BHS
	if err := b.SetLengths(6, 0); !errors.Is(err, ErrBadAHS) {
		t.Errorf("AHS 6: %v", err)
	}
	if err := b.SetLengths(0, MaxDataSegmentLength+1); !errors.Is(err, ErrTooLong) {
		t.Errorf("data 2^24: %v", err)
	}
	if err := b.SetLengths(1020, MaxDataSegmentLength); err != nil || b.TotalAHSLength() != 1020 || b.DataSegmentLength() != MaxDataSegmentLength {
		t.Errorf("max lengths: %v %d %d", err, b.TotalAHSLength(), b.DataSegmentLength())
	}
}

func TestLoginStatusString(t *testing.T) {
	for s, want := range map[LoginStatus]string{
		LoginAuthFailure:       "authentication failure (0x0201)",
		LoginTargetMovedPerm:   "target moved permanently (0x0102)",
		{Class: 3, Detail: 99}: "target error (0x0363)",
		{Class: 9, Detail: 9}:  "unknown status (0x0909)",
	} {
		if got := s.String(); got != want {
			t.Errorf("%v: %q, want %q", s, got, want)
		}
	}
}
