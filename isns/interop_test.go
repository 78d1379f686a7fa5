package isns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/isns"
)

// The interop test runs Debian's open-isns isnsd and isnsadm. isnsd needs a
// non-loopback address, a host name and a server source name; it runs in a
// private network, UTS and mount namespace (the test re-executes itself
// under `unshare --net --uts --mount`) on a veth pair holding 10.9.9.1/24,
// so it never touches the host's network, name or files. HostName and
// SourceName in the configs spare isnsd and isnsadm resolving the host name
// (no /etc/hosts entry or nsswitch change needed); the "isns" service name
// must resolve, see serviceIsns.
const (
	netnsEnv  = "GOISCSI_ISNS_INTEROP_NETNS"
	serverIP  = "10.9.9.1"
	target1   = "iqn.2003-01.org.example.isns:t1"
	entityID  = "goiscsi-isns-interop"
	hostName  = "isnstest"
	isnsdConf = `Database = %[1]s/db
DefaultDiscoveryDomain = 1
Security = 0
SLPRegister = 0
PIDFile = %[1]s/isnsd.pid
ControlSocket = %[1]s/isnsctl
SourceName = iqn.2000-01.test.goiscsi:isnsd
HostName = ` + hostName + `
RegistrationPeriod = 600
ESIMinInterval = 1
ESIMaxInterval = 5
ESIRetries = 3
SCNTimeout = 5
`
	isnsadmConf = `SourceName = %[2]s
ServerAddress = ` + serverIP + `
Security = 0
HostName = ` + hostName + `
ControlSocket = %[1]s/isnsctl
`
)

func TestInteropIsnsd(t *testing.T) {
	if os.Getenv(netnsEnv) != "1" {
		reexecInNetns(t)
		return
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "isns0", "type", "veth", "peer", "name", "isns1"},
		{"addr", "add", serverIP + "/24", "dev", "isns0"},
		{"link", "set", "isns0", "up"},
		{"link", "set", "isns1", "up"},
	} {
		run(t, "ip", args...)
	}
	run(t, "hostname", hostName)
	serviceIsns(t)
	conf := filepath.Join(dir, "isnsd.conf")
	os.MkdirAll(filepath.Join(dir, "db"), 0o700)
	os.WriteFile(conf, []byte(fmt.Sprintf(isnsdConf, dir)), 0o600)
	adminConf := func(tgt string) string {
		p := filepath.Join(dir, strings.ReplaceAll(tgt, ":", "_")+".conf")
		os.WriteFile(p, []byte(fmt.Sprintf(isnsadmConf, dir, tgt)), 0o600)
		return p
	}

	logPath := filepath.Join(dir, "isnsd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	isnsd := exec.Command("isnsd", "-f", "-4", "-c", conf, "-d", "all")
	isnsd.Stdout, isnsd.Stderr = logf, logf
	if err := isnsd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		isnsd.Process.Kill()
		isnsd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("isnsd log:\n%s", tail(string(b), 100000))
		}
	})
	waitListening(t, net.JoinHostPort(serverIP, "3205"))

	// isnsadm runs as the target it names: its own source and entity.
	isnsadm := func(tgt string, args ...string) string {
		t.Helper()
		out, err := exec.Command("isnsadm", append([]string{"-c", adminConf(tgt)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("isnsadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	isnsadm(target1, "--register", "target="+target1, "portal="+serverIP+":3260")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// What iscsiadm -m discovery -t isns does, from an unregistered initiator.
	var opts []isns.Option
	if rec := os.Getenv(recordEnv); rec != "" {
		opts = append(opts, isns.WithDialer(recordingDialer(t, rec)))
	}
	c, err := isns.Dial(ctx, serverIP, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// isnsd answers a query from a source it does not know (stock
	// iscsiadm registers only on Source Unknown, so it never does here).
	rsp, err := query(ctx, c, "iqn.1993-08.org.debian:01:discover-only", isns.Uint32Attr(isns.TagISCSINodeType, isns.NodeTarget))
	if err != nil {
		t.Fatalf("query from an unregistered source: %v", err)
	}
	t.Logf("query from an unregistered source: status %v, %d operating attributes", rsp.Status, len(rsp.Operating))

	start := time.Now()
	ts, err := c.DiscoverTargets(ctx, "iqn.1993-08.org.debian:01:discover-only")
	if err != nil {
		t.Fatal(err)
	}
	want := []isns.TargetPortal{{Address: netip.MustParseAddr(serverIP), Port: 3260, PGT: 1}}
	if len(ts) != 1 || ts[0].Name != target1 || fmt.Sprint(ts[0].Portals) != fmt.Sprint(want) {
		t.Fatalf("discovered %+v", ts)
	}
	t.Logf("discovery without registration: %+v in %v", ts, time.Since(start))

	// Without an Entity Identifier isnsd names the entity itself.
	reg, err := c.RegisterInitiator(ctx, isns.Initiator{Name: "iqn.1993-08.org.debian:01:no-eid"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registration without entity ID: entity %q, period %v", reg.EntityID, reg.Period)
	if !strings.HasPrefix(reg.EntityID, "isns.entity.") {
		t.Errorf("server-assigned entity %q", reg.EntityID)
	}
	if err := c.Deregister(ctx, "iqn.1993-08.org.debian:01:no-eid", reg.EntityID); err != nil {
		t.Fatal(err)
	}

	for i, network := range []string{"tcp", "udp"} {
		// isnsadm --deregister iscsi-name=X removes the node but leaves
		// its entity and portal, and isnsd refuses to move a portal to
		// another entity: each round uses its own target and port.
		target2 := "iqn.2003-01.org.example.isns:t2-" + network
		port2 := strconv.Itoa(3261 + i)
		t.Run("scn-"+network, func(t *testing.T) {
			l, err := isns.ListenSCN(ctx, network, net.JoinHostPort(serverIP, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			reg, err := c.RegisterInitiator(ctx, isns.Initiator{Name: initiator, Alias: "goiscsi interop", EntityID: entityID, SCN: l})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("registered: entity %q, period %v", reg.EntityID, reg.Period)
			if reg.EntityID != entityID || reg.Period != 600*time.Second {
				t.Fatalf("registration %+v", reg)
			}
			ts, err := c.QueryTargets(ctx, initiator)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 1 || ts[0].Name != target1 || fmt.Sprint(ts[0].Portals) != fmt.Sprint(want) {
				t.Fatalf("queried %+v", ts)
			}

			start := time.Now()
			isnsadm(target2, "--register", "target="+target2, "portal="+serverIP+":"+port2)
			ev := waitEvent(t, l, isns.EventAdded, target2)
			t.Logf("SCN for registration after %v: %v", time.Since(start), ev)
			if ev.Destination != initiator {
				t.Errorf("SCN destination %q", ev.Destination)
			}
			ts, err = c.QueryTargets(ctx, initiator, target2)
			if err != nil || len(ts) != 1 || strconv.Itoa(int(ts[0].Portals[0].Port)) != port2 {
				t.Fatalf("query by name: %+v %v", ts, err)
			}

			start = time.Now()
			isnsadm(target2, "--deregister", "iscsi-name="+target2)
			ev = waitEvent(t, l, isns.EventRemoved, target2)
			t.Logf("SCN for deregistration after %v: %v", time.Since(start), ev)
			ts, err = c.QueryTargets(ctx, initiator, target2)
			if err != nil || len(ts) != 0 {
				t.Fatalf("query for the removed target: %+v %v", ts, err)
			}
			// What QueryTargets turned into "no targets": isnsd does
			// not say No Such Entry, it answers Successful with no
			// attributes.
			rsp, err := query(ctx, c, initiator, isns.StringAttr(isns.TagISCSIName, target2))
			t.Logf("raw query for the removed target: %v (err %v)", rsp, err)
			if !gone(rsp, err) {
				t.Fatalf("raw query for the removed target: %v %v", rsp, err)
			}
			rsp, err = query(ctx, c, initiator, isns.StringAttr(isns.TagISCSIName, "iqn.2003-01.org.example.isns:never"))
			t.Logf("raw query for a name never registered: %v (err %v)", rsp, err)
			if !gone(rsp, err) {
				t.Fatalf("raw query for a name never registered: %v %v", rsp, err)
			}

			if err := c.Refresh(ctx, initiator, entityID); err != nil {
				t.Fatal(err)
			}
			if err := c.Deregister(ctx, initiator, entityID); err != nil {
				t.Fatal(err)
			}
			// Seen from another node, the initiator is gone.
			if rsp, err := query(ctx, c, target1, isns.StringAttr(isns.TagISCSIName, initiator)); !gone(rsp, err) {
				t.Fatalf("query for the deregistered initiator: %v %v", rsp, err)
			}
			if err := c.Refresh(ctx, initiator, entityID); !errors.Is(err, isns.ErrNotRegistered) {
				t.Fatalf("refresh after deregistration: %v", err)
			}
			rsp, err = query(ctx, c, initiator, isns.StringAttr(isns.TagEntityIdentifier, entityID))
			t.Logf("entity query by the deregistered source: %v (err %v)", rsp, err)
		})
	}

	// ESI: isnsd polls the ESI port every interval, on a new TCP
	// connection each time. An entity that stops answering is dropped:
	// after the interval isnsd retries every max(1, interval/ESIRetries)
	// seconds, ESIRetries times, then removes the portal and, with no ESI
	// portal left, the entity.
	t.Run("esi", func(t *testing.T) {
		l, err := isns.ListenSCN(ctx, "tcp", net.JoinHostPort(serverIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		reg, err := c.RegisterInitiator(ctx, isns.Initiator{Name: initiator, EntityID: entityID, SCN: l, ESIInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ESI interval granted: %v", reg.ESIInterval)
		if reg.ESIInterval != time.Second {
			t.Errorf("ESI interval %v, asked for 1s", reg.ESIInterval)
		}
		start := time.Now()
		for i := 0; i < 2; i++ {
			ev := waitEvent(t, l, isns.EventESI, "")
			t.Logf("ESI %d after %v from %s", i+1, time.Since(start).Round(time.Millisecond), ev.From)
		}
		// The entity survived the inquiries it answered. Asked as
		// another node: a query from the entity's own node would count
		// as a sign of life.
		alive := func() bool {
			t.Helper()
			rsp, err := query(ctx, c, target1, isns.StringAttr(isns.TagISCSIName, initiator))
			if err != nil && !errors.Is(err, isns.StatusNoSuchEntry) {
				t.Fatal(err)
			}
			return !gone(rsp, err)
		}
		if !alive() {
			t.Fatal("entity dropped although it answered every ESI")
		}
		l.Close()
		start = time.Now()
		deadline := start.Add(20 * time.Second)
		for alive() {
			if time.Now().After(deadline) {
				t.Fatal("entity still registered 20 s after its ESI port closed")
			}
			time.Sleep(100 * time.Millisecond) // polling the server's state
		}
		t.Logf("entity dropped %v after its ESI port closed", time.Since(start).Round(100*time.Millisecond))
	})
}

// gone reports whether a query's answer names nothing: No Such Entry, or
// what isnsd answers for a deregistered node and for a name it never had
// alike, Successful with no attributes.
func gone(rsp *isns.Message, err error) bool {
	if errors.Is(err, isns.StatusNoSuchEntry) {
		return true
	}
	return err == nil && len(rsp.Operating) == 0
}

// query sends a raw DevAttrQry asking for the attributes QueryTargets asks
// for, to see what isnsd answers before the client interprets it.
func query(ctx context.Context, c *isns.Client, source string, key isns.Attr) (*isns.Message, error) {
	m := &isns.Message{Function: isns.DevAttrQry, Source: isns.StringAttr(isns.TagISCSIName, source), Key: isns.Attrs{key}}
	for _, tag := range []isns.Tag{isns.TagEntityIdentifier, isns.TagEntityProtocol, isns.TagISCSIName, isns.TagISCSINodeType, isns.TagPGTag} {
		m.Operating = append(m.Operating, isns.NilAttr(tag))
	}
	return c.Call(ctx, m)
}

// recordEnv names a directory where the interop test saves the bytes isnsd
// sent the client (each connection's stream in its own file), the source of
// the isnsd-* fuzz seeds.
const recordEnv = "GOISCSI_ISNS_RECORD"

type teeConn struct {
	net.Conn
	f *os.File
}

func (c teeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.f.Write(b[:n])
	return n, err
}

func (c teeConn) Close() error { c.f.Close(); return c.Conn.Close() }

func recordingDialer(t *testing.T, dir string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	n := 0
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n++
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("isnsd-stream-%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		return teeConn{c, f}, nil
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// reexecInNetns runs this test again inside fresh network and UTS
// namespaces, or skips saying why it cannot.
func reexecInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("interop with open-isns needs root (network namespace, veth); run as root to check against isnsd")
	}
	for _, bin := range []string{"isnsd", "isnsadm"} {
		if _, err := exec.LookPath(bin); err != nil {
			installISNS(t)
			break
		}
	}
	// Root can always make namespaces here (util-linux's unshare, a
	// veth pair): failing to is a test failure, not a reason to skip.
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare(1) missing: cannot isolate isnsd in a network namespace")
	}
	if out, err := exec.Command(unshare, "--net", "--uts", "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1").CombinedOutput(); err != nil {
		t.Fatalf("cannot create a network namespace with a veth pair: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--net", "--uts", "--mount", os.Args[0], "-test.run=^TestInteropIsnsd$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("interop test in the namespace failed: %v", err)
	}
}

// serviceIsns makes sure the "isns" service name resolves, which isnsd
// needs to bind its port: if /etc/services lacks it, a copy with the line is
// bind-mounted over it, inside this test's private mount namespace.
func serviceIsns(t *testing.T) {
	b, err := os.ReadFile("/etc/services")
	if err != nil {
		t.Fatalf("isnsd needs /etc/services to name its port (install netbase): %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "isns" && f[1] == "3205/tcp" {
			return
		}
	}
	p := filepath.Join(t.TempDir(), "services")
	if err := os.WriteFile(p, append(b, "isns\t\t3205/tcp\nisns\t\t3205/udp\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "--bind", p, "/etc/services")
}

// installISNS installs Debian's open-isns server and tools, refreshing the
// package lists once if the first attempt fails, or skips.
func installISNS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "open-isns-server", "open-isns-utils")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return
	}
	exec.CommandContext(ctx, "apt-get", "update").Run()
	if out, err := install(); err != nil {
		t.Skipf("isnsd/isnsadm missing and apt-get install open-isns-server open-isns-utils failed: %v\n%s", err, tail(string(out), 10))
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("isnsd not listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the port, not a guess at readiness
	}
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
