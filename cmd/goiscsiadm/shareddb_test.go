package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/stockipc"
	"github.com/goiscsi/goiscsi/test/stock"
)

// One node database for both tools: Debian's stock iscsiadm 2.1.8 and
// goiscsiadm on one scratch /etc/iscsi, each reading, updating and deleting
// what the other wrote, layouts kept; goiscsi's own key never in a file stock
// reads, kept through stock's updates and not given to a record stock deletes
// and makes again; -p ADDR:PORT,TPGT finding a record whatever its tpgt; a
// stray entry warned about and skipped by both.
func TestSharedNodeDatabase(t *testing.T) {
	root := stock.Root(t)
	stock.InNamespace(t, func(t *testing.T, etc string) {
		os.WriteFile(filepath.Join(etc, "initiatorname.iscsi"), []byte("InitiatorName=iqn.1993-08.org.debian:01:shared\n"), 0o600)
		os.WriteFile(filepath.Join(etc, "iscsid.conf"), []byte("node.startup = manual\n"), 0o600)
		// Stock asks its daemon for iscsid.conf's path when it makes a
		// record; answer as goiscsid does, so it never tries to start one.
		ln, err := stockipc.Listen()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go (&stockipc.Server{Handler: stockipc.HandlerFunc(func(_ context.Context, r *stockipc.Request) *stockipc.Response {
			if r.Command == stockipc.CmdConfigFile {
				return &stockipc.Response{Config: "/etc/iscsi/iscsid.conf"}
			}
			return &stockipc.Response{}
		})}).Serve(ctx, ln)
		t.Setenv("GOISCSI_ROOT", "/etc/iscsi")
		t.Setenv("GOISCSI_SYSFS", t.TempDir())
		t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))

		st := func(args ...string) (string, string, int) { return stock.Iscsiadm(t, root, args...) }
		stockOK := func(args ...string) string {
			t.Helper()
			out, errOut, code := st(args...)
			if code != 0 {
				t.Fatalf("stock iscsiadm %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
			}
			return out
		}
		goOK := func(args ...string) string {
			t.Helper()
			x := adm(t, args...)
			if x.Code != 0 {
				t.Fatalf("goiscsiadm %s: exit %d\n%s%s", strings.Join(args, " "), x.Code, x.Stdout, x.Stderr)
			}
			return x.Stdout
		}
		const t1, t2 = "iqn.2003-01.org.example:shared-1", "iqn.2003-01.org.example:shared-2"
		nodes := filepath.Join(etc, "nodes")

		// A record stock made without a tpgt: its plain file, kept so.
		stockOK("-m", "node", "-o", "new", "-T", t1, "-p", "10.0.0.1:3260")
		plain := filepath.Join(nodes, t1, "10.0.0.1,3260")
		if fi, err := os.Stat(plain); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("stock's record is not the plain file %s: %v", plain, err)
		}
		if out, sout := goOK("-m", "node"), stockOK("-m", "node"); out != "10.0.0.1:3260,4294967295 "+t1+"\n" || out != sout {
			t.Errorf("goiscsiadm -m node: %q, stock %q", out, sout)
		}
		goOK("-m", "node", "-T", t1, "-p", "10.0.0.1", "-o", "update", "-n", "node.startup", "-v", "automatic")
		goOK("-m", "node", "-T", t1, "-p", "10.0.0.1", "-o", "update", "-n", "node.session.autoscan_en", "-v", "No")
		if fi, err := os.Stat(plain); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("goiscsiadm's update changed the layout: %v", err)
		}
		if b, _ := os.ReadFile(plain); strings.Contains(string(b), "autoscan_en") {
			t.Errorf("goiscsi's own key in the record file stock reads:\n%s", b)
		}
		if out := stockOK("-m", "node", "-T", t1, "-p", "10.0.0.1"); !strings.Contains(out, "node.startup = automatic\n") {
			t.Errorf("stock does not read goiscsiadm's update:\n%s", out)
		}
		stockOK("-m", "node", "-T", t1, "-p", "10.0.0.1", "-o", "update", "-n", "node.session.timeo.replacement_timeout", "-v", "30")
		if out := goOK("-m", "node", "-T", t1, "-p", "10.0.0.1"); !strings.Contains(out, "node.session.timeo.replacement_timeout = 30\n") ||
			!strings.Contains(out, "node.session.autoscan_en = No\n") {
			t.Errorf("stock's update lost, or goiscsi's own key lost through it:\n%s", out)
		}
		// Stock deletes the record and makes it again: the new record is
		// not the one goiscsi's key was set on, and has none of its own (a
		// login takes iscsid.conf's).
		stockOK("-m", "node", "-T", t1, "-p", "10.0.0.1", "-o", "delete")
		stockOK("-m", "node", "-o", "new", "-T", t1, "-p", "10.0.0.1:3260")
		own := filepath.Join(etc, "goiscsi", "nodes", t1, "10.0.0.1,3260")
		if _, err := os.Stat(own); err != nil {
			t.Fatalf("the own keys stock cannot know of are gone already: %v", err)
		}
		if x := adm(t, "-m", "node", "-T", t1, "-p", "10.0.0.1"); x.Code != 0 || strings.Contains(x.Stdout, "node.session.autoscan_en = No\n") ||
			!strings.Contains(x.Stderr, t1+"/10.0.0.1,3260") || !strings.Contains(x.Stderr, "ignored") {
			t.Errorf("a record stock made again, read with the old record's own keys: exit %d\n%s%s", x.Code, x.Stdout, x.Stderr)
		}
		goOK("-m", "node", "-T", t1, "-p", "10.0.0.1", "-o", "update", "-n", "node.startup", "-v", "automatic")
		if _, err := os.Stat(own); !os.IsNotExist(err) {
			t.Errorf("the old record's own keys survive goiscsi's next write: %v", err)
		}
		if x := adm(t, "-m", "node", "-T", t1, "-p", "10.0.0.1"); x.Code != 0 || x.Stderr != "" || strings.Contains(x.Stdout, "node.session.autoscan_en = No\n") {
			t.Errorf("after goiscsi's write: exit %d\n%s%s", x.Code, x.Stdout, x.Stderr)
		}

		// A record goiscsiadm made with a tpgt: stock's directory layout.
		goOK("-m", "node", "-o", "new", "-T", t2, "-p", "10.0.0.2:3260,7")
		if _, err := os.Stat(filepath.Join(nodes, t2, "10.0.0.2,3260,7", "default")); err != nil {
			t.Fatalf("goiscsiadm's record is not where stock keeps it: %v", err)
		}
		if out := stockOK("-m", "node"); !strings.Contains(out, "10.0.0.2:3260,7 "+t2+"\n") || !strings.Contains(out, t1) {
			t.Errorf("stock -m node:\n%s", out)
		}
		stockOK("-m", "node", "-T", t2, "-p", "10.0.0.2", "-o", "update", "-n", "node.session.queue_depth", "-v", "16")
		if out := goOK("-m", "node", "-T", t2); !strings.Contains(out, "node.session.queue_depth = 16\n") {
			t.Errorf("goiscsiadm does not read stock's update:\n%s", out)
		}

		// -p ADDR:PORT,TPGT, as -m session prints portals, whatever the
		// record's tpgt.
		goOK("-m", "node", "-T", t1, "-p", "10.0.0.1:3260,1", "-o", "update", "-n", "node.startup", "-v", "manual")
		if out := stockOK("-m", "node", "-T", t1, "-p", "10.0.0.1"); !strings.Contains(out, "node.startup = manual\n") {
			t.Errorf("update through -p ADDR:PORT,TPGT:\n%s", out)
		}

		// A stray entry: both warn and go on.
		os.WriteFile(filepath.Join(nodes, t2, "junk"), []byte("x\n"), 0o600)
		x := adm(t, "-m", "node")
		if x.Code != 0 || strings.Count(x.Stdout, "\n") != 2 || !strings.Contains(x.Stderr, "junk") {
			t.Errorf("goiscsiadm with a stray entry: %d %q %q", x.Code, x.Stdout, x.Stderr)
		}
		if out, _, code := st("-m", "node"); code != 0 || !strings.Contains(out, t1) || !strings.Contains(out, t2) {
			t.Errorf("stock with a stray entry: %d %q", code, out)
		}
		os.Remove(filepath.Join(nodes, t2, "junk"))

		// Each deletes what the other made.
		goOK("-m", "node", "-T", t1, "-p", "10.0.0.1:3260,1", "-o", "delete")
		if _, err := os.Stat(filepath.Join(etc, "goiscsi", "nodes", t1)); !os.IsNotExist(err) {
			t.Errorf("goiscsi's own keys left after the delete: %v", err)
		}
		stockOK("-m", "node", "-T", t2, "-p", "10.0.0.2", "-o", "delete")
		if x := adm(t, "-m", "node"); x.Code != 21 {
			t.Errorf("after both deletes: %d %q", x.Code, x.Stdout)
		}
		if _, _, code := st("-m", "node"); code != 21 {
			t.Errorf("stock after both deletes: exit %d", code)
		}
	})
}
