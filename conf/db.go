package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
		tdir := filepath.Join(db.nodesDir(), t.Name())
		if skipName(t.Name()) {
			continue
		}
		if !t.IsDir() {
			return nil, fmt.Errorf("%s: not a target directory", tdir)
		}
		portals, err := os.ReadDir(tdir)
		if err != nil {
			return nil, err
		}
		for _, p := range portals {
			if skipName(p.Name()) {
				continue
			}
			addr, port, tpgt, ok := parsePortalName(p.Name())
			if !ok {
				return nil, fmt.Errorf("%s: not a <address>,<port>,<tpgt> portal entry", filepath.Join(tdir, p.Name()))
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
				if skipName(i.Name()) {
					continue
				}
				if i.IsDir() {
					return nil, fmt.Errorf("%s: a directory where a node record belongs", filepath.Join(pdir, i.Name()))
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

// skipName reports whether a directory entry is not a record by design: our
// own temporary files (".goiscsi-*", left by a crash before the rename) and
// other hidden files. Everything else must be a record, or listing fails
// naming it: a record that silently vanished from the list would silently
// stop logging in.
func skipName(name string) bool { return strings.HasPrefix(name, ".") }

// fillID completes a record's identity from its path: records of the old
// layouts may lack keys the path gives. The port, and the tpgt when the path
// has one, come from the path, as stock finds records by path; the rest is
// taken from the file when it has it.
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
	return ParseRecordKind(f, path, kind)
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

// oldNodePaths are where the old layouts keep id's record as a plain file:
// nodes/<target>/<addr>,<port>,<tpgt> (one iface only) and, before svn 780,
// nodes/<target>/<addr>,<port>.
func (db *DB) oldNodePaths(id NodeID) []string {
	tdir := filepath.Join(db.nodesDir(), id.Target)
	return []string{
		filepath.Join(tdir, portalDir(id.Address, id.Port, id.TPGT)),
		filepath.Join(tdir, fmt.Sprintf("%s,%d", id.Address, id.Port)),
	}
}

// isFile reports whether path is a regular file (not a directory).
func isFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// SaveNode writes a node record atomically: a reader sees the old record or the
// new one, never a torn file. A record still in an old layout (the portal entry
// a file) moves to the current one, as stock converts it when it writes.
func (db *DB) SaveNode(r *Record) error {
	if r.Kind() != NodeKind {
		return fmt.Errorf("SaveNode: a %s record is not a node record", r.Kind())
	}
	id := r.ID()
	if err := checkPathPart("target", id.Target); err != nil {
		return err
	}
	if err := checkPathPart("iface", id.Iface); err != nil {
		return err
	}
	if id.Address == "" || strings.ContainsAny(id.Address, "/\x00") {
		return fmt.Errorf("node record %s: unusable portal address %q", id.Target, id.Address)
	}
	// A conversion killed midway leaves its temporary directory here.
	removeStaleTemps(filepath.Join(db.nodesDir(), id.Target))
	old := db.oldNodePaths(id)
	if isFile(old[0]) {
		return convertNode(old[0], r)
	}
	if err := writeAtomic(db.nodePath(id), r); err != nil {
		return err
	}
	if isFile(old[1]) {
		// Stock reads the pre-780 file first, so it would shadow the record
		// just written.
		return os.Remove(old[1])
	}
	return nil
}

// convertNode puts r, the record of the old-layout file at path, into the
// current layout, where path is a directory holding a file per iface. The
// directory is built under a temporary name and exchanged with the file in one
// step (renameat2 RENAME_EXCHANGE), so that a crash leaves the old record or the
// new one. A filesystem without the exchange gets stock's conversion: the file
// is removed before the directory is renamed into its place, and a crash in
// between loses the record.
func convertNode(path string, r *Record) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".goiscsi-*")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, r.ID().Iface), r); err != nil {
		os.RemoveAll(dir)
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		syncDir(filepath.Dir(path))
		// The temporary name holds the old file now.
		return os.Remove(dir)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			os.RemoveAll(dir)
			return rerr
		}
		if err := os.Remove(path); err != nil {
			os.RemoveAll(dir)
			return err
		}
		if err := os.Rename(dir, path); err != nil {
			// Put the old record back rather than lose it.
			os.WriteFile(path, data, 0o600)
			os.RemoveAll(dir)
			return err
		}
		syncDir(filepath.Dir(path))
		return nil
	default:
		os.RemoveAll(dir)
		return fmt.Errorf("convert %s to the current layout: %w", path, err)
	}
}

// staleTemp is the age past which a temporary file of ours is a crashed
// writer's leftover rather than another writer's work in progress.
const staleTemp = 10 * time.Minute

// removeStaleTemps removes the temporary files and directories that writers
// killed mid-write left in dir, so that crashes do not pile them up.
func removeStaleTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".goiscsi-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// checkPathPart refuses a name that cannot be one path element of the
// database: it would write outside the record's own place.
func checkPathPart(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("node record with an unusable %s name %q", what, name)
	}
	return nil
}

// DeleteNode removes a node record, in whichever layout it is, and the
// directories it leaves empty. A record that does not exist is an error.
func (db *DB) DeleteNode(id NodeID) error {
	if err := checkPathPart("target", id.Target); err != nil {
		return err
	}
	if id.Iface == "" {
		id.Iface = "default"
	}
	p := db.nodePath(id)
	err := os.Remove(p)
	if err != nil {
		for _, old := range db.oldNodePaths(id) {
			if isFile(old) {
				if err = os.Remove(old); err == nil {
					p = filepath.Join(old, "x")
				}
				break
			}
		}
	}
	if err != nil {
		return err
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
	if r.Kind() != DiscoveryKind {
		return fmt.Errorf("SaveDiscovery: a %s record is not a discovery record", r.Kind())
	}
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
		if skipName(e.Name()) {
			continue
		}
		addr, port, tpgt, ok := parsePortalName(e.Name())
		if !ok || tpgt != -1 || !e.IsDir() {
			return nil, fmt.Errorf("%s: not an <address>,<port> discovery directory", filepath.Join(db.Root, "send_targets", e.Name()))
		}
		// Besides st_config, stock keeps links to the nodes the portal gave
		// in this directory; only st_config is the record.
		r, err := readRecord(db.discoveryPath(addr, port), DiscoveryKind)
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
	removeStaleTemps(dir)
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
	syncDir(dir)
	return nil
}

// Ifaces returns the iface records: the built-in "default" (tcp) first, then
// the files under ifaces/ sorted by name. A file that is not a valid iface
// record is an error naming it. A file named "default" does not replace the
// built-in one, as in stock.
func (db *DB) Ifaces() ([]*Record, error) {
	out := []*Record{NewIfaceRecord("default")}
	dir := filepath.Join(db.Root, "ifaces")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if skipName(e.Name()) || e.Name() == "default" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			return nil, fmt.Errorf("%s: a directory where an iface record belongs", p)
		}
		r, err := readRecord(p, IfaceKind)
		if err != nil {
			return nil, err
		}
		// The file name is the iface's name, as stock's iface_conf_read.
		r.set("iface.iscsi_ifacename", e.Name())
		out = append(out, r)
	}
	return out, nil
}

// SaveIface writes an iface record to ifaces/<name> atomically.
func (db *DB) SaveIface(r *Record) error {
	if r.Kind() != IfaceKind {
		return fmt.Errorf("SaveIface: a %s record is not an iface record", r.Kind())
	}
	name := r.Get("iface.iscsi_ifacename")
	if err := checkPathPart("iface", name); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(db.Root, "ifaces", name), r)
}

// DeleteIface removes ifaces/<name>.
func (db *DB) DeleteIface(name string) error {
	if err := checkPathPart("iface", name); err != nil {
		return err
	}
	return os.Remove(filepath.Join(db.Root, "ifaces", name))
}
