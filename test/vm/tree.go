package vm

import (
	"os"
	"path/filepath"
)

// fileTree is where a run's files go: an initramfs archive (cpioWriter) or a
// mounted root file system (dirTree). Both make missing parent directories and
// keep the first error for Close.
type fileTree interface {
	Dir(p string, perm uint32)
	File(p string, perm uint32, b []byte)
	HostFile(p, host string)
	Symlink(p, target string)
}

// dirTree writes files under a host directory, the root of a guest's file
// system mounted on the host.
type dirTree struct {
	root string
	err  error
}

func (d *dirTree) at(p string) string { return filepath.Join(d.root, p) }

func (d *dirTree) parents(p string) {
	if d.err == nil {
		d.err = os.MkdirAll(filepath.Dir(d.at(p)), 0o755)
	}
}

// Dir makes a directory (and its parents); one that exists keeps its mode.
func (d *dirTree) Dir(p string, perm uint32) {
	if d.err == nil {
		d.err = os.MkdirAll(d.at(p), os.FileMode(perm))
	}
}

// File writes a regular file with the given contents, replacing one there.
func (d *dirTree) File(p string, perm uint32, b []byte) {
	d.parents(p)
	if d.err != nil {
		return
	}
	os.Remove(d.at(p))
	d.err = os.WriteFile(d.at(p), b, os.FileMode(perm))
}

// HostFile writes a copy of a host file, keeping its permission bits.
func (d *dirTree) HostFile(p, host string) {
	if d.err != nil {
		return
	}
	st, err := os.Stat(host)
	if err != nil {
		d.err = err
		return
	}
	b, err := os.ReadFile(host)
	if err != nil {
		d.err = err
		return
	}
	d.File(p, uint32(st.Mode().Perm()), b)
}

// Symlink makes a symbolic link p pointing at target, replacing one there.
func (d *dirTree) Symlink(p, target string) {
	d.parents(p)
	if d.err != nil {
		return
	}
	os.Remove(d.at(p))
	d.err = os.Symlink(target, d.at(p))
}

// Close returns the first error met.
func (d *dirTree) Close() error { return d.err }
