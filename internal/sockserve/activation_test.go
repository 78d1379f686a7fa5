package sockserve

import (
	"bufio"
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

// activatedChild is the test binary run as systemd runs a socket-activated
// daemon: the sockets from fd 3 on, LISTEN_FDS, and LISTEN_PID set to the
// child's own pid (the shell's $$ survives its exec). The child prints one
// line: the addresses Activated returned, or its error.
func activatedChild(t *testing.T, socks []*os.File, fds string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-test.run=^TestActivated$")
	cmd.Env = append(os.Environ(), "SOCKSERVE_TEST_CHILD=1", "LISTEN_FDS="+fds, "LISTEN_FDNAMES=goiscsid.socket")
	cmd.ExtraFiles = socks
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		return l
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("activated child printed nothing in 10 s")
		return ""
	}
}

// runActivatedChild is the child's side of TestActivated.
func runActivatedChild() {
	lns, err := Activated()
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			fmt.Printf("error: %s=%s still set after Activated\n", v, val)
			return
		}
	}
	var addrs []string
	for _, ln := range lns {
		addrs = append(addrs, ln.Addr().String())
	}
	fmt.Println("listening:", strings.Join(addrs, " "))
}

func TestActivated(t *testing.T) {
	if os.Getenv("SOCKSERVE_TEST_CHILD") != "" {
		runActivatedChild()
		os.Exit(0)
	}
	dir := t.TempDir()
	unixSock := func(network, name string) *os.File {
		var f *os.File
		var err error
		if network == "unixgram" {
			var c *net.UnixConn
			c, err = net.ListenUnixgram(network, &net.UnixAddr{Name: name, Net: network})
			if err == nil {
				f, err = c.File()
				c.Close()
			}
		} else {
			var l *net.UnixListener
			l, err = net.ListenUnix(network, &net.UnixAddr{Name: name, Net: network})
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
	own := filepath.Join(dir, "own.sock")
	abstract := "@sockserve-test-" + strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name  string
		socks []*os.File
		fds   string
		want  string // the child's line: its addresses or an error
	}{
		{"a path", []*os.File{unixSock("unix", own)}, "1", "listening: " + own},
		{"a path and an abstract name", []*os.File{unixSock("unix", filepath.Join(dir, "two.sock")), unixSock("unix", abstract)}, "2",
			"listening: " + filepath.Join(dir, "two.sock") + " " + abstract},
		{"tcp socket", []*os.File{tcp()}, "1", "error: socket passed by systemd (fd 3) is tcp"},
		{"datagram socket", []*os.File{unixSock("unixgram", filepath.Join(dir, "dgram.sock"))}, "1", "error: socket passed by systemd (fd 3) is unixgram"},
		{"no count", []*os.File{unixSock("unix", filepath.Join(dir, "x.sock"))}, "lots", `error: systemd passed "lots" sockets`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range tc.socks {
				defer s.Close()
			}
			if got := activatedChild(t, tc.socks, tc.fds); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("child said %q, want %q", got, tc.want)
			}
		})
	}
}

// LISTEN_* meant for another process (LISTEN_PID is not ours) are ignored.
func TestActivatedForAnotherProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getppid()))
	t.Setenv("LISTEN_FDS", "1")
	if lns, err := Activated(); lns != nil || err != nil {
		t.Fatalf("Activated = %v, %v", lns, err)
	}
}

func TestTake(t *testing.T) {
	a, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "a.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@sockserve-take-" + strconv.Itoa(os.Getpid()), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, rest := Take([]*net.UnixListener{a, b}, b.Addr().String())
	if got != b || len(rest) != 1 || rest[0] != a {
		t.Fatalf("Take = %v, %v", got, rest)
	}
	if got, rest := Take(rest, "/nowhere"); got != nil || len(rest) != 1 {
		t.Fatalf("Take of an address not passed = %v, %v", got, rest)
	}
}
