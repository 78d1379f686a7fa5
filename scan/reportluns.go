package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goiscsi/goiscsi/pdu"
)

// LUNReporter learns which LUNs the target behind a SCSI host reports (SCSI
// REPORT LUNS). A broad scan of a target with held-back LUNs asks it first and
// then adds the reported LUNs one by one, where the kernel's wildcard scan
// would add every one of them.
type LUNReporter interface {
	// ReportLUNs returns the LUNs the target of host reports, as Linux numbers
	// them (the L of H:C:T:L), in ascending order. devs are the host's SCSI
	// devices; the command goes to one of them.
	ReportLUNs(ctx context.Context, host int, devs []Device) ([]uint64, error)
}

// ErrNoDeviceToAsk is ReportLUNs's error for a host without a running SCSI
// device: REPORT LUNS goes to a logical unit, and the host has none to send
// it to.
var ErrNoDeviceToAsk = errors.New("no running SCSI device on the host to send REPORT LUNS to")

// BSG sends REPORT LUNS through the kernel's block SCSI generic nodes
// (/dev/bsg/H:C:T:L, one for every SCSI device whatever its type, with no
// driver module to load), SG_IO version 4.
type BSG struct {
	// Dev is devtmpfs's mount point; empty means /dev.
	Dev string
	// Timeout bounds each command in the kernel; zero means 10 s.
	Timeout time.Duration
}

// ReportLUNs sends REPORT LUNS (select report 0: every addressable logical
// unit) to the first running device of devs, with a larger buffer when the
// target has more LUNs than the first fits.
func (b BSG) ReportLUNs(ctx context.Context, host int, devs []Device) ([]uint64, error) {
	var to *Device
	for i := range devs {
		if devs[i].Host == host && devs[i].State == "running" {
			to = &devs[i]
			break
		}
	}
	if to == nil {
		return nil, ErrNoDeviceToAsk
	}
	node := filepath.Join(orPath(b.Dev, "/dev"), "bsg", to.HCTL())
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	size := 8 + 8*256
	for {
		data, err := sgioRead(ctx, node, reportLUNsCDB(uint32(size)), size, timeout)
		if err != nil {
			return nil, fmt.Errorf("REPORT LUNS through %s: %w", node, err)
		}
		luns, need, err := ParseReportLUNs(data)
		if err != nil {
			return nil, fmt.Errorf("REPORT LUNS through %s: %w", node, err)
		}
		if need <= len(data) || size >= maxReportLUNsSize {
			return luns, nil
		}
		size = min(need, maxReportLUNsSize)
	}
}

// maxReportLUNsSize bounds the REPORT LUNS buffer: 16383 LUNs, more than any
// array exports on one target.
const maxReportLUNsSize = 8 + 8*16383

func reportLUNsCDB(alloc uint32) []byte {
	cdb := make([]byte, 12)
	cdb[0] = 0xa0 // REPORT LUNS; select report 0
	binary.BigEndian.PutUint32(cdb[6:], alloc)
	return cdb
}

// ParseReportLUNs reads REPORT LUNS parameter data: the LUNs it lists as Linux
// numbers them, sorted and without duplicates, and the length the whole list
// needs (header included), which is more than len(b) when the buffer was too
// small. A list whose length is not a multiple of 8 is an error.
func ParseReportLUNs(b []byte) (luns []uint64, need int, err error) {
	if len(b) < 8 {
		return nil, 0, fmt.Errorf("REPORT LUNS data of %d bytes, shorter than its 8-byte header", len(b))
	}
	n := binary.BigEndian.Uint32(b[:4])
	if n%8 != 0 {
		return nil, 0, fmt.Errorf("REPORT LUNS list length %d is not a multiple of 8", n)
	}
	need = 8 + int(n)
	seen := map[uint64]bool{}
	for off := 8; off+8 <= len(b) && off < need; off += 8 {
		l := LinuxLUN([8]byte(b[off : off+8]))
		if !seen[l] {
			seen[l] = true
			luns = append(luns, l)
		}
	}
	sort.Slice(luns, func(i, j int) bool { return luns[i] < luns[j] })
	return luns, need, nil
}

// LinuxLUN converts an 8-byte SCSI LUN (SAM's four 2-byte levels) into the
// number Linux shows as the L of H:C:T:L: each level's two bytes, swapped into
// the integer's next 16 bits, so that a flat-space LUN 300 (0x41 0x2c) is
// 0x412c = 16684 and a peripheral LUN 5 (0x00 0x05) is 5.
func LinuxLUN(l [8]byte) uint64 {
	var v uint64
	for i := 0; i < 8; i += 2 {
		v |= (uint64(l[i])<<8 | uint64(l[i+1])) << (uint(i) * 8)
	}
	return v
}

// sgioV4 is struct sg_io_v4 (include/uapi/linux/bsg.h), 160 bytes on every
// architecture: its pointers are 64-bit fields.
type sgioV4 struct {
	Guard           int32
	Protocol        uint32
	Subprotocol     uint32
	RequestLen      uint32
	Request         uint64
	RequestTag      uint64
	RequestAttr     uint32
	RequestPriority uint32
	RequestExtra    uint32
	MaxResponseLen  uint32
	Response        uint64
	DoutIovecCount  uint32
	DoutXferLen     uint32
	DinIovecCount   uint32
	DinXferLen      uint32
	DoutXferp       uint64
	DinXferp        uint64
	Timeout         uint32
	Flags           uint32
	UsrPtr          uint64
	SpareIn         uint32
	DriverStatus    uint32
	TransportStatus uint32
	DeviceStatus    uint32
	RetryDelay      uint32
	Info            uint32
	Duration        uint32
	ResponseLen     uint32
	DinResid        int32
	DoutResid       int32
	GeneratedTag    uint64
	SpareOut        uint32
	Padding         uint32
}

var _ [160 - unsafe.Sizeof(sgioV4{})]struct{}
var _ [unsafe.Sizeof(sgioV4{}) - 160]struct{}

// sgIO is the SG_IO ioctl request number.
const sgIO = 0x2285

// sgioRead sends cdb to the bsg node and returns the data the device sent.
// The kernel's own timeout bounds the ioctl; ctx bounds the wait for it (a
// command the caller stopped waiting for still ends at that timeout).
func sgioRead(ctx context.Context, node string, cdb []byte, size int, timeout time.Duration) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := sgioReadNow(node, cdb, size, timeout)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func sgioReadNow(node string, cdb []byte, size int, timeout time.Duration) ([]byte, error) {
	fd, err := unix.Open(node, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	data := make([]byte, size)
	sense := make([]byte, 64)
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&cdb[0])
	pin.Pin(&data[0])
	pin.Pin(&sense[0])
	h := sgioV4{
		Guard: 'Q', RequestLen: uint32(len(cdb)), Request: uint64(uintptr(unsafe.Pointer(&cdb[0]))),
		MaxResponseLen: uint32(len(sense)), Response: uint64(uintptr(unsafe.Pointer(&sense[0]))),
		DinXferLen: uint32(size), DinXferp: uint64(uintptr(unsafe.Pointer(&data[0]))),
		Timeout: uint32(timeout / time.Millisecond),
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), sgIO, uintptr(unsafe.Pointer(&h))); errno != 0 {
		return nil, fmt.Errorf("SG_IO: %w", errno)
	}
	if h.DeviceStatus != 0 || h.TransportStatus != 0 || h.DriverStatus != 0 {
		msg := fmt.Sprintf("SCSI status 0x%02x, transport status 0x%x, driver status 0x%x", h.DeviceStatus, h.TransportStatus, h.DriverStatus)
		if h.ResponseLen > 0 {
			if s, err := pdu.ParseSense(sense[:min(int(h.ResponseLen), len(sense))]); err == nil {
				msg += ", sense " + s.String()
			}
		}
		return nil, errors.New(msg)
	}
	got := size - int(h.DinResid)
	if got < 0 || got > size {
		got = size
	}
	return data[:got], nil
}
