package vm

import (
	"compress/gzip"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// InitiatorName is the fixed initiator IQN of the guest (/etc/iscsi/initiatorname.iscsi).
const InitiatorName = "iqn.2026-11.dev.goiscsi:initiator"

// stockBinaries are the ELF programs copied from the extracted packages, with every
// library they need. iproute2's ip makes veth pairs and network namespaces, which
// busybox's cannot; rdma makes the soft-RoCE device of the iser scenario.
var stockBinaries = []string{"/sbin/iscsid", "/sbin/iscsiadm", "/sbin/iscsi-iname", "/sbin/tc", "/bin/ss", "/bin/ip",
	"/sbin/multipath", "/sbin/multipathd", "/sbin/dmsetup", "/usr/sbin/isnsd", "/usr/sbin/isnsadm",
	"/usr/bin/rdma"}

// pluginGlobs are shared objects programs load with dlopen, which ELF headers do not
// name: multipath's path checkers and prioritizers, and libgcc_s, which glibc loads
// for pthread_cancel (multipathd stops its threads with it).
var pluginGlobs = []string{"/lib/multipath/*.so", "/lib/x86_64-linux-gnu/libgcc_s.so.1"}

// libDirs is where the dynamic loader of the guest looks, in the extracted root too.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// buildBase writes a.BaseInitrd: the invariant part of every guest's initramfs.
func buildBase(a *Assets) error {
	tmp := a.BaseInitrd + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCpio(zw)

	// Files from packages win over busybox applet links of the same name (tc).
	files := map[string]string{} // guest path -> host path
	for _, b := range stockBinaries {
		if err := addELF(a.Root, b, files); err != nil {
			return err
		}
	}
	for _, g := range pluginGlobs {
		found, _ := filepath.Glob(filepath.Join(a.Root, g))
		if len(found) == 0 {
			return fmt.Errorf("vm: no %s in the extracted packages", g)
		}
		for _, so := range found {
			if err := addELF(a.Root, "/"+strings.TrimPrefix(so, a.Root+"/"), files); err != nil {
				return err
			}
		}
	}
	dists, _ := filepath.Glob(filepath.Join(a.Root, "usr/lib/x86_64-linux-gnu/tc/*.dist"))
	for _, d := range dists {
		files["/usr/lib/x86_64-linux-gnu/tc/"+filepath.Base(d)] = d
	}
	files["/etc/iscsi/iscsid.conf"] = filepath.Join(a.Root, "etc/iscsi/iscsid.conf")
	mods, err := filepath.Glob(filepath.Join(a.Dir, "modules", "*"))
	if err != nil || len(mods) == 0 {
		return fmt.Errorf("vm: no modules prepared in %s", filepath.Join(a.Dir, "modules"))
	}
	for _, m := range mods {
		files["/lib/modules/goiscsi/"+filepath.Base(m)] = m
	}

	bb := filepath.Join(a.Root, "bin/busybox")
	if ef, err := elf.Open(bb); err != nil {
		return fmt.Errorf("vm: busybox-static: %w", err)
	} else {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				ef.Close()
				return fmt.Errorf("vm: %s is not static", bb)
			}
		}
		ef.Close()
	}
	out, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("vm: %s --list-full: %w", bb, err)
	}
	links := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		p := "/" + strings.TrimPrefix(l, "/")
		if path.Base(p) == "busybox" || files[p] != "" {
			continue // a self-link loops (ELOOP); a real program of that name wins
		}
		links[p] = true
	}

	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
		"/proc", "/sys", "/dev", "/run/lock/iscsi", "/var/lib/iscsi", "/var/log", "/root", "/mnt", "/etc/iscsi"} {
		c.Dir(d, 0o755)
	}
	c.Dir("/tmp", 0o1777)
	c.CharDev("/dev/console", 0o600, 5, 1)
	c.CharDev("/dev/null", 0o666, 1, 3)
	c.HostFile("/bin/busybox", bb)
	for _, p := range sortedKeys(links) {
		c.Symlink(p, "/bin/busybox")
	}
	for _, p := range sortedKeys(files) {
		c.HostFile(p, files[p])
	}
	var boot []string
	for _, m := range Modules {
		if m.Boot {
			boot = append(boot, strings.ReplaceAll(m.Name, "-", "_"))
		}
	}
	c.File("/lib/modules/goiscsi/boot.list", 0o644, []byte(strings.Join(boot, "\n")+"\n"))
	c.File("/etc/iscsi/initiatorname.iscsi", 0o644, []byte("InitiatorName="+InitiatorName+"\n"))
	c.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	c.File("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	c.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	c.File("/etc/hostname", 0o644, []byte("goiscsi-vm\n"))
	c.File("/etc/goiscsi/kver", 0o644, []byte(a.KVer+"\n"))
	if err := c.Close(); err != nil {
		return fmt.Errorf("vm: base initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, a.BaseInitrd)
}

// addELF adds the program at guest path p (from root), its dynamic loader and every
// library it needs, transitively, to files.
func addELF(root, p string, files map[string]string) error {
	if files[p] != "" {
		return nil
	}
	host, err := inRoot(root, p)
	if err != nil {
		return err
	}
	files[p] = host
	ef, err := elf.Open(host)
	if err != nil {
		return fmt.Errorf("vm: %s: %w", p, err)
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return fmt.Errorf("vm: %s: interpreter: %w", p, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		if files[interp] == "" {
			ih, err := inRoot(root, interp)
			if err != nil {
				return fmt.Errorf("vm: loader of %s: %w (is libc6 among the downloaded packages?)", p, err)
			}
			files[interp] = ih
		}
	}
	libs, err := ef.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("vm: %s: %w", p, err)
	}
	for _, so := range libs {
		found := ""
		for _, d := range libDirs {
			if _, err := inRoot(root, d+"/"+so); err == nil {
				found = d + "/" + so
				break
			}
		}
		if found == "" {
			return fmt.Errorf("vm: %s needs %s, which no downloaded package provides", p, so)
		}
		if err := addELF(root, found, files); err != nil {
			return err
		}
	}
	return nil
}

// inRoot resolves guest path p inside the extracted tree root, following symbolic
// links (absolute ones relative to root), and returns the host path of the file.
func inRoot(root, p string) (string, error) {
	for range 40 {
		hp := filepath.Join(root, p)
		st, err := os.Lstat(hp)
		if err != nil {
			return "", fmt.Errorf("%s not in the extracted packages", p)
		}
		if st.Mode()&os.ModeSymlink == 0 {
			return hp, nil
		}
		t, err := os.Readlink(hp)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			p = t
		} else {
			p = path.Join(path.Dir(p), t)
		}
	}
	return "", fmt.Errorf("%s: too many symbolic links", p)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
