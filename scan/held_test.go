package scan_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
)

var (
	nodeA = scan.NodeKey{Target: "iqn.2003-01.org.example:a", Address: "10.0.0.1", Port: 3260, Iface: "default"}
	nodeB = scan.NodeKey{Target: "iqn.2003-01.org.example:b", Address: "10.0.0.1", Port: 3260, Iface: "default"}
)

func heldLUNs(t *testing.T, h *scan.Holds, k scan.NodeKey) []uint64 {
	t.Helper()
	held, err := h.Held(k)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, l := range held {
		out = append(out, l.LUN)
	}
	return out
}

// TestHolds follows one LUN's life: held when removed, kept across a daemon
// restart (a new Holds on the same directory), per node, released by an
// explicit scan, by an attach someone else made, or when the target stops
// reporting it.
func TestHolds(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	h := &scan.Holds{Dir: dir}
	if fresh, err := h.Hold(nodeA, 1, "removed by the host", now); err != nil || !fresh {
		t.Fatalf("Hold = %v, %v", fresh, err)
	}
	if fresh, _ := h.Hold(nodeA, 1, "again", now); fresh {
		t.Error("a second Hold of the same LUN reported it new")
	}
	h.Hold(nodeA, 3, "removed by the host", now)

	restarted := &scan.Holds{Dir: dir}
	if got := heldLUNs(t, restarted, nodeA); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("after a restart node A holds %v, want [1 3]", got)
	}
	if got := heldLUNs(t, restarted, nodeB); got != nil {
		t.Errorf("node B holds %v, want nothing: the memory is per node", got)
	}
	held, _ := restarted.Held(nodeA)
	if held[0].Reason != "removed by the host" || !held[0].Since.Equal(now) {
		t.Errorf("held LUN 1: %+v", held[0])
	}

	if ok, err := restarted.Release(nodeA, 3); !ok || err != nil {
		t.Errorf("Release(3) = %v, %v", ok, err)
	}
	if released, err := restarted.Attach(nodeA, 1); !released || err != nil {
		t.Errorf("Attach of held LUN 1 = %v, %v, want released", released, err)
	}
	if got := heldLUNs(t, restarted, nodeA); got != nil {
		t.Errorf("holds %v after release and attach", got)
	}

	restarted.Hold(nodeA, 5, "removed", now)
	restarted.Hold(nodeA, 6, "removed", now)
	gone, err := restarted.Forget(nodeA, []uint64{0, 6})
	if err != nil || len(gone) != 1 || gone[0].LUN != 5 {
		t.Errorf("Forget = %v, %v, want LUN 5 released", gone, err)
	}
	if got := heldLUNs(t, restarted, nodeA); !slices.Equal(got, []uint64{6}) {
		t.Errorf("after Forget: %v, want [6]", got)
	}
}

// TestHoldsReconcile finds the removals nobody saw: LUNs attached as last
// recorded and without a device now are held back.
func TestHoldsReconcile(t *testing.T) {
	h := &scan.Holds{Dir: t.TempDir()}
	now := time.Now()
	for _, l := range []uint64{0, 1, 2} {
		h.Attach(nodeA, l)
	}
	held, err := h.Reconcile(nodeA, []uint64{0, 2}, "removed while goiscsid was not running", now)
	if err != nil || !slices.Equal(held, []uint64{1}) {
		t.Fatalf("Reconcile = %v, %v, want [1]", held, err)
	}
	if got := heldLUNs(t, h, nodeA); !slices.Equal(got, []uint64{1}) {
		t.Errorf("holds %v", got)
	}
	// A logout takes every device with it: nothing more is held.
	if err := h.Detached(nodeA); err != nil {
		t.Fatal(err)
	}
	if held, _ := h.Reconcile(nodeA, nil, "x", now); held != nil {
		t.Errorf("after a logout Reconcile held %v", held)
	}
}

// TestHoldsBrokenFileFailsClosed: a memory that cannot be read is an error
// naming the file, never an empty memory that lets every LUN back.
func TestHoldsBrokenFileFailsClosed(t *testing.T) {
	dir := t.TempDir()
	h := &scan.Holds{Dir: dir}
	h.Hold(nodeA, 1, "removed", time.Now())
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files, want 1", len(ents))
	}
	p := filepath.Join(dir, ents[0].Name())
	os.WriteFile(p, []byte("{torn"), 0o600)
	broken := &scan.Holds{Dir: dir}
	if _, err := broken.Held(nodeA); err == nil {
		t.Fatal("a torn file read as no held LUNs")
	} else if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name %s", err, p)
	}
	if _, err := broken.Hold(nodeA, 2, "removed", time.Now()); err == nil {
		t.Error("Hold on a broken memory succeeded")
	}
	if got := heldLUNs(t, broken, nodeB); got != nil {
		t.Errorf("another node: %v", got)
	}
}

func reportLUNsData(luns ...[8]byte) []byte {
	b := make([]byte, 8, 8+8*len(luns))
	binary.BigEndian.PutUint32(b, uint32(8*len(luns)))
	for _, l := range luns {
		b = append(b, l[:]...)
	}
	return b
}

func TestParseReportLUNs(t *testing.T) {
	peripheral := func(n byte) [8]byte { return [8]byte{0, n} }
	flat300 := [8]byte{0x41, 0x2c}
	for _, tc := range []struct {
		name string
		data []byte
		want []uint64
		need int
		err  bool
	}{
		{"three", reportLUNsData(peripheral(2), peripheral(0), peripheral(1)), []uint64{0, 1, 2}, 32, false},
		{"flat space", reportLUNsData(flat300), []uint64{16684}, 16, false},
		{"duplicate", reportLUNsData(peripheral(1), peripheral(1)), []uint64{1}, 24, false},
		{"empty", reportLUNsData(), nil, 8, false},
		{"truncated: more than the buffer", append(binary.BigEndian.AppendUint32(nil, 32), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0), []uint64{1}, 40, false},
		{"short header", []byte{0, 0, 0}, nil, 0, true},
		{"odd length", append(binary.BigEndian.AppendUint32(nil, 12), 0, 0, 0, 0), nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, need, err := scan.ParseReportLUNs(tc.data)
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) || need != tc.need {
				t.Errorf("ParseReportLUNs = %v, %d, %v; want %v, %d, error %v", got, need, err, tc.want, tc.need, tc.err)
			}
		})
	}
}

func FuzzParseReportLUNs(f *testing.F) {
	f.Add(reportLUNsData([8]byte{0, 1}, [8]byte{0x40, 1}))
	f.Add([]byte{0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		luns, need, err := scan.ParseReportLUNs(b)
		if err != nil {
			return
		}
		if need < 8 || len(luns) > (len(b)-8)/8 || !slices.IsSorted(luns) {
			t.Fatalf("%v, need %d from %d bytes", luns, need, len(b))
		}
	})
}

// TestApplyWithHeldLUNs: with LUNs held back a broad scan asks the target and
// adds the others one by one; with none it is the kernel's wildcard.
func TestApplyWithHeldLUNs(t *testing.T) {
	ctx := context.Background()
	fs, rep, s := heldTarget(t)

	out, err := s.Apply(ctx, nil, 1, 3, scan.Auto, scan.Request, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	if !out.LUNByLUN || !slices.Equal(out.Added, []uint64{2}) || !slices.Equal(out.Skipped, []uint64{1}) || !slices.Equal(out.Reported, []uint64{0, 1, 2}) {
		t.Errorf("outcome %+v, want LUN 2 added, LUN 1 skipped", out)
	}
	if got := fs.ScanWritten(3); got != "0 0 2" {
		t.Errorf("last scan write %q, want \"0 0 2\" (never the wildcard)", got)
	}
	if fs.DeviceWritten(3, 0, 0, 0, "rescan") != "1" {
		t.Error("the existing device was not rescanned")
	}

	// LUN 0 held and no device to ask through: nothing is added.
	empty := scantest.New(t)
	empty.AddHost(4)
	rep.Set(4, 0, 1)
	s = scan.Sysfs{Root: empty.Root, LUNs: rep}
	if _, err := s.Apply(ctx, nil, 2, 4, scan.Auto, scan.Login, []uint64{0}); !errors.Is(err, scan.ErrNoDeviceToAsk) {
		t.Errorf("scan without a device to ask: %v, want ErrNoDeviceToAsk", err)
	}
	if got := empty.ScanWritten(4); got != "" {
		t.Errorf("wrote %q to the scan file, want nothing", got)
	}
	// Under lun0 with LUN 0 held, the login scan writes nothing.
	if out, err := s.Apply(ctx, nil, 2, 4, scan.LUN0, scan.Login, []uint64{0}); err != nil || empty.ScanWritten(4) != "" || !slices.Equal(out.Skipped, []uint64{0}) {
		t.Errorf("lun0 login with LUN 0 held: %+v, %v, wrote %q", out, err, empty.ScanWritten(4))
	}
	// Nothing held: the wildcard, and the target is not asked.
	asked := rep.Asked(3)
	s = scan.Sysfs{Root: fs.Root, LUNs: rep}
	if _, err := s.Apply(ctx, nil, 1, 3, scan.Auto, scan.Login, nil); err != nil || fs.ScanWritten(3) != "- - -" || rep.Asked(3) != asked {
		t.Errorf("no held LUNs: err %v, wrote %q, asked %d times more", err, fs.ScanWritten(3), rep.Asked(3)-asked)
	}
}

func TestLinuxLUN(t *testing.T) {
	for _, tc := range []struct {
		in   [8]byte
		want uint64
	}{
		{[8]byte{0, 5}, 5},
		{[8]byte{0x41, 0x2c}, 16684},
		{[8]byte{0xc1, 0x01}, 49409},
		{[8]byte{0, 1, 0, 2}, 1 | 2<<16},
	} {
		if got := scan.LinuxLUN(tc.in); got != tc.want {
			t.Errorf("LinuxLUN(% x) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestRequestLeavesHeldOutUnderEveryPolicy: -R is the user's request whatever
// the policy (autoscan_en = No and scan = manual too, README's table), and
// never a resurrection: under each it adds the reported LUNs but the held ones,
// LUN by LUN, and rescans the existing devices.
func TestRequestLeavesHeldOutUnderEveryPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy scan.Policy
		held   []uint64
		added  []uint64
		wrote  string // the scan file's last write; "" for none
	}{
		{"auto", scan.Auto, []uint64{1}, []uint64{2}, "0 0 2"},
		{"autoscan_en = No", scan.LUN0, []uint64{1}, []uint64{2}, "0 0 2"},
		{"scan = manual", scan.Manual, []uint64{1}, []uint64{2}, "0 0 2"},
		{"autoscan_en = No, every new LUN held", scan.LUN0, []uint64{1, 2}, nil, ""},
		{"scan = manual, every new LUN held", scan.Manual, []uint64{1, 2}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _, s := heldTarget(t)
			out, err := s.Apply(context.Background(), nil, 1, 3, tc.policy, scan.Request, tc.held)
			if err != nil {
				t.Fatal(err)
			}
			if !out.LUNByLUN || !slices.Equal(out.Added, tc.added) || !slices.Equal(out.Skipped, tc.held) {
				t.Errorf("outcome %+v, want LUN by LUN, added %v, skipped %v", out, tc.added, tc.held)
			}
			if got := fs.ScanWritten(3); got != tc.wrote {
				t.Errorf("last scan write %q, want %q", got, tc.wrote)
			}
			if fs.DeviceWritten(3, 0, 0, 0, "rescan") != "1" {
				t.Error("the existing device was not rescanned")
			}
		})
	}
}

// heldTarget is host 3 with LUN 0 attached (sdb) of a target reporting LUNs 0-2.
func heldTarget(t *testing.T) (*scantest.FS, *scantest.Reporter, scan.Sysfs) {
	t.Helper()
	fs := scantest.New(t)
	fs.AddHost(3)
	fs.AddDevice(3, 0, 0, 0, "sdb")
	rep := &scantest.Reporter{}
	rep.Set(3, 0, 1, 2)
	return fs, rep, scan.Sysfs{Root: fs.Root, LUNs: rep}
}
