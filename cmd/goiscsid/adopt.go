package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/session"
)

// kernelSession is what sysfs shows of a session the kernel has.
type kernelSession struct {
	sid, host uint32
	rec       record // the keys sysfs knows, as record keys
}

var hostInPath = regexp.MustCompile(`/host(\d+)/session(\d+)$`)

// kernelSessions reads /sys/class/iscsi_session: the sessions a previous daemon
// (or iscsid) left running.
func kernelSessions(sysfs string) ([]kernelSession, error) {
	dir := filepath.Join(sysfs, "class", "iscsi_session")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []kernelSession
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "session")
		sid, err := strconv.ParseUint(n, 10, 32)
		if !ok || err != nil {
			continue
		}
		sdir := filepath.Join(dir, e.Name())
		read := func(p string) string {
			b, _ := os.ReadFile(p)
			return strings.TrimSpace(string(b))
		}
		// A session created by firmware or an offload driver is not ours.
		if read(filepath.Join(sdir, "creator")) == "-1" {
			continue
		}
		dev, err := filepath.EvalSymlinks(filepath.Join(sdir, "device"))
		if err != nil {
			return nil, fmt.Errorf("session %d: %w", sid, err)
		}
		m := hostInPath.FindStringSubmatch(dev)
		if m == nil {
			return nil, fmt.Errorf("session %d: no SCSI host in %s", sid, dev)
		}
		host, _ := strconv.ParseUint(m[1], 10, 32)
		cdir := filepath.Join(sysfs, "class", "iscsi_connection", fmt.Sprintf("connection%d:0", sid))
		rec := record{
			"node.name":                              read(filepath.Join(sdir, "targetname")),
			"node.tpgt":                              read(filepath.Join(sdir, "tpgt")),
			"iface.iscsi_ifacename":                  read(filepath.Join(sdir, "ifacename")),
			"iface.initiatorname":                    read(filepath.Join(sdir, "initiatorname")),
			"node.session.timeo.replacement_timeout": read(filepath.Join(sdir, "recovery_tmo")),
			"node.conn[0].address":                   read(filepath.Join(cdir, "persistent_address")),
			"node.conn[0].port":                      read(filepath.Join(cdir, "persistent_port")),
		}
		for k, v := range rec {
			if v == "" || v == "(null)" {
				delete(rec, k)
			}
		}
		out = append(out, kernelSession{sid: uint32(sid), host: uint32(host), rec: rec})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sid < out[j].sid })
	return out, nil
}

// adopt takes over the sessions in the kernel at start, so logout, listing and
// recovery work for them again. Unlike iscsid, it does not log them in again
// (that would stall their I/O): the connection the old daemon handed to the
// kernel keeps working. The scan at start follows each session's policy. find
// returns the node record of a session, nil when there is none.
func (d *daemon) adopt(sysfsRoot string, find func(target, address string, port int, iface string) (map[string]string, error)) {
	ks, err := kernelSessions(sysfsRoot)
	if err != nil {
		d.log.Error("reading the kernel's sessions", "err", err)
		return
	}
	for _, ks := range ks {
		rec := d.withDefaults(nil)
		port, _ := strconv.Atoi(ks.rec["node.conn[0].port"])
		stored, err := find(ks.rec["node.name"], ks.rec["node.conn[0].address"], port, ks.rec.str("iface.iscsi_ifacename", "default"))
		if err != nil {
			d.log.Warn("node record of a running session", "sid", ks.sid, "err", err)
		}
		for k, v := range stored {
			rec[k] = v
		}
		// What the kernel runs with beats a record changed since.
		for k, v := range ks.rec {
			rec[k] = v
		}
		n, err := rec.node(d.initiatorName, d.alias)
		if err != nil {
			d.log.Error("cannot take over session", "sid", ks.sid, "err", err)
			continue
		}
		n.Dial = d.dial
		policy, err := scan.PolicyFor(rec.str("node.session.scan", ""), rec.str("node.session.autoscan_en", ""))
		if err != nil {
			d.log.Error("cannot take over session", "sid", ks.sid, "err", err)
			continue
		}
		ds := &daemonSession{rec: rec, id: nodeID(n), policy: policy}
		ds.k = session.Adopt(d.kernel, n, ks.sid, ks.host, session.LoginResult{Params: session.Params{TargetPortalGroupTag: -1}}, d.hooks(ds), d.log)
		d.mu.Lock()
		d.sessions[ks.sid] = ds
		d.mu.Unlock()
		d.log.Info("took over running session", "sid", ks.sid, "host", ks.host, "target", n.Login.TargetName, "scan_policy", policy.String())
		d.scanHost(ds.k, policy, scan.Start)
	}
}
