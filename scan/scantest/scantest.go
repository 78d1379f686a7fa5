// Package scantest builds a fake sysfs tree for tests of code that scans: SCSI
// hosts whose scan file is a regular file (so a test reads back what was
// written) and SCSI devices with their attributes and block names.
package scantest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FS is a fake sysfs root.
type FS struct {
	t    testing.TB
	Root string
}

// New returns an empty tree in a temporary directory.
func New(t testing.TB) *FS {
	t.Helper()
	return &FS{t: t, Root: t.TempDir()}
}

func (f *FS) file(p, content string) {
	f.t.Helper()
	full := filepath.Join(f.Root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// AddHost creates class/scsi_host/host<h>/scan.
func (f *FS) AddHost(h int) {
	f.file(fmt.Sprintf("class/scsi_host/host%d/scan", h), "")
}

// AddDevice creates class/scsi_device/H:C:T:L/device with state running, a
// rescan and a delete file, and block/<block> when block is not empty.
func (f *FS) AddDevice(h, c, t int, l uint64, block string) {
	dir := fmt.Sprintf("class/scsi_device/%d:%d:%d:%d/device", h, c, t, l)
	f.file(dir+"/state", "running\n")
	f.file(dir+"/vendor", "GOISCSI \n")
	f.file(dir+"/model", "test-lun        \n")
	f.file(dir+"/rescan", "")
	f.file(dir+"/delete", "")
	if block != "" {
		if err := os.MkdirAll(filepath.Join(f.Root, dir, "block", block), 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
}

// SetState sets a device's state file.
func (f *FS) SetState(h, c, t int, l uint64, state string) {
	f.file(fmt.Sprintf("class/scsi_device/%d:%d:%d:%d/device/state", h, c, t, l), state+"\n")
}

// Written returns what was last written to the file at p (relative to Root),
// e.g. "class/scsi_host/host3/scan"; "" when nothing was.
func (f *FS) Written(p string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Root, p))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// ScanWritten is Written for host h's scan file.
func (f *FS) ScanWritten(h int) string {
	return f.Written(fmt.Sprintf("class/scsi_host/host%d/scan", h))
}

// ResetScan empties host h's scan file.
func (f *FS) ResetScan(h int) {
	f.file(fmt.Sprintf("class/scsi_host/host%d/scan", h), "")
}

// DeviceWritten is Written for a device attribute ("rescan", "delete", "state").
func (f *FS) DeviceWritten(h, c, t int, l uint64, attr string) string {
	return strings.TrimSpace(f.Written(fmt.Sprintf("class/scsi_device/%d:%d:%d:%d/device/%s", h, c, t, l, attr)))
}
