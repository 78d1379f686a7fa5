package scantest

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/goiscsi/goiscsi/scan"
)

// BlockOps is a fake scan.BlockOps over an FS: its device-mapper finds devices in
// the tree and takes them away when it removes them, and a SCSI delete writes
// the device's delete file and takes the device away. The exported fields
// make maps busy, flushes fail and devices stick; set them before use.
type BlockOps struct {
	fs *FS
	s  scan.Sysfs

	// OpenFor is how many more DM_DEV_STATUS answers report the map with
	// this uuid open (open count 1).
	OpenFor map[string]int
	// BusyRemoves is how many more removals of the uuid fail with EBUSY.
	BusyRemoves map[string]int
	// Keep makes removals of the uuid succeed and leave the device there.
	Keep map[string]bool
	// FlushErr makes the flush of the block device (by name) fail.
	FlushErr map[string]error
	// Holding lists the processes holding each device (by number) open.
	Holding map[string][]scan.Opener
	// Exclusive marks block devices (by name) claimed for exclusive use.
	Exclusive map[string]bool
	// Stuck SCSI devices (H:C:T:L) stay after their delete.
	Stuck map[string]bool
	// AfterRemove runs after each removal of a device-mapper device.
	AfterRemove func(uuid string)
	// OnFlush runs at the start of each flush, with the device's name.
	OnFlush func(name string)

	mu    sync.Mutex
	calls []string
}

// NewBlockOps returns fake block operations over f.
func NewBlockOps(f *FS) *BlockOps {
	return &BlockOps{fs: f, s: scan.Sysfs{Root: f.Root}, OpenFor: map[string]int{}, BusyRemoves: map[string]int{},
		Keep: map[string]bool{}, FlushErr: map[string]error{}, Holding: map[string][]scan.Opener{},
		Exclusive: map[string]bool{}, Stuck: map[string]bool{}}
}

// Calls lists what was done, in order: "flush dm-0", "remove mpath-<WWID>",
// "delete 2:0:0:1".
func (k *BlockOps) Calls() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.calls...)
}

func (k *BlockOps) call(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf(format, args...))
}

// Status reports the device with uuid from the tree; ENXIO when there is none.
func (k *BlockOps) Status(uuid string) (scan.DMStatus, error) {
	d, ok := k.s.FindDMByUUID(uuid)
	if !ok {
		return scan.DMStatus{}, fmt.Errorf("DM_DEV_STATUS of %s: %w", uuid, unix.ENXIO)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	st := scan.DMStatus{Name: d.DMName, UUID: uuid, Dev: d.Dev}
	if k.OpenFor[uuid] > 0 {
		k.OpenFor[uuid]--
		st.OpenCount = 1
	}
	return st, nil
}

// Remove takes the device with uuid out of the tree.
func (k *BlockOps) Remove(uuid string) error {
	k.call("remove %s", uuid)
	d, ok := k.s.FindDMByUUID(uuid)
	if !ok {
		return fmt.Errorf("DM_DEV_REMOVE of %s: %w", uuid, unix.ENXIO)
	}
	k.mu.Lock()
	busy := k.BusyRemoves[uuid] > 0
	if busy {
		k.BusyRemoves[uuid]--
	}
	keep := k.Keep[uuid]
	k.mu.Unlock()
	if busy {
		return fmt.Errorf("DM_DEV_REMOVE of %s: %w", uuid, unix.EBUSY)
	}
	if !keep {
		k.fs.RemoveDM(d.Name)
	}
	if k.AfterRemove != nil {
		k.AfterRemove(uuid)
	}
	return nil
}

// Flush records the flush.
func (k *BlockOps) Flush(_ context.Context, b scan.BlockDev) error {
	if k.OnFlush != nil {
		k.OnFlush(b.Name)
	}
	k.call("flush %s", b.Name)
	return k.FlushErr[b.Name]
}

// Claimed reports Exclusive.
func (k *BlockOps) Claimed(b scan.BlockDev) (bool, error) { return k.Exclusive[b.Name], nil }

// Openers reports Holding.
func (k *BlockOps) Openers(devs []scan.BlockDev) (map[string][]scan.Opener, error) {
	out := map[string][]scan.Opener{}
	for _, b := range devs {
		out[b.Dev] = k.Holding[b.Dev]
	}
	return out, nil
}

// DeleteSCSI writes the device's delete file, then takes the device out of
// the tree unless it is Stuck.
func (k *BlockOps) DeleteSCSI(ctx context.Context, d scan.Device) error {
	k.call("delete %s", d.HCTL())
	if err := k.s.DeleteDevice(ctx, d); err != nil {
		return err
	}
	if !k.Stuck[d.HCTL()] {
		k.fs.RemoveDevice(d.Host, d.Channel, d.Target, d.LUN)
	}
	return nil
}
