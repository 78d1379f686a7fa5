package vm

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpioWriter writes a cpio "newc" archive, the format the kernel unpacks into its
// initial root file system. It creates missing parent directories itself, because the
// kernel's unpacker does not.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCpio(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1000, dirs: map[string]bool{"/": true, ".": true}}
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

func (c *cpioWriter) header(name string, mode uint32, size int, rmaj, rmin uint32) {
	if c.err != nil {
		return
	}
	name = strings.TrimPrefix(name, "/")
	c.ino++
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rmaj, rmin, len(name)+1, 0)
	buf := make([]byte, 0, len(h)+len(name)+4)
	buf = append(buf, h...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, c.err = c.w.Write(buf)
}

func (c *cpioWriter) data(b []byte) {
	if c.err != nil {
		return
	}
	if _, c.err = c.w.Write(b); c.err != nil {
		return
	}
	if pad := (4 - len(b)%4) % 4; pad > 0 {
		_, c.err = c.w.Write(make([]byte, pad))
	}
}

// parents creates every missing parent directory of p.
func (c *cpioWriter) parents(p string) {
	d := path.Dir(path.Clean("/" + p))
	if c.dirs[d] {
		return
	}
	c.parents(d)
	c.dirs[d] = true
	c.header(d, sIFDIR|0o755, 0, 0, 0)
}

// Dir adds a directory (and its parents).
func (c *cpioWriter) Dir(p string, perm uint32) {
	p = path.Clean("/" + p)
	if c.dirs[p] {
		return
	}
	c.parents(p)
	c.dirs[p] = true
	c.header(p, sIFDIR|perm, 0, 0, 0)
}

// File adds a regular file with the given contents.
func (c *cpioWriter) File(p string, perm uint32, b []byte) {
	c.parents(p)
	c.header(p, sIFREG|perm, len(b), 0, 0)
	c.data(b)
}

// HostFile adds a copy of a host file, keeping its permission bits.
func (c *cpioWriter) HostFile(p, host string) {
	if c.err != nil {
		return
	}
	st, err := os.Stat(host)
	if err != nil {
		c.err = err
		return
	}
	b, err := os.ReadFile(host)
	if err != nil {
		c.err = err
		return
	}
	c.File(p, uint32(st.Mode().Perm()), b)
}

// Symlink adds a symbolic link p pointing at target.
func (c *cpioWriter) Symlink(p, target string) {
	c.parents(p)
	c.header(p, sIFLNK|0o777, len(target), 0, 0)
	c.data([]byte(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(p string, perm, major, minor uint32) {
	c.parents(p)
	c.header(p, sIFCHR|perm, 0, major, minor)
}

// Close writes the trailer and returns the first error met.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}
