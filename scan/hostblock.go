package scan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HostBlockOps is BlockOps on this machine: the device-mapper ioctls, the block
// device nodes of devtmpfs, /proc, and sysfs.
type HostBlockOps struct {
	Sysfs Sysfs
	// DM is the device-mapper control; zero means /dev/mapper/control.
	DM DMControl
	// Dev is devtmpfs's mount point; empty means /dev.
	Dev string
	// Proc is procfs's mount point; empty means /proc.
	Proc string
	// UdevControl is the file whose presence says udev runs; empty means
	// /run/udev/control.
	UdevControl string
}

func orPath(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// Status is DMControl.Status.
func (k HostBlockOps) Status(uuid string) (DMStatus, error) { return k.DM.Status(uuid) }

// Remove removes the device-mapper device, then its /dev/mapper node when udev
// does not run to remove it (libdevmapper does the same without udev): a
// stale node would name a device number the next map may get.
func (k HostBlockOps) Remove(uuid string) error {
	st, serr := k.DM.Status(uuid)
	if err := k.DM.Remove(uuid); err != nil {
		return err
	}
	if serr != nil || st.Name == "" {
		return nil
	}
	if _, err := os.Stat(orPath(k.UdevControl, "/run/udev/control")); err == nil {
		return nil
	}
	node := filepath.Join(orPath(k.Dev, "/dev"), "mapper", st.Name)
	var s unix.Stat_t
	if unix.Lstat(node, &s) == nil && s.Mode&unix.S_IFMT == unix.S_IFBLK && devString(s.Rdev) == st.Dev {
		os.Remove(node)
	}
	return nil
}

func devString(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// open opens b's node in /dev and makes sure it is the device sysfs names: a
// node left from a removed device may carry the name of another one.
func (k HostBlockOps) open(b BlockDev, flags int) (*os.File, error) {
	node := filepath.Join(orPath(k.Dev, "/dev"), b.Name)
	f, err := os.OpenFile(node, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var s unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &s); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	if s.Mode&unix.S_IFMT != unix.S_IFBLK || devString(s.Rdev) != b.Dev {
		f.Close()
		return nil, fmt.Errorf("%s is not block device %s (sysfs and /dev disagree)", node, b.Dev)
	}
	return f, nil
}

// Flush opens the device read-only, fsyncs it and drops its buffer cache
// (BLKFLSBUF). It gives up when ctx ends: a map whose paths are all down and
// which queues I/O does not return from fsync until a path comes back.
func (k HostBlockOps) Flush(ctx context.Context, b BlockDev) error {
	done := make(chan error, 1)
	go func() {
		f, err := k.open(b, os.O_RDONLY)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			done <- fmt.Errorf("fsync %s: %w", f.Name(), err)
			return
		}
		if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
			done <- fmt.Errorf("BLKFLSBUF %s: %w", f.Name(), err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush of %s did not finish: %w", b.Name, ctx.Err())
	}
}

// Claimed tries an exclusive open: the kernel refuses it with EBUSY while the
// device is mounted or something is stacked on it.
func (k HostBlockOps) Claimed(b BlockDev) (bool, error) {
	f, err := k.open(b, os.O_RDONLY|unix.O_EXCL)
	if errors.Is(err, unix.EBUSY) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	f.Close()
	return false, nil
}

// Openers looks through every process's open files (/proc/PID/fd) for the
// devices, by device number, so any node name of them counts.
func (k HostBlockOps) Openers(devs []BlockDev) (map[string][]Opener, error) {
	want := map[string]bool{}
	for _, b := range devs {
		want[b.Dev] = true
	}
	out := map[string][]Opener{}
	proc := orPath(k.Proc, "/proc")
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("process list: %w", err)
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(proc, e.Name(), "fd"))
		seen := map[string]bool{}
		for _, fd := range fds {
			var s unix.Stat_t
			if unix.Stat(filepath.Join(proc, e.Name(), "fd", fd.Name()), &s) != nil || s.Mode&unix.S_IFMT != unix.S_IFBLK {
				continue
			}
			dev := devString(s.Rdev)
			if !want[dev] || seen[dev] {
				continue
			}
			seen[dev] = true
			comm, _ := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
			out[dev] = append(out[dev], Opener{PID: pid, Comm: strings.TrimSpace(string(comm))})
		}
	}
	return out, nil
}

// DeleteSCSI is Sysfs.DeleteDevice.
func (k HostBlockOps) DeleteSCSI(ctx context.Context, d Device) error {
	return k.Sysfs.DeleteDevice(ctx, d)
}
