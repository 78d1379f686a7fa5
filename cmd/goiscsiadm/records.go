package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// Changing records with -n/-v follows stock's two passes (idbm_verify_param
// over every pair, then idbm_rec_update_param): a pair that names an unknown
// key or a lookup key stops the command before anything changes, and a value
// that does not suit its key stops it before the record is written.

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
		if !exactChoice(p.Name, v) {
			e.errorf("unknown value format '%s' for parameter name '%s'", p.Value, p.Name)
			return p.Name
		}
		if err := r.Set(p.Name, v); err != nil {
			e.errorf("unknown value format '%s' for parameter name '%s'", p.Value, p.Name)
			return p.Name
		}
	}
	return ""
}

// enumChoices are the values stock's option keys take, spelled exactly:
// stock compares them with strcmp, and a record holding "chap" or "yes" is
// one stock reads back as the default (no CHAP at all). goiscsi's own
// readers are lenient; what goiscsiadm writes must suit stock too.
var enumChoices = map[string][]string{
	"node.startup": {"manual", "automatic", "onboot"}, "node.conn[0].startup": {"manual", "automatic", "onboot"},
	"discovery.startup":            {"manual", "automatic"},
	"node.session.auth.authmethod": {"None", "CHAP"}, "discovery.sendtargets.auth.authmethod": {"None", "CHAP"},
	"node.session.scan":               {"manual", "auto"},
	"node.conn[0].iscsi.HeaderDigest": {"None", "CRC32C", "CRC32C,None", "None,CRC32C"},
	"node.conn[0].iscsi.DataDigest":   {"None", "CRC32C", "CRC32C,None", "None,CRC32C"},
	"node.leading_login":              {"Yes", "No"}, "node.session.iscsi.FastAbort": {"Yes", "No"},
	"node.session.iscsi.InitialR2T": {"Yes", "No"}, "node.session.iscsi.ImmediateData": {"Yes", "No"},
	"node.conn[0].iscsi.IFMarker": {"Yes", "No"}, "node.conn[0].iscsi.OFMarker": {"Yes", "No"},
	"node.session.autoscan_en": {"Yes", "No"}, "discovery.sendtargets.use_discoveryd": {"Yes", "No"},
}

func exactChoice(key, value string) bool {
	cs, ok := enumChoices[key]
	if !ok || value == "" || value == "<empty>" {
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
func (e *env) updateNodes(recs []*conf.Record, params []Param) *Exit {
	db := e.db()
	for _, r := range recs {
		if !e.verifyParams(r, params) {
			return e.fail(iscsierr.Inval, "Could not execute operation on all records: %s", iscsierr.Inval)
		}
		if bad := e.setParams(r, params); bad != "" {
			e.errorf("Unknown parameter %s.", bad)
			return e.fail(iscsierr.Inval, "Could not execute operation on all records: %s", iscsierr.Inval)
		}
		if err := db.SaveNode(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not execute operation on all records: %s", iscsierr.IDBM)
		}
	}
	return nil
}

// ---- discovery records (-m discoverydb -t st -p P -o new|show|update|delete)

func (e *env) findDiscovery(address string, port int) *conf.Record {
	ds, _ := e.db().Discoveries()
	for _, d := range ds {
		if d.Get("discovery.sendtargets.address") == address && d.Get("discovery.sendtargets.port") == strconv.Itoa(port) {
			return d
		}
	}
	return nil
}

// discoveryNotFound is stock's answer when the discovery record of -p is
// missing: discoverydb mode says so with exit 6, discovery mode with "!" and 7.
func (e *env) discoveryNotFound(c *Command) *Exit {
	if c.Mode == ModeDiscovery {
		return e.fail(iscsierr.Inval, "Discovery record [%s,%d] not found!", c.Portal.Address, c.Portal.Port)
	}
	return e.fail(iscsierr.IDBM, "Discovery record [%s,%d] not found.", c.Portal.Address, c.Portal.Port)
}

func (e *env) discoveryRecords(c *Command) *Exit {
	addr, port := c.Portal.Address, c.Portal.Port
	db := e.db()
	if c.Action == ActNewDiscovery {
		cfg, err := e.config()
		if err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
		if err := db.SaveDiscovery(conf.NewDiscoveryRecord(cfg, addr, port)); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not add new discovery record.")
		}
		fmt.Fprintf(&e.stdout, "New discovery record for [%s,%d] added.\n", addr, port)
		return e.exit(iscsierr.Success)
	}
	d := e.findDiscovery(addr, port)
	if d == nil {
		return e.discoveryNotFound(c)
	}
	if c.Reject != nil {
		return e.finish(c.Reject)
	}
	switch c.Action {
	case ActShowDiscovery:
		e.stdout.WriteString(d.Show(c.ShowSecrets))
	case ActDeleteDiscovery:
		// The nodes found through this portal go with it, as in stock,
		// where they hang off the discovery record's directory; one that a
		// session uses stays, and so does the discovery record then.
		present := e.sessionCounts()
		code := iscsierr.Success
		for _, r := range e.nodesDiscoveredBy(addr, port) {
			if x := e.deleteNode(r, present); x != iscsierr.Success {
				code = x
			}
		}
		if code != iscsierr.Success {
			return e.exit(code)
		}
		if err := db.DeleteDiscovery(addr, port); err != nil {
			return e.fail(iscsierr.IDBM, "Unable to delete record!")
		}
	case ActUpdateDiscovery:
		if !e.verifyParams(d, c.Params) || e.setParams(d, c.Params) != "" {
			return e.exit(iscsierr.Inval)
		}
		if err := db.SaveDiscovery(d); err != nil {
			return e.fail(iscsierr.IDBM, "%v", err)
		}
	}
	return e.exit(iscsierr.Success)
}

// ---- session-scoped record commands (-m session -r SID ...)

// session looks up session SID the way stock does before anything else in
// session mode: a SID the kernel does not know ends the command with exit 22.
func (e *env) session(sid int) (*mgmt.Session, *Exit) {
	all, me := e.sessions(false, false)
	if me != nil {
		return nil, e.fail(me.Code, "%s", me.Message)
	}
	for i := range all {
		if all[i].SID == sid {
			return &all[i], nil
		}
	}
	e.errorf("could not read session targetname: 5")
	return nil, e.fail(iscsierr.SysfsLookup, "Could not get session info for sid %d", sid)
}

// scopeToSession narrows c's record selectors to the node record session s
// was logged in from.
func scopeToSession(c *Command, s *mgmt.Session) {
	c.Target = s.TargetName
	// Stock matches a session to records by target, portal and iface, not
	// by tpgt (records made with -o new have none).
	c.Portal = &Portal{Address: s.PersistentAddress, Port: s.PersistentPort, TPGT: -1}
	iface := s.Iface
	if iface == "" {
		iface = "default"
	}
	c.Ifaces = []string{iface}
}
