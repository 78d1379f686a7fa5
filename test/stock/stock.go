// Package stock runs Debian's own open-iscsi iscsiadm (2.1.8 on Debian 12) in
// tests: the reference goiscsi's tools are checked against. Root fetches and
// unpacks the packages once; InNamespace runs a test's body in a network and
// mount namespace of its own, with a scratch directory as /etc/iscsi, so that
// stock iscsiadm reads and writes that database, and its abstract socket is the
// test's alone.
package stock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// packages are what Debian's iscsiadm needs beyond a base system.
var packages = []string{"open-iscsi", "libopeniscsiusr", "libisns0"}

// Root returns a directory holding Debian's open-iscsi packages unpacked,
// fetched once with apt-get into $GOISCSI_CACHE/stock-iscsiadm (default
// ~/.cache/goiscsi/stock-iscsiadm), so that reruns are offline. When they
// cannot be had or do not run here, it fails the test as root, which CI runs
// as: a CI run must never go green without the reference having run. Not
// root, it skips instead, because fetching may need what only root has (apt-get
// update for a machine without package lists).
func Root(t testing.TB) string {
	t.Helper()
	cache := os.Getenv("GOISCSI_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			unavailable(t, "no $GOISCSI_CACHE and no home directory for the stock iscsiadm cache: %v", err)
		}
		cache = filepath.Join(home, ".cache", "goiscsi")
	}
	dir := filepath.Join(cache, "stock-iscsiadm")
	if _, err := os.Stat(filepath.Join(dir, "sbin", "iscsiadm")); err != nil {
		fetch(t, dir)
	}
	cmd := exec.Command(filepath.Join(dir, "sbin", "iscsiadm"), "--version")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+LibPath(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, "Debian's iscsiadm (%s) does not run here: %v\n%s", dir, err, out)
	}
	return dir
}

// unavailable ends a test that cannot have Debian's iscsiadm: a failure as
// root, a skip otherwise (see Root).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Geteuid() == 0 {
		t.Fatalf("%s\nthis test runs Debian's stock iscsiadm 2.1.8 as the reference and must not pass without it: "+
			"give the machine network access to a Debian 12 mirror (apt-get download %s), or unpack those packages into $GOISCSI_CACHE/stock-iscsiadm (default ~/.cache/goiscsi/stock-iscsiadm)",
			msg, strings.Join(packages, " "))
	}
	t.Skipf("%s (not root: skipped; as root, which CI runs as, this fails)", msg)
}

func fetch(t testing.TB, dir string) {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "cannot fetch Debian's iscsiadm: no %s: %v", tool, err)
		}
	}
	dl := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	download := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download"}, packages...)...)
		cmd.Dir = dl
		return cmd.CombinedOutput()
	}
	if _, err := download(); err != nil {
		// A fresh machine has no package lists yet.
		if uout, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			unavailable(t, "cannot fetch Debian's iscsiadm: apt-get update: %v\n%s", uerr, uout)
		}
		if out, err := download(); err != nil {
			unavailable(t, "cannot fetch Debian's iscsiadm: apt-get download %s: %v\n%s", strings.Join(packages, " "), err, out)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
}

// LibPath is the LD_LIBRARY_PATH that finds the packages' own libraries
// under root; the rest (libssl3, libkmod2, libmount1) are a Debian base
// system's.
func LibPath(root string) string {
	return filepath.Join(root, "usr", "lib", "x86_64-linux-gnu") + ":" + filepath.Join(root, "lib", "x86_64-linux-gnu")
}

// childEnv marks the namespaced half of an InNamespace test: it holds the
// scratch directory.
const childEnv = "GOISCSI_STOCK_NAMESPACE"

// InNamespace runs body in a network and mount namespace of its own (the test
// binary re-executed under unshare, running this test alone), with a fresh
// scratch directory bound over /etc/iscsi and /run/lock its own. Not root, the
// namespaces are under a user namespace of its own where the test is root
// (unshare --map-root-user), which is all stock iscsiadm and its peer check
// need; it skips only where neither root nor unprivileged user namespaces are
// to be had. It returns in the parent once the child passed (or fails the
// test with the child's output). In the child it returns after body.
func InNamespace(t *testing.T, body func(t *testing.T, etc string)) {
	t.Helper()
	if scratch := os.Getenv(childEnv); scratch != "" {
		body(t, setup(t, scratch))
		return
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		// As root (CI) that is a broken machine, not a reason to pass.
		if os.Geteuid() == 0 {
			t.Fatalf("needs unshare (util-linux) to run Debian's iscsiadm apart: %v", err)
		}
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	args := []string{"--net", "--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		args = append([]string{"--user", "--map-root-user"}, args...)
		if out, err := exec.Command("unshare", append(args, "true")...).CombinedOutput(); err != nil {
			t.Skipf("not root, and no unprivileged user namespace to be root in (unshare --user --map-root-user): %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append(args, "--",
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("the namespaced half failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatal("the namespaced half did not pass")
	}
}

// setup makes this (namespaced) process's /etc/iscsi and /run/lock the
// scratch directory's and returns the /etc/iscsi directory.
func setup(t *testing.T, scratch string) string {
	etc := filepath.Join(scratch, "etc")
	lock := filepath.Join(scratch, "lock")
	for _, d := range []string{etc, filepath.Join(lock, "iscsi")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/etc/iscsi"); err != nil {
		// No mount point: give /etc an overlay whose upper layer is
		// scratch, so that creating one leaves the host's /etc alone.
		up, work := filepath.Join(scratch, "etc-up"), filepath.Join(scratch, "etc-work")
		os.MkdirAll(up, 0o755)
		os.MkdirAll(work, 0o755)
		if err := unix.Mount("overlay", "/etc", "overlay", 0, "lowerdir=/etc,upperdir="+up+",workdir="+work); err != nil {
			t.Skipf("no /etc/iscsi to mount over, and no overlay on /etc: %v", err)
		}
		if err := os.Mkdir("/etc/iscsi", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(etc, "/etc/iscsi", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over /etc/iscsi: %v", etc, err)
	}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(lock, "/run/lock", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over /run/lock: %v", lock, err)
	}
	return etc
}

// Iscsiadm runs Debian's iscsiadm from root with args and returns its output
// and exit status; one that runs 30 s is a hang and fails the test.
func Iscsiadm(t testing.TB, root string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "sbin", "iscsiadm"), args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+LibPath(root))
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("iscsiadm %s: still running after 30 s (hung): stdout %q stderr %q", strings.Join(args, " "), o.String(), s.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("iscsiadm %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), s.String(), code
}
