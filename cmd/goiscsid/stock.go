package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/internal/sockserve"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/stockipc"
)

// ServeStock answers open-iscsi's own iscsiadm (and any client of iscsid's
// IPC) with the same sessions, policies and locks as goiscsiadm's requests:
// a login from stock iscsiadm is scanned as the record's scan policy says,
// goiscsi's own keys (node.session.autoscan_en) taken from the node database
// where stock's record cannot carry them.
func (d *daemon) ServeStock(ctx context.Context, req *stockipc.Request) *stockipc.Response {
	log := d.log.With("client", "iscsiadm "+req.Version(), "command", req.Command.String())
	switch req.Command {
	case stockipc.CmdSessionLogin:
		keys := d.stockRecord(req.Record, log)
		resp := d.login(ctx, keys, req.Multiple)
		return &stockipc.Response{Err: codeOf(resp.Error)}
	case stockipc.CmdSessionLogout:
		return &stockipc.Response{Err: codeOf(d.logout(ctx, uint32(req.SID)).Error)}
	case stockipc.CmdSessionStats:
		ds, e := d.session(uint32(req.SID))
		if e != nil {
			return &stockipc.Response{Err: e.Code}
		}
		st, err := ds.k.Stats(ctx)
		if err != nil {
			log.Warn("kernel statistics", "sid", req.SID, "err", err)
			return &stockipc.Response{Err: iscsierr.Internal}
		}
		return &stockipc.Response{Stats: st}
	case stockipc.CmdSessionInfo:
		ds, e := d.session(uint32(req.SID))
		if e != nil {
			return &stockipc.Response{Err: e.Code}
		}
		stage, conn := stockStates(ds.k.State())
		return &stockipc.Response{SessionState: stage, ConnState: conn}
	case stockipc.CmdConfigFile:
		return &stockipc.Response{Config: d.configPath}
	case stockipc.CmdConfigIName:
		return &stockipc.Response{Config: d.initiatorName}
	case stockipc.CmdConfigIAlias:
		return &stockipc.Response{Config: d.alias}
	case stockipc.CmdImmediateStop:
		if d.stop == nil {
			return &stockipc.Response{Err: iscsierr.InvalidMgmtReq}
		}
		log.Info("stopping: asked to by iscsiadm -k 0; sessions stay logged in")
		d.stop()
		return &stockipc.Response{}
	}
	log.Info("iscsiadm request not served", "why", req.Unsupported)
	return &stockipc.Response{Err: iscsierr.InvalidMgmtReq}
}

// stockRecord is the node record stock iscsiadm sent, as goiscsid logs in
// with it: the keys conf knows (a newer release's own are dropped, logged),
// and goiscsi's own keys of the record in the node database.
func (d *daemon) stockRecord(rec map[string]string, log *slog.Logger) map[string]string {
	keys := map[string]string{}
	for k, v := range rec {
		if !conf.IsNodeKey(k) {
			log.Debug("iscsiadm record key goiscsi does not know; left out", "key", k)
			continue
		}
		keys[k] = v
	}
	if d.db == nil {
		return keys
	}
	port, _ := strconv.Atoi(keys["node.conn[0].port"])
	iface := keys["iface.iscsi_ifacename"]
	if iface == "" {
		iface = "default"
	}
	recs, err := d.db.FindNodes(keys["node.name"], keys["node.conn[0].address"], port, iface)
	if err == nil && len(recs) > 0 {
		for k, v := range recs[0].Own() {
			keys[k] = v
		}
	}
	return keys
}

// stockStates are iscsid's recovery stage and connection state of a session
// in state st, as SESSION_INFO answers them.
func stockStates(st ksession.State) (stage, conn int) {
	switch st {
	case ksession.LoggedIn:
		return stockipc.SessionNoChange, stockipc.ConnLoggedIn
	case ksession.Reopen:
		return stockipc.SessionReopen, stockipc.ConnTransportWait
	case ksession.InLogout:
		return stockipc.SessionNoChange, stockipc.ConnInLogout
	}
	return stockipc.SessionCleanup, stockipc.ConnFree
}

func codeOf(e *iscsierr.Error) iscsierr.Code {
	if e == nil {
		return iscsierr.Success
	}
	return e.Code
}

// listeners are the daemon's two sockets: its own management socket and the
// abstract socket stock iscsiadm connects to, each taken from those systemd
// passed (goiscsid.socket) or made here.
func listeners(path string, passed []*net.UnixListener) (own, stock *net.UnixListener, err error) {
	own, passed = sockserve.Take(passed, path)
	stock, passed = sockserve.Take(passed, "@"+stockipc.Name)
	for _, ln := range passed {
		err = errors.Join(err, errors.New("systemd passed a socket goiscsid does not serve: "+ln.Addr().String()+
			" (goiscsid.socket's ListenStream= must be "+path+" and @"+stockipc.Name+")"))
	}
	if err == nil && own == nil {
		own, err = mgmt.Listen(path)
	}
	if err == nil && stock == nil {
		stock, err = stockipc.Listen()
	}
	if err != nil {
		for _, ln := range append(passed, own, stock) {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, nil, err
	}
	return own, stock, nil
}
