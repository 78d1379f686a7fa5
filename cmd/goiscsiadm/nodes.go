package main

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan"
)

// Node mode's record commands and the discovery records, with stock's two
// passes when -n/-v change a record (idbm_verify_param over every pair, then
// idbm_rec_update_param): a pair that names an unknown key or a lookup key
// stops the command before anything changes, and a value that does not suit
// its key stops it before the record is written.

func summary(r *conf.Record) NodeSummary {
	id := r.ID()
	p, err := scan.PolicyFor(r.Get("node.session.scan"), r.Get("node.session.autoscan_en"))
	policy := p.String()
	if err != nil {
		policy = ""
	}
	return NodeSummary{Target: id.Target, Address: id.Address, Port: id.Port, TPGT: id.TPGT, Iface: id.Iface, ScanPolicy: policy}
}

// filter is the node selection of c's -T, -p and -I.
func filter(c *Command) initiator.NodeFilter {
	f := initiator.NodeFilter{Target: c.Target}
	if c.Portal != nil {
		f.Address, f.Port = c.Portal.Address, c.Portal.Port
	}
	if len(c.Ifaces) > 0 {
		f.Iface = c.Ifaces[0]
	}
	return f
}

func (e *env) listNodes(c *Command) iscsierr.Code {
	recs, err := e.c.Nodes()
	if err != nil {
		return e.failWith(err)
	}
	var nodes []NodeSummary
	for _, r := range recs {
		nodes = append(nodes, summary(r))
	}
	if c.JSON {
		io.WriteString(e.stdout, NodesJSON(nodes))
		return iscsierr.Success
	}
	return e.finish(NodesText(nodes, c.PrintLevel))
}

func (e *env) nodeRecords(c *Command) iscsierr.Code {
	if c.Action == ActNewNode {
		return e.newNodes(c)
	}
	if c.Action == ActUpdateNodes {
		for _, p := range c.Params {
			if p.Name != "iface.transport_name" {
				continue
			}
			// Stock's verify_node_params: not while a session uses it.
			// Without an answer about the sessions, nothing changes.
			all, err := e.c.Sessions(e.ctx, initiator.ListOptions{Brief: true})
			if err != nil {
				return e.failWith(err)
			}
			if len(e.c.SelectSessions(e.ctx, all, sessionFilter(c))) > 0 {
				return e.fail(iscsierr.SessExists, "Cannot modify node/iface transport name while a session is using it. "+
					"Log out the session then update record.")
			}
		}
	}
	recs, err := e.c.FindNodes(e.ctx, filter(c))
	if err != nil {
		return e.failWith(err)
	}
	if len(recs) == 0 {
		return e.fail(iscsierr.NoObjsFound, "No records found")
	}
	switch c.Action {
	case ActShowNodes:
		for _, r := range recs {
			io.WriteString(e.stdout, r.Show(c.ShowSecrets))
		}
	case ActDeleteNodes:
		// A record whose session cannot be ruled out stays.
		if code := e.deleteNodes(recs); code != iscsierr.Success {
			return e.fail(code, "Could not execute operation on all records: %s", code)
		}
	case ActUpdateNodes:
		if code := e.updateNodes(recs, c.Params); code != iscsierr.Success {
			return code
		}
		if c.SID > 0 {
			return e.updateLiveSession(c)
		}
	}
	return iscsierr.Success
}

// deleteNodes deletes records, saying why for each one that stays, and returns
// the first failure's code.
func (e *env) deleteNodes(recs []*conf.Record) iscsierr.Code {
	errs, err := e.c.DeleteNodes(e.ctx, recs)
	if err != nil {
		return e.failWith(err)
	}
	code := iscsierr.Success
	for _, err := range errs {
		if err == nil {
			continue
		}
		var ie *iscsierr.Error
		if errors.As(err, &ie) {
			e.errorf("%s", ie.Message)
		}
		if code == iscsierr.Success {
			code = iscsierr.CodeOf(err)
		}
	}
	return code
}

// newNodes is -m node -o new, stock's add_static_recs: with -T and -p, one
// record made afresh from iscsid.conf (an existing one is replaced); with
// only one of them, or neither, every existing record that matches is made
// afresh, keeping its portal and tpgt. Finding nothing, stock says
// "Error while adding record: " and exits 0.
func (e *env) newNodes(c *Command) iscsierr.Code {
	iface := "default"
	if len(c.Ifaces) > 0 {
		iface = c.Ifaces[0]
	}
	ir, err := e.c.Iface(iface)
	if err != nil {
		return e.failWith(err)
	}
	var todo []initiator.Portal
	var targets []string
	if c.Target != "" && c.Portal != nil {
		targets = append(targets, c.Target)
		todo = append(todo, initiator.Portal{Address: c.Portal.Address, Port: c.Portal.Port, TPGT: c.Portal.TPGT})
	} else {
		f := filter(c)
		f.Iface = ""
		recs, err := e.c.FindNodes(e.ctx, f)
		if err != nil {
			return e.failWith(err)
		}
		type key struct {
			target string
			p      initiator.Portal
		}
		seen := map[key]bool{}
		for _, r := range recs {
			id := r.ID()
			k := key{id.Target, initiator.Portal{Address: id.Address, Port: id.Port, TPGT: id.TPGT}}
			if !seen[k] {
				seen[k] = true
				targets = append(targets, k.target)
				todo = append(todo, k.p)
			}
		}
	}
	if len(todo) == 0 {
		return e.fail(iscsierr.Success, "Error while adding record: ")
	}
	for i, p := range todo {
		r, err := e.c.NewNode(targets[i], p, iface)
		if err != nil {
			return e.failWith(err)
		}
		if err := e.c.SaveNode(r); err != nil {
			e.failWith(err)
			return e.fail(iscsierr.IDBM, "Error while adding record: %s", iscsierr.IDBM)
		}
		id := r.ID()
		e.printf("New iSCSI node [%s:[hw=%s,ip=%s,net_if=%s,iscsi_if=%s] %s,%d,%d %s] added\n",
			ir.Get("iface.transport_name"), ir.Get("iface.hwaddress"), ir.Get("iface.ipaddress"), ir.Get("iface.net_ifacename"),
			iface, id.Address, id.Port, id.TPGT, id.Target)
	}
	return iscsierr.Success
}

// updateLiveSession applies scan policy keys of -m session -r SID -o update to
// the running session too, without a relogin.
func (e *env) updateLiveSession(c *Command) iscsierr.Code {
	keys := map[string]string{}
	for _, p := range c.Params {
		if p.Name == "node.session.scan" || p.Name == "node.session.autoscan_en" {
			keys[p.Name] = p.Value
		}
	}
	if len(keys) == 0 {
		return iscsierr.Success
	}
	if err := e.c.UpdateSession(e.ctx, c.SID, keys); err != nil {
		return e.failWith(err)
	}
	return iscsierr.Success
}

// discoveryLookupKeys are the discovery record keys stock will not change
// (can_modify 0 in idbm_recinfo_discovery).
var discoveryLookupKeys = map[string]bool{
	"discovery.type": true, "discovery.sendtargets.address": true, "discovery.sendtargets.port": true,
}

// verifyParams reports, as stock does, the first pair that may not be set on r.
func (e *env) verifyParams(r *conf.Record, params []Param) bool {
	for _, p := range params {
		if !r.Has(p.Name) {
			e.errorf("Cannot modify %s. Invalid param name.", p.Name)
			return false
		}
		if conf.IsLookupKey(p.Name) || (r.Kind() == conf.DiscoveryKind && discoveryLookupKeys[p.Name]) {
			e.errorf("Cannot modify %s. It is used to look up the record and cannot be changed.", p.Name)
			return false
		}
	}
	return true
}

// setParams applies verified pairs to r; a bad value gets stock's message
// and its key is returned.
func (e *env) setParams(r *conf.Record, params []Param) (bad string) {
	for _, p := range params {
		v := p.Value
		if p.Name == "node.session.auth.chap_algs" {
			v = e.chapAlgs(p.Name, v)
		}
		if !exactChoice(p.Name, v) || r.Set(p.Name, v) != nil {
			e.errorf("unknown value format '%s' for parameter name '%s'", p.Value, p.Name)
			return p.Name
		}
	}
	return ""
}

// exactChoice reports whether value is spelled as stock spells its key's
// choices: stock compares them with strcmp, and a record holding "chap" or
// "yes" is one stock reads back as the default (no CHAP at all). goiscsi's
// own readers are lenient; what goiscsiadm writes must suit stock too.
func exactChoice(key, value string) bool {
	cs := conf.Choices(key)
	if cs == nil || value == "" || value == "<empty>" {
		return true
	}
	for _, c := range cs {
		if value == c {
			return true
		}
	}
	return false
}

// chapAlgs keeps the CHAP algorithms stock knows from a list, warning about
// the others and repeats as stock does; nothing left means MD5, which is
// what stock then shows.
func (e *env) chapAlgs(key, value string) string {
	var keep []string
	seen := map[string]bool{}
	for _, tok := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		switch {
		case tok != "MD5" && tok != "SHA1" && tok != "SHA256" && tok != "SHA3-256":
			e.errorf("Ignoring unknown value '%s' for '%s'", tok, key)
		case seen[tok]:
			e.errorf("Ignoring repeated value '%s' for '%s'", tok, key)
		default:
			seen[tok] = true
			keep = append(keep, tok)
		}
	}
	if len(keep) == 0 {
		return "MD5"
	}
	return strings.Join(keep, ",")
}

// updateNodes is -m node|session -o update over the selected records. Stock
// stops at the first record it cannot change and names the failure once.
func (e *env) updateNodes(recs []*conf.Record, params []Param) iscsierr.Code {
	for _, r := range recs {
		if !e.verifyParams(r, params) {
			return e.fail(iscsierr.Inval, "Could not execute operation on all records: %s", iscsierr.Inval)
		}
		if bad := e.setParams(r, params); bad != "" {
			e.errorf("Unknown parameter %s.", bad)
			return e.fail(iscsierr.Inval, "Could not execute operation on all records: %s", iscsierr.Inval)
		}
		if err := e.c.DB().SaveNode(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not execute operation on all records: %s", iscsierr.IDBM)
		}
	}
	return iscsierr.Success
}

// ---- discovery records (-m discoverydb -t st -p P -o new|show|update|delete)

// discoveryNotFound is stock's answer when the discovery record of -p is
// missing: discoverydb mode says so with exit 6, discovery mode with "!" and 7.
func (e *env) discoveryNotFound(c *Command) iscsierr.Code {
	if c.Mode == ModeDiscovery {
		return e.fail(iscsierr.Inval, "Discovery record [%s,%d] not found!", c.Portal.Address, c.Portal.Port)
	}
	return e.fail(iscsierr.IDBM, "Discovery record [%s,%d] not found.", c.Portal.Address, c.Portal.Port)
}

// discoveryRecord is the discovery record of c's portal, of the kind -t
// names; nil when there is none.
func (e *env) discoveryRecord(c *Command) *conf.Record {
	if c.ISNS {
		return e.c.ISNSDiscoveryRecord(c.Portal.Address, c.Portal.Port)
	}
	return e.c.DiscoveryRecord(c.Portal.Address, c.Portal.Port)
}

func (e *env) discoveryRecords(c *Command) iscsierr.Code {
	addr, port := c.Portal.Address, c.Portal.Port
	db := e.c.DB()
	if c.Action == ActNewDiscovery {
		cfg, err := e.c.Config()
		if err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
		d := conf.NewDiscoveryRecord(cfg, addr, port)
		if c.ISNS {
			d = conf.NewISNSDiscoveryRecord(cfg, addr, port)
		}
		if err := db.SaveDiscovery(d); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not add new discovery record.")
		}
		e.printf("New discovery record for [%s,%d] added.\n", addr, port)
		return iscsierr.Success
	}
	d := e.discoveryRecord(c)
	if d == nil {
		return e.discoveryNotFound(c)
	}
	if c.Reject != nil {
		return e.finish("", c.Reject)
	}
	switch c.Action {
	case ActShowDiscovery:
		io.WriteString(e.stdout, d.Show(c.ShowSecrets))
	case ActDeleteDiscovery:
		// The nodes found through this portal go with it, as in stock,
		// where they hang off the discovery record's directory; one that a
		// session uses stays, and so does the discovery record then.
		typ := "send_targets"
		if c.ISNS {
			typ = "isns"
		}
		if code := e.deleteNodes(e.c.NodesDiscoveredBy(typ, addr, port)); code != iscsierr.Success {
			return code
		}
		if err := db.DeleteDiscovery(d); err != nil {
			return e.fail(iscsierr.IDBM, "Unable to delete record!")
		}
	case ActUpdateDiscovery:
		if !e.verifyParams(d, c.Params) || e.setParams(d, c.Params) != "" {
			return iscsierr.Inval
		}
		if err := db.SaveDiscovery(d); err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
	}
	return iscsierr.Success
}

func (e *env) listDiscovery(c *Command) iscsierr.Code {
	db := e.c.DB()
	ds, err := db.Discoveries()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	nodes, err := e.c.Nodes()
	if err != nil {
		return e.failWith(err)
	}
	var out DiscoveryDB
	for _, d := range ds {
		port, _ := strconv.Atoi(d.Get("discovery.sendtargets.port"))
		dp := DiscoveryPortal{Address: d.Get("discovery.sendtargets.address"), Port: port}
		typ := "send_targets"
		if d.Kind() == conf.ISNSDiscoveryKind {
			typ = "isns"
		}
		for _, n := range nodes {
			if n.Get("node.discovery_type") == typ && n.Get("node.discovery_address") == dp.Address &&
				n.Get("node.discovery_port") == strconv.Itoa(port) {
				dp.Nodes = append(dp.Nodes, summary(n))
			}
		}
		if typ == "isns" {
			out.ISNS = append(out.ISNS, dp)
		} else {
			out.SendTargets = append(out.SendTargets, dp)
		}
	}
	for _, n := range nodes {
		switch n.Get("node.discovery_type") {
		case "static":
			out.Static = append(out.Static, summary(n))
		case "isns":
			out.ISNSNodes = append(out.ISNSNodes, summary(n))
		case "fw":
			out.Firmware = append(out.Firmware, summary(n))
		}
	}
	return e.finish(DiscoveryDBText(out, c.PrintLevel))
}

// ---- session-scoped record commands (-m session -r SID ...)

// session looks up session SID the way stock does before anything else in
// session mode: a SID the kernel does not know ends the command with exit 22.
func (e *env) session(sid int) (*initiator.Session, iscsierr.Code) {
	all, err := e.c.Sessions(e.ctx, initiator.ListOptions{Brief: true})
	if err != nil {
		return nil, e.failWith(err)
	}
	for i := range all {
		if all[i].SID == sid {
			return &all[i], iscsierr.Success
		}
	}
	e.errorf("could not read session targetname: 5")
	return nil, e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", sid)
}

// scopeToSession narrows c's record selectors to the node record session s
// was logged in from.
func scopeToSession(c *Command, s *initiator.Session) {
	c.Target = s.TargetName
	// Stock matches a session to records by target, portal and iface, not
	// by tpgt (records made with -o new have none).
	c.Portal = &Portal{Address: s.PersistentAddress, Port: s.PersistentPort, TPGT: -1}
	c.Ifaces = []string{s.Iface.Name}
}
