package scan

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rootTree builds a sysfs tree with sda (session 1, partition sda1), sdb
// (session 2), sdc (session 3) and dm-0 over sdb1 and sdc, as /sys/dev/block
// and /sys/class/block link them.
func rootTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	disks := map[string]string{
		"sda": "platform/host0/session1/target0:0:0/0:0:0:0/block/sda",
		"sdb": "platform/host1/session2/target1:0:0/1:0:0:0/block/sdb",
		"sdc": "platform/host2/session3/target2:0:0/2:0:0:0/block/sdc",
		"vda": "pci0000:00/0000:00:04.0/virtio1/block/vda",
	}
	devs := map[string]string{}
	add := func(name, dir, dev string) {
		if err := os.MkdirAll(filepath.Join(root, "devices", dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, l := range []string{filepath.Join("class", "block", name), filepath.Join("dev", "block", dev)} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, l)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..", "..", "devices", dir), filepath.Join(root, l)); err != nil {
				t.Fatal(err)
			}
		}
		devs[name] = dev
	}
	for i, name := range slices.Sorted(maps.Keys(disks)) {
		add(name, disks[name], fmt.Sprintf("8:%d", 16*i))
	}
	add("sda1", disks["sda"]+"/sda1", "8:1")
	add("sdb1", disks["sdb"]+"/sdb1", "8:17")
	add("dm-0", "virtual/block/dm-0", "254:0")
	for _, lower := range []string{"sdb1", "sdc"} {
		dir := filepath.Join(root, "devices", "virtual", "block", "dm-0", "slaves")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, "class", "block", lower), filepath.Join(dir, lower)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRootSessions(t *testing.T) {
	root := rootTree(t)
	line := func(dev, point string) string {
		return fmt.Sprintf("36 35 %s / %s rw,relatime shared:1 - ext4 /dev/x rw\n", dev, point)
	}
	for _, tc := range []struct {
		name      string
		mountinfo string
		want      []int
	}{
		{"root on a partition of an iSCSI disk", line("8:1", "/") + line("8:16", "/mnt"), []int{1}},
		{"root on a local disk, data on iSCSI", line("8:48", "/") + line("8:1", "/srv"), nil},
		{"/usr on iSCSI", line("8:48", "/") + line("8:16", "/usr"), []int{2}},
		{"root on a map over two sessions (LVM, multipath)", line("254:0", "/"), []int{2, 3}},
		{"btrfs's anonymous device", line("0:33", "/"), nil},
		{"a space in a mount point is not the root", line("8:1", `/\040`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mi := filepath.Join(t.TempDir(), "mountinfo")
			if err := os.WriteFile(mi, []byte(tc.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Sysfs{Root: root}.RootSessions(mi)
			if err != nil {
				t.Fatal(err)
			}
			if g := slices.Sorted(maps.Keys(got)); !slices.Equal(g, tc.want) {
				t.Errorf("RootSessions = %v, want %v", g, tc.want)
			}
		})
	}
}

// A stack that loops (a broken or hostile tree) ends; a missing mount table is
// an error naming it.
func TestRootSessionsBroken(t *testing.T) {
	root := rootTree(t)
	dm := filepath.Join(root, "devices", "virtual", "block", "dm-0", "slaves")
	if err := os.Symlink(filepath.Join(root, "class", "block", "dm-0"), filepath.Join(dm, "dm-0")); err != nil {
		t.Fatal(err)
	}
	mi := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(mi, []byte("36 35 254:0 / / rw - ext4 /dev/dm-0 rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Sysfs{Root: root}.RootSessions(mi)
	if err != nil || !got[2] || !got[3] || len(got) != 2 {
		t.Errorf("looping stack: RootSessions = %v, %v; want sessions 2 and 3", got, err)
	}
	_, err = Sysfs{Root: root}.RootSessions(filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "mount table") {
		t.Errorf("missing mount table: err = %v", err)
	}
}
