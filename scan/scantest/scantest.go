// Package scantest builds a fake sysfs tree for tests of code that scans or
// removes devices: SCSI hosts whose scan file is a regular file (so a test
// reads back what was written), SCSI devices with their attributes and disks,
// and device-mapper devices (multipath maps, their partitions) stacked on the
// disks through holders/ and slaves/ links, as the kernel shows them.
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
	// minor numbers the next disk (major 8, 16 minors each) and dm device
	// (major 254).
	sdMinor, dmMinor int
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

// AddSession creates iSCSI session sid on SCSI host h, to target through
// portal address:port, laid out as the kernel lays it out: the session and its
// connection under devices/platform/host<h>/session<sid> (targetname, state,
// the connection's persistent address and port), class/iscsi_session and
// class/iscsi_connection links to them, and the host.
func (f *FS) AddSession(sid, h int, target, address string, port int) {
	f.t.Helper()
	f.AddHost(h)
	dev := fmt.Sprintf("devices/platform/host%d/session%d", h, sid)
	sess := fmt.Sprintf("%s/iscsi_session/session%d", dev, sid)
	conn := fmt.Sprintf("%s/connection%d:0/iscsi_connection/connection%d:0", dev, sid, sid)
	f.file(sess+"/targetname", target+"\n")
	f.file(sess+"/state", "LOGGED_IN\n")
	f.file(conn+"/persistent_address", address+"\n")
	f.file(conn+"/persistent_port", fmt.Sprintf("%d\n", port))
	f.symlink(fmt.Sprintf("class/iscsi_session/session%d", sid), sess)
	f.symlink(fmt.Sprintf("class/iscsi_connection/connection%d:0", sid), conn)
}

// AddDevice creates class/scsi_device/H:C:T:L/device with state running, a
// rescan and a delete file, and, when block is not empty, its disk: the
// device's block/<block> and block/<block> with dev, holders/ and a device
// link back to the SCSI device.
func (f *FS) AddDevice(h, c, t int, l uint64, block string) {
	hctl := fmt.Sprintf("%d:%d:%d:%d", h, c, t, l)
	dir := "class/scsi_device/" + hctl + "/device"
	f.file(dir+"/state", "running\n")
	f.file(dir+"/rescan", "")
	f.file(dir+"/delete", "")
	if block == "" {
		return
	}
	f.mkdir(dir + "/block/" + block)
	f.file("block/"+block+"/dev", fmt.Sprintf("8:%d\n", f.sdMinor))
	f.sdMinor += 16
	f.mkdir("block/" + block + "/holders")
	f.symlink("block/"+block+"/device", "class/scsi_device/"+hctl)
}

// AddPartition creates partition part (sdb1) of disk block.
func (f *FS) AddPartition(block, part string) {
	disk := readTrim(filepath.Join(f.Root, "block", block, "dev"))
	var maj, min, n int
	fmt.Sscanf(disk, "%d:%d", &maj, &min)
	fmt.Sscanf(strings.TrimPrefix(part, block), "%d", &n)
	f.file("block/"+block+"/"+part+"/partition", fmt.Sprintf("%d\n", n))
	f.file("block/"+block+"/"+part+"/dev", fmt.Sprintf("%d:%d\n", maj, min+n))
	f.mkdir("block/" + block + "/" + part + "/holders")
}

// AddDM creates device-mapper device kernel (dm-3) with its dm name and uuid,
// stacked on the devices in lower (disks, partitions or other dm devices):
// each gets holders/<kernel>, and the new device slaves/<lower>. It returns
// the device's number, "254:N".
func (f *FS) AddDM(kernel, name, uuid string, lower ...string) string {
	dev := fmt.Sprintf("254:%d", f.dmMinor)
	f.dmMinor++
	f.file("block/"+kernel+"/dev", dev+"\n")
	f.file("block/"+kernel+"/dm/name", name+"\n")
	f.file("block/"+kernel+"/dm/uuid", uuid+"\n")
	f.mkdir("block/" + kernel + "/holders")
	f.mkdir("block/" + kernel + "/slaves")
	for _, l := range lower {
		ldir := f.blockPath(l)
		f.symlink(ldir+"/holders/"+kernel, "block/"+kernel)
		f.symlink("block/"+kernel+"/slaves/"+l, ldir)
	}
	return dev
}

// AddMultipath is AddDM for a multipath map as multipath-tools makes it:
// uuid "mpath-<wwid>" over the paths.
func (f *FS) AddMultipath(kernel, name, wwid string, paths ...string) string {
	return f.AddDM(kernel, name, "mpath-"+wwid, paths...)
}

// RemoveDM takes device-mapper device kernel away, as the kernel does when
// the device is destroyed: its directory and the holders/ links to it.
func (f *FS) RemoveDM(kernel string) {
	f.t.Helper()
	for _, l := range listNames(filepath.Join(f.Root, "block", kernel, "slaves")) {
		os.Remove(filepath.Join(f.Root, f.blockPath(l), "holders", kernel))
	}
	if err := os.RemoveAll(filepath.Join(f.Root, "block", kernel)); err != nil {
		f.t.Fatal(err)
	}
}

// RemoveDevice takes SCSI device H:C:T:L and its disk away, as the kernel
// does when the device is deleted.
func (f *FS) RemoveDevice(h, c, t int, l uint64) {
	f.t.Helper()
	dir := filepath.Join(f.Root, fmt.Sprintf("class/scsi_device/%d:%d:%d:%d", h, c, t, l))
	for _, b := range listNames(filepath.Join(dir, "device", "block")) {
		if err := os.RemoveAll(filepath.Join(f.Root, "block", b)); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		f.t.Fatal(err)
	}
}

// blockPath is the directory of block device name relative to Root: block/sdb,
// or block/sdb/sdb1 for a partition.
func (f *FS) blockPath(name string) string {
	if _, err := os.Stat(filepath.Join(f.Root, "block", name)); err == nil {
		return "block/" + name
	}
	m, _ := filepath.Glob(filepath.Join(f.Root, "block", "*", name))
	if len(m) == 1 {
		rel, _ := filepath.Rel(f.Root, m[0])
		return rel
	}
	f.t.Fatalf("scantest: no block device %s", name)
	return ""
}

func (f *FS) mkdir(p string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Join(f.Root, p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// symlink makes link (relative to Root) point at target (relative to Root)
// with a relative link, as sysfs's are.
func (f *FS) symlink(link, target string) {
	f.t.Helper()
	full := filepath.Join(f.Root, link)
	f.mkdir(filepath.Dir(link))
	rel, err := filepath.Rel(filepath.Dir(full), filepath.Join(f.Root, target))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(rel, full); err != nil {
		f.t.Fatal(err)
	}
}

func listNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
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

// SetSessionAttr sets attribute name of iSCSI session sid (one AddSession
// made), as the kernel shows what the daemon set with SET_PARAM.
func (f *FS) SetSessionAttr(sid int, name, value string) {
	f.file(fmt.Sprintf("class/iscsi_session/session%d/%s", sid, name), value+"\n")
}

// SetConnAttr sets attribute name of session sid's connection 0.
func (f *FS) SetConnAttr(sid int, name, value string) {
	f.file(fmt.Sprintf("class/iscsi_connection/connection%d:0/%s", sid, name), value+"\n")
}
