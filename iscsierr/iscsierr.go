// Package iscsierr holds iscsiadm's exit codes, open-iscsi's enum
// iscsi_error_list (include/iscsi_err.h), and the error that carries one.
//
// Scripts and orchestrators branch on these numbers (21 nothing found, 15
// already logged in, 24 bad CHAP, ...), so every code keeps the value and the
// meaning it has in stock open-iscsi 2.1.8. goiscsid answers failed requests
// with them, goiscsiadm exits with them, and Go programs using package
// initiator get them in an *Error.
package iscsierr

import (
	"errors"
	"fmt"
)

// Code is an iscsiadm exit status.
type Code int

// The codes, named after ISCSI_ERR_*.
const (
	Success              Code = 0  // success
	Unknown              Code = 1  // generic error
	SessNotFound         Code = 2  // session could not be found
	NoMem                Code = 3  // could not allocate a resource
	Trans                Code = 4  // transport error (connection failure)
	Login                Code = 5  // generic login failure
	IDBM                 Code = 6  // node/discovery database error, often "record not found"
	Inval                Code = 7  // invalid argument
	TransTimeout         Code = 8  // connect timed out
	Internal             Code = 9  // internal daemon failure
	Logout               Code = 10 // logout failed
	PDUTimeout           Code = 11 // a PDU timed out
	TransNotFound        Code = 12 // transport module not loaded
	Access               Code = 13 // permission denied
	TransCaps            Code = 14 // transport cannot do the operation
	SessExists           Code = 15 // session already logged in
	InvalidMgmtReq       Code = 16 // daemon did not understand the request
	ISNSUnavailable      Code = 17 // iSNS service not supported
	ISCSIDCommErr        Code = 18 // a read or write to the daemon failed
	FatalLogin           Code = 19 // non-retryable login failure
	ISCSIDNotConn        Code = 20 // could not connect to the daemon
	NoObjsFound          Code = 21 // no records, targets, sessions or portals
	SysfsLookup          Code = 22 // sysfs lookup failed; also errno EINVAL, which iface -o new returns
	HostNotFound         Code = 23 // no such host
	LoginAuthFailed      Code = 24 // login failed authentication
	ISNSQuery            Code = 25 // iSNS query failed
	ISNSRegFailed        Code = 26 // iSNS registration failed
	OpNotSupp            Code = 27 // operation not supported
	Busy                 Code = 28 // device or resource in use
	Again                Code = 29 // failed, a retry may succeed
	UnknownDiscoveryType Code = 30 // unknown discovery type
	ChildTerminated      Code = 31 // child process terminated
	SessionNotConnected  Code = 32 // session likely not connected
	ReqTimedOut          Code = 33 // daemon request timed out
)

// messages are stock's iscsi_err_msgs, indexed by code.
var messages = [...]string{
	Success:              "",
	Unknown:              "unknown error",
	SessNotFound:         "session not found",
	NoMem:                "no available memory",
	Trans:                "encountered connection failure",
	Login:                "encountered iSCSI login failure",
	IDBM:                 "encountered iSCSI database failure",
	Inval:                "invalid parameter",
	TransTimeout:         "connection timed out",
	Internal:             "internal error",
	Logout:               "encountered iSCSI logout failure",
	PDUTimeout:           "iSCSI PDU timed out",
	TransNotFound:        "iSCSI driver not found. Please make sure it is loaded, and retry the operation",
	Access:               "daemon access denied",
	TransCaps:            "iSCSI driver does not support requested capability.",
	SessExists:           "session exists",
	InvalidMgmtReq:       "Unknown request",
	ISNSUnavailable:      "iSNS service not supported",
	ISCSIDCommErr:        "could not communicate to iscsid",
	FatalLogin:           "encountered non-retryable iSCSI login failure",
	ISCSIDNotConn:        "could not connect to iscsid",
	NoObjsFound:          "no objects found",
	SysfsLookup:          "sysfs lookup failure",
	HostNotFound:         "host not found",
	LoginAuthFailed:      "iSCSI login failed due to authorization failure",
	ISNSQuery:            "iSNS query failed",
	ISNSRegFailed:        "iSNS registration failed",
	OpNotSupp:            "operation not supported",
	Busy:                 "device or resource in use",
	Again:                "operation failed but retry may succeed",
	UnknownDiscoveryType: "unknown discovery type",
	ChildTerminated:      "child process terminated",
	SessionNotConnected:  "target likely not connected",
	ReqTimedOut:          "iscsid request timed out",
}

// String is stock's message for the code (iscsi_err_to_str): "" for success,
// "connection timed out" for 8, and so on.
func (c Code) String() string {
	if c < 0 || int(c) >= len(messages) {
		return fmt.Sprintf("invalid error code %d", int(c))
	}
	return messages[c]
}

// Reported is the line stock logs when the daemon answers a request with this
// code (iscsi_err_print_msg), without the "iscsiadm: " prefix:
// "initiator reported error (8 - connection timed out)".
func (c Code) Reported() string {
	if c < 0 || int(c) >= len(messages) {
		return c.String()
	}
	return fmt.Sprintf("initiator reported error (%d - %s)", int(c), c)
}

// Error is a failed operation with the exit code iscsiadm would give it. It is
// also how goiscsid's management protocol carries a failure (as JSON, Code
// and Message only).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// cause is what Errorf formatted, for the errors it wraps with %w.
	cause error
}

func (e *Error) Error() string { return fmt.Sprintf("%s (iscsiadm error %d)", e.Message, e.Code) }

// Unwrap returns the errors Errorf wrapped with %w, so that errors.Is and
// errors.As see the cause (a login's *session.LoginError, a syscall.Errno).
func (e *Error) Unwrap() []error {
	switch u := e.cause.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		if w := u.Unwrap(); w != nil {
			return []error{w}
		}
	}
	return nil
}

// Errorf returns an *Error with a message formatted as fmt.Errorf formats
// it, wrapping the errors of its %w verbs.
func Errorf(code Code, format string, args ...any) *Error {
	f := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: f.Error(), cause: f}
}

// CodeOf returns the code of the first *Error in err's chain: Success for
// nil, Unknown for an error that carries no code.
func CodeOf(err error) Code {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Unknown
}
