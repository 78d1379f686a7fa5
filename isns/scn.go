package isns

import (
	"fmt"
	"strings"
	"time"
)

// SCNBitmap is the iSCSI SCN Bitmap (RFC 4171 §6.4.4): in an SCNReg, the
// events a node wants to hear about; in an SCN, what happened.
type SCNBitmap uint32

// SCN bitmap bits (RFC 4171 §6.4.4; bit 31 in the RFC's numbering is 1<<0).
const (
	SCNDDMemberAdded        SCNBitmap = 1 << 0 // a node became a member of a DD this node is in
	SCNDDMemberRemoved      SCNBitmap = 1 << 1
	SCNObjectUpdated        SCNBitmap = 1 << 2
	SCNObjectAdded          SCNBitmap = 1 << 3
	SCNObjectRemoved        SCNBitmap = 1 << 4
	SCNManagement           SCNBitmap = 1 << 5 // management registration (control nodes only)
	SCNTargetAndSelfOnly    SCNBitmap = 1 << 6 // only about targets and this node itself
	SCNInitiatorAndSelfOnly SCNBitmap = 1 << 7
)

// DefaultSCNBitmap is what stock iscsid registers (discoveryd.c
// isns_register_objs): object updated, added and removed, about targets and
// itself only.
const DefaultSCNBitmap = SCNObjectUpdated | SCNObjectAdded | SCNObjectRemoved | SCNTargetAndSelfOnly

func (b SCNBitmap) String() string {
	names := []struct {
		b SCNBitmap
		n string
	}{
		{SCNDDMemberAdded, "dd-member-added"}, {SCNDDMemberRemoved, "dd-member-removed"},
		{SCNObjectUpdated, "updated"}, {SCNObjectAdded, "added"}, {SCNObjectRemoved, "removed"},
		{SCNManagement, "management"}, {SCNTargetAndSelfOnly, "target-and-self-only"},
		{SCNInitiatorAndSelfOnly, "initiator-and-self-only"},
	}
	var parts []string
	rest := b
	for _, x := range names {
		if b&x.b != 0 {
			parts = append(parts, x.n)
			rest &^= x.b
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint32(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Notification is a decoded State Change Notification (RFC 4171 §5.6.5.7):
// for whom, when (the server's clock), and one entry per changed node.
type Notification struct {
	Destination string // iSCSI Name of the node the SCN is addressed to
	Timestamp   time.Time
	Changes     []Change
}

// Change is one entry of an SCN: what happened to which node.
type Change struct {
	Bitmap SCNBitmap
	Name   string   // iSCSI Name of the node that changed
	DDIDs  []uint32 // DD_IDs a management SCN names
	DDSIDs []uint32 // DD_Set IDs a management SCN names
}

// ParseSCN decodes an SCN message: the destination iSCSI Name, the
// Timestamp, then pairs of iSCSI SCN Bitmap and source iSCSI Name, each
// possibly followed by DD_ID/DD_Set ID attributes.
func ParseSCN(m *Message) (*Notification, error) {
	const op = "parse SCN"
	if m.Function != SCN {
		return nil, errorf(op, ErrUnexpected, "message is %v", m.Function)
	}
	attrs := append(append(Attrs{}, m.Key...), m.Operating...)
	if len(attrs) < 2 {
		return nil, errorf(op, ErrTruncated, "%d attributes, need destination and timestamp", len(attrs))
	}
	if attrs[0].Tag != TagISCSIName {
		return nil, errorf(op, ErrField, "destination is %v, want iSCSI Name", attrs[0].Tag)
	}
	dst, err := attrs[0].AsString()
	if err != nil {
		return nil, fmt.Errorf("%s destination: %w", op, err)
	}
	if attrs[1].Tag != TagTimestamp {
		return nil, errorf(op, ErrField, "second attribute is %v, want Timestamp", attrs[1].Tag)
	}
	ts, err := attrs[1].AsUint64()
	if err != nil {
		return nil, fmt.Errorf("%s timestamp: %w", op, err)
	}
	n := &Notification{Destination: dst, Timestamp: secondsToTime(ts)}
	rest := attrs[2:]
	for len(rest) > 0 {
		if rest[0].Tag != TagISCSISCNBitmap {
			return nil, errorf(op, ErrField, "entry %d starts with %v, want iSCSI SCN Bitmap", len(n.Changes), rest[0].Tag)
		}
		bm, err := rest[0].AsUint32()
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", op, len(n.Changes), err)
		}
		if len(rest) < 2 || rest[1].Tag != TagISCSIName {
			return nil, errorf(op, ErrField, "entry %d bitmap not followed by an iSCSI Name", len(n.Changes))
		}
		name, err := rest[1].AsString()
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", op, len(n.Changes), err)
		}
		c := Change{Bitmap: SCNBitmap(bm), Name: name}
		rest = rest[2:]
		for len(rest) > 0 && rest[0].Tag != TagISCSISCNBitmap {
			v, err := rest[0].AsUint32()
			switch {
			case rest[0].Tag == TagDDID && err == nil:
				c.DDIDs = append(c.DDIDs, v)
			case rest[0].Tag == TagDDSetID && err == nil:
				c.DDSIDs = append(c.DDSIDs, v)
			default:
				return nil, errorf(op, ErrField, "entry %d has %v after its name", len(n.Changes), rest[0].Tag)
			}
			rest = rest[1:]
		}
		n.Changes = append(n.Changes, c)
	}
	return n, nil
}

// NewSCN builds an SCN message (what a server sends); tests and fake servers
// use it.
func NewSCN(xid uint16, n *Notification) *Message {
	m := &Message{Function: SCN, Flags: FlagServer, XID: xid}
	m.Key = Attrs{StringAttr(TagISCSIName, n.Destination), Uint64Attr(TagTimestamp, uint64(n.Timestamp.Unix()))}
	for _, c := range n.Changes {
		m.Key = append(m.Key, Uint32Attr(TagISCSISCNBitmap, uint32(c.Bitmap)), StringAttr(TagISCSIName, c.Name))
		for _, id := range c.DDIDs {
			m.Key = append(m.Key, Uint32Attr(TagDDID, id))
		}
		for _, id := range c.DDSIDs {
			m.Key = append(m.Key, Uint32Attr(TagDDSetID, id))
		}
	}
	return m
}

// SCNResponse is the SCNRsp for an SCN: status 0 and the destination
// attribute (RFC 4171 §5.7.5.8).
func SCNResponse(scn *Message) *Message {
	r := &Message{Function: SCN.Response(), Flags: FlagClient, XID: scn.XID}
	if len(scn.Key) > 0 {
		r.Key = Attrs{scn.Key[0]}
	}
	return r
}

// ESIResponse is the ESIRsp for an ESI: status 0 and the inquiry's
// attributes echoed back (RFC 4171 §5.7.5.13; open-isns checks the Portal IP
// Address and TCP/UDP Port in it).
func ESIResponse(esi *Message) *Message {
	r := &Message{Function: ESI.Response(), Flags: FlagClient, XID: esi.XID}
	r.Key = append(append(Attrs{}, esi.Key...), esi.Operating...)
	return r
}

func secondsToTime(s uint64) time.Time {
	if s > 1<<62 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

// EventKind classifies an [Event].
type EventKind uint8

// Event kinds. An SCN entry with several bits set is classified by the
// first that applies in this order: removed, added, updated, DD member
// added, DD member removed (isnsd reports a new node as "updated|added").
const (
	EventUnknown         EventKind = iota // no bit this package classifies
	EventRemoved                          // the node was deregistered (or expired)
	EventAdded                            // the node registered
	EventUpdated                          // the node's attributes (portals, ...) changed
	EventDDMemberAdded                    // the node joined one of this node's discovery domains
	EventDDMemberRemoved                  // the node left one of them
	EventESI                              // the server sent an Entity Status Inquiry (keep-alive)
)

func (k EventKind) String() string {
	switch k {
	case EventRemoved:
		return "removed"
	case EventAdded:
		return "added"
	case EventUpdated:
		return "updated"
	case EventDDMemberAdded:
		return "dd-member-added"
	case EventDDMemberRemoved:
		return "dd-member-removed"
	case EventESI:
		return "esi"
	}
	return "unknown"
}

func kindOf(b SCNBitmap) EventKind {
	switch {
	case b&SCNObjectRemoved != 0:
		return EventRemoved
	case b&SCNObjectAdded != 0:
		return EventAdded
	case b&SCNObjectUpdated != 0:
		return EventUpdated
	case b&SCNDDMemberAdded != 0:
		return EventDDMemberAdded
	case b&SCNDDMemberRemoved != 0:
		return EventDDMemberRemoved
	}
	return EventUnknown
}

// Event is one change an SCN reported, or an ESI.
type Event struct {
	Kind        EventKind
	Name        string    // iSCSI Name of the node that changed ("" for ESI)
	Bitmap      SCNBitmap // the SCN entry's bitmap as sent
	Destination string    // iSCSI Name the SCN was addressed to ("" for ESI)
	Time        time.Time // the SCN's timestamp (server clock); arrival time for ESI
	From        string    // address of the sender
	DDIDs       []uint32
}

func (e Event) String() string {
	if e.Kind == EventESI {
		return "ESI from " + e.From
	}
	return fmt.Sprintf("%v %s (bitmap %v, for %s, from %s)", e.Kind, e.Name, e.Bitmap, e.Destination, e.From)
}

// Events turns a notification into events, one per change.
func (n *Notification) Events(from string) []Event {
	out := make([]Event, 0, len(n.Changes))
	for _, c := range n.Changes {
		out = append(out, Event{Kind: kindOf(c.Bitmap), Name: c.Name, Bitmap: c.Bitmap,
			Destination: n.Destination, Time: n.Timestamp, From: from, DDIDs: c.DDIDs})
	}
	return out
}
