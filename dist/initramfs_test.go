package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallInitramfsTools: make install puts goiscsistart and the
// initramfs-tools hook and local-top script where initramfs-tools looks
// (PREFIX/share/initramfs-tools), executable, calling goiscsistart where
// SBINDIR put it, and valid sh; make uninstall takes them away.
func TestInstallInitramfsTools(t *testing.T) {
	dest := t.TempDir()
	vars := []string{"DESTDIR=" + dest, "PREFIX=/usr/local"}
	if out, ok := runMake(t, append([]string{"install-files"}, vars...)...); !ok {
		t.Fatalf("make install-files: %s", out)
	}
	if fi, err := os.Stat(filepath.Join(dest, "usr/local/sbin/goiscsistart")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("goiscsistart: %v", err)
	}
	dir := filepath.Join(dest, "usr/local/share/initramfs-tools")
	for _, f := range []string{"hooks/goiscsi", "scripts/local-top/goiscsi"} {
		p := filepath.Join(dir, f)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v (want mode 0755)", f, err)
			continue
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v %s", f, err, out)
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "/usr/sbin/") {
			t.Errorf("%s still names /usr/sbin/ with SBINDIR=/usr/local/sbin", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hooks/goiscsi")); !strings.Contains(string(b), "copy_exec /usr/local/sbin/goiscsistart /sbin") {
		t.Errorf("the hook does not copy goiscsistart from SBINDIR:\n%s", b)
	}
	if out, ok := runMake(t, append([]string{"uninstall"}, vars...)...); !ok {
		t.Fatalf("make uninstall: %s", out)
	}
	for _, f := range []string{"hooks/goiscsi", "scripts/local-top/goiscsi"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s still there after make uninstall", f)
		}
	}
}
