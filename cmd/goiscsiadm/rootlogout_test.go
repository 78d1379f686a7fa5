package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// A session whose disk holds the root file system (a boot from iSCSI) is left
// out of every logout that names no session or target, even with a record
// that -U all would match; -r SID and -T still log it out. The fake daemon's
// session 3 is on host 4, its disk sda mounted at / or at /srv.
func TestLogoutKeepsTheRootSession(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		mount  string // where sda is mounted
		code   iscsierr.Code
		logout bool // a logout request reached the daemon
	}{
		{[]string{"-m", "node", "-U", "all"}, "/", iscsierr.NoObjsFound, false},
		{[]string{"-m", "node", "-U", "automatic"}, "/", iscsierr.NoObjsFound, false},
		{[]string{"-m", "node", "-u"}, "/", iscsierr.NoObjsFound, false},
		{[]string{"-m", "session", "-u"}, "/", iscsierr.NoObjsFound, false},
		{[]string{"-m", "node", "-U", "all"}, "/srv", iscsierr.Success, true},
		{[]string{"-m", "session", "-u"}, "/srv", iscsierr.Success, true},
		{[]string{"-m", "session", "-r", "3", "-u"}, "/", iscsierr.Success, true},
		{[]string{"-m", "node", "-T", runIQN, "-u"}, "/", iscsierr.Success, true},
	} {
		d, root := setup(t)
		d.in = true
		sysfs := os.Getenv("GOISCSI_SYSFS")
		disk := filepath.Join(sysfs, "devices/platform/host4/session3/target4:0:0/4:0:0:0/block/sda")
		os.MkdirAll(disk, 0o755)
		os.MkdirAll(filepath.Join(sysfs, "dev/block"), 0o755)
		os.Symlink("../../devices/platform/host4/session3/target4:0:0/4:0:0:0/block/sda", filepath.Join(sysfs, "dev/block/8:0"))
		proc := t.TempDir()
		os.MkdirAll(filepath.Join(proc, "self"), 0o755)
		os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte("26 1 8:0 / "+tc.mount+" rw - ext4 /dev/sda rw\n"), 0o644)
		t.Setenv("GOISCSI_PROC", proc)
		rec := conf.NewNodeRecord(nil, runIQN, "127.0.0.1", 3260, 1, "default")
		rec.Set("node.startup", "automatic")
		if err := (&conf.DB{Root: root}).SaveNode(rec); err != nil {
			t.Fatal(err)
		}
		x := adm(t, tc.args...)
		sent := false
		for _, r := range d.reqs {
			sent = sent || r.Op == mgmt.OpLogout
		}
		if x.Code != tc.code || sent != tc.logout {
			t.Errorf("iscsiadm %v with sda at %s: exit %d, logout sent %v; want %d, %v\n%s%s",
				tc.args, tc.mount, x.Code, sent, tc.code, tc.logout, x.Stdout, x.Stderr)
		}
	}
}
