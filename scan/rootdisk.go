package scan

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// rootMounts are the mount points of the host's root file system: / and /usr,
// which a shutdown cannot unmount before its very end (systemd remounts them
// read-only last), so the storage under them must stay until then.
var rootMounts = []string{"/", "/usr"}

// sessionInPath finds the iSCSI session in a block device's sysfs path:
// /sys/devices/platform/host2/session1/target2:0:0/2:0:0:0/block/sda/sda1.
var sessionInPath = regexp.MustCompile(`/session(\d+)/`)

// RootSessions returns the SIDs of the iSCSI sessions whose disks hold the
// host's root file system (/ or /usr): a boot from iSCSI, which logging out
// would take the host's own files from. Partitions, device-mapper maps (LVM,
// multipath, dm-crypt) and md arrays are followed down to their disks through
// slaves/. mountinfo is a /proc/PID/mountinfo. A root without a block device
// number of its own (btrfs's anonymous 0:N, overlay, tmpfs, NFS) names no
// session.
func (s Sysfs) RootSessions(mountinfo string) (map[int]bool, error) {
	mounts, err := Mounts(mountinfo)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for dev, points := range mounts {
		if slices.ContainsFunc(points, func(p string) bool { return slices.Contains(rootMounts, p) }) {
			s.sessionsUnder(filepath.Join(s.root(), "dev", "block", dev), out, 0)
		}
	}
	return out, nil
}

// maxStackDepth bounds how many device-mapper or md layers sessionsUnder
// follows: a loop in a broken tree must not recurse forever.
const maxStackDepth = 8

// sessionsUnder adds to out the sessions of the disks under the block device
// whose sysfs entry is dir.
func (s Sysfs) sessionsUnder(dir string, out map[int]bool, depth int) {
	p, err := filepath.EvalSymlinks(dir)
	if err != nil || depth > maxStackDepth {
		return
	}
	if m := sessionInPath.FindStringSubmatch(p); m != nil {
		if sid, err := strconv.Atoi(m[1]); err == nil {
			out[sid] = true
		}
		return
	}
	for _, lower := range listDir(filepath.Join(p, "slaves")) {
		s.sessionsUnder(filepath.Join(s.root(), "class", "block", lower), out, depth+1)
	}
}
