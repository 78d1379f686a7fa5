package isns

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// fuzzSeeds are whole messages (PDUs included) of the kinds a client and a
// listener meet.
func fuzzSeeds() [][]byte {
	ms := []*Message{
		stockQuery(),
		{Function: DevAttrQry.Response(), Flags: FlagServer, XID: 1, Key: Attrs{Uint32Attr(TagISCSINodeType, NodeTarget)}, Operating: isnsdQueryResponse()},
		{Function: DevAttrReg, Flags: FlagClient | FlagReplace, XID: 2, Source: StringAttr(TagISCSIName, "iqn.i"),
			Key: Attrs{StringAttr(TagEntityIdentifier, "host")},
			Operating: Attrs{StringAttr(TagEntityIdentifier, "host"), Uint32Attr(TagEntityProtocol, 2),
				IPAttr(TagPortalIPAddress, netip.MustParseAddr("10.9.9.2")), PortAttr(TagPortalPort, 40000, true), PortAttr(TagSCNPort, 40000, true),
				StringAttr(TagISCSIName, "iqn.i"), Uint32Attr(TagISCSINodeType, NodeInitiator)}},
		{Function: DevAttrQry.Response(), Flags: FlagServer, XID: 3, Status: StatusSourceUnknown},
		NewSCN(4, &Notification{Destination: "iqn.i", Timestamp: time.Unix(1700000000, 0), Changes: []Change{{Bitmap: SCNObjectRemoved, Name: "iqn.t"}}}),
		{Function: ESI, Flags: FlagServer, XID: 5, Key: Attrs{Uint64Attr(TagTimestamp, 1), StringAttr(TagEntityIdentifier, "host"),
			IPAttr(TagPortalIPAddress, netip.MustParseAddr("10.9.9.2")), PortAttr(TagPortalPort, 40000, false)}},
	}
	var out [][]byte
	for _, m := range ms {
		b, err := m.Encode(0)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	split, _ := ms[1].Encode(64)
	return append(out, split)
}

// FuzzReader feeds a byte stream to the reader: every message it returns
// must encode and decode back to itself, and errors must be *Error or EOF.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		r.MaxMessage = 8192
		for {
			m, err := r.ReadMessage()
			if err != nil {
				var ierr *Error
				if !errors.Is(err, io.EOF) && !errors.As(err, &ierr) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
			roundTrip(t, m)
		}
	})
}

func roundTrip(t *testing.T, m *Message) {
	t.Helper()
	b, err := m.Encode(0)
	if err != nil {
		t.Fatalf("encode %v: %v", m, err)
	}
	m2, err := NewReader(bytes.NewReader(b)).ReadMessage()
	if err != nil {
		t.Fatalf("re-decode %v: %v", m, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("not symmetric:\n%v\n%v", m, m2)
	}
}

// FuzzDecodeMessage decodes a payload under any function ID.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds() {
		h, _ := DecodeHeader(s)
		f.Add(uint16(h.Function), uint16(h.Flags), s[HeaderLen:])
	}
	f.Fuzz(func(t *testing.T, fn, flags uint16, payload []byte) {
		h := Header{Version: 1, Function: Function(fn), Flags: Flags(flags) &^ FlagAuth, Length: uint16(len(payload))}
		m, err := DecodeMessage(h, payload)
		if err != nil {
			return
		}
		roundTrip(t, m)
		_ = m.String()
	})
}

// FuzzDecodeDatagram is the UDP listener's decoder.
func FuzzDecodeDatagram(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeDatagram(in)
		if err != nil {
			return
		}
		roundTrip(t, m)
	})
}

// FuzzParseSCN parses SCN payloads: what parses must rebuild to the same
// notification.
func FuzzParseSCN(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[HeaderLen:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodeMessage(Header{Version: 1, Function: SCN}, payload)
		if err != nil {
			return
		}
		n, err := ParseSCN(m)
		if err != nil {
			return
		}
		if n.Timestamp.IsZero() {
			return // out-of-range seconds do not rebuild
		}
		n2, err := ParseSCN(NewSCN(m.XID, n))
		if err != nil {
			t.Fatalf("rebuilt SCN: %v", err)
		}
		// Strings cut at NUL and re-encoded compare equal.
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("not symmetric:\n%+v\n%+v", n, n2)
		}
		_ = n.Events("x")
	})
}

// FuzzTargets groups arbitrary attribute lists into objects and targets.
func FuzzTargets(f *testing.F) {
	var b []byte
	for _, a := range isnsdQueryResponse() {
		b = AppendAttr(b, a)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		attrs, err := DecodeAttrs(in)
		if err != nil {
			return
		}
		n := 0
		for _, o := range ParseObjects(attrs) {
			n += len(o.Attrs)
		}
		if n > len(attrs) {
			t.Fatalf("%d attributes grouped from %d", n, len(attrs))
		}
		for _, tg := range Targets(attrs) {
			if tg.Name == "" {
				t.Fatal("target without a name")
			}
		}
	})
}
