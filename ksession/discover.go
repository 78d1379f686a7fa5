package ksession

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

// Discover runs a SendTargets discovery through n's portal over iSER, as
// iscsiadm does for an iser iface: there is no TCP to talk over, so the
// Discovery session is a kernel one on an iSER endpoint (EP_CONNECT,
// CREATE_BOUND_SESSION with open-iscsi's 1/32/1 for CmdSN, commands and queue
// depth, CREATE_CONN, BIND_CONN), logged in through the kernel, started, asked
// SendTargets=All with a Text Request through SEND_PDU, and torn down
// (EP_DISCONNECT first) without a Logout, as open-iscsi does. n names the portal (Address, Port), the iface, the initiator, the
// discovery CHAP settings and login timeout; k is the iser transport's Conn.
// A TCP iface's discovery is session.Discover, in the caller's process.
func Discover(ctx context.Context, k *nlink.Conn, n Node, log *slog.Logger) ([]session.DiscoveredTarget, error) {
	if !n.ISER() {
		return nil, fmt.Errorf("ksession: discovery through the kernel is for iser ifaces, not %q", n.Iface.Transport)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{k: k, node: n, log: log, done: make(chan struct{}), state: Failed}
	loginCtx, cancel := withTimeout(ctx, n.Timeouts.Login)
	defer cancel()
	portal := n.portal()
	ep, err := s.connectEndpoint(loginCtx, portal)
	if err != nil {
		return nil, err
	}
	sid, host, err := k.CreateBoundSession(loginCtx, ep.handle, 1, 32, 1)
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("create kernel discovery session: %w", err)
	}
	s.SID, s.Host = sid, host
	s.ISID = pdu.ISID{0x00, 0x02, 0x3d, byte(sid >> 16), byte(sid >> 8), byte(sid)}
	s.sub = k.Subscribe(sid)
	s.log = log.With("sid", sid, "discovery", portal)
	// The teardown must reach the kernel whatever ends ctx.
	teardown := func(haveConn bool) { s.destroy(context.WithoutCancel(ctx), haveConn) }
	if _, err := k.CreateConn(loginCtx, sid, 0); err != nil {
		ep.Close()
		teardown(false)
		return nil, fmt.Errorf("create kernel connection: %w", err)
	}
	if err := s.bind(loginCtx, ep); err != nil {
		teardown(true)
		return nil, err
	}
	params := []nlink.ParamValue{
		{Param: nlink.ParamPersistentAddress, Value: n.Address},
		{Param: nlink.ParamPersistentPort, Value: strconv.Itoa(n.Port)},
		{Param: nlink.ParamIfaceName, Value: n.Iface.Name},
		{Param: nlink.ParamInitiatorName, Value: n.InitiatorName},
		{Param: nlink.ParamDiscoverySess, Value: "1"},
	}
	for _, p := range []nlink.ParamValue{
		{Param: nlink.ParamUsername, Value: n.Auth.Username}, {Param: nlink.ParamUsernameIn, Value: n.Auth.UsernameIn},
		{Param: nlink.ParamPassword, Value: string(n.Auth.Password)}, {Param: nlink.ParamPasswordIn, Value: string(n.Auth.PasswordIn)},
	} {
		if p.Value != "" {
			params = append(params, p)
		}
	}
	if err := s.setParams(loginCtx, params); err != nil {
		teardown(true)
		return nil, err
	}
	cfg := session.LoginConfig{InitiatorName: n.InitiatorName, InitiatorAlias: n.Alias, Discovery: true, RDMA: true,
		ISID: s.ISID, Auth: n.Auth, Operational: n.Operational}
	t := &kernelTransport{s: s}
	res, err := session.Login(loginCtx, t, cfg)
	if err == nil {
		err = s.start(loginCtx, res)
	}
	if err != nil {
		teardown(true)
		return nil, err
	}
	fallback := session.Portal{Address: n.Address, Port: n.Port, TPGT: res.Params.TargetPortalGroupTag}
	found, err := session.SendTargets(ctx, t, res, 0, res.ExpCmdSN, fallback)
	if err != nil {
		teardown(true)
		return nil, fmt.Errorf("SendTargets over iSER: %w", err)
	}
	// No Logout: open-iscsi tears its kernel Discovery session down
	// without one (its logout code is compiled out), and a Logout Request
	// there was measured waiting 4 s for an answer that never came (6.1,
	// LIO over soft-RoCE), where the whole discovery takes a quarter second.
	teardown(true)
	return found, nil
}
