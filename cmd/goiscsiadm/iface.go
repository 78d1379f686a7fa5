package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// Iface mode, over the iface records of package conf (ifaces/<name>, and the
// built-in default and iser).

func (e *env) ifaceDir() string { return filepath.Join(or(e.c.Root, "/etc/iscsi"), "ifaces") }

func (e *env) listIfaces() iscsierr.Code {
	recs, err := e.c.DB().Ifaces()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	return e.finish(IfacesText(ifaceSummaries(recs)))
}

func ifaceSummaries(recs []*conf.Record) []conf.Iface {
	out := make([]conf.Iface, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Iface())
	}
	return out
}

func (e *env) ifaceRecords(c *Command) iscsierr.Code {
	name := c.Ifaces[0]
	db := e.c.DB()
	switch c.Action {
	case ActShowIface:
		r, err := db.Iface(name)
		if err != nil {
			// Stock's message comes from libopeniscsiusr, without the
			// "iscsiadm: " prefix and with its source location, kept for
			// byte-identical stderr.
			fmt.Fprintf(e.stderr, "iSCSI ERROR: Failed to open %s using read mode: %s # idbm.c:_idbm_recs_read():834\n",
				filepath.Join(e.ifaceDir(), name), errnoText(err))
			return iscsierr.IDBM
		}
		io.WriteString(e.stdout, r.Show(false))
		return iscsierr.Success

	case ActNewIface:
		if conf.IsBuiltinIface(name) {
			e.errorf("iface %s is a special interface and is not stored in %s.", name, e.ifaceDir())
			return e.fail(iscsierr.Inval, "Could not create new interface %s.", name)
		}
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return e.fail(iscsierr.IDBM, "Could not create new interface %s.", name)
		}
		r := conf.NewIfaceRecord(name)
		if err := db.SaveIface(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not create new interface %s.", name)
		}
		// Stock ignores how applying -n/-v went: the iface exists.
		e.updateIface(r, c.Params)
		e.printf("New interface %s added\n", name)
		return iscsierr.Success

	case ActUpdateIface:
		r, err := db.Iface(name)
		if err != nil {
			return e.fail(iscsierr.Inval, "Could not read iface info for %s.", name)
		}
		if conf.IsBuiltinIface(name) {
			e.errorf("iface %s is a special interface and is not stored in %s.", name, e.ifaceDir())
			return e.fail(iscsierr.Inval, "Could not update iface %s: %s", name, iscsierr.Inval)
		}
		return e.updateIface(r, c.Params)

	case ActDeleteIface:
		if conf.IsBuiltinIface(name) {
			e.errorf("iface %s is a special interface and cannot be deleted.", name)
			return e.fail(iscsierr.Inval, "Could not delete iface %s: %s", name, iscsierr.Inval)
		}
		if _, err := db.Iface(name); err != nil {
			e.errorf("Could not read iface info for %s.", name)
			return e.fail(iscsierr.Inval, "Could not delete iface %s: %s", name, iscsierr.Inval)
		}
		// Stock deletes the node records bound to the iface first.
		recs, err := e.c.FindNodes(e.ctx, initiator.NodeFilter{Iface: name})
		if err != nil {
			return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
		}
		for _, n := range recs {
			if err := db.DeleteNode(n); err != nil {
				return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
			}
		}
		if err := db.DeleteIface(name); err != nil {
			return e.fail(iscsierr.IDBM, "Could not delete iface %s: %v", name, err)
		}
		e.printf("%s unbound and deleted.\n", name)
		return iscsierr.Success
	}
	return e.fail(iscsierr.OpNotSupp, "this operation is not supported by goiscsiadm yet")
}

// updateIface is stock's iface_param_update: check, write the iface record,
// then the node records bound to it, then say "<name> updated.".
func (e *env) updateIface(r *conf.Record, params []Param) iscsierr.Code {
	name := r.Get("iface.iscsi_ifacename")
	bad := func() iscsierr.Code {
		return e.fail(iscsierr.Inval, "Could not update iface %s: %s", name, iscsierr.Inval)
	}
	for _, p := range params {
		switch {
		case p.Name == "iface.iscsi_ifacename":
			e.errorf("Can not update iface.iscsi_ifacename. Delete it, and then create a new one.")
			return bad()
		case p.Name == "iface.net_ifacename" && r.Get("iface.hwaddress") != "":
			e.errorf("Can not update interface binding from hwaddress to net_ifacename. You must delete the interface and create a new one")
			return bad()
		case p.Name == "iface.hwaddress" && r.Get("iface.net_ifacename") != "":
			e.errorf("Can not update interface binding from net_ifacename to hwaddress. You must delete the interface and create a new one")
			return bad()
		case !r.Has(p.Name):
			e.errorf("Cannot modify %s. Invalid param name.", p.Name)
			return bad()
		case r.Set(p.Name, p.Value) != nil:
			e.errorf("unknown value format '%s' for parameter name '%s'", p.Value, p.Name)
			return bad()
		}
	}
	if len(params) > 0 {
		db := e.c.DB()
		if err := db.SaveIface(r); err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
		}
		recs, err := e.c.FindNodes(e.ctx, initiator.NodeFilter{Iface: name})
		if err != nil {
			e.errorf("%v", err)
			return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
		}
		for _, n := range recs {
			n.BindIface(r)
			if err := db.SaveNode(n); err != nil {
				e.errorf("%v", err)
				return e.fail(iscsierr.IDBM, "Could not update iface %s: %s", name, iscsierr.IDBM)
			}
		}
	}
	e.printf("%s updated.\n", name)
	return iscsierr.Success
}

// ifaceTree is -m iface -P 1 [-I name].
func (e *env) ifaceTree(c *Command) iscsierr.Code {
	recs, err := e.c.DB().Ifaces()
	if err != nil {
		return e.fail(iscsierr.IDBM, "%v", err)
	}
	ifs := ifaceSummaries(recs)
	if len(c.Ifaces) > 0 {
		var one []conf.Iface
		for _, i := range ifs {
			if i.Name == c.Ifaces[0] {
				one = append(one, i)
			}
		}
		ifs = one
	}
	nrecs, err := e.c.Nodes()
	if err != nil {
		return e.failWith(err)
	}
	nodes := make([]NodeSummary, 0, len(nrecs))
	for _, r := range nrecs {
		nodes = append(nodes, summary(r))
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Target < nodes[j].Target })
	io.WriteString(e.stdout, IfaceTreeText(ifs, nodes))
	return iscsierr.Success
}

// errnoText is how stock prints a failed open: "2 No such file or directory".
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("%d %s", int(errno), strings.ToUpper(errno.Error()[:1])+errno.Error()[1:])
	}
	return "2 No such file or directory"
}
