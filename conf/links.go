package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Stock links each node record a SendTargets or iSNS discovery made from its
// discovery source's directory (usr/idbm.c setup_disc_to_node_link):
// send_targets/<portal>,<port>/ or isns/<server>,<port>/ holds
// <target>,<address>,<port>,<tpgt>,<iface>, a symbolic link to the record's
// portal directory nodes/<target>/<address>,<port>,<tpgt>. Stock's
// -m discoverydb -o delete deletes the records it finds through them, so
// goiscsi keeps them as stock does: made with the record, moved as a
// rediscovery moves them, removed with the record. (Stock also links static
// and firmware records, from static/ and fw/; goiscsi does not.)

// discLink returns where stock keeps the link of node record r, or "" when
// it keeps none: a record without a tpgt (stock's "old app", whose tpgt a
// later call may change) or one not made by SendTargets or iSNS discovery;
// or when goiscsi will make none: names that are not one path element.
func (db *DB) discLink(r *Record) string {
	id := r.ID()
	if id.TPGT < 0 {
		return ""
	}
	name := fmt.Sprintf("%s,%s,%d,%d,%s", id.Target, id.Address, id.Port, id.TPGT, id.Iface)
	source := r.Get("node.discovery_address") + "," + r.Get("node.discovery_port")
	// A name that is not one path element would put the link elsewhere.
	if strings.ContainsAny(name+source, "/\x00") || strings.HasPrefix(name, ".") || strings.HasPrefix(source, ".") {
		return ""
	}
	switch r.Get("node.discovery_type") {
	case "send_targets":
		return filepath.Join(db.Root, "send_targets", source, name)
	case "isns":
		// Before 2.0-872 the links lay in isns/ itself, and they still
		// go there while the server has no directory of its own (as
		// after -m discovery -t isns, which writes no discovery record);
		// a link found there is the record's.
		old := filepath.Join(db.Root, "isns", name)
		if _, err := os.Lstat(old); err == nil {
			return old
		}
		if fi, err := os.Stat(filepath.Join(db.Root, "isns", source)); err == nil && fi.IsDir() {
			return filepath.Join(db.Root, "isns", source, name)
		}
		return old
	}
	return ""
}

// linkNode makes the link from r's discovery source to r, as stock makes it
// when it adds the record; a link already there is kept. A SendTargets
// portal without a directory (its discovery record deleted) gets none,
// where stock fails the record's addition.
func (db *DB) linkNode(r *Record) error {
	link := db.discLink(r)
	if link == "" {
		return nil
	}
	dir := filepath.Dir(link)
	if r.Get("node.discovery_type") == "isns" {
		if err := os.MkdirAll(filepath.Join(db.Root, "isns"), 0o700); err != nil {
			return err
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	id := r.ID()
	target := filepath.Join(db.nodesDir(), id.Target, portalDir(id.Address, id.Port, id.TPGT))
	if err := os.Symlink(target, link); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("link discovery source %s to node %s: %w", dir, target, err)
	}
	return nil
}

// unlinkNode removes the link from r's discovery source to r, as stock
// removes it with the record.
func (db *DB) unlinkNode(r *Record) error {
	link := db.discLink(r)
	if link == "" {
		return nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RelinkNode does to the link of node record r what stock does when a
// discovery finds r again: stock writes the record anew, so the link goes
// where a new record's goes; for iSNS that moves it out of isns/ itself once
// the server has a directory there (-m discoverydb -t isns made one).
func (db *DB) RelinkNode(r *Record) error {
	if r.Kind() != NodeKind {
		return fmt.Errorf("RelinkNode: a %s record is not a node record", r.Kind())
	}
	if err := db.unlinkNode(r); err != nil {
		return err
	}
	return db.linkNode(r)
}
