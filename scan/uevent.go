package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// UAEvent is the kernel's report of a unit attention a SCSI device received
// (a "change" uevent with SDEV_UA). The kernel scans nothing on it by itself.
type UAEvent struct {
	Action  string // "change"
	UA      string // e.g. REPORTED_LUNS_DATA_HAS_CHANGED
	DevPath string
	Host    int
	// Session is the iSCSI session number in the device path, 0 when the
	// device is not on an iSCSI session.
	Session int
}

// LUNsChanged reports whether the unit attention is REPORTED LUNS DATA HAS
// CHANGED (3F/0E).
func (e UAEvent) LUNsChanged() bool { return e.UA == "REPORTED_LUNS_DATA_HAS_CHANGED" }

var sessionInDevPath = regexp.MustCompile(`/host(\d+)/session(\d+)/target\d+:\d+:\d+/\d+:\d+:\d+:\d+$`)

// ParseUevent reads one NETLINK_KOBJECT_UEVENT message ("ACTION@DEVPATH\0KEY=VALUE\0
// ..."). ok is false for any event other than a SCSI device's SDEV_UA change.
func ParseUevent(b []byte) (ev UAEvent, ok bool, err error) {
	fields := bytes.Split(b, []byte{0})
	if len(fields) == 0 || !bytes.Contains(fields[0], []byte("@")) {
		// udev's own re-broadcasts start with "libudev"; they are not ours.
		if bytes.HasPrefix(b, []byte("libudev")) {
			return ev, false, nil
		}
		return ev, false, errors.New("uevent: no ACTION@DEVPATH header")
	}
	vars := map[string]string{}
	for _, f := range fields[1:] {
		if k, v, found := bytes.Cut(f, []byte("=")); found {
			vars[string(k)] = string(v)
		}
	}
	if vars["SUBSYSTEM"] != "scsi" || vars["DEVTYPE"] != "scsi_device" || vars["SDEV_UA"] == "" {
		return ev, false, nil
	}
	ev = UAEvent{Action: vars["ACTION"], UA: vars["SDEV_UA"], DevPath: vars["DEVPATH"]}
	if m := sessionInDevPath.FindStringSubmatch(ev.DevPath); m != nil {
		ev.Host, _ = strconv.Atoi(m[1])
		ev.Session, _ = strconv.Atoi(m[2])
	}
	return ev, true, nil
}

// UeventListener receives the kernel's SDEV_UA uevents.
type UeventListener struct {
	fd  int
	buf []byte
}

// ListenUevents opens a NETLINK_KOBJECT_UEVENT socket on the kernel's group. It
// needs root.
func ListenUevents() (*UeventListener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent socket: bind: %w", err)
	}
	return &UeventListener{fd: fd, buf: make([]byte, 64<<10)}, nil
}

// pollInterval bounds how long Next takes to notice that ctx ended.
const pollInterval = 500 * time.Millisecond

// Next returns the next SDEV_UA event, waiting until one arrives or ctx ends.
func (l *UeventListener) Next(ctx context.Context) (UAEvent, error) {
	for {
		if err := ctx.Err(); err != nil {
			return UAEvent{}, err
		}
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(pollInterval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return UAEvent{}, fmt.Errorf("uevent socket: poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		m, _, err := unix.Recvfrom(l.fd, l.buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			return UAEvent{}, fmt.Errorf("uevent socket: events were lost: %w", err)
		}
		if err != nil {
			return UAEvent{}, fmt.Errorf("uevent socket: %w", err)
		}
		if ev, ok, _ := ParseUevent(l.buf[:m]); ok {
			return ev, nil
		}
	}
}

// Close closes the socket.
func (l *UeventListener) Close() error { return unix.Close(l.fd) }
