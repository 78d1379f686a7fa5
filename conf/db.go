package conf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
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
// /var/lib/iscsi on Red Hat systems), in stock's layout, so that stock
// iscsiadm and goiscsiadm read and write the same records.
//
// goiscsi's own keys (node.session.autoscan_en) never go into a file stock
// reads: stock 2.1.8 refuses a record holding a key it does not know, and with
// it every record of -m node. They live beside it, under Root/goiscsi/nodes/,
// at the record's own path, and go with it. That file names the record file
// it was written for (see fileIDAt), so that a record stock deletes and makes
// again does not inherit the settings of the one it replaced.
type DB struct {
	Root string
	// Warn receives what reading skipped or ignored, naming the file: a
	// stray entry under nodes/, a record that cannot be read whole, a line a
	// record ignored. nil drops them. Reading is as forgiving as stock's: the
	// other records are read.
	Warn func(error)
}

func (db *DB) warn(err error) {
	if db.Warn != nil {
		db.Warn(err)
	}
}

func (db *DB) nodesDir() string { return filepath.Join(db.Root, "nodes") }

// ownDir holds goiscsi's own keys of each node record, at the record's path.
func (db *DB) ownDir() string { return filepath.Join(db.Root, "goiscsi", "nodes") }

// portalDir names a node's portal directory: "<addr>,<port>,<tpgt>".
func portalDir(address string, port, tpgt int) string {
	return fmt.Sprintf("%s,%d,%d", address, port, tpgt)
}

// parsePortalName splits "<addr>,<port>[,<tpgt>]"; tpgt is -1 when absent (the
// plain layout).
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

// Nodes returns every node record that can be read, sorted by target, portal
// and iface. What cannot be read (a stray entry, a torn record) goes to Warn,
// naming its file, and is skipped, as stock skips it; the error is for a node
// directory that cannot be read at all.
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
			db.warn(fmt.Errorf("%s: not a target directory (skipped)", tdir))
			continue
		}
		portals, err := os.ReadDir(tdir)
		if err != nil {
			db.warn(fmt.Errorf("%s: %w (skipped)", tdir, err))
			continue
		}
		for _, p := range portals {
			if skipName(p.Name()) {
				continue
			}
			pdir := filepath.Join(tdir, p.Name())
			addr, port, tpgt, ok := parsePortalName(p.Name())
			if !ok {
				db.warn(fmt.Errorf("%s: not an <address>,<port>[,<tpgt>] portal entry (skipped)", pdir))
				continue
			}
			if !p.IsDir() {
				// The plain layout: the portal entry is the record itself.
				if r := db.readNode(path.Join(t.Name(), p.Name())); r != nil {
					fillID(r, t.Name(), addr, port, tpgt, "default")
					out = append(out, r)
				}
				continue
			}
			ifaces, err := os.ReadDir(pdir)
			if err != nil {
				db.warn(fmt.Errorf("%s: %w (skipped)", pdir, err))
				continue
			}
			for _, i := range ifaces {
				if skipName(i.Name()) {
					continue
				}
				if i.IsDir() {
					db.warn(fmt.Errorf("%s: a directory where a node record belongs (skipped)", filepath.Join(pdir, i.Name())))
					continue
				}
				if r := db.readNode(path.Join(t.Name(), p.Name(), i.Name())); r != nil {
					fillID(r, t.Name(), addr, port, tpgt, i.Name())
					out = append(out, r)
				}
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

// readNode reads the node record at rel (relative to nodes/) with goiscsi's
// own keys for it, or reports why it cannot and returns nil.
func (db *DB) readNode(rel string) *Record {
	file := filepath.Join(db.nodesDir(), filepath.FromSlash(rel))
	for attempt := 1; ; attempt++ {
		r, id, idErr, err := readNodeFile(file)
		if err != nil {
			db.warn(fmt.Errorf("%w (record skipped)", err))
			return nil
		}
		own, stale := db.ownKeys(rel, file, id, idErr)
		if stale && attempt < 3 {
			// A goiscsi write renamed a new file into place between
			// the reads, and another then wrote keys naming a newer one
			// still: read the record again rather than lose its keys.
			if now, err := fileIDAt(unix.AT_FDCWD, file, 0); err == nil && now != id {
				continue
			}
		}
		for _, w := range r.Warnings {
			db.warn(errors.New(w))
		}
		r.Warnings = nil
		r.path = rel
		if stale {
			db.warn(fmt.Errorf("goiscsi's settings of the node record %s (%s) were written for another record file at that path, deleted or replaced since: ignored, and removed when goiscsi next writes the record",
				rel, filepath.Join(db.ownDir(), filepath.FromSlash(rel))))
			return r
		}
		for _, kv := range own {
			ki, ok := r.kind.layout().info[kv.k]
			if !ok || !ki.own {
				db.warn(fmt.Errorf("%s:%d: %s is not one of goiscsi's own keys (ignored)", kv.file, kv.n, kv.k))
				continue
			}
			if err := r.Set(kv.k, kv.v); err != nil {
				db.warn(fmt.Errorf("%s:%d: %w (ignored)", kv.file, kv.n, err))
			}
		}
		return r
	}
}

// readNodeFile reads the node record file and tells its fileID: that of the
// file read, not of whatever the path holds by now.
func readNodeFile(file string) (r *Record, id string, idErr, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", nil, err
	}
	defer f.Close()
	if r, err = ParseRecordKind(f, file, NodeKind); err != nil {
		return nil, "", nil, err
	}
	id, idErr = fileIDAt(int(f.Fd()), "", unix.AT_EMPTY_PATH)
	return r, id, idErr, nil
}

// ownLine is a key = value line of an own-keys file.
type ownLine struct {
	file string
	n    int
	k, v string
}

// ownKeys returns goiscsi's own keys of the record at rel, read from file
// (whose fileID is id, or idErr), or stale when they were written for another
// file; what cannot be read is warned about and yields none.
func (db *DB) ownKeys(rel, file, id string, idErr error) (keys []ownLine, stale bool) {
	own := filepath.Join(db.ownDir(), filepath.FromSlash(rel))
	f, err := os.Open(own)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		db.warn(fmt.Errorf("goiscsi's settings of %s: %w (ignored)", file, err))
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		// The own keys of the records below an old-layout record's path,
		// which a conversion killed before its exchange wrote first: not
		// this record's.
		return nil, false
	}
	var forFile []string
	err = eachKeyValue(f, own, func(n int, k, v string) error {
		if k == fileIDKey {
			forFile = append(forFile, v)
		} else {
			keys = append(keys, ownLine{own, n, k, v})
		}
		return nil
	})
	if err != nil {
		db.warn(fmt.Errorf("%w (goiscsi's settings of %s ignored)", err, file))
		return nil, false
	}
	if idErr != nil {
		db.warn(fmt.Errorf("goiscsi's settings of the node record %s: cannot tell whether %s was written for %s: %w (ignored)", rel, own, file, idErr))
		return nil, false
	}
	if !slices.Contains(forFile, id) {
		return nil, true
	}
	return keys, false
}

// fileIDKey is the line of an own-keys file that names, by fileID, a record
// file the keys were written for.
const fileIDKey = "goiscsi.record_file"

// fileIDAt identifies the record file at path (relative to dirfd, statx
// flags): its inode number and, where the filesystem keeps one, its birth
// time. Stock 2.1.8 updates a record in place (usr/idbm.c idbm_rec_write
// truncates the file with fopen "w"), which keeps both, so goiscsi's own keys
// survive stock's updates; a record deleted and made again is a new file,
// whose birth time differs even where its inode number is reused. goiscsi's
// own writes rename a new file into place and write its ID with the keys.
//
// Without statx (a kernel before 4.11, a seccomp filter refusing it) the inode
// number alone names the file.
func fileIDAt(dirfd int, path string, flags int) (string, error) {
	var st unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_INO|unix.STATX_BTIME, &st); errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		var fst unix.Stat_t
		if err := unix.Fstatat(dirfd, path, &fst, flags); err != nil {
			return "", err
		}
		return fmt.Sprintf("ino=%d", fst.Ino), nil
	} else if err != nil {
		return "", err
	}
	id := fmt.Sprintf("ino=%d", st.Ino)
	if st.Mask&unix.STATX_BTIME != 0 {
		id += fmt.Sprintf(" btime=%d.%09d", st.Btime.Sec, st.Btime.Nsec)
	}
	return id, nil
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

// stockPath is where stock 2.1.8 writes a new record of id (usr/idbm.c
// idbm_rec_write), relative to nodes/: a record without a tpgt is the plain
// file <target>/<addr>,<port>, whatever its iface; one with a tpgt is
// <target>/<addr>,<port>,<tpgt>/<iface>.
func stockPath(id NodeID) string {
	if id.TPGT == -1 {
		return path.Join(id.Target, fmt.Sprintf("%s,%d", id.Address, id.Port))
	}
	return path.Join(id.Target, portalDir(id.Address, id.Port, id.TPGT), id.Iface)
}

// isFile reports whether path is a regular file (not a directory).
func isFile(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// SaveNode writes a node record atomically: a reader sees the old record or the
// new one, never a torn file. A record read from the database goes back where
// it was, in its layout; a new one goes where stock would put it. Stock's own
// conversions are kept: a plain-layout record that has a tpgt moves into the
// <addr>,<port>,<tpgt>/<iface> layout, as stock moves it when it writes.
// goiscsi's own keys go beside it (see DB), naming both the new record file
// and the one it replaces, and before the new file takes its place, so that a
// crash between the two writes never leaves a record whose scan policy fell
// back to iscsid.conf's. The link from the record's discovery source is made
// after, as stock makes it (see linkNode). goiscsi's writers of one database
// take turns (see lock): two interleaved would leave one's record with the
// other's keys, which do not name it.
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
	unlock, err := db.lock()
	if err != nil {
		return err
	}
	defer unlock()
	// A conversion killed midway leaves its temporary directory here.
	removeStaleTemps(filepath.Join(db.nodesDir(), id.Target))
	rel := r.path
	plain := path.Join(id.Target, fmt.Sprintf("%s,%d", id.Address, id.Port))
	// A plain-layout record with a tpgt, and a record new to the database,
	// go where stock puts them.
	if rel == "" || (rel == plain && id.TPGT != -1) {
		rel = stockPath(id)
	}
	file := filepath.Join(db.nodesDir(), filepath.FromSlash(rel))
	if id.TPGT == -1 && rel == plain {
		if fi, err := os.Stat(file); err == nil && fi.IsDir() {
			return fmt.Errorf("node record %s: %s is a directory, where stock keeps a record without a tpgt", id.Target, file)
		}
	}
	data, err := r.MarshalText()
	if err != nil {
		return err
	}
	// The layout before svn 780: <addr>,<port>,<tpgt> is the record itself.
	if old := filepath.Join(db.nodesDir(), id.Target, portalDir(id.Address, id.Port, id.TPGT)); id.TPGT != -1 && isFile(old) {
		// That file is no record at rel: the keys name the new one alone.
		if err := convertNode(old, id.Iface, data, func(tmp string) error { return db.saveOwn(rel, r, tmp, "") }); err != nil {
			return err
		}
	} else {
		tf, err := writeTemp(file, data)
		if err != nil {
			return err
		}
		if err := db.saveOwn(rel, r, tf.tmp, file); err != nil {
			tf.abort()
			return err
		}
		if err := tf.commit(); err != nil {
			return err
		}
	}
	r.path = rel
	if plainFile := filepath.Join(db.nodesDir(), filepath.FromSlash(plain)); rel != plain && isFile(plainFile) {
		// Stock reads the plain file first, so it would shadow the record
		// just written.
		if err := os.Remove(plainFile); err != nil {
			return err
		}
		os.Remove(filepath.Join(db.ownDir(), filepath.FromSlash(plain)))
	}
	return db.linkNode(r)
}

// saveOwn writes goiscsi's own keys of the record at rel, for the record file
// newFile (its temporary name: the rename keeps what fileIDAt sees) and for
// replaced, the file at rel that newFile replaces ("" or missing when none), or
// removes them when r sets none.
func (db *DB) saveOwn(rel string, r *Record, newFile, replaced string) error {
	file := filepath.Join(db.ownDir(), filepath.FromSlash(rel))
	own := r.keys(true)
	if len(own) == 0 {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	newID, err := fileIDAt(unix.AT_FDCWD, newFile, 0)
	if err != nil {
		return err
	}
	ids := []string{newID}
	if replaced != "" {
		oldID, err := fileIDAt(unix.AT_FDCWD, replaced, 0)
		switch {
		case err == nil:
			ids = append(ids, oldID)
		case !errors.Is(err, unix.ENOENT):
			return err
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# goiscsi's own settings of the node record %s, which stock open-iscsi\n# would refuse in the record itself. They apply to the record file they name\n# (%s), not to one made anew at that path.\n", filepath.Join(db.nodesDir(), filepath.FromSlash(rel)), fileIDKey)
	for _, id := range ids {
		fmt.Fprintf(&b, "%s = %s\n", fileIDKey, id)
	}
	for _, k := range own {
		fmt.Fprintf(&b, "%s = %s\n", k, r.vals[k])
	}
	return WriteFileAtomic(file, b.Bytes())
}

// convertNode puts data, the record of the old-layout file at path, into the
// current layout, where path is a directory holding a file per iface. The
// directory is built under a temporary name and exchanged with the file in one
// step (renameat2 RENAME_EXCHANGE), so that a crash leaves the old record or the
// new one. A filesystem without the exchange gets stock's conversion: the file
// is removed before the directory is renamed into its place, and a crash in
// between loses the record. before runs on the new record file, under its
// temporary name, before the exchange.
func convertNode(path, iface string, data []byte, before func(file string) error) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".goiscsi-*")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, iface)
	err = WriteFileAtomic(tmp, data)
	if err == nil {
		err = before(tmp)
	}
	if err != nil {
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

// DeleteNode removes a node record, from where it was read (or, for a record
// not read from the database, where stock keeps it), with goiscsi's own keys
// for it, the link from its discovery source and the directories it leaves
// empty. A record that does not exist is an error.
func (db *DB) DeleteNode(r *Record) error {
	id := r.ID()
	if err := checkPathPart("target", id.Target); err != nil {
		return err
	}
	unlock, err := db.lock()
	if err != nil {
		return err
	}
	defer unlock()
	rel := r.path
	if rel == "" {
		rel = stockPath(id)
	}
	file := filepath.Join(db.nodesDir(), filepath.FromSlash(rel))
	if _, err := os.Lstat(file); err != nil {
		return err
	}
	// First, as stock does: a crash in between leaves a record without its
	// link, which the next discovery makes again, not a link to nothing.
	if rel == stockPath(id) {
		if err := db.unlinkNode(r); err != nil {
			return err
		}
	}
	if err := os.Remove(file); err != nil {
		return err
	}
	own := filepath.Join(db.ownDir(), filepath.FromSlash(rel))
	os.Remove(own)
	for _, top := range []struct{ dir, file string }{{db.nodesDir(), file}, {db.ownDir(), own}} {
		for dir := filepath.Dir(top.file); dir != top.dir && strings.HasPrefix(dir, top.dir); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break // not empty
			}
		}
	}
	return nil
}

// discoveryDirs are where each kind of discovery record lives, and its file
// name in its server's directory (usr/idbm.c disc_type_to_config_vals).
var discoveryDirs = map[Kind]struct{ dir, file string }{
	DiscoveryKind:     {"send_targets", "st_config"},
	ISNSDiscoveryKind: {"isns", "isns_config"},
}

func (db *DB) discoveryPath(kind Kind, address string, port int) string {
	d := discoveryDirs[kind]
	return filepath.Join(db.Root, d.dir, fmt.Sprintf("%s,%d", address, port), d.file)
}

// SaveDiscovery writes a SendTargets or iSNS discovery record atomically.
func (db *DB) SaveDiscovery(r *Record) error {
	if _, ok := discoveryDirs[r.Kind()]; !ok {
		return fmt.Errorf("SaveDiscovery: a %s record is not a discovery record", r.Kind())
	}
	port, _ := strconv.Atoi(r.Get("discovery.sendtargets.port"))
	addr := r.Get("discovery.sendtargets.address")
	if addr == "" || strings.ContainsAny(addr, "/\x00") {
		return fmt.Errorf("discovery record with an unusable address %q", addr)
	}
	return writeAtomic(db.discoveryPath(r.Kind(), addr, port), r)
}

// Discoveries returns every discovery record that can be read: the
// SendTargets ones, then the iSNS ones; what cannot be read goes to Warn and
// is skipped.
func (db *DB) Discoveries() ([]*Record, error) {
	var out []*Record
	for _, kind := range []Kind{DiscoveryKind, ISNSDiscoveryKind} {
		rs, err := db.discoveries(kind)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func (db *DB) discoveries(kind Kind) ([]*Record, error) {
	dir := filepath.Join(db.Root, discoveryDirs[kind].dir)
	ents, err := os.ReadDir(dir)
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
		// Before 2.0-872, stock linked the nodes an iSNS server gave
		// straight from isns/ (<target>,<addr>,<port>,<tpgt>,<iface>), and
		// still does when the server has no directory there; like stock,
		// skip the names whose part after the first comma is an address.
		if _, after, _ := strings.Cut(e.Name(), ","); kind == ISNSDiscoveryKind && strings.ContainsAny(after, ":.") {
			continue
		}
		addr, port, tpgt, ok := parsePortalName(e.Name())
		if !ok || tpgt != -1 || !e.IsDir() {
			db.warn(fmt.Errorf("%s: not an <address>,<port> discovery directory (skipped)", filepath.Join(dir, e.Name())))
			continue
		}
		// Besides the record, stock keeps links to the nodes the portal
		// gave in this directory; only the record file is the record.
		r, err := readRecord(db.discoveryPath(kind, addr, port), kind)
		if err != nil {
			db.warn(fmt.Errorf("%w (discovery record skipped)", err))
			continue
		}
		for _, w := range r.Warnings {
			db.warn(errors.New(w))
		}
		r.Warnings = nil
		out = append(out, r)
	}
	return out, nil
}

// DeleteDiscovery removes discovery record r and its directory.
func (db *DB) DeleteDiscovery(r *Record) error {
	if _, ok := discoveryDirs[r.Kind()]; !ok {
		return fmt.Errorf("DeleteDiscovery: a %s record is not a discovery record", r.Kind())
	}
	port, _ := strconv.Atoi(r.Get("discovery.sendtargets.port"))
	dir := filepath.Dir(db.discoveryPath(r.Kind(), r.Get("discovery.sendtargets.address"), port))
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// writeAtomic writes r to path (see WriteFileAtomic).
func writeAtomic(path string, r *Record) error {
	b, err := r.MarshalText()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced before the rename and the directory after it, so a crash
// leaves the old content or the new one. Files are 0600 and directories 0700:
// records hold CHAP secrets.
func WriteFileAtomic(path string, data []byte) error {
	tf, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	return tf.commit()
}

// tempFile is data written and synced under a temporary name beside path,
// for commit to put in its place: what has to be written before the file is
// in place (goiscsi's own keys naming it) goes in between.
type tempFile struct{ tmp, path string }

func writeTemp(path string, data []byte) (*tempFile, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	removeStaleTemps(dir)
	f, err := os.CreateTemp(dir, ".goiscsi-*")
	if err != nil {
		return nil, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &tempFile{tmp: f.Name(), path: path}, nil
}

// commit renames the file into place and makes the rename durable.
func (tf *tempFile) commit() error {
	if err := os.Rename(tf.tmp, tf.path); err != nil {
		os.Remove(tf.tmp)
		return fmt.Errorf("write %s: %w", tf.path, err)
	}
	syncDir(filepath.Dir(tf.path))
	return nil
}

// abort removes the file unused.
func (tf *tempFile) abort() { os.Remove(tf.tmp) }

// lock makes goiscsi's writers of the node database (goiscsiadm, goiscsid,
// initiator's users) take turns: a record and its own keys are two files, and
// two writers interleaving their pairs would leave keys that name neither
// record. It is goiscsi's own lock, Root/goiscsi/lock; stock's writers do not
// take it, and need not, as they never write the own keys.
func (db *DB) lock() (unlock func(), err error) {
	dir := filepath.Join(db.Root, "goiscsi")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// builtinIfaces are stock's default_ifaces and their transports: not files,
// never written or deleted.
var builtinIfaces = map[string]string{"default": "tcp", "iser": "iser"}

// IsBuiltinIface reports whether name is one of stock's built-in ifaces,
// default (tcp) and iser, which are not files.
func IsBuiltinIface(name string) bool { return builtinIfaces[name] != "" }

func (db *DB) ifacePath(name string) string { return filepath.Join(db.Root, "ifaces", name) }

// Iface returns iface record name: a built-in one or ifaces/<name>. The error
// wraps os.ErrNotExist when there is none.
func (db *DB) Iface(name string) (*Record, error) {
	if t, ok := builtinIfaces[name]; ok {
		r := NewIfaceRecord(name)
		r.set("iface.transport_name", t)
		return r, nil
	}
	if checkPathPart("iface", name) != nil {
		return nil, fmt.Errorf("iface %q: %w", name, os.ErrNotExist)
	}
	r, err := readRecord(db.ifacePath(name), IfaceKind)
	if err != nil {
		return nil, err
	}
	for _, w := range r.Warnings {
		db.warn(errors.New(w))
	}
	r.Warnings = nil
	// The file name is the iface's name, as stock's iface_conf_read.
	r.set("iface.iscsi_ifacename", name)
	return r, nil
}

// Ifaces returns the iface records as stock lists them: the files under
// ifaces/ in name order, then the built-in default and iser. A file that
// cannot be read goes to Warn and is skipped; a file named after a built-in
// iface does not replace it, as in stock.
func (db *DB) Ifaces() ([]*Record, error) {
	ents, err := os.ReadDir(filepath.Join(db.Root, "ifaces"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*Record
	for _, e := range ents {
		if skipName(e.Name()) || IsBuiltinIface(e.Name()) {
			continue
		}
		if e.IsDir() {
			db.warn(fmt.Errorf("%s: a directory where an iface record belongs (skipped)", db.ifacePath(e.Name())))
			continue
		}
		r, err := db.Iface(e.Name())
		if err != nil {
			db.warn(fmt.Errorf("%w (iface skipped)", err))
			continue
		}
		out = append(out, r)
	}
	for _, name := range []string{"default", "iser"} {
		r, _ := db.Iface(name)
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
	if IsBuiltinIface(name) {
		return fmt.Errorf("iface %s is built in and is not stored in %s", name, filepath.Dir(db.ifacePath(name)))
	}
	return writeAtomic(db.ifacePath(name), r)
}

// DeleteIface removes ifaces/<name>.
func (db *DB) DeleteIface(name string) error {
	if err := checkPathPart("iface", name); err != nil {
		return err
	}
	if IsBuiltinIface(name) {
		return fmt.Errorf("iface %s is built in and cannot be deleted", name)
	}
	return os.Remove(db.ifacePath(name))
}
