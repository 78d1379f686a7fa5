// Package boot logs in to the target a host boots from, without a daemon, as
// open-iscsi's iscsistart does in an initramfs: the session is made in the
// kernel (package ksession), its LUNs are scanned, and the program exits
// leaving the session to the kernel until goiscsid starts and takes it over
// (goiscsid adopts the sessions it finds in the kernel at start, without a
// new login). The targets come from the boot firmware's table (package ibft)
// or from explicit settings (an initramfs's iscsi.initramfs).
package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/scan"
)

// Login logs in to the target of node record rec through the kernel k and
// scans the session's host as the record's scan policy says; initiatorName
// is used when the record has no iface.initiatorname. A login that fails in a
// way another attempt may overcome (no answer, a refused connection, a busy
// target) is tried again, a second apart, for node.session.
// initial_login_retry_max login timeouts, as iscsid does. The session keeps
// running in the kernel when this process exits.
func Login(ctx context.Context, k *nlink.Conn, rec *conf.Record, initiatorName string, sysfs scan.Sysfs, log *slog.Logger) (*ksession.Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := rec.Node(initiatorName)
	if err != nil {
		return nil, fmt.Errorf("boot: node record: %w", err)
	}
	autoscan := "Yes"
	if !n.AutoscanEn {
		autoscan = "No"
	}
	policy, err := scan.PolicyFor(n.Scan, autoscan)
	if err != nil {
		return nil, fmt.Errorf("boot: node record: %w", err)
	}
	alias, _ := os.Hostname()
	kn := ksession.Node{Node: n, Alias: alias}
	switch t := n.Iface.Transport; {
	case kn.ISER():
		// Every request of an iSER session must carry ib_iser's handle:
		// the kernel runs the handle's transport functions on it.
		info, err := nlink.LoadTransport(sysfs.Root, ksession.TransportISER)
		if err != nil {
			return nil, fmt.Errorf("boot: %w", err)
		}
		k = k.ForTransport(info.Handle)
	case t != "" && t != "tcp":
		return nil, fmt.Errorf("boot: iface %s: iSCSI transport %q is not supported (tcp and iser are)", n.Iface.Name, t)
	}
	deadline := time.Now().Add(time.Duration(max(n.LoginRetries, 1)) * max(n.Timeouts.Login, time.Second))
	var s *ksession.Session
	for attempt := 1; ; attempt++ {
		s, err = ksession.Establish(ctx, k, kn, ksession.Hooks{}, log)
		if err == nil {
			break
		}
		if !ksession.Retryable(err) || time.Now().Add(time.Second).After(deadline) {
			return nil, fmt.Errorf("boot: login to %s at %s:%d: %w", n.Target, n.Address, n.Port, err)
		}
		log.Warn("login attempt failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("boot: login to %s at %s:%d: %w", n.Target, n.Address, n.Port, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Nothing is held back at boot: goiscsid's memory of removed LUNs
	// (/run/goiscsi/held) does not outlive a reboot.
	if _, err := sysfs.Apply(sctx, log, int(s.SID), int(s.Host), policy, scan.Login, nil); err != nil {
		return s, fmt.Errorf("boot: scan of host%d after the login: %w", s.Host, err)
	}
	return s, nil
}
