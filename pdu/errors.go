package pdu

import (
	"errors"
	"fmt"
)

// Sentinel errors carried by [*Error]; test for them with errors.Is.
var (
	// ErrTruncated: the input ended inside a PDU or a field.
	ErrTruncated = errors.New("truncated")
	// ErrTooLong: a length exceeds the negotiated or protocol limit.
	ErrTooLong = errors.New("too long")
	// ErrBadAHS: the Additional Header Segments do not add up to TotalAHSLength.
	ErrBadAHS = errors.New("bad additional header segment")
	// ErrHeaderDigest: the header digest does not match the header.
	ErrHeaderDigest = errors.New("header digest mismatch")
	// ErrDataDigest: the data digest does not match the data segment.
	ErrDataDigest = errors.New("data digest mismatch")
	// ErrOpcode: the BHS carries an opcode other than the one expected.
	ErrOpcode = errors.New("unexpected opcode")
	// ErrField: a field holds a value the protocol does not allow.
	ErrField = errors.New("invalid field")
	// ErrText: a text segment is malformed.
	ErrText = errors.New("malformed text")
	// ErrSense: sense data is malformed.
	ErrSense = errors.New("malformed sense data")
)

// Error describes malformed input: what was being decoded, which rule it broke
// (Err, one of the sentinels above) and the details.
type Error struct {
	Op     string // what was being done, e.g. "read PDU", "decode Login Response"
	Err    error  // one of the Err* sentinels
	Detail string // human-readable specifics, e.g. "data segment 70000 bytes, limit 65536"
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("pdu: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("pdu: %s: %v: %s", e.Op, e.Err, e.Detail)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrTooLong) works.
func (e *Error) Unwrap() error { return e.Err }

func errorf(op string, sentinel error, format string, args ...any) *Error {
	return &Error{Op: op, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}
