package isns

import (
	"errors"
	"fmt"
)

// Sentinel errors carried by [*Error]; test for them with errors.Is.
var (
	// ErrTruncated: the input ended inside a PDU, an attribute or a field.
	ErrTruncated = errors.New("truncated")
	// ErrTooLong: a length exceeds a protocol or configured limit.
	ErrTooLong = errors.New("too long")
	// ErrVersion: the PDU header carries an iSNSP version other than 1.
	ErrVersion = errors.New("unsupported iSNSP version")
	// ErrSequence: the PDUs of a message are out of order, duplicated or
	// missing their first/last flags.
	ErrSequence = errors.New("bad PDU sequence")
	// ErrField: a field holds a value the protocol does not allow, or a value
	// of the wrong size for its tag.
	ErrField = errors.New("invalid field")
	// ErrUnexpected: a message arrived that the receiver did not ask for or
	// cannot use (a request where a response was due, the wrong function).
	ErrUnexpected = errors.New("unexpected message")
)

// Error describes malformed input: what was being decoded, which rule it broke
// (Err, one of the sentinels above) and the details.
type Error struct {
	Op     string // what was being done, e.g. "read PDU", "decode attribute"
	Err    error  // one of the Err* sentinels
	Detail string // human-readable specifics, e.g. "tag 33 (iSCSI Node Type) length 2, want 4"
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("isns: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("isns: %s: %v: %s", e.Op, e.Err, e.Detail)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrTruncated) works.
func (e *Error) Unwrap() error { return e.Err }

func errorf(op string, sentinel error, format string, args ...any) *Error {
	return &Error{Op: op, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// Status is the 32-bit status code at the start of every iSNSP response
// (RFC 4171 §6.4). It implements error so that errors.Is(err,
// StatusSourceUnknown) works on the [*StatusError] a call returns.
type Status uint32

// Status codes of RFC 4171 §6.4.
const (
	StatusSuccess                  Status = 0
	StatusUnknownError             Status = 1
	StatusMessageFormatError       Status = 2
	StatusInvalidRegistration      Status = 3
	StatusInvalidQuery             Status = 5 // 4 is reserved
	StatusSourceUnknown            Status = 6
	StatusSourceAbsent             Status = 7
	StatusSourceUnauthorized       Status = 8
	StatusNoSuchEntry              Status = 9
	StatusVersionNotSupported      Status = 10
	StatusInternalError            Status = 11
	StatusBusy                     Status = 12
	StatusOptionNotUnderstood      Status = 13
	StatusInvalidUpdate            Status = 14
	StatusMessageNotSupported      Status = 15
	StatusSCNEventRejected         Status = 16
	StatusSCNRegistrationRejected  Status = 17
	StatusAttributeNotImplemented  Status = 18
	StatusFCDomainIDNotAvailable   Status = 19
	StatusFCDomainIDNotAllocated   Status = 20
	StatusESINotAvailable          Status = 21
	StatusInvalidDeregistration    Status = 22
	StatusRegistrationNotSupported Status = 23
)

var statusNames = map[Status]string{
	StatusSuccess:                  "Successful",
	StatusUnknownError:             "Unknown Error",
	StatusMessageFormatError:       "Message Format Error",
	StatusInvalidRegistration:      "Invalid Registration",
	4:                              "Reserved",
	StatusInvalidQuery:             "Invalid Query",
	StatusSourceUnknown:            "Source Unknown",
	StatusSourceAbsent:             "Source Absent",
	StatusSourceUnauthorized:       "Source Unauthorized",
	StatusNoSuchEntry:              "No Such Entry",
	StatusVersionNotSupported:      "Version Not Supported",
	StatusInternalError:            "Internal Error",
	StatusBusy:                     "Busy",
	StatusOptionNotUnderstood:      "Option Not Understood",
	StatusInvalidUpdate:            "Invalid Update",
	StatusMessageNotSupported:      "Message (FUNCTION_ID) Not Supported",
	StatusSCNEventRejected:         "SCN Event Rejected",
	StatusSCNRegistrationRejected:  "SCN Registration Rejected",
	StatusAttributeNotImplemented:  "Attribute Not Implemented",
	StatusFCDomainIDNotAvailable:   "FC_DOMAIN_ID Not Available",
	StatusFCDomainIDNotAllocated:   "FC_DOMAIN_ID Not Allocated",
	StatusESINotAvailable:          "ESI Not Available",
	StatusInvalidDeregistration:    "Invalid Deregistration",
	StatusRegistrationNotSupported: "Registration Feature Not Supported",
}

// String returns the RFC's name for the status, e.g. "Source Unknown".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %d", uint32(s))
}

// Error makes Status usable as an errors.Is target.
func (s Status) Error() string { return fmt.Sprintf("%d (%s)", uint32(s), s.String()) }

// StatusError is returned when the server answers a request with a non-zero
// status. errors.Is(err, StatusNoSuchEntry) and errors.As both work.
type StatusError struct {
	Function Function // the request's function, e.g. DevAttrQry
	Status   Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("isns: %v: server answered status %d (%s)", e.Function, uint32(e.Status), e.Status.String())
}

// Unwrap returns the Status so errors.Is matches the Status constants.
func (e *StatusError) Unwrap() error { return e.Status }
