// Command attachlun attaches exactly one LUN of an iSCSI target and detaches
// it again with package initiator, as a Kubernetes CSI node plugin's
// NodeStageVolume and NodeUnstageVolume would, without running iscsiadm or
// parsing its text:
//
//	attachlun -portal 10.0.0.1 -target iqn.2003-01.org.example:t -lun 2 attach
//	{"sid":1,"lun":2,"hctl":"2:0:0:2","disk":"sdc",...}
//	attachlun -target iqn.2003-01.org.example:t -lun 2 detach
//
// attach discovers the portal's targets, sets the target's record to scan
// nothing by itself (node.session.scan = manual), logs in unless a session
// exists, and scans exactly the LUN asked for, printing what it found.
// detach removes the LUN (its multipath map first, when there is one) and
// logs out of the target's sessions once they have no other LUN.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
)

func main() {
	portal := flag.String("portal", "", "the target's portal, `address` (attach)")
	target := flag.String("target", "", "the target's `IQN`")
	lun := flag.Uint64("lun", 0, "the `LUN` to attach or detach")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound of the whole operation")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := &initiator.Client{Warn: func(err error) { fmt.Fprintln(os.Stderr, "attachlun: warning:", err) }}
	var err error
	switch flag.Arg(0) {
	case "attach":
		err = attach(ctx, c, *portal, *target, *lun)
	case "detach":
		err = detach(ctx, c, *target, *lun)
	default:
		err = errors.New("usage: attachlun -portal ADDR -target IQN -lun N attach | -target IQN -lun N detach")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attachlun:", err)
		// iscsiadm's exit codes, so a caller branches as it would on them.
		os.Exit(max(int(iscsierr.CodeOf(err)), 1))
	}
}

func attach(ctx context.Context, c *initiator.Client, portal, target string, lun uint64) error {
	recs, err := c.Discover(ctx, initiator.Portal{Address: portal, TPGT: -1}, initiator.DiscoverOptions{})
	if err != nil {
		return err
	}
	var sid int
	for _, r := range recs {
		if r.ID().Target != target {
			continue
		}
		if err := r.Set("node.session.scan", "manual"); err != nil {
			return err
		}
		if err := c.SaveNode(r); err != nil {
			return err
		}
		s, err := c.Login(ctx, r, initiator.LoginOptions{})
		if iscsierr.CodeOf(err) == iscsierr.SessExists {
			s, err = existing(ctx, c, target)
		}
		if err != nil {
			return err
		}
		sid = s.SID
		break
	}
	if sid == 0 {
		return iscsierr.Errorf(iscsierr.NoObjsFound, "portal %s does not offer %s", portal, target)
	}
	out, err := c.ScanLUN(ctx, sid, lun)
	if err != nil {
		return err
	}
	if out.Disk == "" {
		return iscsierr.Errorf(iscsierr.NoObjsFound, "target %s has no LUN %d", target, lun)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// existing is the session to target that a login found.
func existing(ctx context.Context, c *initiator.Client, target string) (*initiator.Session, error) {
	all, err := c.Sessions(ctx, initiator.ListOptions{Brief: true})
	if err != nil {
		return nil, err
	}
	for _, s := range c.SelectSessions(ctx, all, initiator.NodeFilter{Target: target}) {
		return &s, nil
	}
	return nil, iscsierr.Errorf(iscsierr.SessNotFound, "no session to %s", target)
}

func detach(ctx context.Context, c *initiator.Client, target string, lun uint64) error {
	if _, err := c.RemoveLUN(ctx, initiator.RemoveLUN{Target: target, LUN: lun}); err != nil {
		return err
	}
	all, err := c.Sessions(ctx, initiator.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range c.SelectSessions(ctx, all, initiator.NodeFilter{Target: target}) {
		if len(s.Devices) > 0 {
			continue // other volumes on it
		}
		if err := c.Logout(ctx, s.SID); err != nil {
			return err
		}
	}
	return nil
}
