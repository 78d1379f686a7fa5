package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/session"
)

// discover answers mgmt.OpDiscover: one SendTargets attempt through an iser
// iface, on a kernel Discovery session over an iSER endpoint (what stock's
// iscsiadm does itself through the kernel; goiscsiadm has no kernel access
// of its own, so goiscsid runs it). keys are the discovery record's and the
// iface's. A portal that cannot be reached answers ISCSI_ERR_TRANS, which
// goiscsiadm retries up to discovery.sendtargets.reopen_max times, as it
// does over TCP.
func (d *daemon) discover(ctx context.Context, keys map[string]string) *mgmt.Response {
	n, err := discoveryNode(keys, d.initiatorName)
	if err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval, "%v", err)}
	}
	if !n.ISER() {
		// A tcp iface's discovery runs in goiscsiadm, over its own socket.
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Inval,
			"discovery through iface %s (transport %q) is not the kernel's to run", n.Iface.Name, n.Iface.Transport)}
	}
	nl, err := d.kernelFor(n)
	if err != nil {
		return &mgmt.Response{Error: loginError(err)}
	}
	log := d.log.With("discovery", n.Address, "port", n.Port, "iface", n.Iface.Name)
	if err := d.begin(ctx); err != nil {
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Internal, "%v", err)}
	}
	found, err := ksession.Discover(ctx, nl, n, log)
	d.end()
	if err != nil {
		log.Warn("SendTargets discovery over iSER failed", "err", err)
		var le *session.LoginError
		var ae *session.AuthError
		switch {
		case errors.As(err, &le) && le.AuthFailure():
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.LoginAuthFailed, "%v", err)}
		case errors.As(err, &le), errors.As(err, &ae):
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.FatalLogin, "%v", err)}
		case ksession.Retryable(err):
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Trans, "%v", err)}
		}
		return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.Internal, "%v", err)}
	}
	resp := &mgmt.Response{Targets: []mgmt.DiscoveredTarget{}}
	for _, t := range found {
		mt := mgmt.DiscoveredTarget{Name: t.Name}
		for _, p := range t.Portals {
			mt.Portals = append(mt.Portals, mgmt.DiscoveredPortal{Address: p.Address, Port: p.Port, TPGT: p.TPGT})
		}
		resp.Targets = append(resp.Targets, mt)
	}
	log.Info("SendTargets discovery over iSER", "targets", len(found))
	return resp
}

// discoveryNode is what ksession.Discover needs from a discovery record and
// an iface record's keys, with stock's defaults for those left out.
func discoveryNode(keys map[string]string, initiatorName string) (ksession.Node, error) {
	num := func(key string, def int) (int, error) {
		v, ok := keys[key]
		if !ok || v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, errors.New(key + " = " + strconv.Quote(v) + " is not a number")
		}
		return n, nil
	}
	n := ksession.Node{}
	n.Address = keys["discovery.sendtargets.address"]
	if n.Address == "" {
		return n, errors.New("no discovery.sendtargets.address")
	}
	var err error
	if n.Port, err = num("discovery.sendtargets.port", session.DefaultPort); err != nil {
		return n, err
	}
	login, err := num("discovery.sendtargets.timeo.login_timeout", 15)
	if err != nil {
		return n, err
	}
	mrdsl, err := num("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength", 32768)
	if err != nil {
		return n, err
	}
	n.Iface = conf.Iface{Name: keys["iface.iscsi_ifacename"], Transport: keys["iface.transport_name"],
		Netdev: keys["iface.net_ifacename"], HWAddress: keys["iface.hwaddress"], IPAddress: keys["iface.ipaddress"],
		InitiatorName: keys["iface.initiatorname"]}
	n.InitiatorName = initiatorName
	if n.Iface.InitiatorName != "" {
		n.InitiatorName = n.Iface.InitiatorName
	}
	n.Timeouts = conf.DefaultTimeouts()
	n.Timeouts.Login = time.Duration(login) * time.Second
	n.Operational = session.DefaultOperational()
	n.Operational.MaxRecvDataSegmentLength = uint32(mrdsl)
	n.Auth = session.Auth{Method: session.AuthNone}
	if m := keys["discovery.sendtargets.auth.authmethod"]; m == "CHAP" || m == "chap" {
		n.Auth = session.Auth{Method: session.AuthCHAP,
			Username: keys["discovery.sendtargets.auth.username"], Password: session.Secret(keys["discovery.sendtargets.auth.password"]),
			UsernameIn: keys["discovery.sendtargets.auth.username_in"], PasswordIn: session.Secret(keys["discovery.sendtargets.auth.password_in"])}
	}
	return n, nil
}
