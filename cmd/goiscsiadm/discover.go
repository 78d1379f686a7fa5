package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

func (e *env) discover(c *Command) iscsierr.Code {
	if c.Portal == nil {
		return e.fail(iscsierr.Inval, "Please specify a portal with -p")
	}
	if c.ISNS {
		return e.discoverISNS(c)
	}
	port := c.Portal.Port
	if port <= 0 {
		port = session.DefaultPort
	}
	if c.Action == ActDiscoverFromRecord && e.c.DiscoveryRecord(c.Portal.Address, port) == nil {
		return e.discoveryNotFound(c)
	}
	recs, err := e.c.Discover(e.ctx, initiator.Portal{Address: c.Portal.Address, Port: port}, initiator.DiscoverOptions{
		Ifaces:        c.Ifaces,
		FromRecord:    c.Action == ActDiscoverFromRecord,
		NonPersistent: c.Op&OpNonPersistent != 0,
		// Stock's default is new, update and delete: records this portal
		// gave before and no longer gives go.
		DeleteStale: c.Op == 0 || c.Op&OpDelete != 0,
		Unreachable: func(err error) { e.reportUnreachable(c.Portal.Address, err) },
	})
	if err != nil {
		return e.discoveryFailed(c.Portal.Address, err)
	}
	return e.printDiscovered(c, recs)
}

// discoverISNS asks the iSNS server of -p, as stock's do_isns.
func (e *env) discoverISNS(c *Command) iscsierr.Code {
	recs, err := e.c.DiscoverISNS(e.ctx, initiator.Portal{Address: c.Portal.Address, Port: c.Portal.Port}, initiator.ISNSOptions{
		Ifaces:        c.Ifaces,
		UseRecord:     c.Mode == ModeDiscoveryDB,
		NonPersistent: c.Op&OpNonPersistent != 0,
		DeleteStale:   c.Op == 0 || c.Op&OpDelete != 0,
	})
	if err != nil {
		code := iscsierr.CodeOf(err)
		if code == iscsierr.ISNSQuery || code == iscsierr.ISNSRegFailed {
			e.failWith(err)
			return e.fail(code, "Could not perform iSNS discovery: %s", code)
		}
		return e.failWith(err)
	}
	return e.printDiscovered(c, recs)
}

// printDiscovered prints the records a discovery found, as stock's
// exec_disc_op_on_recs, and logs in to them with -l.
func (e *env) printDiscovered(c *Command, recs []*conf.Record) iscsierr.Code {
	var nodes []NodeSummary
	for _, r := range recs {
		nodes = append(nodes, summary(r))
	}
	if c.JSON {
		io.WriteString(e.stdout, NodesJSON(nodes))
	} else if text, x := DiscoveredText(nodes, c.PrintLevel); x != nil {
		return e.finish(text, x)
	} else {
		io.WriteString(e.stdout, text)
	}
	if c.Login {
		return e.loginRecords(recs)
	}
	return iscsierr.Success
}

// reportUnreachable says why a portal could not be reached, in stock's words.
func (e *env) reportUnreachable(host string, err error) {
	var errno syscall.Errno
	var ie *iscsierr.Error
	switch {
	case errors.As(err, &ie) && ie.Code == iscsierr.Trans:
		// An attempt goiscsid ran through the kernel (iSER): stock's
		// iscsiadm words its own kernel attempt so.
		e.errorf("Connection to discovery portal %s failed: %s", host, iscsierr.Trans)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		e.errorf("connect to %s timed out", host)
	case errors.As(err, &errno):
		e.errorf("cannot make connection to %s: %s", host, capitalize(errno.Error()))
	default:
		e.errorf("cannot make connection to %s: %v", host, err)
	}
}

// discoveryFailed reports a failed SendTargets discovery as stock 2.1.8's
// discovery.c does, with the code initiator.Discover gave it.
func (e *env) discoveryFailed(host string, err error) iscsierr.Code {
	var le *session.LoginError
	var ue *initiator.UnreachableError
	code := iscsierr.CodeOf(err)
	switch {
	case errors.As(err, &ue):
		e.errorf("connection login retries (reopen_max) %d exceeded", ue.ReopenMax)
	case code == iscsierr.LoginAuthFailed:
		e.errorf("discovery login to %s rejected: initiator failed authorization", host)
	case errors.As(err, &le) && le.Status.Class == pdu.StatusInitiatorError:
		e.errorf("discovery login to %s rejected: initiator error (%02x/%02x), non-retryable, giving up",
			host, le.Status.Class, le.Status.Detail)
	case errors.As(err, &le):
		e.errorf("discovery login to %s rejected: target error (%02x/%02x)", host, le.Status.Class, le.Status.Detail)
	case code == iscsierr.PDUTimeout:
		e.reportUnreachable(host, err)
	default:
		return e.failWith(err)
	}
	return e.fail(code, "Could not perform SendTargets discovery: %s", code)
}

// capitalize is strerror's spelling of a Go errno text: "Connection refused".
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
