package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/session"
)

// env is where a command finds the node database, sysfs, procfs, /run and the
// daemon. The GOISCSI_ROOT, GOISCSI_SYSFS, GOISCSI_PROC, GOISCSI_RUN and
// GOISCSI_SOCKET variables move them for tests.
type env struct {
	root   string // /etc/iscsi
	sysfs  string // /sys
	proc   string // /proc
	run    string // /run
	client *mgmt.Client
	// block does a LUN removal's flushes, device-mapper calls and
	// deletes when goiscsid does not run; nil means the host's.
	block  scan.BlockOps
	stdout strings.Builder
	stderr strings.Builder
}

func newEnv() *env {
	e := &env{root: "/etc/iscsi", sysfs: "/sys", proc: "/proc", run: "/run", client: &mgmt.Client{Path: os.Getenv("GOISCSI_SOCKET")}}
	for _, v := range []struct {
		name string
		dst  *string
	}{{"GOISCSI_ROOT", &e.root}, {"GOISCSI_SYSFS", &e.sysfs}, {"GOISCSI_PROC", &e.proc}, {"GOISCSI_RUN", &e.run}} {
		if s := os.Getenv(v.name); s != "" {
			*v.dst = s
		}
	}
	return e
}

func (e *env) db() *conf.DB { return &conf.DB{Root: e.root} }

func (e *env) config() (*conf.Config, error) {
	return conf.LoadConfig(filepath.Join(e.root, "iscsid.conf"))
}

func (e *env) errorf(format string, args ...any) { e.stderr.WriteString(logLine(format, args...)) }

// exit ends the command with what was printed so far.
func (e *env) exit(code iscsierr.Code) *Exit {
	return &Exit{Code: code, Stdout: e.stdout.String(), Stderr: e.stderr.String()}
}

// fail ends the command with one more error line.
func (e *env) fail(code iscsierr.Code, format string, args ...any) *Exit {
	e.errorf(format, args...)
	return e.exit(code)
}

// requestTimeout bounds one request to the daemon. Logins take up to
// initial_login_retry_max login timeouts in the daemon, so this is generous.
const requestTimeout = 10 * time.Minute

func (e *env) do(req *mgmt.Request) (*mgmt.Response, *iscsierr.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := e.client.Do(ctx, req)
	if err != nil {
		if me, ok := err.(*iscsierr.Error); ok {
			return nil, me
		}
		return nil, iscsierr.Errorf(iscsierr.ISCSIDCommErr, "%v", err)
	}
	return resp, resp.Error
}

// run carries out a parsed command.
func run(c *Command) *Exit {
	e := newEnv()
	e.stderr.WriteString(c.Warnings)
	if c.SessionPath != "" {
		sid, x := e.sidFromPath(c.SessionPath)
		if x != nil {
			return x
		}
		c.SID = sid
	}
	// Stock looks up what a command names before it refuses the command
	// (Command.Reject): session SID, the discovery record, the iface.
	if c.Mode == ModeSession && c.SID > 0 {
		s, x := e.session(c.SID)
		if x != nil {
			return x
		}
		switch c.Action {
		case ActShowNodes, ActUpdateNodes, ActDeleteNodes, ActNewSession:
			scopeToSession(c, s)
		}
	}
	if c.Reject != nil && (c.Mode == ModeDiscovery || c.Mode == ModeDiscoveryDB) && c.Portal != nil &&
		e.findDiscovery(c.Portal.Address, c.Portal.Port) == nil {
		return e.discoveryNotFound(c)
	}
	if c.Mode == ModeNode && len(c.Ifaces) > 0 {
		if _, x := e.readIface(c.Ifaces[0]); x != nil {
			return x
		}
	}
	if c.Reject != nil {
		return e.finish(c.Reject)
	}
	switch c.Action {
	case ActNewDiscovery, ActShowDiscovery, ActUpdateDiscovery, ActDeleteDiscovery:
		return e.discoveryRecords(c)
	case ActShowIface, ActNewIface, ActUpdateIface, ActDeleteIface:
		return e.ifaceRecords(c)
	case ActIfaceTree:
		return e.ifaceTree(c)
	case ActDiscover, ActDiscoverDB, ActDiscoverFromRecord:
		return e.discover(c)
	case ActListDiscovery:
		return e.listDiscovery(c)
	case ActListNodes:
		return e.listNodes(c)
	case ActShowNodes, ActNewNode, ActUpdateNodes, ActDeleteNodes:
		return e.nodeRecords(c)
	case ActLogin, ActLoginAll:
		return e.login(c)
	case ActLogout, ActLogoutAll:
		return e.logout(c)
	case ActListSessions, ActShowSession:
		return e.listSessions(c)
	case ActRescan:
		return e.rescan(c)
	case ActScanLUN:
		return e.scanLUN(c)
	case ActRemoveLUN:
		return e.removeLUN(c)
	case ActStats:
		return e.stats(c)
	case ActListIfaces:
		ifs, err := e.ifaces()
		if err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
		text, x := IfacesText(ifs)
		e.stdout.WriteString(text)
		return e.finish(x)
	case ActListHosts:
		return e.listHosts(c)
	}
	switch c.Action {
	case ActFirmware:
		// Stock's fw_get_targets reads the boot firmware's tables in
		// sysfs; most machines have none, and stock says so with 21.
		ibft, _ := filepath.Glob(filepath.Join(e.sysfs, "firmware", "ibft"))
		boot, _ := filepath.Glob(filepath.Join(e.sysfs, "firmware", "iscsi_boot*"))
		if len(ibft)+len(boot) == 0 {
			return e.fail(iscsierr.NoObjsFound, "Could not get list of targets from firmware. (err 21)")
		}
		return e.fail(iscsierr.OpNotSupp, "firmware boot (fw) mode is not supported by goiscsiadm")
	case ActKillDaemon:
		// Stock reports a daemon it cannot stop and still exits 0.
		if _, me := e.do(&mgmt.Request{Op: mgmt.OpStop}); me != nil {
			e.errorf("%s", me.Message)
			e.errorf("Could not stop iscsid. Trying sending iscsid SIGTERM or SIGKILL signals manually\n")
		}
		return e.exit(iscsierr.Success)
	case ActNewSession:
		return e.fail(iscsierr.OpNotSupp, "adding another session to a logged-in target (-m session -r SID --login) is not supported by goiscsiadm yet")
	}
	return e.fail(iscsierr.OpNotSupp, "this operation is not supported by goiscsiadm yet")
}

// finish ends with a formatter's outcome.
func (e *env) finish(x *Exit) *Exit {
	if x == nil {
		return e.exit(iscsierr.Success)
	}
	e.stdout.WriteString(x.Stdout)
	e.stderr.WriteString(x.Stderr)
	return e.exit(x.Code)
}

// sidFromPath resolves -r given as a sysfs path, as stock's
// iscsi_sysfs_get_sid_from_path: the path must exist and be a directory or
// a link, lie in sysfs, and have a sessionN on the way up.
func (e *env) sidFromPath(p string) (int, *Exit) {
	st, err := os.Lstat(p)
	if err != nil {
		return 0, e.fail(iscsierr.Unknown, "%s is an invalid session ID or path", p)
	}
	if !st.IsDir() && st.Mode()&os.ModeSymlink == 0 {
		return 0, e.fail(iscsierr.Unknown, "%s is not a directory", p)
	}
	sysfs := filepath.Clean(e.sysfs)
	devpath := p
	if rest, ok := strings.CutPrefix(p, sysfs); ok && (rest == "" || rest[0] == '/') {
		devpath = rest
	}
	// Only what resolves to a device (under devices/) is one to stock.
	real, err := filepath.EvalSymlinks(filepath.Join(sysfs, devpath))
	if realSys, _ := filepath.EvalSymlinks(sysfs); err != nil || !strings.HasPrefix(real, filepath.Join(realSys, "devices")+"/") {
		e.errorf("Could not get dev for %s. Possible sysfs incompatibility.", devpath)
		return 0, e.fail(iscsierr.Inval, "invalid sid '%s'", p)
	}
	for dir := real; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if n, ok := strings.CutPrefix(filepath.Base(dir), "session"); ok {
			if sid, err := strconv.Atoi(n); err == nil && sid > 0 {
				return sid, nil
			}
		}
	}
	e.errorf("Unable to find sid in path %s", p)
	return 0, e.fail(iscsierr.Inval, "invalid sid '%s'", p)
}

// ---- node records

func summary(r *conf.Record, cfg *conf.Config) NodeSummary {
	id := r.ID()
	return NodeSummary{Target: id.Target, Address: id.Address, Port: id.Port, TPGT: id.TPGT, Iface: id.Iface,
		ScanPolicy: scanPolicy(r.Get("node.session.scan"), r.Get("node.session.autoscan_en"))}
}

// scanPolicy names the effective policy the way the daemon does.
func scanPolicy(scanValue, autoscan string) string {
	switch {
	case strings.EqualFold(scanValue, "manual"):
		return "manual"
	case strings.EqualFold(autoscan, "No"):
		return "lun0"
	}
	return "auto"
}

// matching returns the node records c's selectors (-T, -p, -I) pick.
func (e *env) matching(c *Command) ([]*conf.Record, error) {
	all, err := e.db().Nodes()
	if err != nil {
		return nil, err
	}
	var out []*conf.Record
	for _, r := range all {
		id := r.ID()
		if c.Target != "" && id.Target != c.Target {
			continue
		}
		if c.Portal != nil {
			if id.Address != c.Portal.Address || (c.Portal.Port > 0 && id.Port != c.Portal.Port) ||
				(c.Portal.TPGT >= 0 && id.TPGT != c.Portal.TPGT) {
				continue
			}
		}
		if len(c.Ifaces) > 0 && id.Iface != c.Ifaces[0] {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *env) listNodes(c *Command) *Exit {
	recs, err := e.db().Nodes()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	var nodes []NodeSummary
	for _, r := range recs {
		nodes = append(nodes, summary(r, nil))
	}
	if c.JSON {
		e.stdout.WriteString(NodesJSON(nodes))
		return e.exit(iscsierr.Success)
	}
	text, x := NodesText(nodes, c.PrintLevel)
	e.stdout.WriteString(text)
	return e.finish(x)
}

func (e *env) nodeRecords(c *Command) *Exit {
	if c.Action == ActNewNode {
		return e.newNodes(c)
	}
	if c.Action == ActUpdateNodes {
		for _, p := range c.Params {
			if p.Name != "iface.transport_name" {
				continue
			}
			// Stock's verify_node_params: not while a session uses it.
			all, _ := e.sessions(false, false)
			for _, s := range all {
				if sessionMatches(c, s) {
					return e.fail(iscsierr.SessExists, "Cannot modify node/iface transport name while a session is using it. "+
						"Log out the session then update record.")
				}
			}
		}
	}
	recs, err := e.matching(c)
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	if len(recs) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No records found")
	}
	switch c.Action {
	case ActShowNodes:
		for _, r := range recs {
			e.stdout.WriteString(r.Show(c.ShowSecrets))
		}
	case ActDeleteNodes:
		present := e.sessionCounts()
		code := iscsierr.Success
		for _, r := range recs {
			if c := e.deleteNode(r, present); c != iscsierr.Success && code == iscsierr.Success {
				code = c
			}
		}
		if code != iscsierr.Success {
			return e.fail(code, "Could not execute operation on all records: %s", code)
		}
	case ActUpdateNodes:
		if x := e.updateNodes(recs, c.Params); x != nil {
			return x
		}
		if c.SID > 0 {
			return e.updateLiveSession(c)
		}
	}
	return e.exit(iscsierr.Success)
}

// newNodes is -m node -o new, stock's add_static_recs: with -T and -p, one
// record made afresh from iscsid.conf (an existing one is replaced); with
// only one of them, or neither, every existing record that matches is made
// afresh, keeping its portal and tpgt. Finding nothing, stock says
// "Error while adding record: " and exits 0.
func (e *env) newNodes(c *Command) *Exit {
	cfg, err := e.config()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	iface := "default"
	if len(c.Ifaces) > 0 {
		iface = c.Ifaces[0]
	}
	ir, x := e.readIface(iface)
	if x != nil {
		return x
	}
	type portal struct {
		target, address string
		port, tpgt      int
	}
	var todo []portal
	if c.Target != "" && c.Portal != nil {
		port := c.Portal.Port
		if port <= 0 {
			port = session.DefaultPort
		}
		todo = append(todo, portal{c.Target, c.Portal.Address, port, c.Portal.TPGT})
	} else {
		all, err := e.db().Nodes()
		if err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
		seen := map[portal]bool{}
		for _, r := range all {
			id := r.ID()
			if c.Target != "" && id.Target != c.Target {
				continue
			}
			if c.Portal != nil && (id.Address != c.Portal.Address || (c.Portal.Port > 0 && id.Port != c.Portal.Port)) {
				continue
			}
			p := portal{id.Target, id.Address, id.Port, id.TPGT}
			if !seen[p] {
				seen[p] = true
				todo = append(todo, p)
			}
		}
	}
	if len(todo) == 0 {
		return e.fail(iscsierr.Success, "Error while adding record: ")
	}
	for _, p := range todo {
		if p.tpgt < 0 {
			e.replaceUnknownTPGT(p.target, p.address, p.port, iface)
		}
		r := conf.NewNodeRecord(cfg, p.target, p.address, p.port, p.tpgt, iface)
		copyIface(r, ir)
		if err := e.db().SaveNode(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Error while adding record: %s", iscsierr.IDBM)
		}
		fmt.Fprintf(&e.stdout, "New iSCSI node [%s:[hw=%s,ip=%s,net_if=%s,iscsi_if=%s] %s,%d,%d %s] added\n",
			ir["iface.transport_name"], ir["iface.hwaddress"], ir["iface.ipaddress"], ir["iface.net_ifacename"],
			iface, p.address, p.port, p.tpgt, p.target)
	}
	return e.exit(iscsierr.Success)
}

// replaceUnknownTPGT removes the records of target at address:port with an
// unknown tpgt bound to other ifaces. Stock keeps such a record in one file
// per portal (nodes/<target>/<address>,<port>, no iface in the path), so a
// new one for another iface replaces it; without this, one --login would
// make a session per iface where stock makes one.
func (e *env) replaceUnknownTPGT(target, address string, port int, iface string) {
	recs, err := e.db().FindNodes(target, address, port, "")
	if err != nil {
		return
	}
	for _, r := range recs {
		if id := r.ID(); id.TPGT < 0 && id.Iface != iface {
			e.db().DeleteNode(id)
		}
	}
}

// updateLiveSession applies scan policy keys of -m session -r SID -o update to
// the running session too, without a relogin.
func (e *env) updateLiveSession(c *Command) *Exit {
	rec := map[string]string{}
	for _, p := range c.Params {
		if p.Name == "node.session.scan" || p.Name == "node.session.autoscan_en" {
			rec[p.Name] = p.Value
		}
	}
	if len(rec) == 0 {
		return e.exit(iscsierr.Success)
	}
	if _, me := e.do(&mgmt.Request{Op: mgmt.OpUpdate, SID: c.SID, Record: rec}); me != nil {
		if me.Code == iscsierr.ISCSIDNotConn {
			// Without goiscsid nothing scans for the session: the
			// record, updated above, is all there is to change.
			return e.exit(iscsierr.Success)
		}
		return e.fail(me.Code, "%s", me.Message)
	}
	return e.exit(iscsierr.Success)
}

// ---- discovery

func (e *env) initiatorName() (string, error) {
	name, _, err := conf.ReadInitiatorName(filepath.Join(e.root, "initiatorname.iscsi"))
	return name, err
}

func (e *env) discover(c *Command) *Exit {
	if c.Portal == nil {
		return e.fail(iscsierr.Inval, "Please specify a portal with -p")
	}
	cfg, err := e.config()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	db := e.db()
	port := c.Portal.Port
	if port <= 0 {
		port = session.DefaultPort
	}
	drec := e.findDiscovery(c.Portal.Address, port)
	if drec == nil {
		if c.Action == ActDiscoverFromRecord {
			return e.discoveryNotFound(c)
		}
		drec = conf.NewDiscoveryRecord(cfg, c.Portal.Address, port)
	}
	var ifaces []ifaceRecord
	for _, n := range append([]string(nil), c.Ifaces...) {
		ir, x := e.readIface(n)
		if x != nil {
			return x
		}
		ifaces = append(ifaces, ir)
	}
	if len(ifaces) == 0 {
		ifaces = append(ifaces, newIfaceRecord("default", "tcp"))
	}
	name, err := e.initiatorName()
	if err != nil {
		return e.fail(iscsierr.Inval, "%v", err)
	}
	auth := session.Auth{Method: session.AuthNone}
	if strings.EqualFold(drec.Get("discovery.sendtargets.auth.authmethod"), "CHAP") {
		auth = session.Auth{Method: session.AuthCHAP,
			Username: drec.Get("discovery.sendtargets.auth.username"), Password: session.Secret(drec.Get("discovery.sendtargets.auth.password")),
			UsernameIn: drec.Get("discovery.sendtargets.auth.username_in"), PasswordIn: session.Secret(drec.Get("discovery.sendtargets.auth.password_in"))}
	}
	persist := c.Op&OpNonPersistent == 0
	if persist {
		// The record is kept even when the portal cannot be reached, as
		// stock does: the operator's settings for it are not lost, and
		// `-m discoverydb` shows what was tried.
		if err := db.SaveDiscovery(drec); err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
	}
	found, err := e.sendTargets(drec, session.Portal{Address: c.Portal.Address, Port: port}, session.DiscoveryConfig{
		InitiatorName: name, Auth: auth})
	if err != nil {
		return e.discoveryFailed(c.Portal.Address, err)
	}
	if persist {
		// Stock's default is new, update and delete: records this
		// portal gave before and no longer gives go.
		if c.Op == 0 || c.Op&OpDelete != 0 {
			e.deleteStale(c.Portal.Address, port, found, ifaces)
		}
	}
	var nodes []NodeSummary
	var recs []*conf.Record
	for _, t := range found {
		for _, p := range t.Portals {
			// One record per -I iface (default without -I), as stock's
			// idbm_bind_ifaces_to_nodes.
			for _, ir := range ifaces {
				r := conf.NewNodeRecord(cfg, t.Name, p.Address, p.Port, p.TPGT, ir.name())
				copyIface(r, ir)
				r.Set("node.discovery_address", c.Portal.Address)
				r.Set("node.discovery_port", strconv.Itoa(port))
				r.Set("node.discovery_type", "send_targets")
				if persist {
					// An existing record keeps its settings (node.session.scan
					// and autoscan_en above all): rediscovery must not undo
					// what an attach tool set.
					existing, _ := db.FindNodes(t.Name, p.Address, p.Port, ir.name())
					if len(existing) == 0 {
						if err := db.SaveNode(r); err != nil {
							return e.fail(iscsierr.IDBM, "%v", err)
						}
					} else {
						r = existing[0]
					}
				}
				recs = append(recs, r)
				nodes = append(nodes, summary(r, cfg))
			}
		}
	}
	if c.JSON {
		e.stdout.WriteString(NodesJSON(nodes))
	} else {
		text, x := DiscoveredText(nodes, c.PrintLevel)
		e.stdout.WriteString(text)
		if x != nil {
			return e.finish(x)
		}
	}
	if c.Login {
		return e.loginRecords(recs, c.NoWait)
	}
	return e.exit(iscsierr.Success)
}

// errUnreachable marks a discovery that gave up because the portal could not
// be reached reopen_max + 1 times; each failure has been reported.
var errUnreachable = errors.New("portal unreachable")

// sendTargets runs a SendTargets discovery with the settings of the discovery
// record drec. A portal that cannot be reached is tried again up to
// discovery.sendtargets.reopen_max times, a second apart, each failure reported
// as stock 2.1.8 does; a target that answers but refuses is not retried.
func (e *env) sendTargets(drec *conf.Record, portal session.Portal, cfg session.DiscoveryConfig) ([]session.DiscoveredTarget, error) {
	mrdsl, _ := strconv.Atoi(drec.Get("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength"))
	cfg.MaxRecvDataSegmentLength = uint32(mrdsl)
	timeout, _ := strconv.Atoi(drec.Get("discovery.sendtargets.timeo.login_timeout"))
	reopenMax, _ := strconv.Atoi(drec.Get("discovery.sendtargets.reopen_max"))
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(timeout, 5))*time.Second)
		found, err := session.Discover(ctx, portal, cfg)
		cancel()
		var le *session.LoginError
		if err == nil || asLoginError(err, &le) {
			return found, err
		}
		e.reportUnreachable(portal.Address, err)
		if attempt >= reopenMax {
			e.errorf("connection login retries (reopen_max) %d exceeded", reopenMax)
			return nil, errUnreachable
		}
		time.Sleep(time.Second)
	}
}

// reportUnreachable says why a portal could not be reached, in stock's words.
func (e *env) reportUnreachable(host string, err error) {
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		e.errorf("connect to %s timed out", host)
	case errors.As(err, &errno):
		e.errorf("cannot make connection to %s: %s", host, capitalize(errno.Error()))
	default:
		e.errorf("cannot make connection to %s: %v", host, err)
	}
}

// discoveryFailed reports a failed SendTargets discovery as stock 2.1.8's
// discovery.c does. Stock gives up on a portal it cannot reach with
// ISCSI_ERR_PDU_TIMEOUT (11), whatever the cause; a target that refuses the
// initiator's credentials ends it with 24, any other initiator-class login
// status with 19.
func (e *env) discoveryFailed(host string, err error) *Exit {
	var le *session.LoginError
	code := iscsierr.PDUTimeout
	switch {
	case errors.Is(err, errUnreachable):
	case asLoginError(err, &le) && le.AuthFailure():
		e.errorf("discovery login to %s rejected: initiator failed authorization", host)
		code = iscsierr.LoginAuthFailed
	case asLoginError(err, &le) && le.Status.Class == pdu.StatusInitiatorError:
		e.errorf("discovery login to %s rejected: initiator error (%02x/%02x), non-retryable, giving up",
			host, le.Status.Class, le.Status.Detail)
		code = iscsierr.FatalLogin
	case le != nil:
		e.errorf("discovery login to %s rejected: target error (%02x/%02x)", host, le.Status.Class, le.Status.Detail)
	default:
		e.reportUnreachable(host, err)
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

func asLoginError(err error, le **session.LoginError) bool {
	for err != nil {
		if l, ok := err.(*session.LoginError); ok {
			*le = l
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func (e *env) listDiscovery(c *Command) *Exit {
	db := e.db()
	ds, err := db.Discoveries()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	nodes, err := db.Nodes()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	var out DiscoveryDB
	for _, d := range ds {
		port, _ := strconv.Atoi(d.Get("discovery.sendtargets.port"))
		dp := DiscoveryPortal{Address: d.Get("discovery.sendtargets.address"), Port: port}
		for _, n := range nodes {
			if n.Get("node.discovery_type") == "send_targets" && n.Get("node.discovery_address") == dp.Address &&
				n.Get("node.discovery_port") == strconv.Itoa(port) {
				dp.Nodes = append(dp.Nodes, summary(n, nil))
			}
		}
		out.SendTargets = append(out.SendTargets, dp)
	}
	for _, n := range nodes {
		if n.Get("node.discovery_type") == "static" {
			out.Static = append(out.Static, summary(n, nil))
		}
	}
	text, x := DiscoveryDBText(out, c.PrintLevel)
	e.stdout.WriteString(text)
	return e.finish(x)
}

// ---- login and logout

func (e *env) login(c *Command) *Exit {
	var recs []*conf.Record
	var err error
	if c.Action == ActLoginAll {
		all, lerr := e.db().Nodes()
		err = lerr
		for _, r := range all {
			if startupMatches(r, c.StartupMode) {
				recs = append(recs, r)
			}
		}
	} else {
		recs, err = e.matching(c)
	}
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	if len(recs) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No records found")
	}
	return e.loginRecords(recs, c.NoWait)
}

// startupMatches is stock's match_startup_mode: -L/-U mode against the
// record's node.startup or, failing that, its node.conn[0].startup (so
// "manual" also picks records whose connection startup is the default
// manual, as in stock).
func startupMatches(r *conf.Record, mode string) bool {
	return mode == "all" || r.Get("node.startup") == mode || r.Get("node.conn[0].startup") == mode
}

func loginPortal(id conf.NodeID) string {
	return fmt.Sprintf("[iface: %s, target: %s, portal: %s,%d]", id.Iface, id.Target, id.Address, id.Port)
}

// loginRecords logs in to the records as stock's iscsi_login_portals does: a
// record that already has a session gets a warning and no request (exit 15);
// the others are announced ("Logging in to ...") and asked of the daemon all
// at once, then reported in record order. The exit status is the first
// error, the warnings' 15 before any login failure, as in stock; any error
// ends with "Could not log into all portals". -W is accepted but goiscsiadm
// still waits for the results.
func (e *env) loginRecords(recs []*conf.Record, noWait bool) *Exit {
	code := iscsierr.Success
	present := e.sessionCounts()
	var todo []*conf.Record
	for _, r := range recs {
		id := r.ID()
		want, _ := strconv.Atoi(r.Get("node.session.nr_sessions"))
		want = max(want, 1)
		if n := present[sessionKey(id.Target, id.Address, id.Port, id.Iface)]; n >= want {
			e.errorf("%s: %d session%s requested, but %d already present.", id.Iface, want, plural(want), n)
			if code == iscsierr.Success {
				code = iscsierr.SessExists
			}
			continue
		}
		fmt.Fprintf(&e.stdout, "Logging in to %s\n", loginPortal(id))
		todo = append(todo, r)
	}
	errs := make([]*iscsierr.Error, len(todo))
	var wg sync.WaitGroup
	for i, r := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.do(&mgmt.Request{Op: mgmt.OpLogin, Record: r.Map()})
		}()
	}
	wg.Wait()
	for i, r := range todo {
		me := errs[i]
		if me == nil {
			fmt.Fprintf(&e.stdout, "Login to %s successful.\n", loginPortal(r.ID()))
			continue
		}
		e.errorf("Could not login to %s.", loginPortal(r.ID()))
		e.errorf("%s", me.Code.Reported())
		switch {
		case me.Code == iscsierr.ISCSIDNotConn:
			e.errorf("%s", me.Message) // goiscsiadm's own: where it looked for goiscsid
		case me.Message != "":
			e.errorf("goiscsid: %s", me.Message)
		}
		if code == iscsierr.Success {
			code = me.Code
		}
	}
	if code != iscsierr.Success {
		e.errorf("Could not log into all portals")
	}
	return e.exit(code)
}

// sessionCounts counts the running sessions by target, portal and iface.
func (e *env) sessionCounts() map[string]int {
	present := map[string]int{}
	all, me := e.sessions(false, false)
	if me != nil {
		return present
	}
	for _, s := range all {
		iface := s.Iface
		if iface == "" {
			iface = "default"
		}
		present[sessionKey(s.TargetName, s.PersistentAddress, s.PersistentPort, iface)]++
	}
	return present
}

// deleteNode is stock's delete_node: a record a session uses stays.
func (e *env) deleteNode(r *conf.Record, present map[string]int) iscsierr.Code {
	id := r.ID()
	if present[sessionKey(id.Target, id.Address, id.Port, id.Iface)] > 0 {
		e.errorf("This command will remove the record [iface: %s, target: %s, portal: %s,%d], but a session is "+
			"using it. Logout session then rerun command to remove record.", id.Iface, id.Target, id.Address, id.Port)
		return iscsierr.SessExists
	}
	if err := e.db().DeleteNode(id); err != nil {
		e.errorf("%v", err)
		return iscsierr.IDBM
	}
	return iscsierr.Success
}

// deleteStale deletes the node records an earlier discovery through
// address:port made that this one did not find (stock's delete_stale_rec).
func (e *env) deleteStale(address string, port int, found []session.DiscoveredTarget, ifaces []ifaceRecord) {
	seen := map[string]bool{}
	bound := map[string]bool{}
	for _, ir := range ifaces {
		bound[ir.name()] = true
		for _, t := range found {
			for _, p := range t.Portals {
				seen[sessionKey(t.Name, p.Address, p.Port, ir.name())] = true
			}
		}
	}
	var present map[string]int
	for _, r := range e.nodesDiscoveredBy(address, port) {
		id := r.ID()
		if !bound[id.Iface] || seen[sessionKey(id.Target, id.Address, id.Port, id.Iface)] {
			continue
		}
		if present == nil {
			present = e.sessionCounts()
		}
		e.deleteNode(r, present)
	}
}

// nodesDiscoveredBy returns the node records that a SendTargets discovery
// through address:port made.
func (e *env) nodesDiscoveredBy(address string, port int) []*conf.Record {
	recs, _ := e.db().Nodes()
	var by []*conf.Record
	for _, r := range recs {
		if r.Get("node.discovery_type") == "send_targets" && r.Get("node.discovery_address") == address &&
			r.Get("node.discovery_port") == strconv.Itoa(port) {
			by = append(by, r)
		}
	}
	return by
}

func sessionKey(target, address string, port int, iface string) string {
	return target + "|" + address + "|" + strconv.Itoa(port) + "|" + iface
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sessions returns the daemon's sessions (only their Brief part when brief),
// or what sysfs shows when the daemon is not running (as stock, which reads
// sysfs).
func (e *env) sessions(showSecrets, brief bool) ([]mgmt.Session, *iscsierr.Error) {
	resp, me := e.do(&mgmt.Request{Op: mgmt.OpSessions, ShowSecrets: showSecrets, Brief: brief})
	if me != nil {
		// Stock lists sessions from sysfs, for any user: so does
		// goiscsiadm when goiscsid is not running or serves only root.
		if me.Code == iscsierr.ISCSIDNotConn || me.Code == iscsierr.Access {
			return sysfsSessions(e.sysfs), nil
		}
		return nil, me
	}
	return resp.Sessions, nil
}

func sessionPortal(s mgmt.Session) string {
	return fmt.Sprintf("[sid: %d, target: %s, portal: %s,%d]", s.SID, s.TargetName, s.PersistentAddress, s.PersistentPort)
}

// selectSessions returns the sessions c names: -r SID, or the node selectors.
func (e *env) selectSessions(c *Command) ([]mgmt.Session, *Exit) {
	all, me := e.sessions(false, false)
	if me != nil {
		return nil, e.fail(me.Code, "%s", me.Message)
	}
	var out []mgmt.Session
	for _, s := range all {
		if sessionMatches(c, s) {
			out = append(out, s)
		}
	}
	if c.SID > 0 && len(out) == 0 {
		e.errorf("could not read session targetname: 5")
		return nil, e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", c.SID)
	}
	return out, nil
}

// sessionMatches reports whether s is a session c names: by -r SID, or by
// the node selectors -T, -p and -I.
func sessionMatches(c *Command, s mgmt.Session) bool {
	if c.SID > 0 {
		return s.SID == c.SID
	}
	if c.Target != "" && s.TargetName != c.Target {
		return false
	}
	if c.Portal != nil && (s.PersistentAddress != c.Portal.Address || (c.Portal.Port > 0 && s.PersistentPort != c.Portal.Port)) {
		return false
	}
	iface := s.Iface
	if iface == "" {
		iface = "default"
	}
	return len(c.Ifaces) == 0 || iface == c.Ifaces[0]
}

func (e *env) logout(c *Command) *Exit {
	sessions, x := e.selectSessions(c)
	if x != nil {
		return x
	}
	if c.Action == ActLogoutAll {
		// Stock's __logout_by_startup: only sessions with a record, never
		// one whose record starts onboot or came from firmware, and the
		// record's startup must match.
		recs, _ := e.db().Nodes()
		byKey := map[string]*conf.Record{}
		for _, r := range recs {
			id := r.ID()
			byKey[sessionKey(id.Target, id.Address, id.Port, id.Iface)] = r
		}
		var keep []mgmt.Session
		for _, s := range sessions {
			iface := s.Iface
			if iface == "" {
				iface = "default"
			}
			r := byKey[sessionKey(s.TargetName, s.PersistentAddress, s.PersistentPort, iface)]
			if r == nil || r.Get("node.startup") == "onboot" || r.Get("node.discovery_type") == "fw" ||
				!startupMatches(r, c.StartupMode) {
				continue
			}
			keep = append(keep, s)
		}
		sessions = keep
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No matching sessions found")
	}
	for _, s := range sessions {
		fmt.Fprintf(&e.stdout, "Logging out of session %s\n", sessionPortal(s))
	}
	errs := make([]*iscsierr.Error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.do(&mgmt.Request{Op: mgmt.OpLogout, SID: s.SID})
		}()
	}
	wg.Wait()
	code := iscsierr.Success
	for i, s := range sessions {
		if me := errs[i]; me != nil {
			e.errorf("Could not logout of %s.", sessionPortal(s))
			e.errorf("%s", me.Code.Reported())
			if code == iscsierr.Success {
				code = me.Code
			}
			continue
		}
		fmt.Fprintf(&e.stdout, "Logout of %s successful.\n", sessionPortal(s))
	}
	if code != iscsierr.Success {
		e.errorf("Could not logout of all requested sessions")
	}
	return e.exit(code)
}

// ---- session listings

func (e *env) listSessions(c *Command) *Exit {
	// The flat list is the daemon's own, and the names of the sessions are
	// all it needs.
	flat := !c.JSON && c.PrintLevel <= 0
	all, me := e.sessions(c.ShowSecrets, flat)
	if me != nil {
		return e.fail(me.Code, "%s", me.Message)
	}
	if c.SID > 0 {
		var one []mgmt.Session
		for _, s := range all {
			if s.SID == c.SID {
				one = append(one, s)
			}
		}
		if len(one) == 0 {
			e.errorf("could not read session targetname: 5")
			return e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", c.SID)
		}
		all = one
	}
	// Stock lists sessions in the alphabetical order of their sysfs names,
	// "session<SID>": the order of the SIDs as strings.
	sort.Slice(all, func(i, j int) bool { return strconv.Itoa(all[i].SID) < strconv.Itoa(all[j].SID) })
	infos := make([]SessionInfo, 0, len(all))
	if flat {
		for _, s := range all {
			infos = append(infos, sessionSummary(s))
		}
	} else {
		devs := e.devicesByHost()
		for _, s := range all {
			infos = append(infos, e.sessionInfo(s, devs[s.HostNo]))
		}
	}
	if c.JSON {
		if len(infos) == 0 {
			return e.fail(iscsierr.NoObjsFound, "No active sessions.")
		}
		e.stdout.WriteString(SessionsJSON(infos, c.ShowSecrets))
		return e.exit(iscsierr.Success)
	}
	text, x := SessionsText(infos, c.PrintLevel, c.ShowSecrets, scan.ReadAttr(filepath.Join(e.sysfs, "module", "scsi_transport_iscsi", "version")))
	e.stdout.WriteString(text)
	return e.finish(x)
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// sessionSummary is the daemon's view of a session.
func sessionSummary(s mgmt.Session) SessionInfo {
	info := SessionInfo{
		SID: uint32(s.SID), Transport: s.Transport, TargetName: s.TargetName, TPGT: s.TPGT,
		Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
		Iface:     Iface{Name: s.Iface, Transport: s.Transport, InitiatorName: s.InitiatorName, IPAddress: s.LocalAddress},
		ConnState: s.ConnState, InternalState: s.InternalState,
		Timeouts: SessionTimeouts{Recovery: s.Timeouts.Recovery, TargetReset: s.Timeouts.TargetReset,
			LUNReset: s.Timeouts.LUNReset, Abort: s.Timeouts.Abort},
		CHAP: SessionCHAP{Username: s.CHAP.Username, Password: s.CHAP.Password, UsernameIn: s.CHAP.UsernameIn, PasswordIn: s.CHAP.PasswordIn},
		Params: NegotiatedParams{HeaderDigest: s.Params.HeaderDigest, DataDigest: s.Params.DataDigest,
			MaxRecvDataSegmentLength: s.Params.MaxRecvDataSegmentLength, MaxXmitDataSegmentLength: s.Params.MaxXmitDataSegmentLength,
			FirstBurstLength: s.Params.FirstBurstLength, MaxBurstLength: s.Params.MaxBurstLength,
			ImmediateData: yesNo(s.Params.ImmediateData), InitialR2T: yesNo(s.Params.InitialR2T), MaxOutstandingR2T: s.Params.MaxOutstandingR2T},
		ScanPolicy: s.ScanPolicy,
	}
	if s.Params.HeaderDigest == "" {
		info.Params = NegotiatedParams{MaxRecvDataSegmentLength: -1, MaxXmitDataSegmentLength: -1, FirstBurstLength: -1, MaxBurstLength: -1, MaxOutstandingR2T: -1}
	}
	return info
}

// sessionInfo combines the daemon's view of a session with what sysfs shows of
// it, its host and devs, its host's SCSI devices.
func (e *env) sessionInfo(s mgmt.Session, devs []scan.Device) SessionInfo {
	info := sessionSummary(s)
	info.SessionState = scan.ReadAttr(filepath.Join(e.sysfs, "class", "iscsi_session", fmt.Sprintf("session%d", s.SID), "state"))
	// The session's host as the kernel shows it, as stock prints it.
	if info.Iface.IPAddress == "" {
		info.Iface.IPAddress = e.hostAttr(s.HostNo, "ipaddress")
	}
	info.Iface.HWAddress, info.Iface.Netdev = s.HWAddress, s.Netdev
	if s.HWAddress == "" && s.Netdev == "" {
		info.Iface.HWAddress, info.Iface.Netdev = e.hostAttr(s.HostNo, "hwaddress"), e.hostAttr(s.HostNo, "netdev")
	}
	info.Host = &SessionHost{Number: s.HostNo, State: scan.ReadAttr(filepath.Join(e.sysfs, "class", "scsi_host", fmt.Sprintf("host%d", s.HostNo), "state"))}
	info.Devices = scsiDevices(devs)
	return info
}

// hostAttr reads attribute name of iSCSI host hostNo from sysfs: the
// addresses the daemon set with SET_HOST_PARAM ("default" for an unbound
// iface), "(null)" for what nobody set.
func (e *env) hostAttr(hostNo int, name string) string {
	return scan.ReadAttr(filepath.Join(e.sysfs, "class", "iscsi_host", fmt.Sprintf("host%d", hostNo), name))
}

// devicesByHost reads every SCSI device once, for a listing of many sessions.
func (e *env) devicesByHost() map[int][]scan.Device {
	devs, _ := scan.Sysfs{Root: e.sysfs}.DevicesByHost()
	return devs
}

// devices lists a host's LUNs as listings show them.
func devices(sysfs string, host int) []SCSIDevice {
	devs, _ := scan.Sysfs{Root: sysfs}.Devices(host)
	return scsiDevices(devs)
}

// scsiDevices is devs as listings show them, in the order stock's scandir
// gives their H:C:T:L names (alphabetical: 2:0:0:10 before 2:0:0:2).
func scsiDevices(devs []scan.Device) []SCSIDevice {
	devs = append([]scan.Device(nil), devs...)
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].HCTL() < devs[j].HCTL() })
	out := make([]SCSIDevice, 0, len(devs))
	for _, d := range devs {
		out = append(out, SCSIDevice{Host: d.Host, ID: d.Target, LUN: int(d.LUN), Disk: d.Block, State: d.State})
	}
	return out
}

// sysfsSessions is what sysfs shows of the kernel's sessions when goiscsid is
// not running.
func sysfsSessions(sysfs string) []mgmt.Session {
	all, _ := scan.Sysfs{Root: sysfs}.Sessions()
	out := make([]mgmt.Session, 0, len(all))
	for _, s := range all {
		out = append(out, mgmt.Session{SID: s.SID, HostNo: s.Host, TargetName: s.TargetName, TPGT: s.TPGT,
			Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
			Iface: s.Iface, Transport: "tcp", InitiatorName: s.InitiatorName})
	}
	return out
}

// ---- scans and statistics

func (e *env) rescan(c *Command) *Exit {
	sessions, x := e.selectSessions(c)
	if x != nil {
		return x
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No session found.")
	}
	for _, s := range sessions {
		fmt.Fprintf(&e.stdout, "Rescanning session %s\n", sessionPortal(s))
		_, me := e.do(&mgmt.Request{Op: mgmt.OpScan, SID: s.SID})
		if me != nil && me.Code == iscsierr.ISCSIDNotConn {
			// No goiscsid (sessions another initiator left, or the
			// daemon is down): scan through sysfs as stock's -R does,
			// rescanning the existing devices, then the whole target.
			me = e.scanLocally(s.HostNo, nil)
		}
		if me != nil {
			return e.fail(me.Code, "%s", me.Message)
		}
	}
	return e.exit(iscsierr.Success)
}

// scanLocally scans host through sysfs: one LUN, or (lun nil) a rescan of
// the existing devices and a scan of the whole target.
func (e *env) scanLocally(host int, lun *uint64) *iscsierr.Error {
	if host < 0 {
		return iscsierr.Errorf(iscsierr.SysfsLookup, "the session's SCSI host is not in sysfs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fs := scan.Sysfs{Root: e.sysfs}
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

func (e *env) scanLUN(c *Command) *Exit {
	lun := c.ScanLUN
	resp, me := e.do(&mgmt.Request{Op: mgmt.OpScan, SID: c.SID, LUN: &lun})
	if me != nil && me.Code == iscsierr.ISCSIDNotConn {
		// Without goiscsid, the same narrow scan through sysfs.
		s, x := e.session(c.SID)
		if x != nil {
			return x
		}
		resp, me = &mgmt.Response{Session: s}, e.scanLocally(s.HostNo, &lun)
	}
	if me != nil {
		return e.fail(me.Code, "%s", me.Message)
	}
	// The kernel probes the LUN during the scan but names its disk a moment
	// later (sd probes asynchronously): wait a little for the name.
	var found *SCSIDevice
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		found = nil
		for _, d := range devices(e.sysfs, resp.Session.HostNo) {
			if uint64(d.LUN) == lun {
				found = &d
			}
		}
		if found == nil || found.Disk != "" || time.Now().After(deadline) {
			break
		}
	}
	out := scannedLUN{SID: resp.Session.SID, LUN: lun}
	if found != nil {
		out.HCTL, out.Disk = fmt.Sprintf("%d:0:%d:%d", found.Host, found.ID, found.LUN), found.Disk
		if found.Disk != "" {
			e.waitForMap(&out)
		}
	}
	if c.JSON {
		e.stdout.WriteString(marshal(out))
		return e.exit(iscsierr.Success)
	}
	if found == nil {
		fmt.Fprintf(&e.stdout, "Scanned LUN %d of session %s: no such LUN on the target\n", lun, sessionPortal(*resp.Session))
		return e.exit(iscsierr.Success)
	}
	fmt.Fprintf(&e.stdout, "Scanned LUN %d of session %s: scsi%d Channel 00 Id %d Lun: %d disk %s\n",
		lun, sessionPortal(*resp.Session), found.Host, found.ID, found.LUN, orEmpty(found.Disk))
	switch {
	case out.Multipath != nil:
		fmt.Fprintf(&e.stdout, "Multipath map of LUN %d: %s (%s, wwid %s) over %s\n", lun, out.Multipath.DMName,
			out.Multipath.Name, out.Multipath.WWID, strings.Join(out.Multipath.Slaves, ", "))
	case out.Multipathd:
		fmt.Fprintf(&e.stdout, "Multipath map of LUN %d: none (%s)\n", lun, out.why)
	}
	return e.exit(iscsierr.Success)
}

func (e *env) stats(c *Command) *Exit {
	sessions, x := e.selectSessions(c)
	if x != nil {
		return x
	}
	if len(sessions) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No session found.")
	}
	for _, s := range sessions {
		resp, me := e.do(&mgmt.Request{Op: mgmt.OpStats, SID: s.SID})
		if me != nil {
			e.errorf("Could not execute operation on all sessions: %s", me.Code)
			return e.exit(me.Code)
		}
		if resp.Stats == nil {
			resp.Stats = &mgmt.Stats{}
		}
		// Stock's session_stats: the 19 kernel counters in their order,
		// then the transport's own under "iSCSI Extended:".
		fmt.Fprintf(&e.stdout, "Stats for session %s\n", sessionPortal(s))
		e.stdout.WriteString("iSCSI SNMP:\n")
		fmt.Fprintf(&e.stdout, "\ttxdata_octets: %d\n\trxdata_octets: %d\n", resp.Stats.TxDataOctets, resp.Stats.RxDataOctets)
		known := map[string]bool{}
		for _, k := range nlink.CounterNames {
			known[k] = true
			fmt.Fprintf(&e.stdout, "\t%s: %d\n", k, resp.Stats.Counters[k])
		}
		var extended []string
		for k := range resp.Stats.Counters {
			if !known[k] {
				extended = append(extended, k)
			}
		}
		sort.Strings(extended)
		if len(extended) > 0 {
			e.stdout.WriteString("iSCSI Extended:\n")
		}
		for _, k := range extended {
			fmt.Fprintf(&e.stdout, "\t%s: %d\n", k, resp.Stats.Counters[k])
		}
	}
	return e.exit(iscsierr.Success)
}

// ---- ifaces and hosts

func (e *env) listHosts(c *Command) *Exit {
	all, me := e.sessions(false, false)
	if me != nil {
		return e.fail(me.Code, "%s", me.Message)
	}
	devs := e.devicesByHost()
	var hosts []HostSummary
	for _, s := range all {
		// Host mode shows what the host itself was given, and stock treats
		// "default" (an unbound iface) and "(null)" (never set) as nothing.
		given := func(name string) string {
			if v := e.hostAttr(s.HostNo, name); v != "default" && v != "(null)" {
				return v
			}
			return ""
		}
		ip := s.LocalAddress
		if ip == "" {
			ip = given("ipaddress")
		}
		hosts = append(hosts, HostSummary{Number: uint32(s.HostNo),
			State: scan.ReadAttr(filepath.Join(e.sysfs, "class", "scsi_host", fmt.Sprintf("host%d", s.HostNo), "state")),
			Iface: Iface{Transport: "tcp", InitiatorName: given("initiatorname"), IPAddress: ip,
				HWAddress: given("hwaddress"), Netdev: given("netdev")},
			Sessions: []SessionInfo{e.sessionInfo(s, devs[s.HostNo])}})
	}
	if len(hosts) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No iSCSI hosts.")
	}
	text, x := HostsText(hosts, c.PrintLevel, scan.ReadAttr(filepath.Join(e.sysfs, "module", "scsi_transport_iscsi", "version")))
	e.stdout.WriteString(text)
	return e.finish(x)
}
