package boot

import (
	"fmt"
	"strconv"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// Settings are a boot target given explicitly (iscsistart -i -t -g -a -p -u
// -w -U -W), as initramfs-tools' iscsi.initramfs and dracut's netroot=iscsi:
// give them.
type Settings struct {
	InitiatorName string
	Target        string
	// TPGT is the target portal group tag; -1 when not given.
	TPGT    int
	Address string
	// Port is the portal's port; 0 means 3260.
	Port int
	// Username and Password are the initiator's CHAP credentials, the In
	// ones the target's for mutual CHAP.
	Username, Password, UsernameIn, PasswordIn string
}

// Record checks the settings as iscsistart does (initiator name, portal group
// tag, target name and address are required; the errors are its words, with
// code Inval, its exit status) and
// returns the node record of the target: stock's built-in defaults (no
// iscsid.conf is read, as iscsistart reads none for explicit settings), the
// default iface with the initiator name, CHAP when a secret is given.
func (s Settings) Record() (*conf.Record, error) {
	switch {
	case s.InitiatorName == "":
		return nil, iscsierr.Errorf(iscsierr.Inval, "InitiatorName not set. Exiting iscsistart")
	case s.TPGT < 0:
		return nil, iscsierr.Errorf(iscsierr.Inval, "Portal Group not set. Exiting iscsistart")
	case s.Target == "":
		return nil, iscsierr.Errorf(iscsierr.Inval, "TargetName not set. Exiting iscsistart")
	case s.Address == "":
		return nil, iscsierr.Errorf(iscsierr.Inval, "IP Address not set. Exiting iscsistart")
	}
	port := s.Port
	if port == 0 {
		port = 3260
	}
	r := conf.NewNodeRecord(nil, s.Target, s.Address, port, s.TPGT, "default")
	method := ""
	if s.Password != "" || s.PasswordIn != "" {
		method = "CHAP"
	}
	for _, kv := range [][2]string{
		{"iface.initiatorname", s.InitiatorName}, {"node.session.auth.authmethod", method},
		{"node.session.auth.username", s.Username}, {"node.session.auth.password", s.Password},
		{"node.session.auth.username_in", s.UsernameIn}, {"node.session.auth.password_in", s.PasswordIn},
		{"node.conn[0].port", strconv.Itoa(port)},
	} {
		if kv[1] == "" {
			continue
		}
		if err := r.Set(kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("boot: %v", err)
		}
	}
	return r, nil
}
