package main

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
)

// Each failed attempt of a discovery is worded as stock words it: over TCP
// the socket's error, over iSER (an attempt goiscsid ran in the kernel, which
// answers ISCSI_ERR_TRANS) stock's kernel-discovery line.
func TestReportUnreachable(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"tcp refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "iscsiadm: cannot make connection to 10.9.9.1: Connection refused\n"},
		{"tcp timeout", context.DeadlineExceeded, "iscsiadm: connect to 10.9.9.1 timed out\n"},
		{"iser", iscsierr.Errorf(iscsierr.Trans, "connect to 10.9.9.1:3260 over iSER: the iSER connection did not come up"),
			"iscsiadm: Connection to discovery portal 10.9.9.1 failed: encountered connection failure\n"},
	} {
		var stderr bytes.Buffer
		e := newEnv(&bytes.Buffer{}, &stderr)
		e.reportUnreachable("10.9.9.1", tt.err)
		if stderr.String() != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, stderr.String(), tt.want)
		}
	}
}
