package nlink

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"syscall"
	"testing"
	"unsafe"
)

// The layouts are the kernel's struct iscsi_uevent: the request union at 16,
// the reply union at 40, the socket address right after the 56 bytes.
func TestEndpointRequestFixtures(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian")
	}
	const h = 0x1122334455667788
	const ep = 0xffff8881_23456789
	epLE := "89674523" + "8188ffff"
	tests := []struct {
		name string
		req  Request
		want []byte
	}{
		{"ep connect ipv4 non-blocking", Request{Type: EPConnect, Handle: h, Addr: netip.MustParseAddrPort("10.9.9.1:3260"), NonBlocking: true},
			append(uevent(t, 22, 0, h, le32(1), ""),
				// sockaddr_in: AF_INET (host order), port 3260 and the
				// address in network order, 8 bytes of zero.
				0x02, 0x00, 0x0c, 0xbc, 10, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0)},
		{"ep connect ipv6 blocking", Request{Type: EPConnect, Handle: h, Addr: netip.MustParseAddrPort("[fe80::1%7]:3261")},
			append(uevent(t, 22, 0, h, le32(0), ""),
				// sockaddr_in6: AF_INET6, port, flowinfo, address, scope id.
				0x0a, 0x00, 0x0c, 0xbd, 0, 0, 0, 0,
				0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
				7, 0, 0, 0)},
		{"ep poll", Request{Type: EPPoll, Handle: h, EP: ep, TimeoutMS: 250},
			uevent(t, 23, 0, h, epLE+le32(250), "")},
		{"ep disconnect", Request{Type: EPDisconnect, Handle: h, EP: ep},
			uevent(t, 24, 0, h, epLE, "")},
		{"create bound session", Request{Type: CreateBoundSession, Handle: h, EP: ep, InitialCmdSN: 1, CmdsMax: 128, QueueDepth: 32},
			uevent(t, 28, 0, h, epLE+le32(1)+"8000"+"2000", "")},
		{"bind endpoint", Request{Type: BindConn, Handle: h, SID: 4, FD: ep, Leading: true},
			uevent(t, 15, 0, h, le32(4)+le32(0)+epLE+le32(1), "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("encoded\n%x\nwant\n%x", got, tt.want)
			}
			var back Request
			if err := back.UnmarshalBinary(got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.req) {
				t.Errorf("decoded %+v, want %+v", back, tt.req)
			}
		})
	}
}

// The sockaddr sizes are the C structs'.
func TestSockaddrSizes(t *testing.T) {
	if n := unsafe.Sizeof(syscall.RawSockaddrInet4{}); n != sockaddrIn4Size {
		t.Errorf("sockaddr_in is %d bytes, encoded as %d", n, sockaddrIn4Size)
	}
	if n := unsafe.Sizeof(syscall.RawSockaddrInet6{}); n != sockaddrIn6Size {
		t.Errorf("sockaddr_in6 is %d bytes, encoded as %d", n, sockaddrIn6Size)
	}
}

func TestEndpointReplies(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian")
	}
	tests := []struct {
		name string
		in   []byte
		want Reply
	}{
		{"ep connect handle", uevent(t, 22, 0, 0, "", "8967452381 88ffff"), Reply{Type: EPConnect, EP: 0xffff8881_23456789}},
		{"ep connect unreachable", uevent(t, 103, uint32(0x100000000-101), 0, "", ""), Reply{Type: EventIfError, Errno: syscall.ENETUNREACH}},
		{"ep poll connected", uevent(t, 23, 0, 0, "", le32(1)), Reply{Type: EPPoll, Connected: true}},
		{"ep poll not yet", uevent(t, 23, 0, 0, "", le32(0)), Reply{Type: EPPoll}},
		{"ep poll failed", uevent(t, 23, 0, 0, "", le32(0xffffffff)), Reply{Type: EPPoll, Errno: syscall.EPERM}},
		{"create bound session", uevent(t, 28, 0, 0, "", le32(5)+le32(9)), Reply{Type: CreateBoundSession, SID: 5, HostNo: 9}},
		{"ep disconnect", uevent(t, 24, 0, 0, "", le32(0)), Reply{Type: EPDisconnect}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reply
			if err := r.UnmarshalBinary(tt.in); err != nil {
				t.Fatal(err)
			}
			if r != tt.want {
				t.Fatalf("decoded %+v, want %+v", r, tt.want)
			}
			if r.Type == EventIfError {
				return
			}
			b, _ := r.MarshalBinary()
			var back Reply
			if err := back.UnmarshalBinary(b); err != nil || back != r {
				t.Errorf("round trip %+v, %v; want %+v", back, err, r)
			}
		})
	}
}

func TestEPConnectBadAddresses(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  Request
	}{
		{"no address", Request{Type: EPConnect}},
	} {
		if _, err := tt.req.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded", tt.name)
		}
	}
	for _, tt := range []struct {
		name    string
		payload []byte
	}{
		{"none", nil},
		{"family only", []byte{2, 0}},
		{"short sockaddr_in", []byte{2, 0, 0x0c, 0xbc, 10, 9, 9}},
		{"short sockaddr_in6", append([]byte{10, 0}, make([]byte, 20)...)},
		{"unix family", append([]byte{1, 0}, make([]byte, 14)...)},
	} {
		b := make([]byte, UeventSize)
		ne.PutUint32(b, uint32(EPConnect))
		var r Request
		if err := r.UnmarshalBinary(append(b, tt.payload...)); err == nil {
			t.Errorf("%s: decoded %+v", tt.name, r)
		}
	}
}

// FuzzEndpointRequest decodes endpoint requests as the fake kernel does; what
// decodes must encode to bytes that decode the same.
func FuzzEndpointRequest(f *testing.F) {
	for _, r := range []Request{
		{Type: EPConnect, Addr: netip.MustParseAddrPort("10.9.9.1:3260"), NonBlocking: true},
		{Type: EPConnect, Addr: netip.MustParseAddrPort("[2001:db8::1]:3260")},
		{Type: EPPoll, EP: 7, TimeoutMS: 1},
		{Type: EPDisconnect, EP: 7},
		{Type: CreateBoundSession, EP: 7, CmdsMax: 128, QueueDepth: 32},
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Request
		if r.UnmarshalBinary(in) != nil {
			return
		}
		_ = r.String()
		switch r.Type {
		case EPConnect, EPPoll, EPDisconnect, CreateBoundSession:
		default:
			return
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v decoded but does not encode: %v", r, err)
		}
		var back Request
		if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("%+v encoded and decoded as %+v, %v", r, back, err)
		}
		var rep Reply
		_ = rep.UnmarshalBinary(in)
	})
}
