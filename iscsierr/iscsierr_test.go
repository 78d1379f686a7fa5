package iscsierr

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestCodes(t *testing.T) {
	for _, tc := range []struct {
		code     Code
		str, rep string
	}{
		{Success, "", "initiator reported error (0 - )"},
		{TransTimeout, "connection timed out", "initiator reported error (8 - connection timed out)"},
		{NoObjsFound, "no objects found", "initiator reported error (21 - no objects found)"},
		{ReqTimedOut, "iscsid request timed out", "initiator reported error (33 - iscsid request timed out)"},
		{34, "invalid error code 34", "invalid error code 34"},
		{-1, "invalid error code -1", "invalid error code -1"},
	} {
		if got := tc.code.String(); got != tc.str {
			t.Errorf("Code(%d).String() = %q, want %q", tc.code, got, tc.str)
		}
		if got := tc.code.Reported(); got != tc.rep {
			t.Errorf("Code(%d).Reported() = %q, want %q", tc.code, got, tc.rep)
		}
	}
	for c := Success; c <= ReqTimedOut; c++ {
		if c != Success && c.String() == "" {
			t.Errorf("code %d has no message", c)
		}
	}
}

func TestCodeOf(t *testing.T) {
	wrapped := fmt.Errorf("login: %w", Errorf(LoginAuthFailed, "bad secret"))
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{nil, Success},
		{errors.New("plain"), Unknown},
		{Errorf(SessExists, "session exists"), SessExists},
		{wrapped, LoginAuthFailed},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if got := Errorf(Busy, "map %s in use", "mpatha").Error(); got != "map mpatha in use (iscsiadm error 28)" {
		t.Errorf("Error() = %q", got)
	}
	// The cause of a %w stays reachable.
	cause := &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}
	e := Errorf(IDBM, "reading: %w", cause)
	var pe *os.PathError
	if !errors.As(e, &pe) || !errors.Is(e, syscall.ENOENT) || e.Message != "reading: open /x: no such file or directory" {
		t.Errorf("wrapped cause lost: %v", e)
	}
}
