package scan

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// BlockDev is a block device as sysfs names it.
type BlockDev struct {
	// Name is the kernel's name: sdb, sdb1, dm-3. devtmpfs names the node
	// /dev/<Name>.
	Name string `json:"name"`
	// Dev is the device number, "major:minor".
	Dev string `json:"dev"`
}

// DMDevice is a device-mapper device (/sys/block/dm-N/dm).
type DMDevice struct {
	BlockDev
	// DMName is the device-mapper name: "mpatha", or the WWID when
	// user_friendly_names is off; /dev/mapper/<DMName>.
	DMName string `json:"dm_name"`
	// UUID is the device-mapper uuid: "mpath-<WWID>" for a multipath map,
	// "part<N>-mpath-<WWID>" for a kpartx partition of one.
	UUID string `json:"uuid"`
}

// MultipathMap is a dm-multipath map and what sits on it.
type MultipathMap struct {
	DMDevice
	// WWID is the LUN's identifier, the uuid without "mpath-".
	WWID string `json:"wwid"`
	// Slaves are the map's paths (sdb, sdc), from /sys/block/dm-N/slaves.
	Slaves []string `json:"slaves"`
	// Partitions are kpartx's partition maps on it, which a removal takes
	// down first, as multipath -f does.
	Partitions []DMDevice `json:"partitions,omitempty"`
	// Holders are the other devices stacked on the map or its partitions
	// (LVM, md, dm-crypt): a removal refuses while there are any.
	Holders []string `json:"holders,omitempty"`
}

// multipathUUIDPrefix starts the uuid multipath-tools gives its maps; the
// kernel's dm-multipath target itself does not care, so this is what tells a
// multipath map from an LVM volume or a crypt device.
const multipathUUIDPrefix = "mpath-"

var partitionMapUUID = regexp.MustCompile(`^part\d+-mpath-`)

// blockDir is where sysfs describes block device name: /sys/block/<disk>, or
// /sys/block/<disk>/<partition> for a partition.
func (s Sysfs) blockDir(name string) string {
	if disk := s.diskOf(name); disk != "" && disk != name {
		return filepath.Join(s.root(), "block", disk, name)
	}
	return filepath.Join(s.root(), "block", name)
}

// diskOf returns the disk a partition belongs to (sdb for sdb1), name itself
// for a disk, "" when sysfs has neither.
func (s Sysfs) diskOf(name string) string {
	if _, err := os.Stat(filepath.Join(s.root(), "block", name)); err == nil {
		return name
	}
	// A partition's directory sits inside its disk's.
	m, _ := filepath.Glob(filepath.Join(s.root(), "block", "*", name, "partition"))
	if len(m) == 1 {
		return filepath.Base(filepath.Dir(filepath.Dir(m[0])))
	}
	return ""
}

// BlockDevOf reads block device name (a disk or a partition) from sysfs.
func (s Sysfs) BlockDevOf(name string) (BlockDev, error) {
	dev := readAttr(filepath.Join(s.blockDir(name), "dev"))
	if dev == "" {
		return BlockDev{}, fmt.Errorf("block device %s: not in sysfs (%s)", name, filepath.Join(s.blockDir(name), "dev"))
	}
	return BlockDev{Name: name, Dev: dev}, nil
}

// listDir returns the names in dir, sorted; none when it does not exist.
func listDir(dir string) []string {
	ents, _ := os.ReadDir(dir)
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// Holders lists the devices stacked on block device name
// (/sys/block/<name>/holders): the dm-N of a multipath map on a path, a
// partition map or an LVM volume on a map.
func (s Sysfs) Holders(name string) []string {
	return listDir(filepath.Join(s.blockDir(name), "holders"))
}

// Partitions lists the partitions of disk name (sdb1, sdb2).
func (s Sysfs) Partitions(name string) []string {
	var out []string
	for _, e := range listDir(filepath.Join(s.root(), "block", name)) {
		if _, err := os.Stat(filepath.Join(s.root(), "block", name, e, "partition")); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// DM reads device-mapper device kernel ("dm-3").
func (s Sysfs) DM(kernel string) (DMDevice, error) {
	b, err := s.BlockDevOf(kernel)
	if err != nil {
		return DMDevice{}, err
	}
	dir := filepath.Join(s.root(), "block", kernel, "dm")
	name := readAttr(filepath.Join(dir, "name"))
	if name == "" {
		return DMDevice{}, fmt.Errorf("%s is not a device-mapper device (no %s)", kernel, filepath.Join(dir, "name"))
	}
	return DMDevice{BlockDev: b, DMName: name, UUID: readAttr(filepath.Join(dir, "uuid"))}, nil
}

// FindDMByUUID returns the device-mapper device with uuid, found false when
// sysfs has none. It looks the uuid up rather than trusting a dm-N name: a
// removed map's minor is free for the next map at once.
func (s Sysfs) FindDMByUUID(uuid string) (DMDevice, bool) {
	for _, name := range listDir(filepath.Join(s.root(), "block")) {
		if !strings.HasPrefix(name, "dm-") {
			continue
		}
		if d, err := s.DM(name); err == nil && d.UUID == uuid {
			return d, true
		}
	}
	return DMDevice{}, false
}

// MultipathOf returns the multipath map above path block (sdb), nil when
// there is none. A holder that is a device-mapper device without a multipath
// uuid (LVM on the bare path, say) is no map: the caller sees it among the
// path's holders.
func (s Sysfs) MultipathOf(block string) *MultipathMap {
	for _, h := range s.Holders(block) {
		d, err := s.DM(h)
		if err != nil || !strings.HasPrefix(d.UUID, multipathUUIDPrefix) {
			continue
		}
		m := &MultipathMap{DMDevice: d, WWID: strings.TrimPrefix(d.UUID, multipathUUIDPrefix),
			Slaves: listDir(filepath.Join(s.root(), "block", h, "slaves"))}
		s.stackOn(m, h)
		return m
	}
	return nil
}

// stackOn sorts what is stacked on the map's device name into kpartx
// partition maps and other holders, one level down from each partition map.
func (s Sysfs) stackOn(m *MultipathMap, name string) {
	for _, h := range s.Holders(name) {
		d, err := s.DM(h)
		if err == nil && partitionMapUUID.MatchString(d.UUID) && strings.HasSuffix(d.UUID, m.UUID) {
			m.Partitions = append(m.Partitions, d)
			m.Holders = append(m.Holders, s.Holders(h)...)
			continue
		}
		m.Holders = append(m.Holders, h)
	}
}

// SCSIDeviceOf returns the SCSI device whose disk is block (sdb → 2:0:0:1),
// found false for a disk that is not a SCSI device.
func (s Sysfs) SCSIDeviceOf(block string) (Device, bool) {
	real, err := filepath.EvalSymlinks(filepath.Join(s.root(), "block", block, "device"))
	if err != nil {
		return Device{}, false
	}
	d, ok := parseHCTL(filepath.Base(real))
	if !ok {
		return Device{}, false
	}
	d.Block = block
	return d, true
}

// DeviceExists reports whether SCSI device d is still in sysfs.
func (s Sysfs) DeviceExists(d Device) bool {
	_, err := os.Stat(filepath.Join(s.root(), "class", "scsi_device", d.HCTL()))
	return err == nil
}

// Mounts maps "major:minor" to the mount points of the file systems mounted
// from that device, read from a mountinfo file (/proc/self/mountinfo).
func Mounts(mountinfo string) (map[string][]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("mount table: %w (is /proc mounted?)", err)
		}
		return nil, fmt.Errorf("mount table: %w", err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out[fields[2]] = append(out[fields[2]], unescapeMount(fields[4]))
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// multipathdSocket is the abstract unix socket multipathd listens on.
const multipathdSocket = "@/org/kernel/linux/storage/multipathd"

// MultipathdRunning reports whether multipathd is listening, from the unix
// sockets in proc (/proc): it then makes a map for each new path it claims.
func MultipathdRunning(proc string) bool {
	b, err := os.ReadFile(filepath.Join(proc, "net", "unix"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == multipathdSocket {
			return true
		}
	}
	return false
}

// UdevMultipathVerdict reads what udev decided about disk dev ("8:16"): its
// rules ask multipath whether the disk is a path of a map and record the
// answer as DM_MULTIPATH_DEVICE_PATH in its database (udevData, normally
// /run/udev/data). known is false when udev recorded no answer.
func UdevMultipathVerdict(udevData, dev string) (isPath, known bool) {
	b, err := os.ReadFile(filepath.Join(udevData, "b"+dev))
	if err != nil {
		return false, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "E:DM_MULTIPATH_DEVICE_PATH="); ok {
			return v == "1", true
		}
	}
	return false, false
}
