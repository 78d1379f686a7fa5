package ksession

import (
	"errors"

	"github.com/goiscsi/goiscsi/netif"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/session"
)

// Retryable reports whether a failed Establish may succeed when tried again:
// no answer, a refused connection (an iSER endpoint's included), a target
// that is busy. An iface binding that cannot be honoured, a kernel that
// refused a request, a broken protocol, a failed authentication or a
// negotiation that found no acceptable value fail the same way again.
func Retryable(err error) bool {
	var le *session.LoginError
	if errors.As(err, &le) {
		return le.Retryable()
	}
	var ke *nlink.KernelError
	if errors.As(err, &ke) && (ke.Op == nlink.EPConnect || ke.Op == nlink.EPPoll) {
		// An endpoint that cannot connect (no RDMA device on the route
		// yet, a portal down) is a connection failure, which open-iscsi
		// retries, not a refusal of the kernel's state.
		return true
	}
	var pe *session.ProtocolError
	var ae *session.AuthError
	var ne *session.NegotiationError
	var be *netif.BindError
	return !errors.As(err, &ke) && !errors.As(err, &pe) && !errors.As(err, &ae) && !errors.As(err, &ne) && !errors.As(err, &be)
}
