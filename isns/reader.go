package isns

import (
	"errors"
	"io"
)

// DefaultMaxMessage bounds a reassembled message's payload unless a Reader is
// told otherwise: room for a query answer listing thousands of targets, and
// far more than open-isns can send (it never splits a message, so its
// messages stop at one PDU, under 64 KiB).
const DefaultMaxMessage = 4 << 20

// maxPartial bounds how many messages may be in reassembly at once on one
// stream (PDUs of different transactions may interleave).
const maxPartial = 8

// Reader reads iSNSP PDUs from a byte stream (a TCP connection) and
// reassembles multi-PDU messages. It is not safe for concurrent use.
//
// The PDUs of one message must arrive in order: the first flagged
// FlagFirstPDU, sequence IDs counting up by one, the last flagged
// FlagLastPDU. PDUs of different transactions may interleave. Any violation is
// an error after which the stream cannot be trusted.
type Reader struct {
	// MaxMessage bounds the payload of one message and the bytes held in
	// all partial messages together; 0 means DefaultMaxMessage.
	MaxMessage int

	r       io.Reader
	hdr     [HeaderLen]byte
	partial []*partialMsg
	held    int
}

type partialMsg struct {
	first   Header
	lastSeq uint16
	payload []byte
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) limit() int {
	if r.MaxMessage > 0 {
		return r.MaxMessage
	}
	return DefaultMaxMessage
}

// ReadPDU reads one PDU: its header and a freshly allocated payload (at most
// 65535 bytes, the most the header can describe). io.EOF means the stream
// ended cleanly between PDUs.
func (r *Reader) ReadPDU() (Header, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, nil, errorf("read PDU", ErrTruncated, "stream ended inside a PDU header")
		}
		return Header{}, nil, err
	}
	h, err := DecodeHeader(r.hdr[:])
	if err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r.r, payload); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return h, nil, errorf("read PDU", ErrTruncated, "stream ended inside the %d-byte payload of %v", h.Length, h)
		}
		return h, nil, err
	}
	return h, payload, nil
}

// ReadMessage reads PDUs until a message is complete and decodes it.
func (r *Reader) ReadMessage() (*Message, error) {
	for {
		h, payload, err := r.ReadPDU()
		if err != nil {
			return nil, err
		}
		m, err := r.add(h, payload)
		if err != nil || m != nil {
			return m, err
		}
	}
}

// add takes one PDU; it returns the message once the PDU completes one.
func (r *Reader) add(h Header, payload []byte) (*Message, error) {
	idx := -1
	for i, p := range r.partial {
		if p.first.XID == h.XID && p.first.Function == h.Function {
			idx = i
			break
		}
	}
	if idx < 0 {
		if h.Flags&FlagFirstPDU == 0 {
			return nil, errorf("reassemble message", ErrSequence, "%v without the first-PDU flag and no message in progress for its xid", h)
		}
		if h.Flags&FlagLastPDU != 0 {
			if len(payload) > r.limit() {
				return nil, errorf("reassemble message", ErrTooLong, "%v payload %d bytes, limit %d", h, len(payload), r.limit())
			}
			return DecodeMessage(h, payload)
		}
		if len(r.partial) >= maxPartial {
			return nil, errorf("reassemble message", ErrTooLong, "%v would be message %d in reassembly, limit %d", h, len(r.partial)+1, maxPartial)
		}
		if r.held+len(payload) > r.limit() {
			return nil, errorf("reassemble message", ErrTooLong, "%v: %d bytes held in partial messages, limit %d", h, r.held+len(payload), r.limit())
		}
		r.held += len(payload)
		r.partial = append(r.partial, &partialMsg{first: h, lastSeq: h.Seq, payload: payload})
		return nil, nil
	}
	p := r.partial[idx]
	if h.Flags&FlagFirstPDU != 0 {
		return nil, errorf("reassemble message", ErrSequence, "%v carries the first-PDU flag but xid %d is already in progress", h, h.XID)
	}
	if h.Seq != p.lastSeq+1 {
		return nil, errorf("reassemble message", ErrSequence, "%v follows sequence ID %d", h, p.lastSeq)
	}
	if r.held+len(payload) > r.limit() {
		return nil, errorf("reassemble message", ErrTooLong, "%v: message %d bytes, limit %d", h, len(p.payload)+len(payload), r.limit())
	}
	r.held += len(payload)
	p.lastSeq = h.Seq
	p.payload = append(p.payload, payload...)
	if h.Flags&FlagLastPDU == 0 {
		return nil, nil
	}
	r.held -= len(p.payload)
	r.partial = append(r.partial[:idx], r.partial[idx+1:]...)
	return DecodeMessage(p.first, p.payload)
}

// DecodeDatagram decodes a message that arrived in one UDP datagram: exactly
// one PDU flagged both first and last (iSNSP over UDP does not reassemble
// across datagrams here).
func DecodeDatagram(b []byte) (*Message, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	if int(h.Length) != len(b)-HeaderLen {
		return nil, errorf("decode datagram", ErrField, "%v in a %d-byte datagram", h, len(b))
	}
	if h.Flags&(FlagFirstPDU|FlagLastPDU) != FlagFirstPDU|FlagLastPDU {
		return nil, errorf("decode datagram", ErrSequence, "%v is not a whole message (first and last flags)", h)
	}
	return DecodeMessage(h, b[HeaderLen:])
}
