package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// prepVersion names the layout of a prepared kernel directory. Bump it when Prepare
// starts producing something different, so old caches are rebuilt rather than misread.
// Each version has a directory of its own: checkouts of different versions on one
// machine share the cache without rebuilding it under each other's running VMs.
const prepVersion = "goiscsi-vm-prep-11"

// rootPackages are the Debian packages whose files the guest needs, besides the
// kernel image and the libraries they link against (found by following Depends).
// multipath-tools and dmsetup are the reference for dm-multipath (the multipath
// scenario): maps built by multipath itself, and os-brick's `multipath -f`.
// open-isns-server and open-isns-utils are the iSNS server (isnsd) and the tool
// that registers targets in it (isnsadm), for the isns scenario.
var rootPackages = []string{"open-iscsi", "libopeniscsiusr", "libisns0", "iproute2", "busybox-static", "multipath-tools", "dmsetup",
	"open-isns-server", "open-isns-utils"}

// Modules are the kernel modules the guest may load, in the order init loads them.
// init loads every one whose Boot is true; the others (scsi_debug, multipath's) a scenario loads
// itself with `kmod_load NAME`, because loading them changes what the guest sees.
var Modules = []struct {
	Name string
	Boot bool
}{
	{"crc32c_generic", true}, // LIO's login fails without a crc32c implementation
	{"crc32c-intel", true},
	{"crc32_generic", false}, // rdma_rxe's ICRC: without it "failed to init crc32 algorithm"
	{"iscsi_tcp", true},      // pulls libiscsi_tcp, libiscsi, scsi_transport_iscsi
	{"sd_mod", true},
	{"target_core_mod", true},
	{"target_core_file", true},
	{"target_core_iblock", true},
	{"iscsi_target_mod", true},
	{"sch_netem", true},
	{"dm_mod", true},
	{"dm_multipath", true},
	{"tcp_diag", false}, // ss -K: drops a TCP connection as a network reset would
	{"scsi_debug", false},
	{"dummy", false}, // a non-loopback netdev with an address, which isnsd needs
	{"veth", false},  // two NICs into a target namespace (the paths scenario)
	// multipath's default path selector, and the ALUA handler its table names for
	// LIO (load before the sessions' devices appear: handlers attach at scan).
	{"dm_service_time", false},
	{"scsi_dh_alua", false},
	// iSER over soft-RoCE (the iser scenario): the RDMA core, the connection
	// managers, rdma_rxe (an RDMA device on any netdev, made with
	// `rdma link add`), the initiator's ib_iser and LIO's ib_isert. Not at
	// boot: an iSER transport class changes what other scenarios see.
	{"ib_core", false},
	{"ib_uverbs", false},
	{"ib_cm", false},
	{"iw_cm", false},
	{"rdma_cm", false},
	{"rdma_ucm", false},
	{"rdma_rxe", false},
	{"ib_iser", false},
	{"ib_isert", false},
}

// Assets is a prepared kernel and the invariant part of the initramfs.
type Assets struct {
	// KVer is the kernel release, e.g. 6.1.0-56-amd64.
	KVer string
	// Dir holds everything prepared for KVer in this layout (prepVersion).
	Dir string
	// Kernel is the vmlinuz to boot.
	Kernel string
	// BaseInitrd is the gzipped cpio archive with busybox, modules and stock open-iscsi;
	// Run appends a second archive with the per-run files.
	BaseInitrd string
	// Root is the tree the Debian packages were extracted into.
	Root string
}

// CacheDir is where the harness keeps downloads and prepared kernels:
// $GOISCSI_CACHE/vm, with GOISCSI_CACHE defaulting as in scripts/setup.
func CacheDir() string {
	base := os.Getenv("GOISCSI_CACHE")
	if base == "" {
		c := os.Getenv("XDG_CACHE_HOME")
		if c == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				home = os.TempDir()
			}
			c = filepath.Join(home, ".cache")
		}
		base = filepath.Join(c, "goiscsi")
	}
	return filepath.Join(base, "vm")
}

// Prepare makes sure the kernel, modules, stock open-iscsi and the base initramfs are
// in the cache, downloading Debian packages on the first run. A second run needs no
// network. logf, if not nil, receives one line per slow step.
func Prepare(ctx context.Context, logf func(format string, args ...any)) (*Assets, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, "prepare.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	kver, err := resolveKernel(ctx, dir)
	if err != nil {
		return nil, err
	}
	kdir := filepath.Join(dir, kver+"."+prepVersion)
	a := &Assets{
		KVer:       kver,
		Dir:        kdir,
		Kernel:     filepath.Join(kdir, "root", "boot", "vmlinuz-"+kver),
		BaseInitrd: filepath.Join(kdir, "base.cpio.gz"),
		Root:       filepath.Join(kdir, "root"),
	}
	stamp := filepath.Join(a.Dir, "ready")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == prepVersion {
		return a, nil
	}
	start := time.Now()
	logf("vm: preparing kernel %s and stock open-iscsi in %s", kver, a.Dir)
	if err := os.RemoveAll(a.Dir); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	debs, err := downloadPackages(ctx, filepath.Join(dir, "debs"), append([]string{"linux-image-" + kver}, rootPackages...), logf)
	if err != nil {
		return nil, err
	}
	tmpRoot := a.Root + ".tmp"
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	for _, deb := range debs {
		if err := runTool(ctx, "", "dpkg-deb", "-x", deb, tmpRoot); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmpRoot, a.Root); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	if _, err := os.Stat(a.Kernel); err != nil {
		return nil, fmt.Errorf("vm: linux-image-%s has no /boot/vmlinuz-%s", kver, kver)
	}
	if err := runTool(ctx, "", "depmod", "-b", a.Root, kver); err != nil {
		return nil, err
	}
	if err := pickModules(ctx, a); err != nil {
		return nil, err
	}
	logf("vm: building base initramfs")
	if err := buildBase(a); err != nil {
		return nil, err
	}
	if err := os.WriteFile(stamp, []byte(prepVersion+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	logf("vm: prepared %s in %s", kver, time.Since(start).Round(time.Millisecond))
	return a, nil
}

// lockFile takes an exclusive flock so that two test processes do not prepare the
// same cache at once.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vm: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("vm: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

var kernelDep = regexp.MustCompile(`(?m)^\s*Depends:\s*linux-image-(\d\S*-amd64)\s*$`)

// resolveKernel asks apt which kernel linux-image-amd64 currently means. GOISCSI_VM_KVER
// overrides it; without apt lists it falls back to the kernel prepared last.
func resolveKernel(ctx context.Context, dir string) (string, error) {
	if k := os.Getenv("GOISCSI_VM_KVER"); k != "" {
		return k, nil
	}
	last := filepath.Join(dir, "kernel")
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if m := kernelDep.FindSubmatch(out); err == nil && m != nil {
		k := string(m[1])
		_ = os.WriteFile(last, []byte(k+"\n"), 0o644)
		return k, nil
	}
	if b, rerr := os.ReadFile(last); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	if err != nil {
		return "", fmt.Errorf("vm: apt-cache depends linux-image-amd64 failed (%v); is this Debian with apt lists (apt-get update)?", err)
	}
	return "", errors.New("vm: apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package; run apt-get update")
}

// downloadPackages fetches want plus the library packages they depend on (transitively,
// following only Depends/Pre-Depends on lib* packages) into dir with apt-get download,
// skipping packages already there. It returns the .deb paths.
func downloadPackages(ctx context.Context, dir string, want []string, logf func(string, ...any)) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	all, err := libClosure(ctx, dir, want)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, p := range all {
		if debFor(dir, p) == "" {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		logf("vm: apt-get download %s", strings.Join(missing, " "))
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, missing...)...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("vm: apt-get download %s failed: %s", strings.Join(missing, " "), lastErrLine(stderr.String(), err))
		}
	}
	var debs []string
	for _, p := range all {
		d := debFor(dir, p)
		if d == "" {
			return nil, fmt.Errorf("vm: apt-get download %s left no %s_*.deb in %s", p, p, dir)
		}
		debs = append(debs, d)
	}
	return debs, nil
}

// libClosure returns want plus every lib* package reachable through Depends and
// Pre-Depends. The closure is remembered in dir so that it also works offline.
func libClosure(ctx context.Context, dir string, want []string) ([]string, error) {
	key := filepath.Join(dir, "closure-"+strings.ReplaceAll(strings.Join(want, ","), "/", "_"))
	seen := map[string]bool{}
	var order []string
	add := func(p string) bool {
		if seen[p] {
			return false
		}
		seen[p] = true
		order = append(order, p)
		return true
	}
	for _, p := range want {
		add(p)
	}
	queue := append([]string(nil), want...)
	for len(queue) > 0 {
		cmd := exec.CommandContext(ctx, "apt-cache", append([]string{"depends", "--no-recommends", "--no-suggests",
			"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, queue...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			if b, rerr := os.ReadFile(key); rerr == nil {
				return strings.Fields(string(b)), nil
			}
			return nil, fmt.Errorf("vm: apt-cache depends %s failed: %s", strings.Join(queue, " "), lastErrLine(stderr.String(), err))
		}
		queue = nil
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "|"))
			name, ok := strings.CutPrefix(line, "Depends: ")
			if !ok {
				name, ok = strings.CutPrefix(line, "PreDepends: ")
			}
			// zlib1g is a library package whose name does not start with lib.
			if !ok || !(strings.HasPrefix(name, "lib") || name == "zlib1g") || strings.HasPrefix(name, "<") {
				continue
			}
			if add(name) {
				queue = append(queue, name)
			}
		}
	}
	sort.Strings(order[len(want):])
	_ = os.WriteFile(key, []byte(strings.Join(order, "\n")+"\n"), 0o644)
	return order, nil
}

// debFor returns the newest-looking downloaded .deb of package p in dir, or "".
func debFor(dir, p string) string {
	var found []string
	for _, arch := range []string{"amd64", "all"} {
		m, _ := filepath.Glob(filepath.Join(dir, p+"_*_"+arch+".deb"))
		found = append(found, m...)
	}
	if len(found) == 0 {
		return ""
	}
	sort.Strings(found)
	return found[len(found)-1]
}

// pickModules copies the wanted modules and their dependencies, decompressed, to
// Dir/modules, and writes NAME.deps there: the .ko files to insmod, in order.
func pickModules(ctx context.Context, a *Assets) error {
	mdir := filepath.Join(a.Dir, "modules")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return err
	}
	for _, m := range Modules {
		out, err := exec.CommandContext(ctx, "modprobe", "-d", a.Root, "-S", a.KVer, "--show-depends", m.Name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("vm: modprobe --show-depends %s in %s: %s", m.Name, a.KVer, lastErrLine(string(out), err))
		}
		var deps []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin X" needs nothing
			}
			ko, err := decompressModule(ctx, f[1], mdir)
			if err != nil {
				return err
			}
			deps = append(deps, ko)
		}
		name := strings.ReplaceAll(m.Name, "-", "_")
		if err := os.WriteFile(filepath.Join(mdir, name+".deps"), []byte(strings.Join(deps, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// decompressModule writes the plain .ko of src (.ko, .ko.xz or .ko.zst) into dir,
// because busybox insmod cannot decompress. It returns the base name.
func decompressModule(ctx context.Context, src, dir string) (string, error) {
	base := filepath.Base(src)
	var tool []string
	switch {
	case strings.HasSuffix(base, ".ko.xz"):
		tool = []string{"xz", "-dc", src}
		base = strings.TrimSuffix(base, ".xz")
	case strings.HasSuffix(base, ".ko.zst"):
		tool = []string{"zstd", "-qdc", src}
		base = strings.TrimSuffix(base, ".zst")
	case strings.HasSuffix(base, ".ko"):
		tool = []string{"cat", src}
	default:
		return "", fmt.Errorf("vm: unexpected module file %s", src)
	}
	dst := filepath.Join(dir, base)
	if _, err := os.Stat(dst); err == nil {
		return base, nil
	}
	out, err := os.Create(dst + ".tmp")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, tool[0], tool[1:]...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	out.Close()
	if err != nil {
		return "", fmt.Errorf("vm: %s %s failed: %s", tool[0], src, lastErrLine(stderr.String(), err))
	}
	return base, os.Rename(dst+".tmp", dst)
}

// runTool runs a command and turns a failure into one line naming it.
func runTool(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("vm: %s not found; run scripts/setup (it installs the harness's Debian packages)", name)
		}
		return fmt.Errorf("vm: %s %s failed: %s", name, strings.Join(args, " "), lastErrLine(string(out), err))
	}
	return nil
}

// lastErrLine picks the most telling line of a tool's diagnostics.
func lastErrLine(out string, err error) string {
	if errors.Is(err, exec.ErrNotFound) {
		return err.Error() + " (run scripts/setup)"
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "E:") || strings.Contains(l, "rror") || strings.Contains(l, "FATAL") {
			return l
		}
	}
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}
