package nlink

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

func le32(v uint32) string {
	b := binary.LittleEndian.AppendUint32(nil, v)
	return hex.EncodeToString(b)
}

// uevent builds a 56-byte uevent fixture from the struct layout: type, iferror,
// handle, then explicit bytes for the u and r unions.
func uevent(t *testing.T, typ, iferror uint32, handle uint64, u, r string) []byte {
	t.Helper()
	b := make([]byte, UeventSize)
	binary.LittleEndian.PutUint32(b[0:], typ)
	binary.LittleEndian.PutUint32(b[4:], iferror)
	binary.LittleEndian.PutUint64(b[8:], handle)
	ub, err := hex.DecodeString(strings.ReplaceAll(u, " ", ""))
	if err != nil || len(ub) > 24 {
		t.Fatalf("bad u fixture %q", u)
	}
	rb, err := hex.DecodeString(strings.ReplaceAll(r, " ", ""))
	if err != nil || len(rb) > 16 {
		t.Fatalf("bad r fixture %q", r)
	}
	copy(b[16:], ub)
	copy(b[40:], rb)
	return b
}

// These tests assume a little-endian host, as the fixtures are written out
// byte by byte.
func TestRequestFixtures(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian")
	}
	const h = 0x1122334455667788
	tests := []struct {
		name string
		req  Request
		want []byte
	}{
		{"create session", Request{Type: CreateSession, Handle: h, InitialCmdSN: 1, CmdsMax: 128, QueueDepth: 32},
			uevent(t, 11, 0, h, le32(1)+"8000"+"2000", "")},
		{"bind conn", Request{Type: BindConn, Handle: h, SID: 3, CID: 0, FD: 9, Leading: true},
			uevent(t, 15, 0, h, le32(3)+le32(0)+"0900000000000000"+le32(1), "")},
		{"stop conn recover", Request{Type: StopConn, Handle: h, SID: 3, CID: 0, Flag: StopRecover},
			uevent(t, 18, 0, h, le32(3)+le32(0)+"0000000000000000"+le32(3), "")},
		{"destroy session", Request{Type: DestroySession, Handle: h, SID: 7}, uevent(t, 12, 0, h, le32(7), "")},
		{"set param", Request{Type: SetParam, Handle: h, SID: 3, Param: ParamTargetName, Value: "iqn.x"},
			append(uevent(t, 16, 0, h, le32(3)+le32(0)+le32(15)+le32(6), ""), "iqn.x\x00"...)},
		// struct msg_set_host_param: host_no, param, len.
		{"set host param", Request{Type: SetHostParam, Handle: h, HostNo: 5, HostParam: HostParamNetdevName, Value: "default"},
			append(uevent(t, 26, 0, h, le32(5)+le32(2)+le32(8), ""), "default\x00"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != hex.EncodeToString(tt.want) {
				t.Errorf("encode:\n got %x\nwant %x", got, tt.want)
			}
			var back Request
			if err := back.UnmarshalBinary(got); err != nil || !reflect.DeepEqual(back, tt.req) {
				t.Errorf("decode: %+v %v", back, err)
			}
		})
	}
}

func TestSendPDURequest(t *testing.T) {
	p := &pdu.PDU{Data: []byte("AuthMethod=None\x00")} // 16 bytes
	(&pdu.LoginRequest{Transit: true, NSG: 1, ITT: 5}).Encode(&p.Header)
	p.Data = append(p.Data, 'x') // 17 bytes: 3 bytes of padding
	r := Request{Type: SendPDU, SID: 1, PDU: p}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != UeventSize+48+20 || ne.Uint32(b[24:]) != 48 || ne.Uint32(b[28:]) != 20 {
		t.Fatalf("len %d hdr_size %d data_size %d", len(b), ne.Uint32(b[24:]), ne.Uint32(b[28:]))
	}
	var back Request
	if err := back.UnmarshalBinary(b); err != nil || string(back.PDU.Data) != string(p.Data) || back.PDU.Header.DataSegmentLength() != 17 {
		t.Fatalf("decode: %v %q", err, back.PDU.Data)
	}
}

func TestEventFixtures(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian")
	}
	var hdr pdu.BHS
	(&pdu.AsyncMessage{Event: pdu.AsyncLogoutRequest, Parameter3: 10}).Encode(&hdr)
	hdr.SetLengths(0, 2)
	tests := []struct {
		name string
		in   []byte
		want Event
	}{
		{"recv pdu", append(append(uevent(t, 101, 0, 0, "", le32(4)+le32(0)+"0000000000000000"), hdr[:]...), 0xab, 0xcd),
			Event{Type: EventRecvPDU, SID: 4, PDU: &pdu.PDU{Header: hdr, Data: []byte{0xab, 0xcd}}}},
		{"conn error", uevent(t, 102, 0, 0, "", le32(4)+le32(0)+le32(1020)), Event{Type: EventConnError, SID: 4, Error: ErrTCPConnClose}},
		{"destroy session: host first", uevent(t, 104, 0, 0, "", le32(7)+le32(4)), Event{Type: EventDestroySession, SID: 4, HostNo: 7}},
		{"unbind session", uevent(t, 105, 0, 0, "", le32(4)+le32(7)), Event{Type: EventUnbindSession, SID: 4, HostNo: 7}},
		{"old kernel create event", uevent(t, 11, 0, 0, "", le32(4)+le32(7)), Event{Type: EventCreateSession, SID: 4, HostNo: 7}},
		{"login state", uevent(t, 109, 0, 0, "", le32(4)+le32(0)+le32(3)), Event{Type: EventConnLoginState, SID: 4, State: ConnLoggedIn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			if err := ev.UnmarshalBinary(tt.in); err != nil {
				t.Fatal(err)
			}
			if tt.want.PDU != nil {
				if ev.PDU == nil || ev.PDU.Header != tt.want.PDU.Header || string(ev.PDU.Data) != string(tt.want.PDU.Data) {
					t.Fatalf("PDU %+v", ev.PDU)
				}
				ev.PDU, tt.want.PDU = nil, nil
			}
			if !reflect.DeepEqual(ev, tt.want) {
				t.Errorf("got %+v, want %+v", ev, tt.want)
			}
		})
	}
}

func TestReplies(t *testing.T) {
	var r Reply
	if err := r.UnmarshalBinary(uevent(t, 103, uint32(^uint32(0)-uint32(syscall.ENOSYS)+1), 0, "", "")); err != nil {
		t.Fatal(err)
	}
	if r.Type != EventIfError || !errors.Is(r.Errno, syscall.ENOSYS) {
		t.Errorf("IF_ERROR: %+v", r)
	}
	if err := r.UnmarshalBinary(uevent(t, 11, 0, 0, "", le32(9)+le32(12))); err != nil || r.SID != 9 || r.HostNo != 12 {
		t.Errorf("create session reply: %+v %v", r, err)
	}
	// BIND_CONN answers in r.retcode with a negative errno.
	if err := r.UnmarshalBinary(uevent(t, 15, 0, 0, "", le32(uint32(0xffffffff-uint32(syscall.ENOTSOCK)+1)))); err != nil || r.Errno != syscall.ENOTSOCK {
		t.Errorf("retcode: %+v %v", r, err)
	}
}

func TestMalformed(t *testing.T) {
	var ev Event
	for _, b := range [][]byte{nil, make([]byte, 55), append(uevent(t, 101, 0, 0, "", ""), 1, 2, 3)} {
		if err := ev.UnmarshalBinary(b); err == nil {
			t.Errorf("%d bytes accepted", len(b))
		}
	}
	// A RECV_PDU whose header claims more data than came.
	var hdr pdu.BHS
	(&pdu.LoginResponse{}).Encode(&hdr)
	hdr.SetLengths(0, 100)
	if err := ev.UnmarshalBinary(append(uevent(t, 101, 0, 0, "", ""), hdr[:]...)); err == nil {
		t.Error("short RECV_PDU accepted")
	}
	var req Request
	bad := uevent(t, 16, 0, 0, "000000000000000000000000"+le32(200), "")
	if err := req.UnmarshalBinary(append(bad, "abc"...)); err == nil {
		t.Error("SET_PARAM with a length past the payload accepted")
	}
}

func TestStatsRoundTrip(t *testing.T) {
	s := &Stats{TxDataOctets: 1 << 40, RxDataOctets: 7, Custom: []CustomStat{{"eh_abort_cnt", 3}}}
	for i := range s.Counters {
		s.Counters[i] = uint32(i * 10)
	}
	ev := Event{Type: GetStats, SID: 2, Stats: s}
	b, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back.Stats, s) || back.SID != 2 {
		t.Fatalf("%+v %v", back.Stats, err)
	}
}

func TestNames(t *testing.T) {
	if got := ErrNOPTimedOut.String(); got != "ISCSI_ERR_NOP_TIMEDOUT (1022)" {
		t.Errorf("%q", got)
	}
	if got := ConnLoggedIn.String(); got != "LOGGED IN" {
		t.Errorf("%q", got)
	}
	r := Request{Type: SetParam, Param: ParamPassword, Value: "hunter2"}
	if strings.Contains(r.String(), "hunter2") {
		t.Errorf("secret in %q", r.String())
	}
}

func FuzzEvent(f *testing.F) {
	var hdr pdu.BHS
	(&pdu.AsyncMessage{Event: pdu.AsyncSCSIEvent}).Encode(&hdr)
	hdr.SetLengths(0, 4)
	b := make([]byte, UeventSize)
	ne.PutUint32(b, uint32(EventRecvPDU))
	f.Add(append(append(b, hdr[:]...), 0, 2, 0x70, 0))
	s := make([]byte, UeventSize+96)
	ne.PutUint32(s, uint32(GetStats))
	f.Add(s)
	f.Fuzz(func(t *testing.T, in []byte) {
		var ev Event
		if ev.UnmarshalBinary(in) != nil {
			return
		}
		_ = ev.String()
		var r Reply
		_ = r.UnmarshalBinary(in)
		var req Request
		_ = req.UnmarshalBinary(in)
	})
}

// BenchmarkDecodeRecvPDU decodes a RECV_PDU event carrying a Login Response.
func BenchmarkDecodeRecvPDU(b *testing.B) {
	p := pdu.PDU{Data: make([]byte, 512)}
	(&pdu.LoginResponse{}).Encode(&p.Header)
	p.Header.SetLengths(0, 512)
	msg, _ := (&Event{Type: EventRecvPDU, SID: 1, PDU: &p}).MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var ev Event
		if err := ev.UnmarshalBinary(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeSetParam encodes one SET_PARAM request.
func BenchmarkEncodeSetParam(b *testing.B) {
	r := Request{Type: SetParam, SID: 1, Param: ParamTargetName, Value: "iqn.2003-01.org.linux-iscsi.target:sn.0123456789"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
