package nlink

import (
	"testing"

	"github.com/mdlayher/netlink"
)

// replyTo is the kernel's answer to a request of type req: its reply (the
// payload's type req) or, with errno, an error reply (payload type IF_ERROR,
// header type still req).
func replyTo(req MessageType, errno uint32) netlink.Message {
	b := make([]byte, UeventSize)
	ne.PutUint32(b[offType:], uint32(req))
	if errno != 0 {
		ne.PutUint32(b[offType:], uint32(EventIfError))
		ne.PutUint32(b[4:], -errno)
	}
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(req)}, Data: b}
}

func TestMatchReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []netlink.Message
		typ  MessageType
		ok   bool
	}{
		{"reply", []netlink.Message{replyTo(SetParam, 0)}, SetParam, true},
		{"its own error", []netlink.Message{replyTo(SetParam, 22)}, SetParam, true},
		// A GET_STATS the kernel refused after the caller stopped waiting
		// must not pass for the next request's answer.
		{"late error of another request", []netlink.Message{replyTo(GetStats, 22)}, SetParam, false},
		{"reply of another request", []netlink.Message{replyTo(StartConn, 0)}, SetParam, false},
		{"two messages", []netlink.Message{replyTo(SetParam, 0), replyTo(SetParam, 0)}, SetParam, false},
		{"none", nil, SetParam, false},
		{"short", []netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(SetParam)}, Data: make([]byte, 8)}}, SetParam, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := matchReply(tc.msgs, uint32(tc.typ))
			if (err == nil) != tc.ok {
				t.Fatalf("matchReply: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestParseMessages(t *testing.T) {
	m := replyTo(GetStats, 22)
	m.Header.Length = uint32(16 + len(m.Data))
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := parseMessages(append(b, b...))
	if err != nil || len(msgs) != 2 || msgs[1].Header.Type != netlink.HeaderType(GetStats) || len(msgs[1].Data) != UeventSize {
		t.Fatalf("parseMessages: %d messages, %v", len(msgs), err)
	}
	for _, bad := range [][]byte{b[:20], append([]byte{8, 0, 0, 0}, b[4:]...), append([]byte{0xff, 0xff, 0, 0}, b[4:]...)} {
		if _, err := parseMessages(bad); err == nil {
			t.Errorf("parseMessages(% x...) accepted a malformed datagram", bad[:8])
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	m := replyTo(SetParam, 0)
	m.Header.Length = uint32(16 + len(m.Data))
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Add(b[:17])
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := parseMessages(b)
		if err == nil {
			for _, m := range msgs {
				matchReply([]netlink.Message{m}, uint32(SetParam))
			}
		}
	})
}
