package vm

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A Debian run (Config.Disk set) boots a Debian root file system with systemd and
// udev instead of the busybox initramfs: for the tests of goiscsi's systemd units
// and Debian package, which need a real init, real udev and dpkg. PrepareDebian
// builds the root once per kernel with mmdebstrap from Debian's packages and keeps
// it as a raw ext4 image; NewDebianDisk copies that image for a test, which then
// boots the copy as often as its scenario needs (a reboot is a second Run on the
// same disk). The initramfs of such a run only loads the virtio and ext4 modules,
// mounts the disk, copies the run's files into it (guest/debian/, lib.sh, the
// scenario, Config.Files) and hands over to systemd; goiscsi-test.service runs the
// scenario once the system is up and powers the guest off cleanly.

// debianVersion names the layout of a prepared Debian root (and its cache
// directory). Bump it when PrepareDebian starts producing something different.
const debianVersion = "goiscsi-vm-debian-3"

// debianPackages are installed besides mmdebstrap's minbase: systemd as init,
// udev (the by-path links), kmod, and the libraries open-iscsi needs beyond
// minbase, so that dpkg alone installs it (DebianOpenISCSI).
var debianPackages = []string{"systemd", "systemd-sysv", "udev", "kmod", "libisns0", "libopeniscsiusr"}

// DebianOfflineDir is where the guest finds Debian packages to install with
// dpkg -i: goiscsi's (a run's Files put it there) and stock open-iscsi's (from
// the harness's downloads).
const DebianOfflineDir = "/var/cache/goiscsi-test"

// debianConsumers are installed on the open-iscsi image (DebianOpenISCSI):
// real consumers of iscsiadm from Debian's archive, which a host switching to
// goiscsi keeps running unmodified: OpenStack's os-brick (python3-os-brick
// depends on open-iscsi) and libvirt's iSCSI storage pool (in libvirt-daemon;
// it runs /usr/bin/iscsiadm).
var debianConsumers = []string{"python3-os-brick", "libvirt-daemon", "libvirt-daemon-system", "libvirt-clients"}

// debianOffline are the downloaded packages copied to DebianOfflineDir.
var debianOffline = []string{"open-iscsi"}

// debianBootModules are what the initramfs loads to mount the root disk.
var debianBootModules = []string{"virtio_pci", "virtio_blk", "ext4"}

// debianSkipModules are module directories left out of the guest's
// /lib/modules: hardware a qemu guest does not have, a third of the tree.
var debianSkipModules = []string{"sound", "drivers/gpu", "drivers/media", "drivers/net/wireless",
	"drivers/net/ethernet", "drivers/infiniband", "drivers/staging", "drivers/iio", "drivers/usb",
	"drivers/bluetooth", "drivers/comedi", "drivers/hid", "drivers/input", "net/bluetooth", "net/wireless"}

// DebianImage names one of the prepared Debian roots.
type DebianImage string

// The Debian roots PrepareDebian makes.
const (
	// DebianPlain has no iSCSI initiator: a host goiscsi is installed on first.
	DebianPlain DebianImage = "root.img"
	// DebianOpenISCSI has stock open-iscsi installed (by dpkg, in a chroot on the
	// host, where it takes seconds rather than minutes of TCG): a host running
	// open-iscsi, its units enabled, no node records yet.
	DebianOpenISCSI DebianImage = "root-open-iscsi.img"
)

// DebianAssets is a prepared Debian root for the kernel of Assets.
type DebianAssets struct {
	// Dir holds the raw ext4 images of the root file systems (DebianImage
	// names them); boot a copy (NewDebianDisk), never an image itself.
	Dir string
	// BootInitrd is the gzipped cpio archive with busybox and the modules that
	// mount the root disk.
	BootInitrd string
}

// PrepareDebian makes sure the Debian root image for a's kernel is in the cache,
// building it on the first run (mmdebstrap needs the network then; about a
// minute).
func PrepareDebian(ctx context.Context, a *Assets, logf func(string, ...any)) (*DebianAssets, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// A directory per kernel and layout version, as Prepare keeps them:
	// checkouts of different versions share the cache without rebuilding it
	// under each other's running VMs.
	dir := filepath.Join(CacheDir(), a.KVer+"."+debianVersion)
	d := &DebianAssets{Dir: dir, BootInitrd: filepath.Join(dir, "boot.cpio.gz")}
	unlock, err := lockFile(filepath.Join(CacheDir(), "prepare.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	stamp := filepath.Join(dir, "ready")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == debianVersion {
		return d, nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return nil, fmt.Errorf("vm: mmdebstrap not found; run scripts/setup (it installs mmdebstrap)")
	}
	suite, err := hostSuite()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	logf("vm: building a Debian %s root with mmdebstrap in %s", suite, dir)
	if err := runTool(ctx, "", "mmdebstrap", "--variant=minbase", "--include="+strings.Join(debianPackages, ","),
		"--aptopt=Acquire::Retries \"3\"",
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*", suite, root); err != nil {
		return nil, err
	}
	if err := copyModules(ctx, a, root); err != nil {
		return nil, err
	}
	off := filepath.Join(root, DebianOfflineDir)
	if err := os.MkdirAll(off, 0o755); err != nil {
		return nil, err
	}
	for _, p := range debianOffline {
		deb := debFor(filepath.Join(CacheDir(), "debs"), p)
		if deb == "" {
			return nil, fmt.Errorf("vm: no downloaded %s package in %s", p, filepath.Join(CacheDir(), "debs"))
		}
		if err := runTool(ctx, "", "cp", deb, off); err != nil {
			return nil, err
		}
	}
	if err := configureDebian(root); err != nil {
		return nil, err
	}
	logf("vm: making the root disk images")
	if err := makeImage(ctx, root, filepath.Join(dir, string(DebianPlain))); err != nil {
		return nil, err
	}
	debs, _ := filepath.Glob(filepath.Join(off, "open-iscsi_*.deb"))
	if err := chrootDpkg(ctx, root, trimRoot(root, debs)...); err != nil {
		return nil, err
	}
	logf("vm: installing %s in the open-iscsi root", strings.Join(debianConsumers, " "))
	if err := chrootInstall(ctx, root, debianConsumers); err != nil {
		return nil, err
	}
	if err := makeImage(ctx, root, filepath.Join(dir, string(DebianOpenISCSI))); err != nil {
		return nil, err
	}
	if err := buildDebianBoot(ctx, a, d.BootInitrd); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	if err := os.WriteFile(stamp, []byte(debianVersion+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vm: cache: %w", err)
	}
	logf("vm: prepared the Debian root in %s", time.Since(start).Round(time.Millisecond))
	return d, nil
}

// chrootInstall installs packages from Debian's archive into root with apt in
// a chroot: the host's resolver, /proc mounted for the maintainer scripts, and
// a policy-rc.d that keeps them from starting services on the host.
func chrootInstall(ctx context.Context, root string, pkgs []string) error {
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	defer os.Remove(policy)
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	os.Remove(filepath.Join(root, "etc/resolv.conf"))
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), resolv, 0o644); err != nil {
		return err
	}
	proc := filepath.Join(root, "proc")
	if err := runTool(ctx, "", "mount", "-t", "proc", "proc", proc); err != nil {
		return err
	}
	defer runTool(context.WithoutCancel(ctx), "", "umount", "-l", proc)
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{root, "apt-get", "-o", "Acquire::Retries=3"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("vm: apt-get %s in the Debian root: %s", args[0], lastErrLine(string(out), err))
		}
	}
	return runTool(ctx, "", "chroot", root, "apt-get", "clean")
}

// chrootDpkg installs the package files debs (paths as the chroot sees them)
// into root with dpkg -i, never asking.
func chrootDpkg(ctx context.Context, root string, debs ...string) error {
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root, "dpkg", "-i"}, debs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: dpkg -i %s in the Debian root %s: %s", strings.Join(debs, " "), root, lastErrLine(string(out), err))
	}
	return nil
}

// makeImage writes the tree root as a raw ext4 image: 2 GiB, sparse; the root
// takes about a third, the rest is room for the scenarios' LUN files.
func makeImage(ctx context.Context, root, image string) error {
	if err := runTool(ctx, "", "mkfs.ext4", "-q", "-F", "-L", "goiscsi-root", "-d", root, image+".tmp", "2G"); err != nil {
		return err
	}
	return os.Rename(image+".tmp", image)
}

// trimRoot returns the paths inside root as the chroot sees them.
func trimRoot(root string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
	}
	return out
}

// hostSuite returns this machine's Debian release (VERSION_CODENAME): the guest
// root comes from the release whose kernel the harness boots.
func hostSuite() (string, error) {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "", fmt.Errorf("vm: %w (the Debian VM needs a Debian host)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", fmt.Errorf("vm: /etc/os-release names no VERSION_CODENAME")
}

// copyModules copies the kernel's modules, without debianSkipModules, into the
// root and runs depmod there: udev and goiscsid load modules as on a real host.
func copyModules(ctx context.Context, a *Assets, root string) error {
	src := filepath.Join(a.Root, "lib/modules", a.KVer)
	dst := filepath.Join(root, "lib/modules", a.KVer)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := runTool(ctx, "", "cp", "-a", src, dst); err != nil {
		return err
	}
	for _, d := range debianSkipModules {
		if err := os.RemoveAll(filepath.Join(dst, "kernel", d)); err != nil {
			return err
		}
	}
	return runTool(ctx, "", "depmod", "-b", root, a.KVer)
}

// configureDebian makes the root boot unattended and quickly: root on the
// virtio disk, no password, no login prompt on the console, none of the
// checks that take TCG many seconds at boot (e2scrub_reap, getty-static), and
// no timers that would start work in the middle of a scenario.
func configureDebian(root string) error {
	files := map[string]string{
		"etc/fstab":    "/dev/vda / ext4 rw,errors=remount-ro 0 1\n",
		"etc/hostname": "goiscsi-debian\n",
		"etc/hosts":    "127.0.0.1 localhost\n127.0.1.1 goiscsi-debian\n",
		// dpkg in the scenarios: never ask.
		"etc/apt/apt.conf.d/90goiscsi-test": "Dpkg::Options { \"--force-confdef\"; \"--force-confold\"; };\n",
	}
	for p, content := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, unit := range []string{"serial-getty@ttyS0.service", "getty@tty1.service", "getty-static.service",
		"e2scrub_reap.service", "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
		"e2scrub_all.timer", "fstrim.timer"} {
		link := filepath.Join(root, "etc/systemd/system", unit)
		os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
	}
	// Empty root password: "vmrun -debian" users can log in on a console.
	return runTool(context.Background(), "", "chroot", root, "passwd", "-d", "root")
}

// buildDebianBoot writes the invariant part of a Debian run's initramfs:
// static busybox and the modules that mount the root disk, in load order
// (/lib/modules/boot.list). guest/debian/init comes with each run.
func buildDebianBoot(ctx context.Context, a *Assets, out string) error {
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(out + ".tmp")
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCpio(zw)
	for _, d := range []string{"/bin", "/dev", "/proc", "/sys", "/newroot", "/lib/modules"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("/dev/console", 0o600, 5, 1)
	c.HostFile("/bin/busybox", filepath.Join(a.Root, "bin/busybox"))
	for _, applet := range []string{"sh", "mount", "umount", "insmod", "switch_root", "mkdir", "sleep", "cat",
		"cp", "find", "dirname", "poweroff", "echo"} {
		c.Symlink("/bin/"+applet, "busybox")
	}
	var order []string
	seen := map[string]bool{}
	for _, m := range debianBootModules {
		out, err := exec.CommandContext(ctx, "modprobe", "-d", a.Root, "-S", a.KVer, "--show-depends", m).CombinedOutput()
		if err != nil {
			return fmt.Errorf("vm: modprobe --show-depends %s: %s", m, lastErrLine(string(out), err))
		}
		for _, line := range strings.Split(string(out), "\n") {
			fl := strings.Fields(line)
			if len(fl) < 2 || fl[0] != "insmod" || seen[fl[1]] {
				continue
			}
			seen[fl[1]] = true
			ko, err := decompressModule(ctx, fl[1], filepath.Join(a.Dir, "modules"))
			if err != nil {
				return err
			}
			c.HostFile("/lib/modules/"+ko, filepath.Join(a.Dir, "modules", ko))
			order = append(order, ko)
		}
	}
	c.File("/lib/modules/boot.list", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	if err := c.Close(); err != nil {
		return fmt.Errorf("vm: Debian boot initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}

// NewDebianDisk prepares the Debian roots if needed and copies the image to
// dir/disk.img (sparse) for one test: the scenarios change the disk, and the
// boots of one test share it.
func NewDebianDisk(ctx context.Context, dir string, image DebianImage, logf func(string, ...any)) (string, error) {
	a, err := Prepare(ctx, logf)
	if err != nil {
		return "", err
	}
	d, err := PrepareDebian(ctx, a, logf)
	if err != nil {
		return "", err
	}
	disk := filepath.Join(dir, "disk.img")
	if err := runTool(ctx, "", "cp", "--sparse=always", filepath.Join(d.Dir, string(image)), disk); err != nil {
		return "", err
	}
	return disk, nil
}

// debianGuestFiles are guest/debian's files a Debian run installs, by guest
// path, with the target whose .wants directory enables each unit.
var debianGuestFiles = []struct {
	src, dst, wantedBy string
}{
	{"run", "/lib/goiscsi/debian-run", ""},
	{"boot-target", "/lib/goiscsi/boot-target", ""},
	{"osbrick.py", "/lib/goiscsi/osbrick.py", ""},
	{"goiscsi-test.service", "/etc/systemd/system/goiscsi-test.service", "multi-user.target"},
	{"goiscsi-test-target.service", "/etc/systemd/system/goiscsi-test-target.service", "sysinit.target"},
}

// addDebianGuest adds the scenario runner and its units under root (the
// payload that guest/debian/init copies into the Debian root).
func addDebianGuest(c fileTree, root string) error {
	for _, g := range debianGuestFiles {
		b, err := guestFS.ReadFile("guest/debian/" + g.src)
		if err != nil {
			return fmt.Errorf("vm: guest/debian/%s: %w", g.src, err)
		}
		mode := uint32(0o644)
		if strings.HasPrefix(string(b), "#!") {
			mode = 0o755
		}
		c.File(filepath.Join(root, g.dst), mode, b)
		if g.wantedBy != "" {
			c.Symlink(filepath.Join(root, "/etc/systemd/system", g.wantedBy+".wants", filepath.Base(g.dst)), g.dst)
		}
	}
	return nil
}
