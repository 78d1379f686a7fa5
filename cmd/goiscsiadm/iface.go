package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// ifaceKeys are an iface record's keys in the order stock prints them
// (idbm_recinfo_iface for an IPv4 iface), with the values of an iface stock
// creates. Stock writes the non-empty ones to ifaces/<name> and shows all of
// them, empty ones as <empty>. Software iSCSI never has an IPv6 iface
// address, so the IPv6 variant of the table is not needed.
var ifaceKeys = []struct{ key, def string }{
	{"iface.iscsi_ifacename", ""}, {"iface.net_ifacename", ""}, {"iface.ipaddress", ""},
	{"iface.prefix_len", "0"}, {"iface.hwaddress", ""}, {"iface.transport_name", "tcp"},
	{"iface.initiatorname", ""}, {"iface.state", ""}, {"iface.vlan_id", "0"}, {"iface.vlan_priority", "0"},
	{"iface.vlan_state", ""}, {"iface.iface_num", "0"}, {"iface.mtu", "0"}, {"iface.port", "0"},
	{"iface.bootproto", ""}, {"iface.subnet_mask", ""}, {"iface.gateway", ""},
	{"iface.dhcp_alt_client_id_state", ""}, {"iface.dhcp_alt_client_id", ""}, {"iface.dhcp_dns", ""},
	{"iface.dhcp_learn_iqn", ""}, {"iface.dhcp_req_vendor_id_state", ""}, {"iface.dhcp_vendor_id_state", ""},
	{"iface.dhcp_vendor_id", ""}, {"iface.dhcp_slp_da", ""}, {"iface.fragmentation", ""},
	{"iface.gratuitous_arp", ""}, {"iface.incoming_forwarding", ""}, {"iface.tos_state", ""},
	{"iface.tos", "0"}, {"iface.ttl", "0"}, {"iface.delayed_ack", ""}, {"iface.tcp_nagle", ""},
	{"iface.tcp_wsf_state", ""}, {"iface.tcp_wsf", "0"}, {"iface.tcp_timer_scale", "0"},
	{"iface.tcp_timestamp", ""}, {"iface.redirect", ""}, {"iface.def_task_mgmt_timeout", "0"},
	{"iface.header_digest", ""}, {"iface.data_digest", ""}, {"iface.immediate_data", ""},
	{"iface.initial_r2t", ""}, {"iface.data_seq_inorder", ""}, {"iface.data_pdu_inorder", ""},
	{"iface.erl", "0"}, {"iface.max_receive_data_len", "0"}, {"iface.first_burst_len", "0"},
	{"iface.max_outstanding_r2t", "0"}, {"iface.max_burst_len", "0"}, {"iface.chap_auth", ""},
	{"iface.bidi_chap", ""}, {"iface.strict_login_compliance", ""}, {"iface.discovery_auth", ""},
	{"iface.discovery_logout", ""},
}

// builtinIfaces are stock's default_ifaces: not files, never written or
// deleted.
var builtinIfaces = map[string]string{"default": "tcp", "iser": "iser"}

// ifaceRecord is one iface record, values by key.
type ifaceRecord map[string]string

func newIfaceRecord(name, transport string) ifaceRecord {
	r := ifaceRecord{}
	for _, k := range ifaceKeys {
		r[k.key] = k.def
	}
	r["iface.iscsi_ifacename"] = name
	r["iface.transport_name"] = transport
	return r
}

func (r ifaceRecord) name() string { return r["iface.iscsi_ifacename"] }

func hasIfaceKey(key string) bool {
	for _, k := range ifaceKeys {
		if k.key == key {
			return true
		}
	}
	return false
}

// text is the record as stock writes it (secrets: none) or shows it.
func (r ifaceRecord) text(show bool) string {
	var b strings.Builder
	b.WriteString("# BEGIN RECORD 2.1.8\n")
	for _, k := range ifaceKeys {
		v := r[k.key]
		if v == "" {
			if !show {
				continue
			}
			v = "<empty>"
		}
		fmt.Fprintf(&b, "%s = %s\n", k.key, v)
	}
	b.WriteString("# END RECORD\n")
	return b.String()
}

func (r ifaceRecord) summary() Iface {
	return Iface{Name: r.name(), Transport: r["iface.transport_name"], HWAddress: r["iface.hwaddress"],
		IPAddress: r["iface.ipaddress"], Netdev: r["iface.net_ifacename"], InitiatorName: r["iface.initiatorname"]}
}

func (e *env) ifacePath(name string) string { return filepath.Join(e.root, "ifaces", name) }

// loadIface reads iface name: a built-in one or ifaces/<name>. The error is
// os.ErrNotExist when there is no such iface.
func (e *env) loadIface(name string) (ifaceRecord, error) {
	if t, ok := builtinIfaces[name]; ok {
		return newIfaceRecord(name, t), nil
	}
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, os.ErrNotExist
	}
	b, err := os.ReadFile(e.ifacePath(name))
	if err != nil {
		return nil, err
	}
	r := newIfaceRecord(name, "tcp")
	for k := range r {
		if k != "iface.iscsi_ifacename" {
			r[k] = ""
		}
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not key = value", e.ifacePath(name), i+1)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if hasIfaceKey(k) && k != "iface.iscsi_ifacename" {
			r[k] = v
		}
	}
	return r, nil
}

// readIface is the iface lookup node mode does first when -I is given.
func (e *env) readIface(name string) (ifaceRecord, *Exit) {
	r, err := e.loadIface(name)
	if err != nil {
		// Stock's exit code here is 3 (its iface read fails with ENOMEM's
		// value), and consumers see it: keep it.
		return nil, e.fail(iscsierr.NoMem, "Could not read iface info for %s.", name)
	}
	return r, nil
}

// saveIface writes an iface record atomically (temp file, fsync, rename), 0600.
func (e *env) saveIface(r ifaceRecord) error {
	dir := filepath.Join(e.root, "ifaces")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".goiscsi-*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(r.text(false))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), e.ifacePath(r.name()))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// allIfaces lists the iface records the way stock does: the files under
// ifaces/ in directory order, then the built-in default and iser.
func (e *env) allIfaces() ([]ifaceRecord, error) {
	var out []ifaceRecord
	ents, err := os.ReadDir(filepath.Join(e.root, "ifaces"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, ent := range ents {
		n := ent.Name()
		if ent.IsDir() || strings.HasPrefix(n, ".") || builtinIfaces[n] != "" {
			continue
		}
		r, err := e.loadIface(n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return append(out, newIfaceRecord("default", "tcp"), newIfaceRecord("iser", "iser")), nil
}

func (e *env) ifaces() ([]Iface, error) {
	recs, err := e.allIfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Iface, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.summary())
	}
	return out, nil
}

// ifaceNodeKeys are the iface keys a node record carries too: a node record
// made with -I copies them, and -m iface -o update changes them in the node
// records of the iface.
func ifaceNodeKeys(n *conf.Record) []string {
	var out []string
	for _, k := range ifaceKeys {
		if k.key != "iface.iscsi_ifacename" && n.Has(k.key) {
			out = append(out, k.key)
		}
	}
	return out
}

// copyIface gives node record n iface r's settings, as stock's iface_copy.
func copyIface(n *conf.Record, r ifaceRecord) {
	for _, k := range ifaceNodeKeys(n) {
		n.Set(k, r[k])
	}
}

func (e *env) ifaceRecords(c *Command) *Exit {
	name := c.Ifaces[0]
	switch c.Action {
	case ActShowIface:
		r, err := e.loadIface(name)
		if err != nil {
			// Stock's message comes from libopeniscsiusr, without the
			// "iscsiadm: " prefix and with its source location, kept for
			// byte-identical stderr.
			e.stderr.WriteString(fmt.Sprintf("iSCSI ERROR: Failed to open %s using read mode: %s # idbm.c:_idbm_recs_read():834\n",
				e.ifacePath(name), errnoText(err)))
			return e.exit(iscsierr.IDBM)
		}
		e.stdout.WriteString(r.text(true))
		return e.exit(iscsierr.Success)

	case ActNewIface:
		if _, ok := builtinIfaces[name]; ok {
			e.errorf("iface %s is a special interface and is not stored in %s.", name, filepath.Join(e.root, "ifaces"))
			return e.fail(iscsierr.Inval, "Could not create new interface %s.", name)
		}
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return e.fail(iscsierr.IDBM, "Could not create new interface %s.", name)
		}
		r := newIfaceRecord(name, "tcp")
		if err := e.saveIface(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not create new interface %s.", name)
		}
		// Stock ignores how applying -n/-v went: the iface exists.
		e.updateIface(r, c.Params)
		fmt.Fprintf(&e.stdout, "New interface %s added\n", name)
		return e.exit(iscsierr.Success)

	case ActUpdateIface:
		r, err := e.loadIface(name)
		if err != nil {
			return e.fail(iscsierr.Inval, "Could not read iface info for %s.", name)
		}
		if _, ok := builtinIfaces[name]; ok {
			e.errorf("iface %s is a special interface and is not stored in %s.", name, filepath.Join(e.root, "ifaces"))
			return e.fail(iscsierr.Inval, "Could not update iface %s: %s", name, iscsierr.Inval)
		}
		if x := e.updateIface(r, c.Params); x != nil {
			return x
		}
		return e.exit(iscsierr.Success)

	case ActDeleteIface:
		if _, ok := builtinIfaces[name]; ok {
			e.errorf("iface %s is a special interface and cannot be deleted.", name)
			return e.fail(iscsierr.Inval, "Could not delete iface %s: %s", name, iscsierr.Inval)
		}
		if _, err := e.loadIface(name); err != nil {
			e.errorf("Could not read iface info for %s.", name)
			return e.fail(iscsierr.Inval, "Could not delete iface %s: %s", name, iscsierr.Inval)
		}
		// Stock deletes the node records bound to the iface first.
		recs, err := e.db().Nodes()
		if err != nil {
			return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
		}
		for _, n := range recs {
			if n.ID().Iface == name {
				if err := e.db().DeleteNode(n.ID()); err != nil {
					return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
				}
			}
		}
		if err := os.Remove(e.ifacePath(name)); err != nil {
			return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
		}
		fmt.Fprintf(&e.stdout, "%s unbound and deleted.\n", name)
		return e.exit(iscsierr.Success)
	}
	return e.fail(iscsierr.OpNotSupp, "this operation is not supported by goiscsiadm yet")
}

// updateIface is stock's iface_param_update: check, write the iface record,
// then the node records bound to it, then say "<name> updated.".
func (e *env) updateIface(r ifaceRecord, params []Param) *Exit {
	name := r.name()
	bad := func() *Exit { return e.fail(iscsierr.Inval, "Could not update iface %s: %s", name, iscsierr.Inval) }
	for _, p := range params {
		switch {
		case p.Name == "iface.iscsi_ifacename":
			e.errorf("Can not update iface.iscsi_ifacename. Delete it, and then create a new one.")
			return bad()
		case p.Name == "iface.net_ifacename" && r["iface.hwaddress"] != "":
			e.errorf("Can not update interface binding from hwaddress to net_ifacename. You must delete the interface and create a new one")
			return bad()
		case p.Name == "iface.hwaddress" && r["iface.net_ifacename"] != "":
			e.errorf("Can not update interface binding from net_ifacename to hwaddress. You must delete the interface and create a new one")
			return bad()
		case !hasIfaceKey(p.Name):
			e.errorf("Cannot modify %s. Invalid param name.", p.Name)
			return bad()
		case strings.ContainsAny(p.Value, "\n\r\x00"):
			e.errorf("unknown value format '%s' for parameter name '%s'", p.Value, p.Name)
			return bad()
		}
	}
	for _, p := range params {
		v := p.Value
		if v == "<empty>" {
			v = ""
		}
		r[p.Name] = v
	}
	if len(params) > 0 {
		if err := e.saveIface(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
		}
		recs, err := e.db().Nodes()
		if err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
		}
		for _, n := range recs {
			if n.ID().Iface != name {
				continue
			}
			for _, p := range params {
				if n.Has(p.Name) {
					n.Set(p.Name, r[p.Name])
				}
			}
			if err := e.db().SaveNode(n); err != nil {
				e.errorf("%v", err)
				return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
			}
		}
	}
	fmt.Fprintf(&e.stdout, "%s updated.\n", name)
	return nil
}

// ifaceTree is -m iface -P 1 [-I name].
func (e *env) ifaceTree(c *Command) *Exit {
	ifs, err := e.ifaces()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	if len(c.Ifaces) > 0 {
		var one []Iface
		for _, i := range ifs {
			if i.Name == c.Ifaces[0] {
				one = append(one, i)
			}
		}
		ifs = one
	}
	recs, err := e.db().Nodes()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	nodes := make([]NodeSummary, 0, len(recs))
	for _, r := range recs {
		nodes = append(nodes, summary(r, nil))
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Target < nodes[j].Target })
	e.stdout.WriteString(IfaceTreeText(ifs, nodes))
	return e.exit(iscsierr.Success)
}

// errnoText is how stock prints a failed open: "2 No such file or directory".
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("%d %s", int(errno), strings.ToUpper(errno.Error()[:1])+errno.Error()[1:])
	}
	return "2 No such file or directory"
}
