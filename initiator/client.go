// Package initiator attaches and detaches iSCSI storage on a Linux host: the
// node database, discovery, logins and logouts through goiscsid, the sessions
// with their SCSI devices, and the narrow scans and safe removals that attach
// tools need. goiscsiadm is its command line; a Kubernetes CSI driver or any
// other Go program uses it instead of running iscsiadm and parsing its text.
//
// A Client works with the files and the daemon open-iscsi's tools use: the
// node database and iscsid.conf under /etc/iscsi, sysfs, and goiscsid's
// management socket. Without a daemon it does what needs none: records,
// discovery, session listings from sysfs, narrow scans and removals.
//
// Every error a Client returns for a failed operation is an *iscsierr.Error
// carrying the exit code iscsiadm gives the same failure (iscsierr.CodeOf):
// 15 a session exists, 21 nothing found, 24 authentication failed, ...
//
// Attaching exactly one LUN and detaching it safely, multipath map included:
//
//	c := &initiator.Client{}
//	recs, _ := c.Discover(ctx, initiator.Portal{Address: "10.0.0.1"}, initiator.DiscoverOptions{})
//	s, _ := c.Login(ctx, recs[0], initiator.LoginOptions{}) // under autoscan_en = No: LUN 0 only
//	lun, _ := c.ScanLUN(ctx, s.SID, 3)     // exactly LUN 3, and its map
//	...                                    // use lun.Disk or lun.Multipath
//	rep, err := c.RemoveLUN(ctx, initiator.RemoveLUN{SID: s.SID, LUN: 3})
package initiator

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
)

// Client reaches the node database, sysfs and goiscsid. The zero value uses
// the host's (/etc/iscsi, /sys, goiscsid's default socket).
type Client struct {
	// Root holds the node database, iscsid.conf and initiatorname.iscsi;
	// empty means /etc/iscsi.
	Root string
	// Sysfs, Proc and Run are where sysfs, procfs and /run are mounted;
	// empty means /sys, /proc and /run.
	Sysfs, Proc, Run string
	// Socket is goiscsid's management socket; empty means mgmt.DefaultSocket.
	Socket string
	// Block does a removal's flushes, device-mapper calls and SCSI deletes
	// when no goiscsid runs; nil means the host's (scan.HostBlockOps).
	Block scan.BlockOps
	// Warn receives what reading the node database skipped or ignored (a
	// stray file, a torn record, a line a record cannot hold), naming the
	// file; nil drops them.
	Warn func(error)
	// RequestTimeout bounds a request to goiscsid whose context has no
	// deadline; zero means 10 minutes (a login may retry for minutes).
	RequestTimeout time.Duration
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (c *Client) root() string  { return or(c.Root, "/etc/iscsi") }
func (c *Client) sysfs() string { return or(c.Sysfs, "/sys") }
func (c *Client) proc() string  { return or(c.Proc, "/proc") }
func (c *Client) run() string   { return or(c.Run, "/run") }

// DB is the node database.
func (c *Client) DB() *conf.DB { return &conf.DB{Root: c.root(), Warn: c.Warn} }

// Config reads iscsid.conf, whose node.* and discovery.* keys are the defaults
// of new records.
func (c *Client) Config() (*conf.Config, error) {
	return conf.LoadConfig(filepath.Join(c.root(), "iscsid.conf"))
}

// InitiatorName reads the host's initiator name (initiatorname.iscsi).
func (c *Client) InitiatorName() (string, error) {
	name, _, err := conf.ReadInitiatorName(filepath.Join(c.root(), "initiatorname.iscsi"))
	if err != nil {
		return "", iscsierr.Errorf(iscsierr.Inval, "%v", err)
	}
	return name, nil
}

// defaultRequestTimeout bounds one request to goiscsid: logins take up to
// initial_login_retry_max login timeouts in the daemon, so it is generous.
const defaultRequestTimeout = 10 * time.Minute

// do sends req to goiscsid. The error is an *iscsierr.Error: the daemon's
// answer, or ISCSIDNotConn when no daemon listens.
func (c *Client) do(ctx context.Context, req *mgmt.Request) (*mgmt.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmp(c.RequestTimeout, defaultRequestTimeout))
		defer cancel()
	}
	resp, err := (&mgmt.Client{Path: c.Socket}).Do(ctx, req)
	if err != nil {
		var e *iscsierr.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, iscsierr.Errorf(iscsierr.ISCSIDCommErr, "%v", err)
	}
	if resp.Error != nil {
		return resp, resp.Error
	}
	return resp, nil
}

func cmp(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// noDaemon reports whether err says goiscsid does not run (or serves root
// only, and this process is not): what a Client then does itself.
func noDaemon(err error) bool {
	c := iscsierr.CodeOf(err)
	return c == iscsierr.ISCSIDNotConn || c == iscsierr.Access
}

// StopDaemon asks goiscsid to stop, leaving its sessions to the kernel for
// the next daemon to take over (iscsiadm -k 0).
func (c *Client) StopDaemon(ctx context.Context) error {
	_, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpStop})
	return err
}
