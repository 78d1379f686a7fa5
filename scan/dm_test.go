package scan

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The layout of struct dm_ioctl, from <linux/dm-ioctl.h>: each field at the
// offset the kernel reads it from.
func TestDMIoctlLayout(t *testing.T) {
	d := dmIoctl{Version: [3]uint32{4, 1, 2}, DataSize: 312, DataStart: 312, TargetCount: 3,
		OpenCount: -2, Flags: 1 << 14, EventNr: 77, Dev: 0x1122334455667788,
		Name: "mpatha", UUID: "mpath-3600140597a421d92b7f48508f3d5ccef"}
	b, err := d.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 312 {
		t.Fatalf("struct dm_ioctl is %d bytes, want 312", len(b))
	}
	ne := binary.NativeEndian
	for _, f := range []struct {
		name string
		off  int
		got  uint64
		want uint64
	}{
		{"version[0]", 0, uint64(ne.Uint32(b[0:])), 4},
		{"version[1]", 4, uint64(ne.Uint32(b[4:])), 1},
		{"version[2]", 8, uint64(ne.Uint32(b[8:])), 2},
		{"data_size", 12, uint64(ne.Uint32(b[12:])), 312},
		{"data_start", 16, uint64(ne.Uint32(b[16:])), 312},
		{"target_count", 20, uint64(ne.Uint32(b[20:])), 3},
		{"open_count", 24, uint64(ne.Uint32(b[24:])), 0xfffffffe},
		{"flags", 28, uint64(ne.Uint32(b[28:])), 1 << 14},
		{"event_nr", 32, uint64(ne.Uint32(b[32:])), 77},
		{"padding", 36, uint64(ne.Uint32(b[36:])), 0},
		{"dev", 40, ne.Uint64(b[40:]), 0x1122334455667788},
	} {
		if f.got != f.want {
			t.Errorf("%s at offset %d = %#x, want %#x", f.name, f.off, f.got, f.want)
		}
	}
	if got := b[48 : 48+7]; !bytes.Equal(got, []byte("mpatha\x00")) {
		t.Errorf("name at 48 = %q", got)
	}
	if got := string(b[176 : 176+len(d.UUID)+1]); got != d.UUID+"\x00" {
		t.Errorf("uuid at 176 = %q", got)
	}
	if !bytes.Equal(b[305:], make([]byte, 7)) {
		t.Errorf("data[7] at 305 is not zero: %v", b[305:])
	}
	back, err := unmarshalDMIoctl(b)
	if err != nil || back != d {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, d)
	}
}

// The ioctl numbers are _IOWR(0xfd, nr, struct dm_ioctl): their size field
// must be the struct's size, or the kernel copies the wrong amount.
func TestDMIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name string
		req  uint
		nr   uint
	}{{"DM_DEV_REMOVE", dmDevRemove, 4}, {"DM_DEV_STATUS", dmDevStatus, 7}} {
		dir, size, typ, nr := c.req>>30, (c.req>>16)&0x3fff, (c.req>>8)&0xff, c.req&0xff
		if dir != 3 || size != dmIoctlSize || typ != 0xfd || nr != c.nr {
			t.Errorf("%s = %#x: dir %d size %d type %#x nr %d; want 3, %d, 0xfd, %d", c.name, c.req, dir, size, typ, nr, dmIoctlSize, c.nr)
		}
	}
	if unix.DM_VERSION_MAJOR != 4 {
		t.Errorf("DM_VERSION_MAJOR = %d, this codec speaks 4", unix.DM_VERSION_MAJOR)
	}
}

func TestDMIoctlRejects(t *testing.T) {
	for _, d := range []dmIoctl{
		{Name: strings.Repeat("n", 128)},
		{UUID: strings.Repeat("u", 129)},
	} {
		if _, err := d.marshal(); err == nil {
			t.Errorf("marshal of name %d bytes, uuid %d bytes: no error", len(d.Name), len(d.UUID))
		}
	}
	// The longest names that fit keep their terminating NUL.
	d := dmIoctl{Name: strings.Repeat("n", 127), UUID: strings.Repeat("u", 128)}
	b, err := d.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if back, _ := unmarshalDMIoctl(b); back.Name != d.Name || back.UUID != d.UUID {
		t.Errorf("longest name and uuid did not round-trip: %q %q", back.Name, back.UUID)
	}
	if _, err := unmarshalDMIoctl(b[:300]); err == nil {
		t.Error("short reply accepted")
	}
}

// Against the real device-mapper, when the test runs as root with dm_mod
// loaded: a uuid no device has is ENXIO, which is what verification relies on.
func TestDMControlNoSuchDevice(t *testing.T) {
	c := DMControl{}
	_, err := c.Status("goiscsi-test-no-such-uuid")
	if err != nil && strings.Contains(err.Error(), "control") {
		t.Skipf("no device-mapper here: %v", err)
	}
	if !isGone(err) {
		t.Fatalf("DM_DEV_STATUS of a uuid no device has: %v, want ENXIO", err)
	}
	if err := c.Remove("goiscsi-test-no-such-uuid"); !isGone(err) {
		t.Fatalf("DM_DEV_REMOVE of a uuid no device has: %v, want ENXIO", err)
	}
}
