package scan_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/scan/scantest"
)

func TestPolicyFor(t *testing.T) {
	for _, tc := range []struct {
		scan, autoscan string
		want           scan.Policy
		err            string
	}{
		{"", "", scan.Auto, ""},
		{"auto", "Yes", scan.Auto, ""},
		{"Auto", "yes", scan.Auto, ""},
		{"auto", "No", scan.LUN0, ""},
		{"", "no", scan.LUN0, ""},
		{"manual", "Yes", scan.Manual, ""},
		{"manual", "No", scan.Manual, ""},
		{"sometimes", "", 0, "node.session.scan"},
		{"auto", "maybe", 0, "node.session.autoscan_en"},
	} {
		got, err := scan.PolicyFor(tc.scan, tc.autoscan)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("PolicyFor(%q, %q) error %v, want one naming %s", tc.scan, tc.autoscan, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("PolicyFor(%q, %q) = %v, %v; want %v", tc.scan, tc.autoscan, got, err, tc.want)
		}
	}
}

func TestDecideTable(t *testing.T) {
	n, z, f, nr := scan.None, scan.LUNZero, scan.Full, scan.NewAndRescan
	want := map[scan.Policy][6]scan.ActionKind{
		//           login AEN UA start relogin request
		scan.Auto:   {f, nr, nr, f, n, nr},
		scan.LUN0:   {z, n, n, n, n, nr},
		scan.Manual: {n, n, n, n, n, nr},
	}
	for p, row := range want {
		for i, trig := range []scan.Trigger{scan.Login, scan.AEN, scan.UA, scan.Start, scan.Relogin, scan.Request} {
			if got := scan.Decide(p, trig).Kind; got != row[i] {
				t.Errorf("Decide(%v, %v) = %v, want %v", p, trig, scan.Action{Kind: got}, scan.Action{Kind: row[i]})
			}
		}
	}
}

func TestApplyWritesWhatThePolicySays(t *testing.T) {
	fs := scantest.New(t)
	fs.AddHost(3)
	fs.AddDevice(3, 0, 0, 0, "sdb")
	fs.AddDevice(3, 0, 0, 4, "sdc")
	fs.SetState(3, 0, 0, 4, "transport-offline")
	s := scan.Sysfs{Root: fs.Root}
	ctx := context.Background()
	for _, tc := range []struct {
		p    scan.Policy
		t    scan.Trigger
		scan string
	}{
		{scan.Auto, scan.Login, "- - -"},
		{scan.LUN0, scan.Login, "0 0 0"},
		{scan.Manual, scan.Login, ""},
		{scan.LUN0, scan.AEN, ""},
		{scan.Auto, scan.Relogin, ""},
	} {
		fs.ResetScan(3)
		if _, err := s.Apply(ctx, nil, 1, 3, tc.p, tc.t, nil); err != nil {
			t.Fatal(err)
		}
		if got := fs.ScanWritten(3); got != tc.scan {
			t.Errorf("%v on %v wrote %q, want %q", tc.p, tc.t, got, tc.scan)
		}
	}
	fs.ResetScan(3)
	if _, err := s.Apply(ctx, nil, 1, 3, scan.Auto, scan.AEN, nil); err != nil {
		t.Fatal(err)
	}
	if fs.ScanWritten(3) != "- - -" || fs.DeviceWritten(3, 0, 0, 0, "rescan") != "1" ||
		fs.DeviceWritten(3, 0, 0, 4, "state") != "running" {
		t.Errorf("AEN under auto: scan %q, rescan %q, offline device state %q", fs.ScanWritten(3),
			fs.DeviceWritten(3, 0, 0, 0, "rescan"), fs.DeviceWritten(3, 0, 0, 4, "state"))
	}
}

func TestScanLUNAndDevices(t *testing.T) {
	fs := scantest.New(t)
	fs.AddHost(5)
	fs.AddDevice(5, 0, 0, 300, "sdd")
	fs.AddDevice(5, 0, 0, 2, "")
	fs.AddDevice(6, 0, 0, 0, "sde")
	s := scan.Sysfs{Root: fs.Root}
	if err := s.ScanLUN(context.Background(), 5, 300); err != nil {
		t.Fatal(err)
	}
	if got := fs.ScanWritten(5); got != "0 0 300" {
		t.Errorf("ScanLUN wrote %q", got)
	}
	devs, err := s.Devices(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].LUN != 2 || devs[1].LUN != 300 || devs[1].Block != "sdd" || devs[0].Block != "" || devs[1].State != "running" {
		t.Fatalf("Devices(5) = %+v", devs)
	}
	if err := s.ScanLUN(context.Background(), 9, 0); err == nil || !strings.Contains(err.Error(), "host9/scan") {
		t.Errorf("scan of a missing host: %v", err)
	}
}

func TestScanHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fs := scantest.New(t)
	fs.AddHost(1)
	err := scan.Sysfs{Root: fs.Root}.ScanHost(ctx, 1, "-", "-", "-")
	// The write may win the race against the cancelled context; either
	// way nothing hangs and an error names the cause.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestParseUevent(t *testing.T) {
	const dev = "/devices/platform/host2/session1/target2:0:0/2:0:0:3"
	for _, tc := range []struct {
		name, msg string
		ok        bool
		want      scan.Event
	}{
		{"unit attention", "change@" + dev + "\x00ACTION=change\x00DEVPATH=" + dev + "\x00SUBSYSTEM=scsi\x00" +
			"SDEV_UA=REPORTED_LUNS_DATA_HAS_CHANGED\x00DEVTYPE=scsi_device\x00SEQNUM=1234\x00", true,
			scan.Event{Action: "change", UA: "REPORTED_LUNS_DATA_HAS_CHANGED", DevPath: dev, Session: 1,
				Device: scan.Device{Host: 2, LUN: 3}}},
		{"removal", "remove@" + dev + "\x00ACTION=remove\x00DEVPATH=" + dev + "\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00", true,
			scan.Event{Action: "remove", DevPath: dev, Session: 1, Device: scan.Device{Host: 2, LUN: 3}}},
		{"addition", "add@" + dev + "\x00ACTION=add\x00DEVPATH=" + dev + "\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00", true,
			scan.Event{Action: "add", DevPath: dev, Session: 1, Device: scan.Device{Host: 2, LUN: 3}}},
		{"change without a unit attention", "change@" + dev + "\x00ACTION=change\x00DEVPATH=" + dev + "\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00", false, scan.Event{}},
		{"SCSI target", "remove@/devices/platform/host2/session1/target2:0:0\x00ACTION=remove\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_target\x00", false, scan.Event{}},
		{"block device", "add@/devices/virtual/block/loop0\x00ACTION=add\x00SUBSYSTEM=block\x00", false, scan.Event{}},
		{"udev's", "libudev\x00\x00", false, scan.Event{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, ok, err := scan.ParseUevent([]byte(tc.msg))
			if err != nil || ok != tc.ok || ev != tc.want {
				t.Errorf("ParseUevent = %+v, %v, %v; want %+v, %v", ev, ok, err, tc.want, tc.ok)
			}
		})
	}
	if !(scan.Event{Action: "change", UA: "REPORTED_LUNS_DATA_HAS_CHANGED"}).LUNsChanged() {
		t.Error("3F/0E change not LUNsChanged")
	}
	if _, _, err := scan.ParseUevent([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
	if _, ok, err := scan.ParseUevent([]byte("add@/x\x00ACTION=add\x00DEVPATH=/devices/x/notanaddress\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00")); ok || err == nil {
		t.Errorf("a SCSI device path without H:C:T:L: ok %v, err %v", ok, err)
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("change@/devices/platform/host2/session1/target2:0:0/2:0:0:0\x00ACTION=change\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00SDEV_UA=X\x00DEVPATH=/devices/platform/host2/session1/target2:0:0/2:0:0:0"))
	f.Add([]byte("remove@/devices/platform/host2/session1/target2:0:0/2:0:0:7\x00ACTION=remove\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00DEVPATH=/devices/platform/host2/session1/target2:0:0/2:0:0:7"))
	f.Add([]byte("libudev\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := scan.ParseUevent(b)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if ok && ev.Action != "add" && ev.Action != "remove" && ev.UA == "" {
			t.Fatalf("ok for a change without SDEV_UA: %+v", ev)
		}
		if ok && ev.DevPath == "" {
			t.Fatalf("ok without a device path: %+v", ev)
		}
	})
}

func TestSessions(t *testing.T) {
	fs := scantest.New(t)
	fs.AddSession(3, 7, "iqn.2003-01.org.example:t", "10.0.0.1", 3260)
	root := fs.Root
	write := func(p, v string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("class/iscsi_session/session3/tpgt", "2")
	write("class/iscsi_session/session3/ifacename", "default")
	write("class/iscsi_session/session3/initiatorname", "(null)")
	got, err := scan.Sysfs{Root: root}.Sessions()
	if err != nil || len(got) != 1 {
		t.Fatalf("Sessions: %v %v", got, err)
	}
	s := got[0]
	if s.SID != 3 || s.Host != 7 || s.TPGT != 2 || s.Iface != "default" || s.InitiatorName != "" || s.State != "LOGGED_IN" ||
		s.PersistentAddress != "10.0.0.1" || s.PersistentPort != 3260 || s.Flash {
		t.Errorf("%+v", s)
	}
}

// BenchmarkParseUevent is the uevent listener's cost of an event that is not
// a SCSI device's, most of what a logout storm brings (block, bdi, scsi_disk,
// the session's and the host's own), and of one that is.
func BenchmarkParseUevent(b *testing.B) {
	const dev = "/devices/platform/host2/session1/target2:0:0/2:0:0:3"
	for _, bc := range []struct{ name, msg string }{
		{"block", "remove@" + dev + "/block/sdb\x00ACTION=remove\x00DEVPATH=" + dev + "/block/sdb\x00SUBSYSTEM=block\x00" +
			"MAJOR=8\x00MINOR=16\x00DEVNAME=sdb\x00DEVTYPE=disk\x00DISKSEQ=9\x00SEQNUM=2041\x00"},
		{"scsi_device", "remove@" + dev + "\x00ACTION=remove\x00DEVPATH=" + dev + "\x00SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00" +
			"MODALIAS=scsi:t-0x00\x00SEQNUM=2044\x00"},
	} {
		msg := []byte(bc.msg)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := scan.ParseUevent(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
