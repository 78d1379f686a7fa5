package nlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// groupDaemon is ISCSI_NL_GRP_ISCSID, the multicast group of kernel events.
const groupDaemon = 1

// eventBuffer is the event socket's receive buffer: a login storm of hundreds
// of sessions must not overflow it.
const eventBuffer = 8 << 20

// netlinkTransport uses two sockets: requests on one without groups, so it
// only ever receives replies, and events on one bound to the daemon group.
// Replies carry no sequence number, so keeping them apart from events is what
// makes matching them certain.
type netlinkTransport struct {
	mu    sync.Mutex // one request at a time on req
	req   *netlink.Conn
	ev    *netlink.Conn
	sysfs string
}

func dialNetlink(sysfsRoot string) (*netlinkTransport, error) {
	req, err := netlink.Dial(unix.NETLINK_ISCSI, nil)
	if err != nil {
		return nil, dialError(err)
	}
	ev, err := netlink.Dial(unix.NETLINK_ISCSI, &netlink.Config{Groups: groupDaemon})
	if err != nil {
		req.Close()
		return nil, dialError(err)
	}
	// SO_RCVBUFFORCE lets root exceed rmem_max; fall back to what SO_RCVBUF
	// allows.
	raw, err := ev.SyscallConn()
	if err == nil {
		var serr error
		raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventBuffer)
		})
		if serr != nil {
			ev.SetReadBuffer(eventBuffer)
		}
	}
	return &netlinkTransport{req: req, ev: ev, sysfs: sysfsRoot}, nil
}

func (t *netlinkTransport) LinkState(sid, cid uint32) (string, error) {
	p := filepath.Join(t.sysfs, "class", "iscsi_connection", fmt.Sprintf("connection%d:%d", sid, cid), "state")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("nlink: state of connection %d:%d: %w", sid, cid, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func dialError(err error) error {
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return fmt.Errorf("nlink: the kernel has no iSCSI netlink (NETLINK_ISCSI): load scsi_transport_iscsi/iscsi_tcp or use a kernel with CONFIG_SCSI_ISCSI_ATTRS: %w", err)
	}
	return fmt.Errorf("nlink: open NETLINK_ISCSI socket: %w", err)
}

func deadline(ctx context.Context, set func(time.Time) error) func() bool {
	d, _ := ctx.Deadline()
	set(d)
	return context.AfterFunc(ctx, func() { set(time.Unix(1, 0)) })
}

func (t *netlinkTransport) Request(ctx context.Context, msgs [][]byte, replyExpected bool) ([][]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.req == nil {
		req, err := netlink.Dial(unix.NETLINK_ISCSI, nil)
		if err != nil {
			return nil, dialError(err)
		}
		t.req = req
	}
	out := make([]netlink.Message, len(msgs))
	types := make([]uint32, len(msgs))
	for i, msg := range msgs {
		types[i] = ne.Uint32(msg[offType:])
		out[i] = netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(types[i])}, Data: msg}
	}
	// One datagram: the kernel handles its messages in order, answering each
	// with a datagram of its own, while sendmsg runs; so every reply is
	// queued when it returns.
	if _, err := t.req.SendMessages(out); err != nil {
		return nil, err
	}
	if !replyExpected {
		// A GET_STATS the kernel serves answers by multicast alone; one it
		// refuses has its error reply queued already (the kernel handled
		// it during sendmsg). So look once, without waiting: a deadline
		// here took a busy kernel's late error reply for no reply, and the
		// next request read it as its own.
		got, err := t.receiveNow()
		if err != nil || got == nil {
			return nil, err
		}
		b, err := t.reply(got, types[0])
		if err != nil {
			return nil, err
		}
		return [][]byte{b}, nil
	}
	stop := deadline(ctx, t.req.SetReadDeadline)
	defer func() {
		stop()
		if t.req != nil {
			t.req.SetReadDeadline(time.Time{})
		}
	}()
	replies := make([][]byte, 0, len(msgs))
	for len(replies) < len(msgs) {
		got, err := t.req.Receive()
		if err != nil {
			// A reply may still arrive later and would be taken for the
			// next request's: start over with a fresh socket.
			t.poison()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		b, err := t.reply(got, types[len(replies)])
		if err != nil {
			return nil, err
		}
		replies = append(replies, b)
	}
	return replies, nil
}

// receiveNow reads a datagram that is already queued on the request socket,
// or returns nil when there is none.
func (t *netlinkTransport) receiveNow() ([]netlink.Message, error) {
	raw, err := t.req.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 64<<10)
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		return nil, err
	}
	if errors.Is(rerr, unix.EAGAIN) {
		return nil, nil
	}
	if rerr != nil {
		return nil, rerr
	}
	msgs, err := parseMessages(buf[:n])
	if err != nil {
		t.poison()
	}
	return msgs, err
}

// parseMessages splits a netlink datagram into its messages.
func parseMessages(b []byte) ([]netlink.Message, error) {
	var msgs []netlink.Message
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("nlink: malformed netlink datagram (message length %d in %d bytes)", l, len(b))
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:l]); err != nil {
			return nil, fmt.Errorf("nlink: malformed netlink datagram: %w", err)
		}
		msgs = append(msgs, m)
		b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
	}
	return msgs, nil
}

// reply checks that a datagram holds one reply to a request of type typ.
func (t *netlinkTransport) reply(msgs []netlink.Message, typ uint32) ([]byte, error) {
	b, err := matchReply(msgs, typ)
	if err != nil {
		t.poison()
	}
	return b, err
}

// matchReply is reply's check. The kernel's error replies carry
// ISCSI_KEVENT_IF_ERROR in the payload but the request's type in the netlink
// header, which is what tells whose error it is: an error reply is not any
// request's answer.
func matchReply(msgs []netlink.Message, typ uint32) ([]byte, error) {
	if len(msgs) != 1 || len(msgs[0].Data) < UeventSize {
		return nil, fmt.Errorf("expected one reply, got %d messages", len(msgs))
	}
	m := msgs[0]
	got := ne.Uint32(m.Data[offType:])
	if uint32(m.Header.Type) != typ || (got != typ && got != uint32(EventIfError)) {
		return nil, fmt.Errorf("reply of type %v to a %v request where a %v request was answered",
			MessageType(got), MessageType(m.Header.Type), MessageType(typ))
	}
	return m.Data, nil
}

func (t *netlinkTransport) poison() {
	t.req.Close()
	t.req = nil
}

func (t *netlinkTransport) ReceiveEvent(ctx context.Context) ([]byte, error) {
	for {
		stop := deadline(ctx, t.ev.SetReadDeadline)
		msgs, err := t.ev.Receive()
		stop()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, unix.ENOBUFS) {
				return nil, ErrEventsLost
			}
			return nil, err
		}
		for _, m := range msgs {
			if len(m.Data) >= UeventSize {
				// One datagram carries one event; the kernel never batches.
				return m.Data, nil
			}
		}
	}
}

func (t *netlinkTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var err error
	if t.req != nil {
		err = t.req.Close()
		t.req = nil
	}
	if e := t.ev.Close(); err == nil {
		err = e
	}
	return err
}

// DialOptions configure Dial.
type DialOptions struct {
	// SysfsRoot is where sysfs is mounted; empty means /sys.
	SysfsRoot string
	// Transport is the iSCSI transport name; empty means "tcp".
	Transport string
	Logger    *slog.Logger
}

// Dial opens the kernel's iSCSI netlink interface for the software TCP
// transport (or opts.Transport), loading its module if its sysfs class is
// missing. It needs root. Conns of other transports are ForTransport views of
// it, with the handle LoadTransport reads.
func Dial(opts DialOptions) (*Conn, error) {
	info, err := LoadTransport(opts.SysfsRoot, opts.Transport)
	if err != nil {
		return nil, err
	}
	root := opts.SysfsRoot
	if root == "" {
		root = "/sys"
	}
	t, err := dialNetlink(root)
	if err != nil {
		return nil, err
	}
	return New(t, info.Handle, opts.Logger), nil
}

// TransportModule is the kernel module of an iSCSI transport: the transports
// are named tcp and iser, their modules iscsi_tcp and ib_iser.
func TransportModule(name string) string {
	switch name {
	case "", "tcp":
		return "iscsi_tcp"
	case "iser":
		return "ib_iser"
	}
	return name
}

// LoadTransport reads transport name's handle and capabilities, loading its
// module (modprobe) first when its sysfs class is missing, as iscsid does at
// a login through it.
func LoadTransport(sysfsRoot, name string) (TransportInfo, error) {
	info, err := ReadTransport(sysfsRoot, name)
	if errors.Is(err, os.ErrNotExist) {
		module := TransportModule(name)
		if out, merr := exec.Command("modprobe", module).CombinedOutput(); merr != nil {
			return info, fmt.Errorf("%w; modprobe %s: %v %s", err, module, merr, strings.TrimSpace(string(out)))
		}
		info, err = ReadTransport(sysfsRoot, name)
	}
	return info, err
}

// TransportInfo describes a kernel iSCSI transport.
type TransportInfo struct {
	Name   string
	Handle uint64 // what every request carries
	Caps   uint32 // Cap* bits
}

// ReadTransport reads /sys/class/iscsi_transport/<name>/{handle,caps}. Reading
// the handle needs CAP_SYS_ADMIN.
func ReadTransport(sysfsRoot, name string) (TransportInfo, error) {
	if sysfsRoot == "" {
		sysfsRoot = "/sys"
	}
	if name == "" {
		name = "tcp"
	}
	dir := filepath.Join(sysfsRoot, "class", "iscsi_transport", name)
	info := TransportInfo{Name: name}
	read := func(file string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if errors.Is(err, os.ErrPermission) {
			return "", fmt.Errorf("nlink: reading %s needs root (CAP_SYS_ADMIN): %w", filepath.Join(dir, file), err)
		}
		if err != nil {
			return "", fmt.Errorf("nlink: iSCSI transport %q not in the kernel (is %s loaded?): %w", name, TransportModule(name), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	h, err := read("handle")
	if err != nil {
		return info, err
	}
	if info.Handle, err = strconv.ParseUint(h, 10, 64); err != nil {
		return info, fmt.Errorf("nlink: %s/handle holds %q, not a number", dir, h)
	}
	c, err := read("caps")
	if err != nil {
		return info, err
	}
	caps, err := strconv.ParseUint(c, 0, 32)
	if err != nil {
		return info, fmt.Errorf("nlink: %s/caps holds %q, not a number", dir, c)
	}
	info.Caps = uint32(caps)
	return info, nil
}
