package stockipc_test

// The tests here run Debian 12's own iscsiadm (open-iscsi 2.1.8) against the
// Server. The test binary re-runs itself under `unshare --net --mount` (in a
// user namespace of its own when not root), so that the abstract socket is
// this test's alone (no real iscsid can answer) and a scratch directory can
// stand in for /etc/iscsi and /run/lock.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/stockipc"
	"github.com/goiscsi/goiscsi/test/stock"
)

var update = flag.Bool("update", false, "rewrite testdata/stock-2.1.8 from what Debian's iscsiadm sends")

// stockChild is what the namespaced half works with.
type stockChild struct {
	Root   string // the extracted Debian packages
	Golden string // where to write captured requests, or ""
}

func TestStockIscsiadm(t *testing.T) {
	c := stockChild{Root: stock.Root(t)}
	if *update {
		wd, _ := os.Getwd()
		c.Golden = filepath.Join(wd, "testdata", "stock-2.1.8")
	}
	stock.InNamespace(t, func(t *testing.T, etc string) { runStockChild(t, &c, etc) })
}

// stockEnv is the namespaced half's view: the server, what it saw, and how
// to run iscsiadm.
type stockEnv struct {
	t       *testing.T
	c       *stockChild
	srv     *stockipc.Server
	uid     *atomic.Uint32 // the peer uid the server sees
	mu      sync.Mutex
	raw     [][]byte
	reqs    []*stockipc.Request
	answer  func(*stockipc.Request) *stockipc.Response
	etc     string
	initiat string
}

func (e *stockEnv) ServeStock(_ context.Context, req *stockipc.Request) *stockipc.Response {
	e.mu.Lock()
	e.reqs = append(e.reqs, req)
	answer := e.answer
	e.mu.Unlock()
	if req.Command == stockipc.CmdConfigFile {
		return &stockipc.Response{Config: filepath.Join("/etc/iscsi", "iscsid.conf")}
	}
	if req.Command == stockipc.CmdConfigIName {
		return &stockipc.Response{Config: e.initiat}
	}
	if answer != nil {
		return answer(req)
	}
	return &stockipc.Response{}
}

// take returns and forgets what the server saw since the last call.
func (e *stockEnv) take() ([][]byte, []*stockipc.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	raw, reqs := e.raw, e.reqs
	e.raw, e.reqs = nil, nil
	return raw, reqs
}

func (e *stockEnv) setAnswer(f func(*stockipc.Request) *stockipc.Response) {
	e.mu.Lock()
	e.answer = f
	e.mu.Unlock()
}

// iscsiadm runs Debian's iscsiadm with args and returns its output and exit
// code.
func (e *stockEnv) iscsiadm(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	return stock.Iscsiadm(e.t, e.c.Root, args...)
}

// must runs iscsiadm and fails the test unless it exits 0.
func (e *stockEnv) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.iscsiadm(args...)
	if code != 0 {
		e.t.Fatalf("iscsiadm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// writeConfig gives the scratch /etc/iscsi stock's iscsid.conf, with a value
// unlike the built-in default that shows new records were made from this
// file, found through CONFIG_FILE.
func writeConfig(t *testing.T, c *stockChild, etc string) {
	conf, err := os.ReadFile(filepath.Join(c.Root, "etc", "iscsi", "iscsid.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf = append(conf, "\nnode.session.cmds_max = 64\n"...)
	if err := os.WriteFile(filepath.Join(etc, "iscsid.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
}

const (
	tgt1 = "iqn.2003-01.org.example:tgt1"
	tgt2 = "iqn.2003-01.org.example:tgt2"
	tgt3 = "iqn.2003-01.org.example:tgt3"
)

func runStockChild(t *testing.T, c *stockChild, etc string) {
	e := &stockEnv{t: t, c: c, initiat: "iqn.1993-08.org.debian:01:stockipc-test"}
	e.etc = etc
	writeConfig(t, c, etc)
	if err := os.WriteFile(filepath.Join(e.etc, "initiatorname.iscsi"), []byte("InitiatorName="+e.initiat+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := stockipc.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stockipc.Listen(); err == nil || !strings.Contains(err.Error(), "another iscsid or goiscsid serves this network namespace") {
		t.Errorf("second Listen: %v", err)
	}
	e.srv = &stockipc.Server{Handler: e}
	e.uid = e.srv.FakePeerUID()
	e.srv.SetTap(func(b []byte) {
		e.mu.Lock()
		e.raw = append(e.raw, bytes.Clone(b))
		e.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	// Records made by stock iscsiadm itself: one with CHAP both ways,
	// digests, timeouts and manual scan; one on an IPv6 portal; one through
	// an iface whose name makes it IPv6 (stock then lists the IPv6 keys).
	e.must("-m", "node", "-o", "new", "-T", tgt1, "-p", "127.0.0.1:3260")
	for _, kv := range [][2]string{
		{"node.session.auth.authmethod", "CHAP"},
		{"node.session.auth.username", "alice"},
		{"node.session.auth.password", "s3cret-passw0rd"},
		{"node.session.auth.username_in", "target-bob"},
		{"node.session.auth.password_in", "t4rget-secret"},
		{"node.session.auth.chap_algs", "SHA256,MD5"},
		{"node.conn[0].iscsi.HeaderDigest", "CRC32C,None"},
		{"node.conn[0].iscsi.DataDigest", "CRC32C"},
		{"node.session.timeo.replacement_timeout", "15"},
		{"node.conn[0].timeo.login_timeout", "7"},
		{"node.session.scan", "manual"},
		{"node.startup", "automatic"},
		{"node.session.nr_sessions", "1"},
		{"node.session.iscsi.FastAbort", "No"},
	} {
		e.must("-m", "node", "-T", tgt1, "-p", "127.0.0.1:3260", "-o", "update", "-n", kv[0], "-v", kv[1])
	}
	e.must("-m", "node", "-o", "new", "-T", tgt2, "-p", "[::1]:3260")
	e.must("-m", "iface", "-I", "ipv6-test", "-o", "new")
	e.must("-m", "node", "-o", "new", "-T", tgt3, "-p", "[fd00::2]:3260", "-I", "ipv6-test")
	// A new record takes its defaults from the iscsid.conf whose path
	// iscsid names (CONFIG_FILE); without the answer stock would silently
	// use its built-in defaults.
	raw, reqs := e.take()
	if !slices.ContainsFunc(reqs, func(r *stockipc.Request) bool { return r.Command == stockipc.CmdConfigFile }) {
		t.Errorf("-o new sent %v, no CONFIG_FILE", commands(reqs))
	}
	e.golden("config-file", raw, reqs, "", "")

	records := map[string]string{ // target → its record file
		tgt1: filepath.Join(e.etc, "nodes", tgt1, "127.0.0.1,3260"),
		tgt2: filepath.Join(e.etc, "nodes", tgt2, "::1,3260"),
		tgt3: filepath.Join(e.etc, "nodes", tgt3, "fd00::2,3260"),
	}

	t.Run("login", func(t *testing.T) {
		e.t = t
		out := e.must("-m", "node", "-T", tgt1, "-p", "127.0.0.1:3260", "--login")
		want := "Login to [iface: default, target: " + tgt1 + ", portal: 127.0.0.1,3260] successful."
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q lacks %q", out, want)
		}
		raw, reqs := e.take()
		login := findLogin(t, raw, reqs, tgt1)
		checkAgainstFile(t, login, records[tgt1])
		if got := login.Record["node.session.cmds_max"]; got != "64" {
			t.Errorf("node.session.cmds_max = %q: the record was not made from iscsid.conf", got)
		}
		if login.Record["node.session.auth.password"] != "s3cret-passw0rd" {
			t.Errorf("password did not come through")
		}
		e.golden("login-chap", raw, reqs, tgt1, records[tgt1])
	})

	t.Run("login-all", func(t *testing.T) {
		e.t = t
		out := e.must("-m", "node", "-L", "all")
		raw, reqs := e.take()
		for _, tgt := range []string{tgt1, tgt2, tgt3} {
			if !strings.Contains(out, "target: "+tgt+",") {
				t.Errorf("stdout %q does not mention %s", out, tgt)
			}
			checkAgainstFile(t, findLogin(t, raw, reqs, tgt), records[tgt])
		}
		if login := findLogin(t, raw, reqs, tgt3); login.Record["iface.ipv6_autocfg"] != "" || !hasKey(login, "iface.hop_limit") || hasKey(login, "iface.bootproto") {
			t.Errorf("the ipv6-test iface's record lacks the IPv6 keys or has the IPv4 ones: %v", login.Record)
		}
		e.golden("login-ipv6-portal", raw, reqs, tgt2, records[tgt2])
		e.golden("login-ipv6-iface", raw, reqs, tgt3, records[tgt3])
	})

	t.Run("auth-failure", func(t *testing.T) {
		e.t = t
		e.setAnswer(func(*stockipc.Request) *stockipc.Response { return &stockipc.Response{Err: 24} })
		defer e.setAnswer(nil)
		_, errOut, code := e.iscsiadm("-m", "node", "-T", tgt2, "-p", "[::1]:3260", "--login")
		if code != 24 || !strings.Contains(errOut, "initiator reported error (24 - iSCSI login failed due to authorization failure)") {
			t.Errorf("exit %d, stderr %q; want 24 and the authorization failure", code, errOut)
		}
		e.take()
	})

	t.Run("access-denied", func(t *testing.T) {
		e.t = t
		e.uid.Store(1000)
		defer e.uid.Store(0)
		_, errOut, code := e.iscsiadm("-m", "node", "-T", tgt2, "-p", "[::1]:3260", "--login")
		if code != 13 || !strings.Contains(errOut, "(13 - daemon access denied)") {
			t.Errorf("exit %d, stderr %q; want 13, daemon access denied", code, errOut)
		}
		if _, reqs := e.take(); len(reqs) != 0 {
			t.Errorf("the handler saw %d requests of a peer that is not root", len(reqs))
		}
	})

	t.Run("unknown-size", func(t *testing.T) {
		e.t = t
		restore := stockipc.ForgetSize(16104)
		defer restore()
		start := time.Now()
		_, errOut, code := e.iscsiadm("-m", "node", "-T", tgt2, "-p", "[::1]:3260", "--login")
		if code != 16 || !strings.Contains(errOut, "(16 - Unknown request)") {
			t.Errorf("exit %d, stderr %q; want 16, Unknown request", code, errOut)
		}
		// The server waits the settle time once per request (CONFIG_FILE
		// and the login) and no longer.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("iscsiadm took %v for an unknown-size answer", d)
		}
		if raw, reqs := e.take(); len(reqs) != 0 || len(raw) == 0 {
			t.Errorf("handler saw %d requests of unknown size, tap %d", len(reqs), len(raw))
		}
	})

	t.Run("no-session", func(t *testing.T) {
		// Without a kernel session, logout, -m session, -P 1 and -s end in
		// iscsiadm itself (it walks sysfs first): 21, and no request.
		e.t = t
		for _, args := range [][]string{
			{"-m", "node", "-T", tgt1, "-p", "127.0.0.1:3260", "--logout"},
			{"-m", "session", "-P", "1"},
			{"-m", "session", "-s"},
		} {
			_, errOut, code := e.iscsiadm(args...)
			if code != 21 {
				t.Errorf("iscsiadm %s: exit %d (stderr %q), want 21", strings.Join(args, " "), code, errOut)
			}
		}
		_, reqs := e.take()
		for _, r := range reqs {
			if r.Command != stockipc.CmdConfigFile {
				t.Errorf("without sessions iscsiadm sent %v", r.Command)
			}
		}
	})

	t.Run("stop", func(t *testing.T) {
		e.t = t
		e.must("-k", "0")
		raw, reqs := e.take()
		if len(reqs) != 1 || reqs[0].Command != stockipc.CmdImmediateStop {
			t.Fatalf("-k 0 sent %v", commands(reqs))
		}
		e.golden("immediate-stop", raw, reqs, "", "")
	})
}

func commands(reqs []*stockipc.Request) []string {
	var s []string
	for _, r := range reqs {
		s = append(s, r.Command.String())
	}
	return s
}

func hasKey(r *stockipc.Request, k string) bool {
	_, ok := r.Record[k]
	return ok
}

func findLogin(t *testing.T, raw [][]byte, reqs []*stockipc.Request, target string) *stockipc.Request {
	t.Helper()
	for _, r := range reqs {
		if r.Command == stockipc.CmdSessionLogin && r.Record["node.name"] == target {
			if r.Size != 16104 {
				t.Errorf("Debian's 2.1.8 sent %d bytes, not 16104", r.Size)
			}
			return r
		}
	}
	t.Fatalf("no SESSION_LOGIN for %s among %v (%d raw)", target, commands(reqs), len(raw))
	return nil
}

// golden writes, with -update, the raw request of the first request for
// target (or the first CONFIG_FILE / IMMEDIATE_STOP for "") and the record
// file stock wrote for it into testdata.
func (e *stockEnv) golden(name string, raw [][]byte, reqs []*stockipc.Request, target, record string) {
	if e.c.Golden == "" {
		return
	}
	for _, b := range raw {
		r, err := stockipc.DecodeRequest(b)
		if err != nil {
			continue
		}
		if target != "" && (r.Command != stockipc.CmdSessionLogin || r.Record["node.name"] != target) {
			continue
		}
		if target == "" && !strings.Contains(name, strings.ToLower(strings.ReplaceAll(r.Command.String(), "_", "-"))) {
			continue
		}
		os.MkdirAll(e.c.Golden, 0o755)
		if err := os.WriteFile(filepath.Join(e.c.Golden, name+".req"), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
		if record != "" {
			rec, err := os.ReadFile(record)
			if err != nil {
				e.t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(e.c.Golden, name+".record"), rec, 0o644); err != nil {
				e.t.Fatal(err)
			}
		}
		return
	}
	e.t.Errorf("golden %s: no such request among %v", name, commands(reqs))
}

// parseRecordFile reads a stock node record file: key = value lines between
// "# BEGIN RECORD" and "# END RECORD".
func parseRecordFile(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			t.Fatalf("record line %q is not key = value", line)
		}
		m[k] = v
	}
	return m
}

// checkAgainstFile says whether req's record is the record file stock wrote:
// every key of the file with its value, and every other key of the request
// empty (stock writes no line for an empty string).
func checkAgainstFile(t *testing.T, req *stockipc.Request, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	compareRecord(t, req.Record, parseRecordFile(t, b))
}

func compareRecord(t *testing.T, got, file map[string]string) {
	t.Helper()
	for _, s := range recordDiff(got, file) {
		t.Error(s)
	}
	if len(file) < 60 {
		t.Errorf("record file has only %d keys", len(file))
	}
}

// recordDiff lists how a decoded record differs from a record file.
func recordDiff(got, file map[string]string) []string {
	var bad []string
	for k, v := range file {
		if g, ok := got[k]; !ok || g != v {
			if stockipc.IsSecretKey(k) {
				v, g = "(secret)", "(differs)"
			}
			bad = append(bad, fmt.Sprintf("%s: file %q, request %q (present %v)", k, v, g, ok))
		}
	}
	for k, v := range got {
		if _, ok := file[k]; !ok && v != "" {
			bad = append(bad, fmt.Sprintf("%s: request %q, not in the file", k, v))
		}
	}
	slices.Sort(bad)
	return bad
}
