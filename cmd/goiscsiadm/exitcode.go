package main

import (
	"fmt"
)

// ExitCode is iscsiadm's exit status: open-iscsi's enum iscsi_error_list
// (include/iscsi_err.h). Scripts and orchestrators branch on these numbers
// (21 nothing found, 15 already logged in, 24 bad CHAP, ...), so each keeps
// the value and meaning it has in stock open-iscsi 2.1.8.
type ExitCode int

// The exit codes, named after ISCSI_ERR_*.
const (
	ExitSuccess              ExitCode = 0
	ExitErr                  ExitCode = 1  // generic error
	ExitSessNotFound         ExitCode = 2  // session could not be found
	ExitNoMem                ExitCode = 3  // could not allocate a resource
	ExitTrans                ExitCode = 4  // transport error (connection failure)
	ExitLogin                ExitCode = 5  // generic login failure
	ExitIDBM                 ExitCode = 6  // node/discovery database error, often "record not found"
	ExitInval                ExitCode = 7  // invalid argument
	ExitTransTimeout         ExitCode = 8  // connect timed out
	ExitInternal             ExitCode = 9  // internal daemon failure
	ExitLogout               ExitCode = 10 // logout failed
	ExitPDUTimeout           ExitCode = 11 // a PDU timed out
	ExitTransNotFound        ExitCode = 12 // transport module not loaded
	ExitAccess               ExitCode = 13 // permission denied
	ExitTransCaps            ExitCode = 14 // transport cannot do the operation
	ExitSessExists           ExitCode = 15 // session already logged in
	ExitInvalidMgmtReq       ExitCode = 16 // daemon did not understand the request
	ExitISNSUnavailable      ExitCode = 17 // iSNS service not supported
	ExitISCSIDCommErr        ExitCode = 18 // a read or write to the daemon failed
	ExitFatalLogin           ExitCode = 19 // non-retryable login failure
	ExitISCSIDNotConn        ExitCode = 20 // could not connect to the daemon
	ExitNoObjsFound          ExitCode = 21 // no records, targets, sessions or portals
	ExitSysfsLookup          ExitCode = 22 // sysfs lookup failed; also errno EINVAL, which iface -o new returns
	ExitHostNotFound         ExitCode = 23 // no such host
	ExitLoginAuthFailed      ExitCode = 24 // login failed authentication
	ExitISNSQuery            ExitCode = 25 // iSNS query failed
	ExitISNSRegFailed        ExitCode = 26 // iSNS registration failed
	ExitOpNotSupp            ExitCode = 27 // operation not supported
	ExitBusy                 ExitCode = 28 // device or resource in use
	ExitAgain                ExitCode = 29 // failed, a retry may succeed
	ExitUnknownDiscoveryType ExitCode = 30 // unknown discovery type
	ExitChildTerminated      ExitCode = 31 // child process terminated
	ExitSessionNotConnected  ExitCode = 32 // session likely not connected
	ExitReqTimedOut          ExitCode = 33 // daemon request timed out
)

// exitMessages are stock's iscsi_err_msgs, indexed by code.
var exitMessages = [...]string{
	ExitSuccess:              "",
	ExitErr:                  "unknown error",
	ExitSessNotFound:         "session not found",
	ExitNoMem:                "no available memory",
	ExitTrans:                "encountered connection failure",
	ExitLogin:                "encountered iSCSI login failure",
	ExitIDBM:                 "encountered iSCSI database failure",
	ExitInval:                "invalid parameter",
	ExitTransTimeout:         "connection timed out",
	ExitInternal:             "internal error",
	ExitLogout:               "encountered iSCSI logout failure",
	ExitPDUTimeout:           "iSCSI PDU timed out",
	ExitTransNotFound:        "iSCSI driver not found. Please make sure it is loaded, and retry the operation",
	ExitAccess:               "daemon access denied",
	ExitTransCaps:            "iSCSI driver does not support requested capability.",
	ExitSessExists:           "session exists",
	ExitInvalidMgmtReq:       "Unknown request",
	ExitISNSUnavailable:      "iSNS service not supported",
	ExitISCSIDCommErr:        "could not communicate to iscsid",
	ExitFatalLogin:           "encountered non-retryable iSCSI login failure",
	ExitISCSIDNotConn:        "could not connect to iscsid",
	ExitNoObjsFound:          "no objects found",
	ExitSysfsLookup:          "sysfs lookup failure",
	ExitHostNotFound:         "host not found",
	ExitLoginAuthFailed:      "iSCSI login failed due to authorization failure",
	ExitISNSQuery:            "iSNS query failed",
	ExitISNSRegFailed:        "iSNS registration failed",
	ExitOpNotSupp:            "operation not supported",
	ExitBusy:                 "device or resource in use",
	ExitAgain:                "operation failed but retry may succeed",
	ExitUnknownDiscoveryType: "unknown discovery type",
	ExitChildTerminated:      "child process terminated",
	ExitSessionNotConnected:  "target likely not connected",
	ExitReqTimedOut:          "iscsid request timed out",
}

// String is stock's message for the code (iscsi_err_to_str): "" for success,
// "connection timed out" for 8, and so on.
func (c ExitCode) String() string {
	if c < 0 || int(c) >= len(exitMessages) {
		return fmt.Sprintf("invalid error code %d", int(c))
	}
	return exitMessages[c]
}

// Reported is the line stock logs when the daemon answers a request with this
// code (iscsi_err_print_msg), without the "iscsiadm: " prefix:
// "initiator reported error (8 - connection timed out)".
func (c ExitCode) Reported() string {
	if c < 0 || int(c) >= len(exitMessages) {
		return c.String()
	}
	return fmt.Sprintf("initiator reported error (%d - %s)", int(c), c)
}

// logPrefix starts every error and warning line on stderr. It is stock's
// program name, not argv[0]: stock's log functions use a constant, so
// consumers that match "iscsiadm: No records found" keep matching when this
// binary is installed as goiscsiadm. (getopt's own diagnostics do use argv[0],
// as glibc's do.)
const logPrefix = "iscsiadm: "

// logLine is one error or warning line for stderr, as stock's log_error and
// log_warning write it.
func logLine(format string, args ...any) string {
	return logPrefix + fmt.Sprintf(format, args...) + "\n"
}

// Exit is how a command ends: what goes to stdout, what goes to stderr, and
// the exit status. Normal output goes to stdout without a prefix; errors and
// warnings go to stderr as "iscsiadm: <message>". An Exit may carry code 0
// with text on stderr: stock has a few of those (an unknown -C sub-mode in
// host mode, -k with a priority other than 0).
type Exit struct {
	Code   ExitCode
	Stdout string
	Stderr string
}

// Errorf is an Exit with one stock-style error line on stderr.
func Errorf(code ExitCode, format string, args ...any) *Exit {
	return &Exit{Code: code, Stderr: logLine(format, args...)}
}
