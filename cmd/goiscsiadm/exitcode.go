package main

import (
	"fmt"

	"github.com/goiscsi/goiscsi/iscsierr"
)

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
	Code   iscsierr.Code
	Stdout string
	Stderr string
}

// Errorf is an Exit with one stock-style error line on stderr.
func Errorf(code iscsierr.Code, format string, args ...any) *Exit {
	return &Exit{Code: code, Stderr: logLine(format, args...)}
}
