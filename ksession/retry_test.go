package ksession

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("connect to 10.0.0.1:3260: %w", syscall.ECONNREFUSED), true},
		{"login timeout", context.DeadlineExceeded, true},
		{"target busy", &session.LoginError{Status: pdu.LoginServiceUnavailable}, true},
		{"auth refused", &session.LoginError{Status: pdu.LoginAuthFailure}, false},
		{"kernel refused", fmt.Errorf("create kernel session: %w", &nlink.KernelError{Errno: syscall.ENOMEM}), false},
		{"protocol", &session.ProtocolError{Reason: "bad"}, false},
		{"mutual CHAP", &session.AuthError{Reason: "bad"}, false},
		{"negotiation", &session.NegotiationError{Key: "HeaderDigest"}, false},
		{"other", errors.New("x"), true},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
