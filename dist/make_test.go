// Package dist holds what installs goiscsi on a host: systemd units
// (dist/systemd) and the Debian package's maintainer scripts (dist/debian).
// Its tests run the Makefile's install and uninstall into a staging tree;
// test/vm installs the Debian package on a systemd-booted Debian.
package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runMake runs make in the repository with args, returning its output and
// whether it succeeded.
func runMake(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", append([]string{"--no-print-directory", "-C", ".."}, args...)...).CombinedOutput()
	return string(out), err == nil
}

func TestInstallUninstall(t *testing.T) {
	dest := t.TempDir()
	// An iscsid.conf already there (open-iscsi's) must survive.
	etc := filepath.Join(dest, "etc/iscsi")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "iscsid.conf"), []byte("# the host's own\n"), 0o600)

	vars := []string{"DESTDIR=" + dest, "PREFIX=/usr/local"}
	if out, ok := runMake(t, append([]string{"install", "ISCSIADM_ALIAS=1"}, vars...)...); !ok {
		t.Fatalf("make install: %s", out)
	}
	for _, p := range []string{"goiscsid", "goiscsiadm", "goiscsi-iname"} {
		if fi, err := os.Stat(filepath.Join(dest, "usr/local/sbin", p)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("program %s: %v", p, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "usr/local/sbin/iscsiadm")); err != nil || l != "goiscsiadm" {
		t.Errorf("iscsiadm alias: %q %v", l, err)
	}
	// The units run the programs where PREFIX put them.
	units := filepath.Join(dest, "usr/local/lib/systemd/system")
	for unit, want := range map[string]string{
		"goiscsid.service": "ExecStart=/usr/local/sbin/goiscsid\n",
		"goiscsi.service":  "ExecStart=/usr/local/sbin/goiscsiadm -m node --loginall=automatic\n",
		"goiscsid.socket":  "ListenStream=/run/goiscsid/goiscsid.sock\n",
	} {
		b, err := os.ReadFile(filepath.Join(units, unit))
		if err != nil || !strings.Contains(string(b), want) || strings.Contains(string(b), "/usr/sbin/") {
			t.Errorf("%s: want %q and no /usr/sbin/ path (%v)", unit, want, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(etc, "iscsid.conf")); string(b) != "# the host's own\n" {
		t.Errorf("make install replaced the existing iscsid.conf: it begins %q", b[:min(len(b), 40)])
	}
	if _, err := os.Stat(filepath.Join(etc, "initiatorname.iscsi")); !os.IsNotExist(err) {
		t.Errorf("make install wrote an initiator name into DESTDIR (%v): every host installed from it would share it", err)
	}

	if out, ok := runMake(t, append([]string{"uninstall"}, vars...)...); !ok {
		t.Fatalf("make uninstall: %s", out)
	}
	for _, p := range []string{"usr/local/sbin/goiscsid", "usr/local/sbin/iscsiadm", "usr/local/lib/systemd/system/goiscsid.service",
		"usr/local/share/goiscsi"} {
		if _, err := os.Lstat(filepath.Join(dest, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after make uninstall", p)
		}
	}
	if _, err := os.Stat(filepath.Join(etc, "iscsid.conf")); err != nil {
		t.Errorf("make uninstall removed /etc/iscsi: %v", err)
	}
}

// A fresh DESTDIR gets iscsid.conf from iscsid.conf.example, mode 0600 (it may
// hold CHAP secrets).
func TestInstallConfig(t *testing.T) {
	dest := t.TempDir()
	if out, ok := runMake(t, "install", "DESTDIR="+dest); !ok {
		t.Fatalf("make install: %s", out)
	}
	got, err := os.ReadFile(filepath.Join(dest, "etc/iscsi/iscsid.conf"))
	want, _ := os.ReadFile("../iscsid.conf.example")
	if err != nil || string(got) != string(want) {
		t.Fatalf("iscsid.conf is not iscsid.conf.example (%v)", err)
	}
	if fi, _ := os.Stat(filepath.Join(dest, "etc/iscsi/iscsid.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("iscsid.conf mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dest, "usr/lib/systemd/system/goiscsi.service")); err != nil {
		t.Errorf("default PREFIX=/usr: %v", err)
	}
}

// The alias never replaces an iscsiadm that is not goiscsi's (open-iscsi's).
func TestAliasKeepsStockIscsiadm(t *testing.T) {
	dest := t.TempDir()
	sbin := filepath.Join(dest, "usr/sbin")
	os.MkdirAll(sbin, 0o755)
	os.WriteFile(filepath.Join(sbin, "iscsiadm"), []byte("#!/bin/sh\necho stock\n"), 0o755)
	out, ok := runMake(t, "install", "ISCSIADM_ALIAS=1", "DESTDIR="+dest)
	if ok || !strings.Contains(out, "/usr/sbin/iscsiadm exists") {
		t.Fatalf("make install ISCSIADM_ALIAS=1 over a stock iscsiadm: ok=%v\n%s", ok, out)
	}
	if b, _ := os.ReadFile(filepath.Join(sbin, "iscsiadm")); string(b) != "#!/bin/sh\necho stock\n" {
		t.Errorf("stock iscsiadm changed: %q", b)
	}
}

// The package puts goiscsiadm where open-iscsi's iscsiadm is (preinst diverts
// that one), and its maintainer scripts are the repository's.
func TestDebContents(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb")
	}
	out := t.TempDir()
	if msg, ok := runMake(t, "deb", "DEBOUT="+out); !ok {
		t.Fatalf("make deb: %s", msg)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "goiscsi_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("packages: %v", debs)
	}
	list, err := exec.Command("dpkg-deb", "-c", debs[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v %s", err, list)
	}
	for _, want := range []string{"./sbin/iscsiadm -> /usr/sbin/goiscsiadm", "./usr/bin/iscsiadm -> /usr/sbin/goiscsiadm", "./usr/sbin/goiscsid"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("package lacks %q:\n%s", want, list)
		}
	}
	ctrl := t.TempDir()
	if msg, err := exec.Command("dpkg-deb", "-e", debs[0], ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v %s", err, msg)
	}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		got, _ := os.ReadFile(filepath.Join(ctrl, s))
		want, _ := os.ReadFile(filepath.Join("debian", s))
		if len(got) == 0 || string(got) != string(want) {
			t.Errorf("%s in the package differs from dist/debian/%s", s, s)
		}
	}
}
