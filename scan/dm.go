package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The device-mapper ioctl interface (<linux/dm-ioctl.h>, interface version 4):
// every command takes one struct dm_ioctl, optionally followed by data, on
// /dev/mapper/control. Its layout on 64-bit Linux:
//
//	offset size field
//	     0   12 version[3]   u32: in, the interface version; out, the kernel's
//	    12    4 data_size    u32: bytes passed, this struct included
//	    16    4 data_start   u32: offset of the data after it
//	    20    4 target_count u32
//	    24    4 open_count   s32: out, how many opens the device has
//	    28    4 flags        u32
//	    32    4 event_nr     u32
//	    36    4 padding
//	    40    8 dev          u64: out, the device number (huge_encode_dev)
//	    48  128 name         NUL-terminated (DM_NAME_LEN)
//	   176  129 uuid         NUL-terminated (DM_UUID_LEN)
//	   305    7 data         padding up to 312
//
// A device is named by exactly one of uuid, name or dev; a command for a
// device that does not exist fails with ENXIO, and DM_DEV_REMOVE of a device
// someone holds open fails with EBUSY.
const (
	dmIoctlSize = 312
	dmNameLen   = unix.DM_NAME_LEN // 128, the terminating NUL included
	dmUUIDLen   = unix.DM_UUID_LEN // 129
	// dmVersionMinor is the oldest minor version whose commands this code
	// uses (DEV_STATUS and DEV_REMOVE exist since 4.0); the kernel accepts
	// any request whose major matches and whose minor is not newer than
	// its own.
	dmVersionMinor = 0
)

// dmIoctl is the decoded struct dm_ioctl.
type dmIoctl struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name        string
	UUID        string
}

// marshal encodes d in the machine's byte order, as the kernel reads it.
func (d *dmIoctl) marshal() ([]byte, error) {
	if len(d.Name) >= dmNameLen {
		return nil, fmt.Errorf("device-mapper name %q is longer than %d bytes", d.Name, dmNameLen-1)
	}
	if len(d.UUID) >= dmUUIDLen {
		return nil, fmt.Errorf("device-mapper uuid %q is longer than %d bytes", d.UUID, dmUUIDLen-1)
	}
	b := make([]byte, dmIoctlSize)
	ne := binary.NativeEndian
	for i, v := range d.Version {
		ne.PutUint32(b[4*i:], v)
	}
	ne.PutUint32(b[12:], d.DataSize)
	ne.PutUint32(b[16:], d.DataStart)
	ne.PutUint32(b[20:], d.TargetCount)
	ne.PutUint32(b[24:], uint32(d.OpenCount))
	ne.PutUint32(b[28:], d.Flags)
	ne.PutUint32(b[32:], d.EventNr)
	ne.PutUint64(b[40:], d.Dev)
	copy(b[48:48+dmNameLen], d.Name)
	copy(b[176:176+dmUUIDLen], d.UUID)
	return b, nil
}

// unmarshalDMIoctl decodes what the kernel wrote back.
func unmarshalDMIoctl(b []byte) (dmIoctl, error) {
	if len(b) < dmIoctlSize {
		return dmIoctl{}, fmt.Errorf("device-mapper reply of %d bytes, want %d", len(b), dmIoctlSize)
	}
	ne := binary.NativeEndian
	var d dmIoctl
	for i := range d.Version {
		d.Version[i] = ne.Uint32(b[4*i:])
	}
	d.DataSize = ne.Uint32(b[12:])
	d.DataStart = ne.Uint32(b[16:])
	d.TargetCount = ne.Uint32(b[20:])
	d.OpenCount = int32(ne.Uint32(b[24:]))
	d.Flags = ne.Uint32(b[28:])
	d.EventNr = ne.Uint32(b[32:])
	d.Dev = ne.Uint64(b[40:])
	d.Name = cString(b[48 : 48+dmNameLen])
	d.UUID = cString(b[176 : 176+dmUUIDLen])
	return d, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// DMStatus is what DM_DEV_STATUS reports of a device-mapper device.
type DMStatus struct {
	Name, UUID string
	// Dev is the device's number, "major:minor".
	Dev string
	// OpenCount counts the device's opens: processes, mounts and the
	// devices stacked on it (a kpartx partition holds its map open).
	OpenCount int
}

// DeviceMapper is the kernel's device-mapper as a LUN removal uses it. Both
// calls name the device by its uuid ("mpath-<WWID>" for a multipath map),
// which unlike its name no one renames.
type DeviceMapper interface {
	// Status reports the device; an error wrapping unix.ENXIO when no device
	// has that uuid.
	Status(uuid string) (DMStatus, error)
	// Remove removes the device; an error wrapping unix.EBUSY while it is
	// open, unix.ENXIO when there is none.
	Remove(uuid string) error
}

// DMControl is DeviceMapper through the ioctls on the control device.
//
// Why the ioctl rather than `multipath -f` or multipathd: the kernel's answer
// is an errno, so "busy" (EBUSY, retried) and "no such map" (ENXIO) are told
// apart from every other failure, where multipath's exit status is 1 for all
// of them (and older releases exited 0 for a map name that matched nothing,
// the leftover-map bug of os-brick); it needs no multipath-tools installed and
// no multipathd running; it names the map by uuid, so friendly names
// (mpatha) and WWID names work alike; and success means the kernel has
// destroyed the map, which is then verified with DM_DEV_STATUS and sysfs.
// multipathd notices the removal through device-mapper events by itself and
// forgets the map.
type DMControl struct {
	// Path is the control device; empty means /dev/mapper/control.
	Path string
}

// DM_DEV_STATUS and DM_DEV_REMOVE, as _IOWR(0xfd, nr, struct dm_ioctl).
const (
	dmDevRemove = unix.DM_DEV_REMOVE
	dmDevStatus = unix.DM_DEV_STATUS
)

func (c DMControl) do(cmd uintptr, uuid string) (dmIoctl, error) {
	p := c.Path
	if p == "" {
		p = "/dev/mapper/control"
	}
	req := dmIoctl{Version: [3]uint32{unix.DM_VERSION_MAJOR, dmVersionMinor, 0}, DataSize: dmIoctlSize,
		DataStart: dmIoctlSize, UUID: uuid}
	b, err := req.marshal()
	if err != nil {
		return dmIoctl{}, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return dmIoctl{}, fmt.Errorf("device-mapper control: %w", err)
	}
	defer f.Close()
	raw, err := f.SyscallConn()
	if err != nil {
		return dmIoctl{}, err
	}
	var errno unix.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, cmd, uintptr(unsafe.Pointer(&b[0])))
	}); err != nil {
		return dmIoctl{}, err
	}
	if errno != 0 {
		return dmIoctl{}, errno
	}
	return unmarshalDMIoctl(b)
}

// Status is DM_DEV_STATUS.
func (c DMControl) Status(uuid string) (DMStatus, error) {
	d, err := c.do(dmDevStatus, uuid)
	if err != nil {
		return DMStatus{}, fmt.Errorf("DM_DEV_STATUS of %s: %w", uuid, err)
	}
	return DMStatus{Name: d.Name, UUID: d.UUID, OpenCount: int(d.OpenCount),
		Dev: fmt.Sprintf("%d:%d", unix.Major(d.Dev), unix.Minor(d.Dev))}, nil
}

// Remove is DM_DEV_REMOVE, without deferred removal: it succeeds only when
// the kernel has destroyed the device.
func (c DMControl) Remove(uuid string) error {
	if _, err := c.do(dmDevRemove, uuid); err != nil {
		return fmt.Errorf("DM_DEV_REMOVE of %s: %w", uuid, err)
	}
	return nil
}

// isBusy and isGone classify a DeviceMapper error.
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }
func isGone(err error) bool { return errors.Is(err, unix.ENXIO) }
