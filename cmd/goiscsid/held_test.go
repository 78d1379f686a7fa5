package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
)

func heldOf(t *testing.T, f *fixture, sid int) []uint64 {
	t.Helper()
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpSessions})
	for _, s := range resp.Sessions {
		if s.SID == sid {
			var out []uint64
			for _, h := range s.HeldLUNs {
				out = append(out, h.LUN)
			}
			return out
		}
	}
	t.Fatalf("no session %d listed", sid)
	return nil
}

// TestRescanKeepsRemovedLUNAway is the seed's race closed for consumers that
// rescan the whole target: LUN 1 removed by the host while the target still
// reports it stays away through -R, a relogin's logout and login, and a
// daemon restart; --scan-lun 1 brings it back; the target no longer reporting
// it forgets it.
func TestRescanKeepsRemovedLUNAway(t *testing.T) {
	f := newFixture(t)
	rep := &scantest.Reporter{}
	f.d.sysfs.LUNs = rep
	f.d.holds = &scan.Holds{Dir: t.TempDir()}
	s := f.login(t, nil)
	h := s.HostNo
	f.fs.AddSession(s.SID, h, testIQN, "127.0.0.1", 3260)
	rep.Set(h, 0, 1, 2)
	for _, l := range []uint64{0, 1} {
		f.fs.AddDevice(h, 0, 0, l, "")
		f.d.deviceEvent(scan.Event{Action: "add", Session: s.SID, Device: scan.Device{Host: h, LUN: l}})
	}
	rescan := func() *mgmt.Response {
		t.Helper()
		f.fs.ResetScan(h)
		return f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpScan, SID: s.SID})
	}
	// Nothing held: -R is the kernel's wildcard, as stock's.
	if resp := rescan(); resp.Error != nil || f.fs.ScanWritten(h) != "- - -" {
		t.Fatalf("rescan with nothing held: %v, wrote %q", resp.Error, f.fs.ScanWritten(h))
	}

	// The host detaches LUN 1; the target still reports it.
	f.fs.RemoveDevice(h, 0, 0, 1)
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: h, LUN: 1}})
	if got := heldOf(t, f, s.SID); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("held %v after the removal, want [1]", got)
	}
	if resp := rescan(); resp.Error != nil || f.fs.ScanWritten(h) != "0 0 2" {
		t.Errorf("rescan with LUN 1 held: %v, last write %q, want \"0 0 2\"", resp.Error, f.fs.ScanWritten(h))
	}

	// A daemon restart keeps the memory (same directory).
	f.d.holds = &scan.Holds{Dir: f.d.holds.Dir}
	if got := heldOf(t, f, s.SID); !slices.Equal(got, []uint64{1}) {
		t.Errorf("held %v after a restart, want [1]", got)
	}

	// An explicit scan of LUN 1 is a request for it.
	lun := uint64(1)
	if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpScan, SID: s.SID, LUN: &lun}); resp.Error != nil || f.fs.ScanWritten(h) != "0 0 1" {
		t.Errorf("--scan-lun 1: %v, wrote %q", resp.Error, f.fs.ScanWritten(h))
	}
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v after --scan-lun 1, want nothing", got)
	}

	// Held again, then the target stops reporting it: forgotten.
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: h, LUN: 1}})
	rep.Set(h, 0, 2)
	rescan()
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v after the target stopped reporting LUN 1, want nothing", got)
	}

	// The periodic question finds the unexport without a rescan.
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: h, LUN: 2}})
	f.d.forgetUnreported(context.Background(), mustSession(t, f, s.SID))
	if got := heldOf(t, f, s.SID); !slices.Equal(got, []uint64{2}) {
		t.Errorf("held %v while the target reports LUN 2, want [2]", got)
	}
	rep.Set(h, 0)
	f.d.forgetUnreported(context.Background(), mustSession(t, f, s.SID))
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v after the target stopped reporting LUN 2, want nothing", got)
	}
}

// TestLogoutHoldsNothing: the devices a logout takes with it are not LUNs the
// host detached, and a later login scans them all.
func TestLogoutHoldsNothing(t *testing.T) {
	f := newFixture(t)
	f.d.holds = &scan.Holds{Dir: t.TempDir()}
	s := f.login(t, nil)
	f.fs.AddSession(s.SID, s.HostNo, testIQN, "127.0.0.1", 3260)
	ds, _ := f.d.session(uint32(s.SID))
	ds.leaving.Store(true)
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: s.HostNo, LUN: 0}})
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v from a logout's removals", got)
	}
	ds.leaving.Store(false)
	// A session whose target is being unbound by the kernel is no better.
	f.fs.SetSessionAttr(s.SID, "target_state", "UNBINDING")
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: s.HostNo, LUN: 0}})
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v from an unbinding session's removals", got)
	}
}

// TestBrokenMemoryFailsClosed: when the memory cannot be read, -R refuses
// with an error naming it instead of scanning the wildcard.
func TestBrokenMemoryFailsClosed(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	s := f.login(t, nil)
	key := nodeKey(mustSession(t, f, s.SID).k.Node().Node)
	seed := &scan.Holds{Dir: dir}
	seed.Attach(key, 0)
	writeTorn(t, dir)
	f.d.holds = &scan.Holds{Dir: dir}
	f.fs.ResetScan(s.HostNo)
	resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpScan, SID: s.SID})
	if resp.Error == nil || f.fs.ScanWritten(s.HostNo) != "" {
		t.Errorf("rescan with an unreadable memory: %v, wrote %q", resp.Error, f.fs.ScanWritten(s.HostNo))
	}
}

func mustSession(t *testing.T, f *fixture, sid int) *daemonSession {
	t.Helper()
	ds, err := f.d.session(uint32(sid))
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// writeTorn replaces every memory file in dir with a torn one.
func writeTorn(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("memory files: %v, %v", ents, err)
	}
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScanByOthersReleases: a held LUN that a scan goiscsid did not make adds
// (an attach tool's own narrow scan) is the host's again.
func TestScanByOthersReleases(t *testing.T) {
	f := newFixture(t)
	f.d.holds = &scan.Holds{Dir: t.TempDir()}
	s := f.login(t, nil)
	f.fs.AddSession(s.SID, s.HostNo, testIQN, "127.0.0.1", 3260)
	dev := scan.Device{Host: s.HostNo, LUN: 4}
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: dev})
	if got := heldOf(t, f, s.SID); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("held %v, want [4]", got)
	}
	f.d.deviceEvent(scan.Event{Action: "add", Session: s.SID, Device: dev})
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v after another tool added LUN 4, want nothing", got)
	}
	// An event of another host's device with the same session number is
	// not this session's.
	f.d.deviceEvent(scan.Event{Action: "remove", Session: s.SID, Device: scan.Device{Host: s.HostNo + 1, LUN: 5}})
	if got := heldOf(t, f, s.SID); got != nil {
		t.Errorf("held %v from another host's event", got)
	}
}

// TestRemoveLUNHoldsItBack: a LUN that goiscsiadm --remove-lun took away
// (selected by session or by target) is held back at once, without waiting
// for the kernel's remove event, and -R leaves it out under every policy; a
// removal that failed (the disk held open) holds nothing back, and -R is the
// kernel's wildcard again.
func TestRemoveLUNHoldsItBack(t *testing.T) {
	manual := map[string]string{"node.session.scan": "manual"}
	lun0 := map[string]string{"node.session.autoscan_en": "No"}
	for _, tc := range []struct {
		name     string
		keys     map[string]string
		byTarget bool
		inUse    bool
		wantHeld []uint64
		wantScan string // -R's last write to the scan file; "" for none
	}{
		{"by session, auto", nil, false, false, []uint64{1}, ""},
		{"by target, auto", nil, true, false, []uint64{1}, ""},
		{"by session, autoscan_en = No", lun0, false, false, []uint64{1}, ""},
		{"by target, scan = manual", manual, true, false, []uint64{1}, ""},
		{"held open, nothing removed", nil, false, true, nil, "- - -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s, k := removalFixtureWith(t, tc.keys)
			h := s.HostNo
			// LUN 0 stays, a device to ask the target through; the
			// target goes on reporting LUN 1 after its removal.
			f.fs.AddDevice(h, 0, 0, 0, "sda")
			rep := &scantest.Reporter{}
			rep.Set(h, 0, 1)
			f.d.sysfs.LUNs = rep
			f.d.holds = &scan.Holds{Dir: t.TempDir()}
			if tc.inUse {
				k.Holding["8:0"] = []scan.Opener{{PID: 42, Comm: "dd"}} // sdb, LUN 1
			}
			one := uint64(1)
			req := &mgmt.Request{Op: mgmt.OpRemoveLUN, SID: s.SID, LUN: &one, Tries: 1}
			if tc.byTarget {
				req.SID, req.Target = 0, testIQN
			}
			resp := f.d.ServeMgmt(context.Background(), req)
			if removed := resp.Error == nil && resp.Removal != nil && resp.Removal.Removed; removed == tc.inUse {
				t.Fatalf("removal: %+v %+v, want removed %v", resp.Error, resp.Removal, !tc.inUse)
			}
			if got := heldOf(t, f, s.SID); !slices.Equal(got, tc.wantHeld) {
				t.Errorf("held %v after the removal, want %v", got, tc.wantHeld)
			}
			if held, _ := f.d.holds.Held(nodeKey(mustSession(t, f, s.SID).k.Node().Node)); len(held) > 0 &&
				held[0].Reason != "removed by goiscsiadm --remove-lun" {
				t.Errorf("held for %q", held[0].Reason)
			}
			f.fs.ResetScan(h)
			if resp := f.d.ServeMgmt(context.Background(), &mgmt.Request{Op: mgmt.OpScan, SID: s.SID}); resp.Error != nil {
				t.Fatalf("-R: %v", resp.Error)
			}
			if got := f.fs.ScanWritten(h); got != tc.wantScan {
				t.Errorf("-R wrote %q to the scan file, want %q", got, tc.wantScan)
			}
		})
	}
}
