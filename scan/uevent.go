package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Event is the kernel's report (a kobject uevent) of a SCSI device added,
// removed, or told of a unit attention (a "change" with SDEV_UA). The kernel
// scans nothing on a unit attention by itself; goiscsid scans as the policy
// says, and remembers the LUNs the host removes.
type Event struct {
	Action  string // "add", "remove" or "change"
	UA      string // for a change: e.g. REPORTED_LUNS_DATA_HAS_CHANGED
	DevPath string
	// Device is the SCSI device's address, from the last element of DevPath.
	Device Device
	// Session is the iSCSI session number in the device path, 0 when the
	// device is not on an iSCSI session.
	Session int
}

// LUNsChanged reports whether the event is the unit attention REPORTED LUNS
// DATA HAS CHANGED (3F/0E).
func (e Event) LUNsChanged() bool {
	return e.Action == "change" && e.UA == "REPORTED_LUNS_DATA_HAS_CHANGED"
}

var sessionInDevPath = regexp.MustCompile(`/host\d+/session(\d+)/target\d+:\d+:\d+/\d+:\d+:\d+:\d+$`)

// ParseUevent reads one NETLINK_KOBJECT_UEVENT message ("ACTION@DEVPATH\0KEY=VALUE\0
// ..."). ok is false for any event other than a SCSI device's add, remove or
// SDEV_UA change.
func ParseUevent(b []byte) (ev Event, ok bool, err error) {
	header, rest, _ := bytes.Cut(b, []byte{0})
	if !bytes.Contains(header, []byte("@")) {
		// udev's own re-broadcasts start with "libudev"; they are not ours.
		if bytes.HasPrefix(b, []byte("libudev")) {
			return ev, false, nil
		}
		return ev, false, errors.New("uevent: no ACTION@DEVPATH header")
	}
	// Most events on a host are not SCSI devices' (a logout of one LUN
	// brings a dozen: block, bdi, scsi_disk, the session's own...): the
	// fields are read in place, and strings made only for the ones kept.
	var action, devPath, subsystem, devType, ua []byte
	for len(rest) > 0 {
		var f []byte
		f, rest, _ = bytes.Cut(rest, []byte{0})
		k, v, found := bytes.Cut(f, []byte("="))
		if !found {
			continue
		}
		switch string(k) {
		case "ACTION":
			action = v
		case "DEVPATH":
			devPath = v
		case "SUBSYSTEM":
			subsystem = v
		case "DEVTYPE":
			devType = v
		case "SDEV_UA":
			ua = v
		}
	}
	if string(subsystem) != "scsi" || string(devType) != "scsi_device" {
		return ev, false, nil
	}
	switch {
	case string(action) == "add" || string(action) == "remove":
	case string(action) == "change" && len(ua) > 0:
	default:
		return Event{}, false, nil
	}
	ev = Event{Action: string(action), UA: string(ua), DevPath: string(devPath)}
	d, found := parseHCTL(path.Base(ev.DevPath))
	if !found {
		return Event{}, false, fmt.Errorf("uevent: SCSI device path %q does not end in H:C:T:L", ev.DevPath)
	}
	ev.Device = d
	if m := sessionInDevPath.FindStringSubmatch(ev.DevPath); m != nil {
		ev.Session, _ = strconv.Atoi(m[1])
	}
	return ev, true, nil
}

// UeventListener receives the kernel's SCSI device uevents and hands each to
// its handler, in the kernel's order, from Run or from Sync, never both at
// once.
type UeventListener struct {
	fd     int
	handle func(Event)
	// lost is called when the kernel dropped events (the socket's buffer
	// overflowed): what they said must be found some other way.
	lost func()

	mu  sync.Mutex // held while receiving and handling
	buf []byte
}

// ueventBuffer is the socket's receive buffer: a storm of device events (a
// login of hundreds of LUNs) fits, instead of the default's 200 or so.
const ueventBuffer = 8 << 20

// ListenUevents opens a NETLINK_KOBJECT_UEVENT socket on the kernel's group;
// handle receives each SCSI device event, lost is told of dropped events. It
// needs root.
func ListenUevents(handle func(Event), lost func()) (*UeventListener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ueventBuffer); err != nil {
		// Without CAP_NET_ADMIN: as large as net.core.rmem_max allows.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ueventBuffer)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent socket: bind: %w", err)
	}
	return &UeventListener{fd: fd, handle: handle, lost: lost, buf: make([]byte, 64<<10)}, nil
}

// pollInterval bounds how long Run takes to notice that ctx ended.
const pollInterval = 500 * time.Millisecond

// Run handles events as they arrive until ctx ends or the socket fails, and
// returns why.
func (l *UeventListener) Run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(pollInterval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("uevent socket: poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		if err := l.Sync(); err != nil {
			return err
		}
	}
}

// Sync handles every event the kernel has queued before it returns: a scan
// that must know of the devices removed before it was asked for calls it
// first (the kernel queues a device's remove event before the write to its
// delete file returns).
func (l *UeventListener) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		m, _, err := unix.Recvfrom(l.fd, l.buf, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			if l.lost != nil {
				l.lost()
			}
			continue
		case err != nil:
			return fmt.Errorf("uevent socket: %w", err)
		}
		if ev, ok, _ := ParseUevent(l.buf[:m]); ok {
			l.handle(ev)
		}
	}
}

// Close closes the socket.
func (l *UeventListener) Close() error { return unix.Close(l.fd) }
