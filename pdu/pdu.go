package pdu

import (
	"errors"
	"fmt"
	"io"
)

// DefaultMaxRecvDataSegmentLength is MaxRecvDataSegmentLength until a peer declares
// otherwise, and the most a Login or Text PDU may carry (RFC 7143 §13.12).
const DefaultMaxRecvDataSegmentLength = 8192

// PDU is one whole Protocol Data Unit: header, Additional Header Segments and data
// segment, without padding or digests (the [Reader] and [Writer] handle those).
type PDU struct {
	Header BHS
	AHS    []byte // TotalAHSLength bytes of AHS, each segment padded to 4
	Data   []byte // DataSegmentLength bytes
}

// Digests says which CRC32C digests a connection carries. Both are off during the
// login phase; negotiated values apply from the first PDU after it (§13.1).
type Digests struct {
	Header bool
	Data   bool
}

// Decode returns p's header as its opcode struct (a *LoginResponse for a Login
// Response, …), for code that dispatches on what arrived.
func (p *PDU) Decode() (Message, error) { return Decode(&p.Header) }

// Decode returns the opcode struct that b holds.
func Decode(b *BHS) (Message, error) {
	var m Message
	switch b.Opcode() {
	case OpNOPOut:
		m = new(NOPOut)
	case OpSCSICommand:
		m = new(SCSICommand)
	case OpTaskMgmtRequest:
		m = new(TaskMgmtRequest)
	case OpLoginRequest:
		m = new(LoginRequest)
	case OpTextRequest:
		m = new(TextRequest)
	case OpDataOut:
		m = new(DataOut)
	case OpLogoutRequest:
		m = new(LogoutRequest)
	case OpSNACKRequest:
		m = new(SNACKRequest)
	case OpNOPIn:
		m = new(NOPIn)
	case OpSCSIResponse:
		m = new(SCSIResponse)
	case OpTaskMgmtResponse:
		m = new(TaskMgmtResponse)
	case OpLoginResponse:
		m = new(LoginResponse)
	case OpTextResponse:
		m = new(TextResponse)
	case OpDataIn:
		m = new(DataIn)
	case OpLogoutResponse:
		m = new(LogoutResponse)
	case OpR2T:
		m = new(R2T)
	case OpAsyncMessage:
		m = new(AsyncMessage)
	case OpReject:
		m = new(Reject)
	default:
		return nil, errorf("decode BHS", ErrOpcode, "unknown %v", b.Opcode())
	}
	return m, m.Decode(b)
}

func padding(n int) int { return -n & 3 }

// checkAHS walks the Additional Header Segments: each is a 2-byte AHSLength
// (bytes after the AHSType byte), the type, and the data, padded to 4 bytes.
func checkAHS(ahs []byte) error {
	for off := 0; off < len(ahs); {
		if len(ahs)-off < 4 {
			return errorf("read PDU", ErrBadAHS, "%d bytes left at offset %d, need 4", len(ahs)-off, off)
		}
		n := 3 + (int(ahs[off])<<8 | int(ahs[off+1]))
		n += padding(n)
		if n > len(ahs)-off {
			return errorf("read PDU", ErrBadAHS, "segment at offset %d needs %d bytes, %d left", off, n, len(ahs)-off)
		}
		off += n
	}
	return nil
}

// Reader reads PDUs from a byte stream, enforcing the data segment limit the
// local side declared and checking digests.
type Reader struct {
	r io.Reader
	// Digests are the digests the connection negotiated.
	Digests Digests
	// MaxDataSegmentLength is the largest data segment accepted: the
	// MaxRecvDataSegmentLength this side declared. Zero means
	// DefaultMaxRecvDataSegmentLength.
	MaxDataSegmentLength int
	tail                 [4]byte
}

// NewReader returns a Reader with no digests and the default limit.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Read reads the next PDU into p, reusing the capacity of p.AHS and p.Data. It
// returns io.EOF when the stream ends cleanly before a PDU, and an [*Error] for a
// PDU that is truncated, too long, or fails its digests; it never allocates more
// than the limit allows.
func (r *Reader) Read(p *PDU) error {
	if _, err := io.ReadFull(r.r, p.Header[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return r.readErr("BHS", err)
	}
	ahsLen := p.Header.TotalAHSLength()
	dataLen := p.Header.DataSegmentLength()
	limit := r.MaxDataSegmentLength
	if limit <= 0 {
		limit = DefaultMaxRecvDataSegmentLength
	}
	if dataLen > limit {
		return errorf("read PDU", ErrTooLong, "%v data segment %d bytes exceeds limit %d", p.Header.Opcode(), dataLen, limit)
	}
	p.AHS = grow(p.AHS, ahsLen)
	if _, err := io.ReadFull(r.r, p.AHS); err != nil {
		return r.readErr("AHS", err)
	}
	if err := checkAHS(p.AHS); err != nil {
		return err
	}
	if r.Digests.Header {
		if _, err := io.ReadFull(r.r, r.tail[:]); err != nil {
			return r.readErr("header digest", err)
		}
		if want, got := CRC32C(p.Header[:], p.AHS), digestFrom(r.tail[:]); want != got {
			return errorf("read PDU", ErrHeaderDigest, "%v: got 0x%08x, computed 0x%08x", p.Header.Opcode(), got, want)
		}
	}
	padded := dataLen + padding(dataLen)
	p.Data = grow(p.Data, padded)
	if _, err := io.ReadFull(r.r, p.Data); err != nil {
		return r.readErr("data segment", err)
	}
	if r.Digests.Data && dataLen > 0 {
		if _, err := io.ReadFull(r.r, r.tail[:]); err != nil {
			return r.readErr("data digest", err)
		}
		if want, got := CRC32C(p.Data), digestFrom(r.tail[:]); want != got {
			return errorf("read PDU", ErrDataDigest, "%v: got 0x%08x, computed 0x%08x", p.Header.Opcode(), got, want)
		}
	}
	p.Data = p.Data[:dataLen]
	return nil
}

func (r *Reader) readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Op: "read PDU", Err: ErrTruncated, Detail: "stream ended inside the " + what}
	}
	return fmt.Errorf("pdu: read PDU %s: %w", what, err)
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Append appends the wire form of p to dst: the header with TotalAHSLength and
// DataSegmentLength set from p.AHS and p.Data, the AHS, the header digest, the
// data padded with zeros to 4 bytes, and the data digest, as d asks.
func (p *PDU) Append(dst []byte, d Digests) ([]byte, error) {
	if err := p.Header.SetLengths(len(p.AHS), len(p.Data)); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, p.Header[:]...)
	dst = append(dst, p.AHS...)
	if d.Header {
		dst = AppendDigest(dst, CRC32C(dst[start:]))
	}
	if len(p.Data) == 0 {
		return dst, nil
	}
	dataStart := len(dst)
	dst = append(dst, p.Data...)
	dst = append(dst, make([]byte, padding(len(p.Data)))...)
	if d.Data {
		dst = AppendDigest(dst, CRC32C(dst[dataStart:]))
	}
	return dst, nil
}

// Writer writes whole PDUs to a byte stream, one Write call each, so that PDUs
// from concurrent callers never interleave as long as the stream itself
// serialises writes.
type Writer struct {
	w io.Writer
	// Digests are the digests the connection negotiated.
	Digests Digests
	buf     []byte
}

// NewWriter returns a Writer with no digests.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends p.
func (w *Writer) Write(p *PDU) error {
	var err error
	w.buf, err = p.Append(w.buf[:0], w.Digests)
	if err != nil {
		return err
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("pdu: write %v: %w", p.Header.Opcode(), err)
	}
	return nil
}
