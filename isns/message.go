package isns

import (
	"encoding/binary"
	"fmt"
)

// Message is one iSNSP message, the payload of one or more PDUs
// (RFC 4171 §5.5, §5.6, §5.7).
//
// A request that carries a Source attribute (every client request) is laid
// out as Source, message key attributes, Delimiter, operating attributes. A
// response starts with the 4-byte Status and then has the same layout
// without the Source. Server requests (SCN, ESI) and some responses (SCNRsp,
// ESIRsp, SCNDereg and its response) have no Delimiter: all their attributes
// land in Key.
type Message struct {
	Function Function
	// Flags of the first PDU. The encoder adds FlagFirstPDU and FlagLastPDU
	// per PDU itself; FlagClient, FlagServer and FlagReplace are taken from
	// here.
	Flags  Flags
	XID    uint16
	Status Status // responses only

	// Source identifies the requesting node (an iSCSI Name); requests only.
	// The zero Attr is written as a zero-length delimiter, as open-isns
	// does for a request without a source.
	Source Attr

	Key       Attrs // message key attributes
	Operating Attrs // operating attributes, after the Delimiter
}

// HasSource reports whether a message of function f carries a Source
// attribute: every request except the server-originated SCN, ESI and
// Heartbeat.
func HasSource(f Function) bool {
	if f.IsResponse() {
		return false
	}
	switch f {
	case SCN, ESI, Heartbeat:
		return false
	}
	return true
}

// hasDelimiter reports whether messages of f put a Delimiter after the key
// even when there are no operating attributes, following what open-isns
// writes (the RFC is vague for some of them).
func hasDelimiter(f Function) bool {
	switch f.Request() {
	case SCNDereg, SCN, ESI, Heartbeat:
		return false
	}
	return true
}

// AppendPayload appends the message's payload (without PDU headers) to b.
func (m *Message) AppendPayload(b []byte) []byte {
	if m.Function.IsResponse() {
		b = binary.BigEndian.AppendUint32(b, uint32(m.Status))
	} else if HasSource(m.Function) {
		b = AppendAttr(b, m.Source)
	}
	for _, a := range m.Key {
		b = AppendAttr(b, a)
	}
	// A response without attributes is the status alone, as open-isns
	// sends every error response.
	delim := hasDelimiter(m.Function) && !(m.Function.IsResponse() && len(m.Key) == 0)
	if delim || len(m.Operating) > 0 {
		b = AppendAttr(b, Delimiter)
		for _, a := range m.Operating {
			b = AppendAttr(b, a)
		}
	}
	return b
}

// Encode returns the message as PDUs, ready to write to a stream: payloads
// of at most maxPayload bytes (rounded down to a multiple of 4; 0 or more
// than MaxPDUPayload means MaxPDUPayload), sequence IDs from 0, the first
// PDU flagged FlagFirstPDU and the last FlagLastPDU.
func (m *Message) Encode(maxPayload int) ([]byte, error) {
	if maxPayload <= 0 || maxPayload > MaxPDUPayload {
		maxPayload = MaxPDUPayload
	}
	maxPayload &^= 3
	if maxPayload == 0 {
		return nil, errorf("encode "+m.Function.String(), ErrField, "PDU payload limit below 4 bytes")
	}
	payload := m.AppendPayload(nil)
	npdu := max(1, (len(payload)+maxPayload-1)/maxPayload)
	if npdu > 0x10000 {
		return nil, errorf("encode "+m.Function.String(), ErrTooLong, "%d bytes need %d PDUs, more than sequence IDs allow", len(payload), npdu)
	}
	out := make([]byte, 0, len(payload)+npdu*HeaderLen)
	for seq := 0; seq < npdu; seq++ {
		chunk := payload[min(seq*maxPayload, len(payload)):min((seq+1)*maxPayload, len(payload))]
		h := Header{
			Version:  Version,
			Function: m.Function,
			Length:   uint16(len(chunk)),
			Flags:    m.Flags &^ (FlagFirstPDU | FlagLastPDU | FlagAuth),
			XID:      m.XID,
			Seq:      uint16(seq),
		}
		if seq == 0 {
			h.Flags |= FlagFirstPDU
		}
		if seq == npdu-1 {
			h.Flags |= FlagLastPDU
		}
		out = h.Append(out)
		out = append(out, chunk...)
	}
	return out, nil
}

// DecodeMessage decodes a whole message payload (all PDUs' payloads
// concatenated) given the header of its first PDU. Attribute values alias
// payload.
func DecodeMessage(h Header, payload []byte) (*Message, error) {
	m := &Message{Function: h.Function, Flags: h.Flags &^ (FlagFirstPDU | FlagLastPDU), XID: h.XID}
	op := "decode " + h.Function.String()
	b := payload
	if h.Function.IsResponse() {
		if len(b) < 4 {
			return nil, errorf(op, ErrTruncated, "xid %d payload %d bytes, need 4 for the status", h.XID, len(b))
		}
		m.Status = Status(binary.BigEndian.Uint32(b))
		b = b[4:]
	} else if HasSource(h.Function) && len(b) > 0 {
		a, rest, err := DecodeAttr(b)
		if err != nil {
			return nil, fmt.Errorf("%s source: %w", op, err)
		}
		m.Source, b = a, rest
	}
	attrs, err := DecodeAttrs(b)
	if err != nil {
		return nil, fmt.Errorf("%s xid %d: %w", op, h.XID, err)
	}
	for i, a := range attrs {
		if a.Tag == TagDelimiter {
			m.Key, m.Operating = attrs[:i:i], attrs[i+1:]
			if len(m.Key) == 0 {
				m.Key = nil
			}
			if len(m.Operating) == 0 {
				m.Operating = nil
			}
			return m, nil
		}
	}
	if len(attrs) > 0 {
		m.Key = attrs
	}
	return m, nil
}

// String summarises the message for logs.
func (m *Message) String() string {
	s := fmt.Sprintf("%v xid=%d", m.Function, m.XID)
	if m.Function.IsResponse() {
		s += " status=" + m.Status.Error()
	}
	if m.Flags&FlagReplace != 0 {
		s += " replace"
	}
	if HasSource(m.Function) {
		s += " source[" + m.Source.String() + "]"
	}
	return s + " key[" + m.Key.Format() + "] op[" + m.Operating.Format() + "]"
}
