// Package sockserve is what goiscsid's two management sockets (its own and
// open-iscsi's, package stockipc) share: the accept loop with its bound on
// connections served at once, and the peer's credentials.
package sockserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Serve accepts connections on ln until ctx ends, serving each with serve in a
// goroutine of its own, at most maxConns at once (more clients wait in the
// socket's backlog, so a flood costs at most maxConns connections' memory).
// When ctx ends it closes ln and waits for the connections in progress.
// Running out of file descriptors or memory delays the next accept, logged as
// a warning naming what; it does not end Serve. Another accept error ends it.
func Serve(ctx context.Context, ln net.Listener, maxConns int, log *slog.Logger, serve func(ctx context.Context, c net.Conn)) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, maxConns)
	var backoff time.Duration
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			if temporary(err) {
				// Each connection being served holds a descriptor and
				// gives it back when it ends: wait for that.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn("cannot accept a connection; retrying", "socket", ln.Addr().String(), "err", err, "in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			wg.Wait()
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			serve(ctx, c)
		}()
	}
}

// temporary reports an accept failure that passes once other connections end
// or memory frees up.
func temporary(err error) bool {
	for _, errno := range []syscall.Errno{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// PeerUID returns the user id of the process at the other end of unix socket
// c (SO_PEERCRED), as the kernel recorded it at connect.
func PeerUID(c net.Conn) (uint32, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T is no socket with peer credentials", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}

// Activated returns the listening sockets systemd passed to this process
// (sd_listen_fds: LISTEN_PID is this process, LISTEN_FDS counts them from fd
// 3 on), in the order of the unit's ListenStream= lines; nil when it passed
// none. Each must be a unix stream socket: anything else is a unit
// configuration error, said so rather than served. The LISTEN_* variables
// are cleared, so that children (modprobe) do not take them for their own.
func Activated() ([]*net.UnixListener, error) {
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return nil, nil
	}
	fds := os.Getenv("LISTEN_FDS")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 || n > 16 {
		return nil, fmt.Errorf("systemd passed %q sockets (LISTEN_FDS)", fds)
	}
	var out []*net.UnixListener
	fail := func(err error) ([]*net.UnixListener, error) {
		for _, ln := range out {
			ln.Close()
		}
		return nil, err
	}
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "systemd-socket")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("socket passed by systemd (fd %d): %w", fd, err))
		}
		ul, ok := ln.(*net.UnixListener)
		if !ok || ln.Addr().Network() != "unix" {
			ln.Close()
			return fail(fmt.Errorf("socket passed by systemd (fd %d) is %s %s, not a unix stream socket (ListenStream= must be a path or an @abstract name)",
				fd, ln.Addr().Network(), ln.Addr()))
		}
		out = append(out, ul)
	}
	return out, nil
}

// Take returns the listener of passed bound to addr (a path, or "@name" for
// an abstract socket) and the others; nil when none is.
func Take(passed []*net.UnixListener, addr string) (*net.UnixListener, []*net.UnixListener) {
	for i, ln := range passed {
		if ln.Addr().String() == addr {
			rest := append(append([]*net.UnixListener(nil), passed[:i]...), passed[i+1:]...)
			return ln, rest
		}
	}
	return nil, passed
}
