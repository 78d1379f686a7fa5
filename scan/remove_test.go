package scan_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
)

const wwid = "3600140597a421d92b7f48508f3d5ccef"

// world is a host with two iSCSI sessions to one target (hosts 2 and 3), LUN
// 0 and 1 on each, LUN 1 under a multipath map named name.
type world struct {
	fs     *scantest.FS
	k      *scantest.BlockOps
	s      scan.Sysfs
	proc   string
	mapDev string
}

func newWorld(t *testing.T, mapName string) *world {
	t.Helper()
	fs := scantest.New(t)
	w := &world{fs: fs, k: scantest.NewBlockOps(fs), s: scan.Sysfs{Root: fs.Root}, proc: t.TempDir()}
	fs.AddSession(1, 2, "iqn.2003-01.org.example:mp", "127.0.0.1", 3260)
	fs.AddSession(2, 3, "iqn.2003-01.org.example:mp", "127.0.0.2", 3260)
	fs.AddDevice(2, 0, 0, 0, "sda")
	fs.AddDevice(2, 0, 0, 1, "sdb")
	fs.AddDevice(3, 0, 0, 0, "sdc")
	fs.AddDevice(3, 0, 0, 1, "sdd")
	if mapName != "" {
		w.mapDev = fs.AddMultipath("dm-0", mapName, wwid, "sdb", "sdd")
	}
	w.mountinfo(t, "22 1 0:21 / /proc rw - proc proc rw\n")
	return w
}

func (w *world) mountinfo(t *testing.T, content string) {
	t.Helper()
	writeFile(t, filepath.Join(w.proc, "self", "mountinfo"), content)
}

func (w *world) sessions(t *testing.T, sids ...int) []scan.Session {
	t.Helper()
	all, err := w.s.Sessions()
	must(t, err)
	var out []scan.Session
	for _, s := range all {
		for _, sid := range sids {
			if s.SID == sid {
				out = append(out, s)
			}
		}
	}
	return out
}

func (w *world) remover() *scan.Remover {
	return &scan.Remover{Sysfs: w.s, Block: w.k, Proc: w.proc, Backoff: time.Millisecond}
}

func (w *world) remove(t *testing.T, r *scan.Remover, lun uint64, sids ...int) *scan.Report {
	t.Helper()
	plan, err := w.s.PlanLUNRemoval(w.sessions(t, sids...), lun)
	must(t, err)
	return r.Remove(context.Background(), plan)
}

func (w *world) exists(h int, l uint64) bool {
	return w.s.DeviceExists(scan.Device{Host: h, LUN: l})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func TestMultipathOfFindsTheMapWhateverItsName(t *testing.T) {
	for _, name := range []string{"mpatha", wwid} {
		w := newWorld(t, name)
		for _, path := range []string{"sdb", "sdd"} {
			m := w.s.MultipathOf(path)
			if m == nil || m.DMName != name || m.WWID != wwid || m.Name != "dm-0" || m.Dev != w.mapDev ||
				strings.Join(m.Slaves, ",") != "sdb,sdd" {
				t.Errorf("map named %s, above %s: %+v", name, path, m)
			}
		}
		if m := w.s.MultipathOf("sda"); m != nil {
			t.Errorf("sda has no map, got %+v", m)
		}
	}
}

func TestMultipathOfIgnoresOtherDeviceMapperDevices(t *testing.T) {
	w := newWorld(t, "")
	w.fs.AddDM("dm-4", "vg0-lv0", "LVM-abcdef", "sdb")
	if m := w.s.MultipathOf("sdb"); m != nil {
		t.Errorf("an LVM volume on sdb taken for a multipath map: %+v", m)
	}
	if got := w.s.Holders("sdb"); len(got) != 1 || got[0] != "dm-4" {
		t.Errorf("holders of sdb = %v", got)
	}
}

func TestPlanTakesEveryPathOfTheMap(t *testing.T) {
	w := newWorld(t, "mpatha")
	// Asked through session 1 alone: the map's path on session 2 comes too.
	plan, err := w.s.PlanLUNRemoval(w.sessions(t, 1), 1)
	must(t, err)
	var got []string
	for _, p := range plan.Paths {
		got = append(got, fmt.Sprintf("%s %s sid%d %s", p.HCTL(), p.Block, p.SID, p.Portal))
	}
	want := "2:0:0:1 sdb sid1 127.0.0.1:3260|3:0:0:1 sdd sid2 127.0.0.2:3260"
	if strings.Join(got, "|") != want || len(plan.Maps) != 1 || plan.Maps[0].DMName != "mpatha" {
		t.Errorf("plan paths %q maps %+v; want %q and mpatha", strings.Join(got, "|"), plan.Maps, want)
	}
	if tg := plan.Targets(); len(tg) != 1 || tg[0] != "iqn.2003-01.org.example:mp" {
		t.Errorf("targets %v", tg)
	}
	if _, err := w.s.PlanLUNRemoval(w.sessions(t, 1, 2), 7); !errors.Is(err, scan.ErrNoLUN) {
		t.Errorf("LUN 7, which no session has: %v", err)
	}
}

// The safe order, with friendly and WWID names alike: flush the map, remove
// it, then flush and delete each path; everything verified gone.
func TestRemoveMapThenPaths(t *testing.T) {
	for _, name := range []string{"mpatha", wwid} {
		w := newWorld(t, name)
		rep := w.remove(t, w.remover(), 1, 1, 2)
		if !rep.Removed || rep.Failure != "" || len(rep.Left) != 0 {
			t.Fatalf("map %s: report %+v", name, rep)
		}
		want := "flush dm-0|remove mpath-" + wwid + "|flush sdb|delete 2:0:0:1|flush sdd|delete 3:0:0:1"
		if got := strings.Join(w.k.Calls(), "|"); got != want {
			t.Errorf("map %s: calls\n%s\nwant\n%s", name, got, want)
		}
		if _, there := w.s.FindDMByUUID("mpath-" + wwid); there || w.exists(2, 1) || w.exists(3, 1) {
			t.Errorf("map %s: something is left", name)
		}
		if !w.exists(2, 0) || !w.exists(3, 0) {
			t.Errorf("map %s: LUN 0 went too", name)
		}
		if !rep.Maps[0].Removed || !rep.Paths[0].Deleted || !rep.Paths[1].Deleted {
			t.Errorf("map %s: report does not say removed: %+v", name, rep)
		}
		var verified []string
		for _, s := range rep.Steps {
			if strings.HasPrefix(s.Action, "verify") && s.OK {
				verified = append(verified, s.Object)
			}
		}
		if len(verified) != 3 {
			t.Errorf("map %s: verified %v, want the map and both paths", name, verified)
		}
	}
}

// Held open for two attempts, then released: waits of 1 and 2 backoffs,
// success on the third attempt.
func TestRemoveRetriesWhileOpenWithBackoff(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.OpenFor["mpath-"+wwid] = 2
	w.k.Holding[w.mapDev] = []scan.Opener{{PID: 345, Comm: "sleep"}}
	r := w.remover()
	r.Backoff = 20 * time.Millisecond
	rep := w.remove(t, r, 1, 1)
	if !rep.Removed {
		t.Fatalf("not removed after the holder let go: %+v", rep)
	}
	var waits []float64
	var inUse []string
	for _, s := range rep.Steps {
		switch s.Action {
		case "wait":
			waits = append(waits, s.MS)
		case "in-use":
			inUse = append(inUse, s.Detail)
		}
	}
	if len(waits) != 2 || waits[0] < 20 || waits[1] < 40 {
		t.Errorf("waits %v ms, want two: ≥20 then ≥40", waits)
	}
	if len(inUse) != 2 || !strings.Contains(inUse[0], "pid 345 (sleep)") || !strings.Contains(inUse[0], "mpatha (dm-0) is open") {
		t.Errorf("in-use steps %q should name the map and who holds it", inUse)
	}
}

// Held open through every try: a clear error, and nothing touched.
func TestRemoveGivesUpWhileOpenAndRemovesNothing(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.OpenFor["mpath-"+wwid] = 100
	r := w.remover()
	r.Tries = 3
	rep := w.remove(t, r, 1, 1, 2)
	if rep.Removed || rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "after 3 attempts") {
		t.Fatalf("report %+v", rep)
	}
	if len(w.k.Calls()) != 0 {
		t.Errorf("an in-use LUN was touched: %v", w.k.Calls())
	}
	left := strings.Join(rep.Left, ", ")
	if left != "multipath map mpatha (dm-0), path sdb (2:0:0:1), path sdd (3:0:0:1)" {
		t.Errorf("left = %q", left)
	}
	if !w.exists(2, 1) || !w.exists(3, 1) {
		t.Error("paths gone")
	}
}

// The kernel's EBUSY (someone opened the map between the check and the
// removal) is retried too, with a fresh flush.
func TestRemoveRetriesKernelBusy(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.BusyRemoves["mpath-"+wwid] = 1
	rep := w.remove(t, w.remover(), 1, 1)
	want := "flush dm-0|remove mpath-" + wwid + "|flush dm-0|remove mpath-" + wwid + "|flush sdb|delete 2:0:0:1|flush sdd|delete 3:0:0:1"
	if got := strings.Join(w.k.Calls(), "|"); !rep.Removed || got != want {
		t.Errorf("removed %v, calls\n%s\nwant\n%s", rep.Removed, got, want)
	}
}

func TestRemoveRefusesMountedAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, mapName, dev, want string
	}{
		{"map", "mpatha", "", "multipath map mpatha (dm-0) is mounted on /mnt/my data"},
		{"bare path", "", "8:16", "path sdb (2:0:0:1) is mounted on /srv"},
	} {
		w := newWorld(t, tc.mapName)
		dev, mp := tc.dev, "/srv"
		if dev == "" {
			dev, mp = w.mapDev, `/mnt/my\040data`
		}
		w.mountinfo(t, "22 1 0:21 / /proc rw - proc proc rw\n40 1 "+dev+" / "+mp+" rw,relatime - ext4 /dev/x rw\n")
		r := w.remover()
		r.Tries = 5
		rep := w.remove(t, r, 1, 1)
		if rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, tc.want) || !strings.Contains(rep.Error, "nothing was removed") {
			t.Errorf("%s: %+v", tc.name, rep)
		}
		for _, s := range rep.Steps {
			if s.Action == "wait" {
				t.Errorf("%s: a mount was waited for: %+v", tc.name, s)
			}
		}
		if len(w.k.Calls()) != 0 {
			t.Errorf("%s: touched: %v", tc.name, w.k.Calls())
		}
	}
}

// --force skips the refusal; the kernel still refuses an open map, so the
// removal ends busy, after the flushes, with the paths left.
func TestRemoveForceStillFlushesAndTheKernelDecides(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.mountinfo(t, "40 1 "+w.mapDev+" / /mnt rw - ext4 /dev/x rw\n")
	w.k.BusyRemoves["mpath-"+wwid] = 100
	r := w.remover()
	r.Force, r.Tries = true, 2
	rep := w.remove(t, r, 1, 1)
	want := "flush dm-0|remove mpath-" + wwid + "|flush dm-0|remove mpath-" + wwid
	if got := strings.Join(w.k.Calls(), "|"); rep.Failure != scan.FailInUse || got != want {
		t.Errorf("failure %q calls %s; want in-use and %s", rep.Failure, got, want)
	}
	if !w.exists(2, 1) {
		t.Error("a path of a map that could not be removed was deleted")
	}
}

func TestRemoveStopsWhenFlushFails(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.FlushErr["dm-0"] = fmt.Errorf("fsync /dev/dm-0: %w", unix.EIO)
	rep := w.remove(t, w.remover(), 1, 1)
	if rep.Failure != scan.FailFlush || !strings.Contains(rep.Error, "nothing was removed") || len(rep.Left) != 3 {
		t.Errorf("%+v", rep)
	}
	if got := strings.Join(w.k.Calls(), "|"); got != "flush dm-0" {
		t.Errorf("calls %s", got)
	}
}

// A removal the kernel claims but sysfs contradicts is a failure, and the
// paths stay.
func TestRemoveVerifiesTheMapIsGone(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.Keep["mpath-"+wwid] = true
	rep := w.remove(t, w.remover(), 1, 1)
	if rep.Failure != scan.FailDeviceMapper || !strings.Contains(rep.Error, "still there") {
		t.Errorf("%+v", rep)
	}
	if !w.exists(2, 1) || !w.exists(3, 1) {
		t.Error("paths deleted under a map that is still there")
	}
}

func TestRemoveVerifiesThePathIsGone(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.Stuck["3:0:0:1"] = true
	rep := w.remove(t, w.remover(), 1, 1)
	if rep.Failure != scan.FailSysfs || strings.Join(rep.Left, ",") != "path sdd (3:0:0:1)" || !rep.Maps[0].Removed || !rep.Paths[0].Deleted {
		t.Errorf("%+v", rep)
	}
	if got := w.fs.DeviceWritten(3, 0, 0, 1, "delete"); got != "1" {
		t.Errorf("delete file of 3:0:0:1 holds %q", got)
	}
}

// Something takes a path again after its map went (LVM scanning it): stop
// there. (multipathd building the same map again is caught earlier: the
// map's uuid is back, so the map's verification fails.)
func TestRemoveStopsWhenAPathIsTakenAgain(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.AfterRemove = func(uuid string) { w.fs.AddDM("dm-1", "vg-lv", "LVM-xyz", "sdb") }
	rep := w.remove(t, w.remover(), 1, 1)
	if rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "taken again by dm-1") || !w.exists(2, 1) || !rep.Maps[0].Removed {
		t.Errorf("%+v", rep)
	}
	w = newWorld(t, "mpatha")
	w.k.AfterRemove = func(uuid string) { w.fs.AddMultipath("dm-1", "mpatha", wwid, "sdb", "sdd") }
	rep = w.remove(t, w.remover(), 1, 1)
	if rep.Failure != scan.FailDeviceMapper || !strings.Contains(rep.Error, "still") || !w.exists(2, 1) || !w.exists(3, 1) {
		t.Errorf("map built again: %+v", rep)
	}
}

// Without a map the paths go straight away; a process that holds one open is
// waited for like a map's holder.
func TestRemoveBarePaths(t *testing.T) {
	w := newWorld(t, "")
	w.k.Holding["8:16"] = []scan.Opener{{PID: 9, Comm: "dd"}}
	w.k.Holding["8:48"] = []scan.Opener{{PID: 10, Comm: "multipathd"}}
	r := w.remover()
	r.Tries = 2
	rep := w.remove(t, r, 1, 1, 2)
	if rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "path sdb (2:0:0:1) is held open by pid 9 (dd)") ||
		strings.Contains(rep.Error, "multipathd") || len(w.k.Calls()) != 0 {
		t.Fatalf("%+v calls %v", rep, w.k.Calls())
	}
	delete(w.k.Holding, "8:16")
	rep = w.remove(t, r, 1, 1, 2)
	if got := strings.Join(w.k.Calls(), "|"); !rep.Removed || got != "flush sdb|delete 2:0:0:1|flush sdd|delete 3:0:0:1" {
		t.Errorf("removed %v calls %s", rep.Removed, got)
	}
	w2 := newWorld(t, "")
	w2.k.Exclusive["sdb"] = true
	r2 := w2.remover()
	r2.Tries = 1
	if rep := w2.remove(t, r2, 1, 1); rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "claimed") {
		t.Errorf("claimed path: %+v", rep)
	}
}

// kpartx partition maps go first; one that is mounted refuses the removal,
// LVM on the map refuses it.
func TestRemovePartitionMapsFirst(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.fs.AddDM("dm-1", "mpatha1", "part1-mpath-"+wwid, "dm-0")
	rep := w.remove(t, w.remover(), 1, 1)
	want := "flush dm-1|flush dm-0|remove part1-mpath-" + wwid + "|remove mpath-" + wwid + "|flush sdb|delete 2:0:0:1|flush sdd|delete 3:0:0:1"
	if got := strings.Join(w.k.Calls(), "|"); !rep.Removed || got != want {
		t.Errorf("removed %v calls\n%s\nwant\n%s", rep.Removed, got, want)
	}

	w = newWorld(t, "mpatha")
	pdev := w.fs.AddDM("dm-1", "mpatha1", "part1-mpath-"+wwid, "dm-0")
	w.mountinfo(t, "40 1 "+pdev+" / /data rw - xfs /dev/mapper/mpatha1 rw\n")
	if rep := w.remove(t, w.remover(), 1, 1); rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "partition map mpatha1 (dm-1) is mounted on /data") {
		t.Errorf("mounted partition: %+v", rep)
	}

	w = newWorld(t, "mpatha")
	w.fs.AddDM("dm-2", "vg-lv", "LVM-xyz", "dm-0")
	if rep := w.remove(t, w.remover(), 1, 1); rep.Failure != scan.FailInUse || !strings.Contains(rep.Error, "held by dm-2 (vg-lv, uuid LVM-xyz)") {
		t.Errorf("LVM on the map: %+v", rep)
	}
}

func TestRemoveGivesUpWhenTheContextEnds(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.OpenFor["mpath-"+wwid] = 100
	r := w.remover()
	r.Backoff = time.Hour
	plan, err := w.s.PlanLUNRemoval(w.sessions(t, 1), 1)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep := r.Remove(ctx, plan)
	if rep.Failure != scan.FailCanceled || len(rep.Left) != 3 {
		t.Errorf("%+v", rep)
	}
}

func TestMounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	writeFile(t, p, "22 1 0:21 / /proc rw - proc proc rw\n40 1 254:3 / /mnt/a\\040b rw - ext4 /dev/dm-3 rw\n41 1 254:3 / /bind rw - ext4 /dev/dm-3 rw\nshort line\n")
	m, err := scan.Mounts(p)
	must(t, err)
	if got := strings.Join(m["254:3"], ","); got != "/mnt/a b,/bind" {
		t.Errorf("mounts of 254:3 = %q", got)
	}
	if _, err := scan.Mounts(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "mount table") {
		t.Errorf("missing mountinfo: %v", err)
	}
}

// Tries beyond MaxTries are MaxTries: the waits double, and more than ten would
// outlast any caller.
func TestRemoveTriesAreBounded(t *testing.T) {
	w := newWorld(t, "mpatha")
	w.k.OpenFor["mpath-"+wwid] = 1000
	r := w.remover()
	r.Tries, r.Backoff = 50, 100*time.Microsecond
	rep := w.remove(t, r, 1, 1)
	attempts := 0
	for _, s := range rep.Steps {
		if s.Action == "in-use" {
			attempts++
		}
	}
	if attempts != scan.MaxTries || rep.Failure != scan.FailInUse {
		t.Errorf("%d attempts, failure %q; want %d and in-use", attempts, rep.Failure, scan.MaxTries)
	}
}
