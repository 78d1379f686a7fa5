package pdu

import (
	"encoding/binary"
	"fmt"
)

// AsyncEvent is the AsyncEvent code of an Asynchronous Message (RFC 7143 §11.9.1).
type AsyncEvent uint8

// Async events.
const (
	// AsyncSCSIEvent: a SCSI asynchronous event; the data segment carries sense data.
	AsyncSCSIEvent AsyncEvent = 0
	// AsyncLogoutRequest: log out within Parameter3 seconds.
	AsyncLogoutRequest AsyncEvent = 1
	// AsyncDropConnection: the target will drop connection Parameter1; reconnect
	// after Time2Wait (Parameter2), within Time2Retain (Parameter3).
	AsyncDropConnection AsyncEvent = 2
	// AsyncDropAllConnections: the target will drop all connections of the session;
	// Parameter2 and Parameter3 are Time2Wait and Time2Retain.
	AsyncDropAllConnections AsyncEvent = 3
	// AsyncRenegotiate: the target asks for parameter renegotiation.
	AsyncRenegotiate AsyncEvent = 4
	// AsyncVendorSpecific: AsyncVCode says what.
	AsyncVendorSpecific AsyncEvent = 255
)

func (e AsyncEvent) String() string {
	switch e {
	case AsyncSCSIEvent:
		return "SCSI event"
	case AsyncLogoutRequest:
		return "logout request"
	case AsyncDropConnection:
		return "dropping connection"
	case AsyncDropAllConnections:
		return "dropping all connections"
	case AsyncRenegotiate:
		return "parameter renegotiation request"
	case AsyncVendorSpecific:
		return "vendor-specific event"
	}
	return fmt.Sprintf("reserved async event %d", uint8(e))
}

// AsyncMessage is the BHS of an Asynchronous Message (opcode 0x32, §11.9). The ITT
// is always ReservedTag.
type AsyncMessage struct {
	LUN        LUN
	StatSN     uint32
	ExpCmdSN   uint32
	MaxCmdSN   uint32
	Event      AsyncEvent
	VendorCode uint8
	Parameter1 uint16
	Parameter2 uint16
	Parameter3 uint16
}

// Opcode returns OpAsyncMessage.
func (*AsyncMessage) Opcode() Opcode { return OpAsyncMessage }

// Encode writes m into b.
func (m *AsyncMessage) Encode(b *BHS) {
	start(b, OpAsyncMessage, false, 0x80)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, ReservedTag)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	b[36], b[37] = byte(m.Event), m.VendorCode
	put16(b, 38, m.Parameter1)
	put16(b, 40, m.Parameter2)
	put16(b, 42, m.Parameter3)
}

// Decode reads m from b.
func (m *AsyncMessage) Decode(b *BHS) error {
	if err := check(b, OpAsyncMessage); err != nil {
		return err
	}
	*m = AsyncMessage{StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32),
		Event: AsyncEvent(b[36]), VendorCode: b[37],
		Parameter1: u16(b, 38), Parameter2: u16(b, 40), Parameter3: u16(b, 42)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// ParseSenseSegment splits a data segment that starts with a 2-byte big-endian
// SenseLength (SCSI Response and SCSI-event Async Message data, §11.4.7 and §11.9.3)
// into the sense bytes and whatever follows them (iSCSI event data or response
// data).
func ParseSenseSegment(data []byte) (sense, rest []byte, err error) {
	if len(data) < 2 {
		return nil, nil, errorf("parse sense segment", ErrTruncated, "%d bytes, need 2 for SenseLength", len(data))
	}
	n := int(binary.BigEndian.Uint16(data))
	if 2+n > len(data) {
		return nil, nil, errorf("parse sense segment", ErrTruncated, "SenseLength %d but only %d bytes follow", n, len(data)-2)
	}
	return data[2 : 2+n], data[2+n:], nil
}

// ParseAsyncSCSIEvent decodes the data segment of an AsyncSCSIEvent message: the
// sense data that says what happened (e.g. 3F/0E REPORTED LUNS DATA HAS CHANGED).
func ParseAsyncSCSIEvent(data []byte) (Sense, error) {
	raw, _, err := ParseSenseSegment(data)
	if err != nil {
		return Sense{}, err
	}
	return ParseSense(raw)
}

// AppendSenseSegment appends sense behind its 2-byte SenseLength, the data
// segment of a SCSI-event Async Message or a SCSI Response with sense.
func AppendSenseSegment(dst, sense []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(sense)))
	return append(dst, sense...)
}
