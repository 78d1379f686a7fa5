package initiator

import (
	"context"
	"path/filepath"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
)

// LoginOptions change what Login asks for.
type LoginOptions struct {
	// Another logs in one more session even when the record has sessions
	// (open-iscsi's session.multiple: what iscsiadm asks for each session
	// of node.session.nr_sessions above 1, and for -m session -r SID -o new).
	Another bool
	// NoWait returns as soon as goiscsid has taken the request, without the
	// session (iscsiadm -W): Login then returns a nil Session, and a
	// failure of the login itself goes to the daemon's log only.
	NoWait bool
}

// Login logs in to the node record r through goiscsid and returns the new
// session once it is in the full feature phase and scanned as its policy says.
// An existing session of the record is an error with code SessExists unless
// opts.Another.
func (c *Client) Login(ctx context.Context, r *conf.Record, opts LoginOptions) (*Session, error) {
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpLogin, Record: r.Map(), Another: opts.Another, NoWait: opts.NoWait})
	if err != nil || opts.NoWait {
		return nil, err
	}
	s := sessionOf(*resp.Session)
	return &s, nil
}

// RootSessions returns the SIDs of the sessions that hold the host's root
// file system (/ or /usr; scan.Sysfs.RootSessions): a host booted from iSCSI.
// Logging out of one takes the host's own files away, so logouts of all
// sessions (iscsiadm -U) leave them, as they leave onboot and firmware
// sessions; a logout asked for that session alone still happens.
func (c *Client) RootSessions() (map[int]bool, error) {
	return scan.Sysfs{Root: c.sysfs()}.RootSessions(filepath.Join(c.proc(), "self", "mountinfo"))
}

// Logout logs out of session sid: its SCSI devices are removed (caches flushed
// through the connection), then the target is told and the kernel lets it go.
func (c *Client) Logout(ctx context.Context, sid int) error {
	_, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpLogout, SID: sid})
	return err
}

// UpdateSession changes the scan policy of live session sid without a relogin:
// keys holds node.session.scan and/or node.session.autoscan_en. Without
// goiscsid nothing scans for a session, and there is nothing to change.
func (c *Client) UpdateSession(ctx context.Context, sid int, keys map[string]string) error {
	_, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpUpdate, SID: sid, Record: keys})
	if noDaemon(err) {
		return nil
	}
	return err
}

// Stats returns the kernel's counters of session sid.
func (c *Client) Stats(ctx context.Context, sid int) (*mgmt.Stats, error) {
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpStats, SID: sid})
	if err != nil {
		return nil, err
	}
	if resp.Stats == nil {
		return &mgmt.Stats{}, nil
	}
	return resp.Stats, nil
}

// scanTimeout bounds a scan done here, without goiscsid.
const scanTimeout = 2 * time.Minute

// Rescan rescans session s's SCSI host as iscsiadm -R does: its existing
// devices (capacity changes), then its target for new LUNs. goiscsid does it
// under the target's lock; without goiscsid it is done here through sysfs.
func (c *Client) Rescan(ctx context.Context, s Session) error {
	_, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpScan, SID: s.SID})
	if noDaemon(err) {
		return c.scanLocally(ctx, s, nil)
	}
	return err
}

// scanLocally scans s's host through sysfs: one LUN, or (lun nil) a rescan of
// the existing devices and a scan of the whole target.
func (c *Client) scanLocally(ctx context.Context, s Session, lun *uint64) error {
	host := -1
	if s.Host != nil {
		host = s.Host.Number
	}
	if host < 0 {
		return iscsierr.Errorf(iscsierr.SysfsLookup, "the session's SCSI host is not in sysfs")
	}
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	fs := scan.Sysfs{Root: c.sysfs()}
	var err error
	if lun != nil {
		err = fs.ScanLUN(ctx, host, *lun)
	} else if err = fs.RescanDevices(ctx, host); err == nil {
		err = fs.ScanHost(ctx, host, "-", "-", "-")
	}
	if err != nil {
		return iscsierr.Errorf(iscsierr.SysfsLookup, "scan of host%d: %v", host, err)
	}
	return nil
}
