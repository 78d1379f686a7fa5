package mgmt

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// activatedChild is the test binary run as systemd runs goiscsid under
// goiscsid.socket: the socket as fd 3, LISTEN_FDS, and LISTEN_PID set to the
// child's own pid (the shell's $$ survives its exec). The child prints one
// line (the listener's address or Listen's error), then serves until its stdin
// closes.
func activatedChild(t *testing.T, sock *os.File, fds string, ownPath string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-test.run=^TestSocketActivation$")
	cmd.Env = append(os.Environ(), "MGMT_TEST_ACTIVATED="+ownPath, "LISTEN_FDS="+fds, "LISTEN_FDNAMES=goiscsid.socket")
	cmd.ExtraFiles = []*os.File{sock}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		return cmd, l
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("activated child printed nothing in 10 s")
		return nil, ""
	}
}

// runActivatedChild is the child's side of TestSocketActivation.
func runActivatedChild(ownPath string) {
	ln, err := Listen(ownPath)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			fmt.Printf("error: %s=%s still set after Listen\n", v, val)
			return
		}
	}
	fmt.Println("listening:", ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		os.Stdin.Read(make([]byte, 1)) // the parent closes stdin when done
		cancel()
	}()
	s := &Server{Handler: echo, peerUID: func(net.Conn) (uint32, error) { return 0, nil }}
	s.Serve(ctx, ln)
}

func TestSocketActivation(t *testing.T) {
	if own := os.Getenv("MGMT_TEST_ACTIVATED"); own != "" {
		runActivatedChild(own)
		os.Exit(0)
	}
	dir := t.TempDir()
	unixSock := func(network, name string) *os.File {
		path := filepath.Join(dir, name)
		var f *os.File
		var err error
		if network == "unixgram" {
			var c *net.UnixConn
			c, err = net.ListenUnixgram(network, &net.UnixAddr{Name: path, Net: network})
			if err == nil {
				f, err = c.File()
				c.Close()
			}
		} else {
			var l *net.UnixListener
			l, err = net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
			if err == nil {
				l.SetUnlinkOnClose(false)
				f, err = l.File()
				l.Close()
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tcp := func() *os.File {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name    string
		sock    *os.File
		fds     string
		wantErr string // "" means the child serves on the passed socket
	}{
		{"unix stream socket", unixSock("unix", "served.sock"), "1", ""},
		{"tcp socket", tcp(), "1", "not a unix stream socket"},
		{"datagram socket", unixSock("unixgram", "dgram.sock"), "1", "not a unix stream socket"},
		{"two sockets", unixSock("unix", "second.sock"), "2", `systemd passed "2" sockets`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.sock.Close()
			own := filepath.Join(dir, "own-"+strconv.Itoa(len(tc.name)), "goiscsid.sock")
			cmd, line := activatedChild(t, tc.sock, tc.fds, own)
			if tc.wantErr != "" {
				if !strings.HasPrefix(line, "error:") || !strings.Contains(line, tc.wantErr) {
					t.Fatalf("child said %q, want an error with %q", line, tc.wantErr)
				}
				return
			}
			if !strings.HasPrefix(line, "listening:") {
				t.Fatalf("child said %q", line)
			}
			path := filepath.Join(dir, "served.sock")
			resp, err := do(t, path, &Request{Op: OpStatus})
			if err != nil || resp.Status == nil || resp.Status.PID != cmd.Process.Pid {
				t.Fatalf("request on the passed socket: %+v %v (child pid %d)", resp, err, cmd.Process.Pid)
			}
			if _, err := os.Stat(filepath.Dir(own)); !os.IsNotExist(err) {
				t.Errorf("the activated child made its own socket directory too: %v", err)
			}
		})
	}
}

// LISTEN_* meant for another process (LISTEN_PID is not ours) are ignored:
// the daemon makes its own socket.
func TestSocketActivationForAnotherProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getppid()))
	t.Setenv("LISTEN_FDS", "1")
	path := filepath.Join(t.TempDir(), "run", "goiscsid.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != path {
		t.Fatalf("listening on %s, want %s", ln.Addr(), path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no socket at %s: %v", path, err)
	}
}
