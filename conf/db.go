package conf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// NodeID identifies a node record: target, portal, portal group and iface.
type NodeID struct {
	Target  string
	Address string
	Port    int
	TPGT    int // -1 when unknown
	Iface   string
}

// Portal formats the ID's portal as stock prints it: "10.0.0.1:3260,1".
func (id NodeID) Portal() string {
	addr := id.Address
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return fmt.Sprintf("%s:%d,%d", addr, id.Port, id.TPGT)
}

// DB is open-iscsi's node database under Root (/etc/iscsi on Debian,
// /var/lib/iscsi on Red Hat systems).
type DB struct {
	Root string
}

func (db *DB) nodesDir() string { return filepath.Join(db.Root, "nodes") }

// portalDir names a node's portal directory: "<addr>,<port>,<tpgt>".
func portalDir(address string, port, tpgt int) string {
	return fmt.Sprintf("%s,%d,%d", address, port, tpgt)
}

// parsePortalName splits "<addr>,<port>[,<tpgt>]"; tpgt is -1 when absent (the
// old layout).
func parsePortalName(name string) (address string, port, tpgt int, ok bool) {
	parts := strings.Split(name, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return "", 0, 0, false
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, 0, false
	}
	tpgt = -1
	if len(parts) == 3 {
		if tpgt, err = strconv.Atoi(parts[2]); err != nil {
			return "", 0, 0, false
		}
	}
	return parts[0], port, tpgt, true
}

// Nodes returns every node record, sorted by target, portal and iface. A record
// that cannot be read is an error naming its file: nothing is skipped silently.
func (db *DB) Nodes() ([]*Record, error) {
	targets, err := os.ReadDir(db.nodesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, t := range targets {
		if !t.IsDir() {
			continue
		}
		tdir := filepath.Join(db.nodesDir(), t.Name())
		portals, err := os.ReadDir(tdir)
		if err != nil {
			return nil, err
		}
		for _, p := range portals {
			addr, port, tpgt, ok := parsePortalName(p.Name())
			if !ok {
				continue
			}
			pdir := filepath.Join(tdir, p.Name())
			if !p.IsDir() {
				// Old layout: the portal entry is the record itself.
				r, err := readRecord(pdir, NodeKind)
				if err != nil {
					return nil, err
				}
				fillID(r, t.Name(), addr, port, tpgt, "default")
				out = append(out, r)
				continue
			}
			ifaces, err := os.ReadDir(pdir)
			if err != nil {
				return nil, err
			}
			for _, i := range ifaces {
				if i.IsDir() || strings.HasPrefix(i.Name(), ".") {
					continue
				}
				r, err := readRecord(filepath.Join(pdir, i.Name()), NodeKind)
				if err != nil {
					return nil, err
				}
				fillID(r, t.Name(), addr, port, tpgt, i.Name())
				out = append(out, r)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].ID(), out[j].ID()
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Iface < b.Iface
	})
	return out, nil
}

// fillID makes the path's identity win over what the file says, as stock's
// lookups go by path.
func fillID(r *Record, target, address string, port, tpgt int, iface string) {
	if r.Get("node.name") == "" {
		r.set("node.name", target)
	}
	if r.Get("node.conn[0].address") == "" {
		r.set("node.conn[0].address", address)
	}
	r.set("node.conn[0].port", strconv.Itoa(port))
	if tpgt != -1 || r.Get("node.tpgt") == "" {
		r.set("node.tpgt", strconv.Itoa(tpgt))
	}
	if r.Get("iface.iscsi_ifacename") == "" {
		r.set("iface.iscsi_ifacename", iface)
	}
}

func readRecord(path string, kind Kind) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseRecord(f, path, kind)
}

// FindNodes returns the records matching every filter that is set: target and
// address "" and port 0 and iface "" match anything.
func (db *DB) FindNodes(target, address string, port int, iface string) ([]*Record, error) {
	all, err := db.Nodes()
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, r := range all {
		id := r.ID()
		if (target == "" || id.Target == target) && (address == "" || id.Address == address) &&
			(port == 0 || id.Port == port) && (iface == "" || id.Iface == iface) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (db *DB) nodePath(id NodeID) string {
	return filepath.Join(db.nodesDir(), id.Target, portalDir(id.Address, id.Port, id.TPGT), id.Iface)
}

// SaveNode writes a node record atomically: a reader sees the old record or the
// new one, never a torn file.
func (db *DB) SaveNode(r *Record) error {
	id := r.ID()
	if id.Target == "" || id.Address == "" || strings.ContainsAny(id.Target+id.Iface, "/\x00") || id.Target[0] == '.' {
		return fmt.Errorf("node record with an unusable identity: target %q, portal %s, iface %q", id.Target, id.Portal(), id.Iface)
	}
	return writeAtomic(db.nodePath(id), r)
}

// DeleteNode removes a node record and the directories it leaves empty.
func (db *DB) DeleteNode(id NodeID) error {
	p := db.nodePath(id)
	if err := os.Remove(p); err != nil {
		// The old layout: the portal entry is the file.
		old := filepath.Join(db.nodesDir(), id.Target, fmt.Sprintf("%s,%d", id.Address, id.Port))
		if err2 := os.Remove(old); err2 != nil {
			return err
		}
		p = filepath.Join(old, "x")
	}
	for dir := filepath.Dir(p); dir != db.nodesDir() && strings.HasPrefix(dir, db.nodesDir()); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty
		}
	}
	return nil
}

func (db *DB) discoveryPath(address string, port int) string {
	return filepath.Join(db.Root, "send_targets", fmt.Sprintf("%s,%d", address, port), "st_config")
}

// SaveDiscovery writes a SendTargets discovery record atomically.
func (db *DB) SaveDiscovery(r *Record) error {
	port, _ := strconv.Atoi(r.Get("discovery.sendtargets.port"))
	addr := r.Get("discovery.sendtargets.address")
	if addr == "" || strings.ContainsAny(addr, "/\x00") {
		return fmt.Errorf("discovery record with an unusable address %q", addr)
	}
	return writeAtomic(db.discoveryPath(addr, port), r)
}

// Discoveries returns every SendTargets discovery record.
func (db *DB) Discoveries() ([]*Record, error) {
	ents, err := os.ReadDir(filepath.Join(db.Root, "send_targets"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range ents {
		addr, port, _, ok := parsePortalName(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		r, err := readRecord(db.discoveryPath(addr, port), DiscoveryKind)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteDiscovery removes a discovery record and its directory.
func (db *DB) DeleteDiscovery(address string, port int) error {
	dir := filepath.Dir(db.discoveryPath(address, port))
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// writeAtomic writes r to path through a temporary file in the same directory,
// synced before the rename, so a crash leaves the old or the new record. Files
// are 0600 and directories 0700: records hold CHAP secrets.
func writeAtomic(path string, r *Record) error {
	b, err := r.MarshalText()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".goiscsi-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Iface is an iface record's name and transport.
type Iface struct {
	Name, Transport, HWAddress, IPAddress, NetIfaceName, InitiatorName string
}

// Ifaces returns the built-in default iface and the records under ifaces/.
func (db *DB) Ifaces() ([]Iface, error) {
	out := []Iface{{Name: "default", Transport: "tcp"}}
	ents, err := os.ReadDir(filepath.Join(db.Root, "ifaces"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "default" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(db.Root, "ifaces", e.Name()))
		if err != nil {
			return nil, err
		}
		i := Iface{Name: e.Name(), Transport: "tcp"}
		for _, line := range bytes.Split(b, []byte("\n")) {
			k, v, ok := strings.Cut(string(line), "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "iface.transport_name":
				i.Transport = v
			case "iface.hwaddress":
				i.HWAddress = v
			case "iface.ipaddress":
				i.IPAddress = v
			case "iface.net_ifacename":
				i.NetIfaceName = v
			case "iface.initiatorname":
				i.InitiatorName = v
			}
		}
		out = append(out, i)
	}
	return out, nil
}
