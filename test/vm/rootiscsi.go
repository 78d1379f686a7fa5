package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// ISCSIRoot is a Debian root made to boot from an iSCSI LUN (InstallISCSIRoot):
// the root file system of a copy of a prepared Debian root (DebianImage), which
// a target serves as a LUN, booted by the initramfs initramfs-tools builds in
// it.
type ISCSIRoot struct {
	// Disk is the root image, a copy of a prepared Debian root
	// (NewDebianDisk); the target serves this file.
	Disk string
	// Deb is goiscsi's package, installed in the root with dpkg.
	Deb string
	// Target, Address and Port are the boot target as the guest reaches it
	// (/etc/iscsi/iscsi.initramfs).
	Target  string
	Address string
	Port    int
	// Username and Password are the CHAP credentials of the login (none
	// when Username is empty).
	Username, Password string
	// Run is the scenario installed in the root, run by goiscsi-test.service
	// once the system is up, as in a Debian run (Config's Scenario, Env and
	// Files).
	Run Config
}

// iscsiRootPackages are what a Debian host booting from iSCSI has besides the
// minimal root: initramfs-tools (busybox in its initramfs, as Debian installs
// it), and iproute2, whose ss the scenario drops the connection with.
var iscsiRootPackages = []string{"initramfs-tools", "busybox", "iproute2"}

// InstallISCSIRoot makes r.Disk boot from iSCSI as an installer would, in a
// chroot on the host (the image loop-mounted): initramfs-tools from Debian's
// archive, goiscsi's package with dpkg, /etc/iscsi/iscsi.initramfs naming the
// target, fstab naming the root by label, the scenario; then
// update-initramfs, which runs goiscsi's hook. It returns the initramfs it
// built, written next to r.Disk, for Config.Initrd.
func InstallISCSIRoot(ctx context.Context, r ISCSIRoot, logf func(string, ...any)) (string, error) {
	a, err := Prepare(ctx, logf)
	if err != nil {
		return "", err
	}
	script, err := guestFS.ReadFile("scenarios/" + r.Run.Scenario + ".sh")
	if err != nil {
		return "", fmt.Errorf("vm: no scenario %q", r.Run.Scenario)
	}
	mnt, err := os.MkdirTemp(filepath.Dir(r.Disk), "root-")
	if err != nil {
		return "", err
	}
	defer os.Remove(mnt)
	if err := runTool(ctx, "", "mount", "-o", "loop", r.Disk, mnt); err != nil {
		return "", err
	}
	mounted := true
	defer func() {
		if mounted {
			runTool(context.WithoutCancel(ctx), "", "umount", mnt)
		}
	}()

	logf("vm: installing %v and goiscsi in the iSCSI root", iscsiRootPackages)
	if err := chrootInstall(ctx, mnt, iscsiRootPackages); err != nil {
		return "", err
	}
	off := filepath.Join(mnt, DebianOfflineDir)
	if err := os.MkdirAll(off, 0o755); err != nil {
		return "", err
	}
	if err := runTool(ctx, "", "cp", r.Deb, filepath.Join(off, "goiscsi.deb")); err != nil {
		return "", err
	}
	if err := chrootDpkg(ctx, mnt, DebianOfflineDir+"/goiscsi.deb"); err != nil {
		return "", err
	}
	t := &dirTree{root: mnt}
	// initramfs-tools' names for the boot target (what open-iscsi's
	// iscsi.initramfs holds too).
	conf := fmt.Sprintf("ISCSI_TARGET_NAME=%s\nISCSI_TARGET_IP=%s\nISCSI_TARGET_PORT=%d\n", r.Target, r.Address, r.Port)
	if r.Username != "" {
		conf += fmt.Sprintf("ISCSI_USERNAME=%s\nISCSI_PASSWORD=%s\n", r.Username, r.Password)
	}
	t.File("/etc/iscsi/iscsi.initramfs", 0o600, []byte(conf))
	t.File("/etc/fstab", 0o644, []byte("LABEL=goiscsi-root / ext4 rw,errors=remount-ro 0 1\n"))
	// mkinitramfs reads the kernel's configuration for what it may compress
	// with; Debian installs it with the kernel.
	t.HostFile("/boot/config-"+a.KVer, filepath.Join(a.Root, "boot", "config-"+a.KVer))
	if err := addPayload(t, r.Run, script, "/", true); err != nil {
		return "", err
	}
	if err := t.Close(); err != nil {
		return "", fmt.Errorf("vm: iSCSI root: %w", err)
	}
	logf("vm: update-initramfs in the iSCSI root")
	if err := runTool(ctx, "", "chroot", mnt, "update-initramfs", "-c", "-k", a.KVer); err != nil {
		return "", err
	}
	initrd := filepath.Join(filepath.Dir(r.Disk), "initrd.img-"+a.KVer)
	if err := runTool(ctx, "", "cp", filepath.Join(mnt, "boot", "initrd.img-"+a.KVer), initrd); err != nil {
		return "", err
	}
	// The target serves the image once it is unmounted: its page cache
	// written back, nothing else writing to it.
	mounted = false
	if err := runTool(ctx, "", "umount", mnt); err != nil {
		return "", err
	}
	return initrd, nil
}

// ISCSIRootAppend is the kernel command line of a root on iSCSI
// (Config.Append): initramfs-tools configures the NIC by DHCP (qemu's user
// network) and mounts the root by its label.
var ISCSIRootAppend = []string{"root=LABEL=goiscsi-root", "ip=dhcp"}
