package isns

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeader(t *testing.T) {
	h := Header{Version: 1, Function: DevAttrQry, Length: 88, Flags: FlagClient | FlagFirstPDU | FlagLastPDU, XID: 7, Seq: 0}
	b := h.Append(nil)
	if want := unhex(t, "0001 0002 0058 8c00 0007 0000"); !bytes.Equal(b, want) {
		t.Fatalf("encoded %x, want %x", b, want)
	}
	got, err := DecodeHeader(b)
	if err != nil || got != h {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", b[:11], ErrTruncated},
		{"version 2", unhex(t, "0002 0002 0000 8c00 0001 0000"), ErrVersion},
		{"auth block", unhex(t, "0001 0002 0000 ac00 0001 0000"), ErrField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeHeader(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	if s := DevAttrQry.Response().String(); s != "DevAttrQryRsp" {
		t.Errorf("String %q", s)
	}
	if s := (FlagClient | FlagReplace | 1).String(); s != "client|replace|0x0001" {
		t.Errorf("flags %q", s)
	}
}

func TestAttrs(t *testing.T) {
	tests := []struct {
		name string
		a    Attr
		wire string
		str  string
	}{
		{"string padded", StringAttr(TagISCSIName, "iqn.x"), "00000020 00000008 69716e2e78000000", `iSCSI Name="iqn.x"`},
		{"string exact", StringAttr(TagISCSIAlias, "abc"), "00000022 00000004 61626300", `iSCSI Alias="abc"`},
		{"empty string", StringAttr(TagEntityIdentifier, ""), "00000001 00000004 00000000", `Entity Identifier=""`},
		{"uint32", Uint32Attr(TagISCSINodeType, NodeTarget), "00000021 00000004 00000001", "iSCSI Node Type=1"},
		{"udp port", PortAttr(TagSCNPort, 3205, true), "00000017 00000004 00010c85", "SCN Port=3205/udp"},
		{"ipv4 mapped", IPAttr(TagPortalIPAddress, netip.MustParseAddr("10.9.9.1")), "00000010 00000010 00000000000000000000ffff0a090901", "Portal IP Address=10.9.9.1"},
		{"ipv6", IPAttr(TagPGPortalIPAddr, netip.MustParseAddr("fd00::2")), "00000031 00000010 fd000000000000000000000000000002", "PG Portal IP Addr=fd00::2"},
		{"uint64", Uint64Attr(TagTimestamp, 0x1122334455667788), "00000004 00000008 1122334455667788", "Timestamp=1234605616436508552"},
		{"nil", NilAttr(TagPGTag), "00000033 00000000", "PG Tag=<nil>"},
		{"opaque unknown tag", Attr{Tag: 9999, Value: []byte{1, 2}}, "0000270f 00000004 01020000", "tag 9999=01020000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendAttr(nil, tt.a)
			if want := unhex(t, tt.wire); !bytes.Equal(b, want) {
				t.Fatalf("wire %x, want %x", b, want)
			}
			a, rest, err := DecodeAttr(b)
			if err != nil || len(rest) != 0 {
				t.Fatalf("decode: %v, %d left", err, len(rest))
			}
			if a.String() != tt.str {
				t.Errorf("String %q, want %q", a.String(), tt.str)
			}
		})
	}
	// IPv4-compatible addresses (open-isns writes these for isnsadm's
	// portal=ADDR) read as IPv4; :: and ::1 stay IPv6.
	for in, want := range map[string]string{"::10.9.9.1": "10.9.9.1", "::": "::", "::1": "::1", "::ffff:1.2.3.4": "1.2.3.4"} {
		b := netip.MustParseAddr(in).As16()
		got, err := Attr{Tag: TagPortalIPAddress, Value: b[:]}.AsIP()
		if err != nil || got.String() != want {
			t.Errorf("AsIP(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	if p, udp, _ := PortAttr(TagPortalPort, 3260, false).AsPort(); p != 3260 || udp {
		t.Errorf("AsPort %d %v", p, udp)
	}
	if s, _ := (Attr{Tag: TagISCSIName, Value: []byte("abcd")}).AsString(); s != "abcd" {
		t.Errorf("unterminated string %q", s)
	}
}

func TestDecodeAttrErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"short", "00000020 0000", ErrTruncated},
		{"length past end", "00000020 00000008 69716e2e", ErrTruncated},
		{"huge length", "00000020 ffffffff 00000000", ErrTruncated},
		{"unaligned", "00000022 00000003 616263", ErrField},
		{"uint32 of 8", "00000021 00000008 0000000000000001", ErrField},
		{"ip of 4", "00000010 00000004 0a090901", ErrField},
		{"delimiter with value", "00000000 00000004 00000000", ErrField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAttrs(unhex(t, tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "isns: decode attribute:") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
	if _, err := (Attr{Tag: TagISCSINodeType}).AsUint32(); err == nil || !strings.Contains(err.Error(), "iSCSI Node Type") {
		t.Errorf("AsUint32 of nil: %v", err)
	}
}

// stockQuery is the DevAttrQry stock iscsiadm sends (usr/discovery.c) for
// initiator iqn.x, without the alias this package adds.
func stockQuery() *Message {
	m := &Message{Function: DevAttrQry, Flags: FlagClient, XID: 1, Source: StringAttr(TagISCSIName, "iqn.x"),
		Key: Attrs{Uint32Attr(TagISCSINodeType, NodeTarget)}}
	for _, t := range []Tag{32, 33, 16, 17, 48, 49, 50, 51} {
		m.Operating = append(m.Operating, NilAttr(t))
	}
	return m
}

func TestMessageEncode(t *testing.T) {
	b, err := stockQuery().Encode(0)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		0001 0002 0064 8c00 0001 0000
		00000020 00000008 69716e2e78000000
		00000021 00000004 00000001
		00000000 00000000
		00000020 00000000 00000021 00000000 00000010 00000000 00000011 00000000
		00000030 00000000 00000031 00000000 00000032 00000000 00000033 00000000`)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, want)
	}
	h, _ := DecodeHeader(b)
	m, err := DecodeMessage(h, b[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, stockQuery()) {
		t.Fatalf("decoded %v\nwant    %v", m, stockQuery())
	}
}

func TestMessageLayouts(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		wire string
	}{
		{"error response is status only", &Message{Function: DevAttrQry.Response(), Flags: FlagServer, XID: 3, Status: StatusSourceUnknown},
			"0001 8002 0004 4c00 0003 0000 00000006"},
		{"SCNRsp has no delimiter", &Message{Function: SCN.Response(), Flags: FlagClient, XID: 9, Key: Attrs{StringAttr(TagISCSIName, "i")}},
			"0001 8008 0010 8c00 0009 0000 00000000 00000020 00000004 69000000"},
		{"SCNDereg has no delimiter", &Message{Function: SCNDereg, Flags: FlagClient, XID: 2, Source: StringAttr(TagISCSIName, "i"), Key: Attrs{StringAttr(TagISCSIName, "i")}},
			"0001 0006 0018 8c00 0002 0000 00000020 00000004 69000000 00000020 00000004 69000000"},
		{"request without source", &Message{Function: DevAttrReg, Flags: FlagClient, XID: 4},
			"0001 0001 0010 8c00 0004 0000 00000000 00000000 00000000 00000000"},
		{"replace flag", &Message{Function: DevAttrReg, Flags: FlagClient | FlagReplace, XID: 5, Source: StringAttr(TagISCSIName, "i")},
			"0001 0001 0014 9c00 0005 0000 00000020 00000004 69000000 00000000 00000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.Encode(0)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.wire); !bytes.Equal(b, want) {
				t.Fatalf("encoded %x\nwant    %x", b, want)
			}
			m, err := NewReader(bytes.NewReader(b)).ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tt.m) {
				t.Fatalf("decoded %v\nwant    %v", m, tt.m)
			}
		})
	}
	h := Header{Version: 1, Function: DevAttrReg.Response(), Flags: FlagFirstPDU | FlagLastPDU}
	if _, err := DecodeMessage(h, []byte{0, 0}); !errors.Is(err, ErrTruncated) {
		t.Errorf("short status: %v", err)
	}
}

func TestMultiPDU(t *testing.T) {
	m := stockQuery()
	m.XID = 0x1234
	b, err := m.Encode(16)
	if err != nil {
		t.Fatal(err)
	}
	// 100 bytes of payload in 16-byte PDUs: 7 PDUs.
	if want := 100 + 7*HeaderLen; len(b) != want {
		t.Fatalf("%d bytes, want %d", len(b), want)
	}
	var hs []Header
	for rest := b; len(rest) > 0; {
		h, err := DecodeHeader(rest)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		rest = rest[HeaderLen+int(h.Length):]
	}
	if hs[0].Flags&FlagFirstPDU == 0 || hs[6].Flags&FlagLastPDU == 0 || hs[1].Flags&(FlagFirstPDU|FlagLastPDU) != 0 || hs[6].Seq != 6 || hs[6].Length != 4 {
		t.Fatalf("headers %v", hs)
	}
	got, err := NewReader(bytes.NewReader(b)).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("reassembled %v", got)
	}

	// Two messages interleaved PDU by PDU reassemble independently.
	m2 := &Message{Function: DevAttrReg.Response(), Flags: FlagServer, XID: 9, Key: Attrs{StringAttr(TagEntityIdentifier, "host.example.com")}}
	b2, _ := m2.Encode(8)
	pdus := func(b []byte) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			h, _ := DecodeHeader(b)
			n := HeaderLen + int(h.Length)
			out = append(out, b[:n])
			b = b[n:]
		}
		return out
	}
	p1, p2 := pdus(b), pdus(b2)
	var mixed []byte
	for i := 0; i < max(len(p1), len(p2)); i++ {
		if i < len(p2) {
			mixed = append(mixed, p2[i]...)
		}
		if i < len(p1) {
			mixed = append(mixed, p1[i]...)
		}
	}
	r := NewReader(bytes.NewReader(mixed))
	first, err1 := r.ReadMessage()
	second, err2 := r.ReadMessage()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// The shorter message completes first.
	if !reflect.DeepEqual(first, m2) || !reflect.DeepEqual(second, m) {
		t.Fatalf("interleaved: %v / %v", first, second)
	}
}

func TestReaderErrors(t *testing.T) {
	pdu := func(fn Function, flags Flags, xid, seq uint16, payload []byte) []byte {
		h := Header{Version: 1, Function: fn, Length: uint16(len(payload)), Flags: flags, XID: xid, Seq: seq}
		return append(h.Append(nil), payload...)
	}
	rsp := DevAttrQry.Response()
	zero := make([]byte, 8)
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  error
	}{
		{"no first flag", pdu(rsp, FlagServer|FlagLastPDU, 1, 0, zero), 0, ErrSequence},
		{"sequence gap", cat(pdu(rsp, FlagFirstPDU, 1, 0, zero), pdu(rsp, FlagLastPDU, 1, 2, zero)), 0, ErrSequence},
		{"second first", cat(pdu(rsp, FlagFirstPDU, 1, 0, zero), pdu(rsp, FlagFirstPDU, 1, 1, zero)), 0, ErrSequence},
		{"message over limit", cat(pdu(rsp, FlagFirstPDU, 1, 0, make([]byte, 64)), pdu(rsp, FlagLastPDU, 1, 1, make([]byte, 64))), 100, ErrTooLong},
		{"single PDU over limit", pdu(rsp, FlagFirstPDU|FlagLastPDU, 1, 0, make([]byte, 128)), 100, ErrTooLong},
		{"too many partial messages", func() []byte {
			var b []byte
			for x := uint16(0); x < maxPartial+1; x++ {
				b = append(b, pdu(rsp, FlagFirstPDU, x, 0, zero)...)
			}
			return b
		}(), 0, ErrTooLong},
		{"header cut", pdu(rsp, FlagFirstPDU|FlagLastPDU, 1, 0, zero)[:7], 0, ErrTruncated},
		{"payload cut", pdu(rsp, FlagFirstPDU|FlagLastPDU, 1, 0, zero)[:15], 0, ErrTruncated},
		{"bad attribute", pdu(rsp, FlagFirstPDU|FlagLastPDU, 1, 0, unhex(t, "00000000 00000021 00000008 00000000 00000001")), 0, ErrField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in))
			r.MaxMessage = tt.limit
			_, err := r.ReadMessage()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeDatagram(t *testing.T) {
	m := NewSCN(3, &Notification{Destination: "iqn.i", Timestamp: time.Unix(100, 0), Changes: []Change{{Bitmap: SCNObjectAdded, Name: "iqn.t"}}})
	b, _ := m.Encode(0)
	got, err := DecodeDatagram(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := DecodeDatagram(b[:len(b)-4]); !errors.Is(err, ErrField) {
		t.Errorf("short datagram: %v", err)
	}
	b2, _ := m.Encode(8)
	if _, err := DecodeDatagram(b2[:HeaderLen+8]); !errors.Is(err, ErrSequence) {
		t.Errorf("fragment: %v", err)
	}
}

// isnsdQueryResponse is the operating-attribute layout isnsd returns for the
// stock query with two targets: per matching node, its entity, the node,
// then the related portals and portal groups.
func isnsdQueryResponse() Attrs {
	a4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	return Attrs{
		StringAttr(TagEntityIdentifier, "isns.entity.0001"),
		StringAttr(TagISCSIName, "iqn.2003-01.org.example:t1"), Uint32Attr(TagISCSINodeType, NodeTarget), StringAttr(TagISCSIAlias, "t one"),
		IPAttr(TagPortalIPAddress, a4("10.9.9.1")), PortAttr(TagPortalPort, 3260, false),
		IPAttr(TagPortalIPAddress, a4("fd00::1")), PortAttr(TagPortalPort, 3261, false),
		StringAttr(TagPGISCSIName, "iqn.2003-01.org.example:t1"), IPAttr(TagPGPortalIPAddr, a4("10.9.9.1")), PortAttr(TagPGPortalPort, 3260, false), Uint32Attr(TagPGTag, 1),
		StringAttr(TagPGISCSIName, "iqn.2003-01.org.example:t1"), IPAttr(TagPGPortalIPAddr, a4("fd00::1")), PortAttr(TagPGPortalPort, 3261, false), Uint32Attr(TagPGTag, 2),
		StringAttr(TagEntityIdentifier, "isns.entity.0002"),
		StringAttr(TagISCSIName, "iqn.2003-01.org.example:t2"), Uint32Attr(TagISCSINodeType, NodeTarget),
		IPAttr(TagPortalIPAddress, a4("10.9.9.2")), PortAttr(TagPortalPort, 3260, false),
		StringAttr(TagPGISCSIName, "iqn.2003-01.org.example:t2"), IPAttr(TagPGPortalIPAddr, a4("10.9.9.2")), PortAttr(TagPGPortalPort, 3260, false), NilAttr(TagPGTag),
		StringAttr(TagPGISCSIName, "iqn.2003-01.org.example:t2"), IPAttr(TagPGPortalIPAddr, a4("10.9.9.3")), PortAttr(TagPGPortalPort, 3260, false), Uint32Attr(TagPGTag, 7),
		// An initiator in the answer is not a target.
		StringAttr(TagISCSIName, "iqn.1993-08.org.debian:01:i"), Uint32Attr(TagISCSINodeType, NodeInitiator),
	}
}

func TestParseObjects(t *testing.T) {
	objs := ParseObjects(isnsdQueryResponse())
	var types []string
	for _, o := range objs {
		types = append(types, o.Type.String())
	}
	want := "Network Entity,iSCSI Storage Node,Portal,Portal,Portal Group,Portal Group,Network Entity,iSCSI Storage Node,Portal,Portal Group,Portal Group,iSCSI Storage Node"
	if got := strings.Join(types, ","); got != want {
		t.Fatalf("objects\n%s\nwant\n%s", got, want)
	}
	// A registration's inline PGT after a portal begins a PG that takes
	// the PG iSCSI Name after it (RFC 4171 §5.6.5.1).
	inline := ParseObjects(Attrs{IPAttr(TagPortalIPAddress, netip.MustParseAddr("10.0.0.1")), PortAttr(TagPortalPort, 3260, false),
		Uint32Attr(TagPGTag, 5), StringAttr(TagPGISCSIName, "iqn.t"), StringAttr(TagISCSIName, "iqn.t")})
	if len(inline) != 3 || inline[1].Type != ObjectPortalGroup || len(inline[1].Attrs) != 2 {
		t.Fatalf("inline PG: %+v", inline)
	}
}

func TestTargets(t *testing.T) {
	got := Targets(isnsdQueryResponse())
	a := netip.MustParseAddr
	want := []Target{
		{Name: "iqn.2003-01.org.example:t1", Alias: "t one", Entity: "isns.entity.0001", Portals: []TargetPortal{{a("10.9.9.1"), 3260, 1}, {a("fd00::1"), 3261, 2}}},
		{Name: "iqn.2003-01.org.example:t2", Entity: "isns.entity.0002", Portals: []TargetPortal{{a("10.9.9.3"), 3260, 7}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets\n%+v\nwant\n%+v", got, want)
	}
	// As iscsiadm prints discovered portals.
	if s := fmt.Sprint(got[0].Portals); s != "[10.9.9.1:3260,1 [fd00::1]:3261,2]" {
		t.Errorf("portals print as %s", s)
	}
}

func TestParseSCN(t *testing.T) {
	n := &Notification{Destination: "iqn.i", Timestamp: time.Unix(1700000000, 0), Changes: []Change{
		{Bitmap: SCNObjectUpdated | SCNObjectAdded, Name: "iqn.t1"},
		{Bitmap: SCNDDMemberRemoved | SCNManagement, Name: "iqn.t2", DDIDs: []uint32{1}, DDSIDs: []uint32{2}},
	}}
	m := NewSCN(5, n)
	got, err := ParseSCN(m)
	if err != nil || !reflect.DeepEqual(got, n) {
		t.Fatalf("%+v %v", got, err)
	}
	evs := got.Events("10.9.9.1:3205")
	if len(evs) != 2 || evs[0].Kind != EventAdded || evs[1].Kind != EventDDMemberRemoved || evs[0].Name != "iqn.t1" {
		t.Fatalf("events %v", evs)
	}
	bad := []struct {
		name string
		key  Attrs
	}{
		{"empty", nil},
		{"no timestamp", Attrs{StringAttr(TagISCSIName, "i"), StringAttr(TagISCSIName, "t")}},
		{"destination not a name", Attrs{Uint32Attr(TagISCSINodeType, 1), Uint64Attr(TagTimestamp, 1)}},
		{"bitmap without name", Attrs{StringAttr(TagISCSIName, "i"), Uint64Attr(TagTimestamp, 1), Uint32Attr(TagISCSISCNBitmap, 8)}},
		{"name without bitmap", Attrs{StringAttr(TagISCSIName, "i"), Uint64Attr(TagTimestamp, 1), StringAttr(TagISCSIName, "t")}},
		{"stray attribute", Attrs{StringAttr(TagISCSIName, "i"), Uint64Attr(TagTimestamp, 1), Uint32Attr(TagISCSISCNBitmap, 8), StringAttr(TagISCSIName, "t"), Uint32Attr(TagPGTag, 1)}},
	}
	for _, tt := range bad {
		if _, err := ParseSCN(&Message{Function: SCN, Key: tt.key}); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if s := DefaultSCNBitmap.String(); s != "updated|added|removed|target-and-self-only" {
		t.Errorf("bitmap %q", s)
	}
	if DefaultSCNBitmap != 0x5c {
		t.Errorf("DefaultSCNBitmap = %#x, iscsid registers 0x5c", uint32(DefaultSCNBitmap))
	}
}

func TestStatusNames(t *testing.T) {
	err := error(&StatusError{Function: DevAttrQry, Status: StatusSourceUnknown})
	if !errors.Is(err, StatusSourceUnknown) || errors.Is(err, StatusNoSuchEntry) {
		t.Fatal("errors.Is on StatusError")
	}
	if want := "isns: DevAttrQry: server answered status 6 (Source Unknown)"; err.Error() != want {
		t.Errorf("%q", err)
	}
	for s := Status(0); s <= 23; s++ {
		if strings.HasPrefix(s.String(), "status ") {
			t.Errorf("status %d has no name", s)
		}
	}
	if Status(99).String() != "status 99" {
		t.Error("unknown status")
	}
}
