package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sysfs scans and lists SCSI devices through the files under Root ("/sys"; a
// temporary tree in tests, see scantest).
type Sysfs struct {
	Root string
	// LUNs learns a target's LUNs for scans that go LUN by LUN; nil means
	// BSG on /dev.
	LUNs LUNReporter
}

func (s Sysfs) root() string {
	if s.Root == "" {
		return "/sys"
	}
	return s.Root
}

// Device is one SCSI device (a LUN of a session's target).
type Device struct {
	Host, Channel, Target int
	LUN                   uint64
	// Block is the block device name ("sdb"), empty for a LUN without one.
	Block string
	// State is the SCSI device state: running, offline, transport-offline, ...
	State string
}

// HCTL formats the device's address as "H:C:T:L".
func (d Device) HCTL() string {
	return strconv.Itoa(d.Host) + ":" + strconv.Itoa(d.Channel) + ":" + strconv.Itoa(d.Target) + ":" + strconv.FormatUint(d.LUN, 10)
}

// parseHCTL reads a SCSI device's sysfs name, "H:C:T:L" (four decimal
// numbers, nothing else): the device at that address, ok false for any other
// name. fmt.Sscanf did this at 50 times the cost, which a listing of many
// devices paid under TCG, and let trailing bytes through.
func parseHCTL(name string) (d Device, ok bool) {
	parts := strings.Split(name, ":")
	if len(parts) != 4 {
		return Device{}, false
	}
	var n [3]int
	for i := range n {
		v, err := strconv.ParseUint(parts[i], 10, 31)
		if err != nil {
			return Device{}, false
		}
		n[i] = int(v)
	}
	lun, err := strconv.ParseUint(parts[3], 10, 64)
	if err != nil {
		return Device{}, false
	}
	return Device{Host: n[0], Channel: n[1], Target: n[2], LUN: lun}, true
}

// write writes value to the sysfs file p. A write to a scan file returns only
// when the kernel has finished scanning; when ctx ends first write returns
// ctx's error and the kernel's scan goes on.
func write(ctx context.Context, p, value string) error {
	done := make(chan error, 1)
	go func() {
		// O_TRUNC as a shell redirection does: sysfs ignores it, and a regular
		// file in a test tree then holds exactly the last write.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			done <- err
			return
		}
		_, err = f.Write([]byte(value))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write %q to %s: %w", value, p, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("write %q to %s: %w (the kernel goes on with it)", value, p, ctx.Err())
	}
}

func (s Sysfs) scanFile(host int) string {
	return filepath.Join(s.root(), "class", "scsi_host", fmt.Sprintf("host%d", host), "scan")
}

// ScanHost writes "channel target lun" to host's scan file; "-" is a wildcard.
// For an iSCSI host the kernel hands the request to the session's transport,
// which scans its one target.
func (s Sysfs) ScanHost(ctx context.Context, host int, channel, target, lun string) error {
	return write(ctx, s.scanFile(host), channel+" "+target+" "+lun)
}

// ScanLUN adds exactly one LUN: "0 0 lun". An iscsi_tcp session has one channel
// (0) and one target (id 0), and the kernel probes only that LUN, without a
// REPORT LUNS scan of the rest.
func (s Sysfs) ScanLUN(ctx context.Context, host int, lun uint64) error {
	return s.ScanHost(ctx, host, "0", "0", strconv.FormatUint(lun, 10))
}

// RescanDevices makes the kernel re-read each existing device of host (size,
// state), putting offline devices back to running first, as open-iscsi does after
// a relogin.
func (s Sysfs) RescanDevices(ctx context.Context, host int) error {
	devs, err := s.Devices(host)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range devs {
		dir := s.deviceDir(d)
		if d.State == "offline" || d.State == "transport-offline" {
			if err := write(ctx, filepath.Join(dir, "state"), "running\n"); err != nil {
				errs = append(errs, err)
			}
		}
		if err := write(ctx, filepath.Join(dir, "rescan"), "1"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s Sysfs) deviceDir(d Device) string {
	return filepath.Join(s.root(), "class", "scsi_device", d.HCTL(), "device")
}

// DeleteDevice removes d from the kernel (device/delete).
func (s Sysfs) DeleteDevice(ctx context.Context, d Device) error {
	return write(ctx, filepath.Join(s.deviceDir(d), "delete"), "1")
}

// Devices lists host's SCSI devices, ordered by H:C:T:L.
func (s Sysfs) Devices(host int) ([]Device, error) {
	all, err := s.devices(func(h int) bool { return h == host })
	return all[host], err
}

// DevicesByHost lists every host's SCSI devices, each host's ordered by
// H:C:T:L: one pass over sysfs for a listing of many sessions.
func (s Sysfs) DevicesByHost() (map[int][]Device, error) {
	return s.devices(func(int) bool { return true })
}

func (s Sysfs) devices(want func(host int) bool) (map[int][]Device, error) {
	dir := filepath.Join(s.root(), "class", "scsi_device")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[int][]Device{}, nil
	}
	if err != nil {
		return map[int][]Device{}, err
	}
	out := map[int][]Device{}
	for _, e := range ents {
		d, ok := parseHCTL(e.Name())
		if !ok || !want(d.Host) {
			continue
		}
		dev := filepath.Join(dir, e.Name(), "device")
		d.State = readAttr(filepath.Join(dev, "state"))
		d.Block = firstEntry(filepath.Join(dev, "block"))
		out[d.Host] = append(out[d.Host], d)
	}
	for _, devs := range out {
		sort.Slice(devs, func(i, j int) bool {
			a, b := devs[i], devs[j]
			if a.Channel != b.Channel {
				return a.Channel < b.Channel
			}
			if a.Target != b.Target {
				return a.Target < b.Target
			}
			return a.LUN < b.LUN
		})
	}
	return out, nil
}

// firstEntry returns the name of an entry of directory dir, "" when it has
// none or cannot be read: a SCSI device's block/ holds its one disk. One
// getdents(2), where os.ReadDir makes five or six system calls and sorts.
func firstEntry(dir string) string {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n, err := unix.Getdents(fd, buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	_, _, names := unix.ParseDirent(buf[:n], 1, nil)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// Outcome is what one scan decision did.
type Outcome struct {
	Action Action
	// LUNByLUN is set when the scan went LUN by LUN because LUNs were held
	// back: Reported is then the target's REPORT LUNS list, Added the LUNs
	// scanned, Skipped the held-back ones it reports.
	LUNByLUN bool
	Reported []uint64
	Added    []uint64
	Skipped  []uint64
}

// Apply decides what trigger t does under policy p for session sid on host,
// does it, and logs the decision at info level: every scan goiscsid makes, or
// declines to make, can be traced.
//
// held are the LUNs no scan may bring back. With none, a broad scan is the
// kernel's wildcard ("- - -"), as open-iscsi's. With some, it asks the target
// for its LUNs (REPORT LUNS through s.LUNs) and adds the others one by one:
// the wildcard would add the held ones too.
func (s Sysfs) Apply(ctx context.Context, log *slog.Logger, sid, host int, p Policy, t Trigger, held []uint64) (Outcome, error) {
	out := Outcome{Action: Decide(p, t)}
	start := time.Now()
	var err error
	wrote := ""
	switch a := out.Action; {
	case a.Kind == LUNZero && slices.Contains(held, 0):
		wrote = "nothing: LUN 0 is held back"
		out.Skipped = []uint64{0}
	case a.Kind == LUNZero:
		wrote = "0 0 0"
		err = s.ScanLUN(ctx, host, 0)
	case (a.Kind == Full || a.Kind == NewAndRescan) && len(held) > 0:
		out.LUNByLUN = true
		wrote = "one \"0 0 L\" per reported LUN but the held-back ones"
		err = s.scanReported(ctx, host, held, &out)
		if a.Kind == NewAndRescan {
			wrote += " and rescan of each device"
			err = errors.Join(err, s.RescanDevices(ctx, host))
		}
	case a.Kind == Full:
		wrote = "- - -"
		err = s.ScanHost(ctx, host, "-", "-", "-")
	case a.Kind == NewAndRescan:
		wrote = "- - - and rescan of each device"
		err = errors.Join(s.ScanHost(ctx, host, "-", "-", "-"), s.RescanDevices(ctx, host))
	case a.Kind == OneLUN:
		wrote = fmt.Sprintf("0 0 %d", a.LUN)
		err = s.ScanLUN(ctx, host, a.LUN)
	}
	if log != nil {
		attrs := []any{"sid", sid, "host", host, "trigger", t.String(), "policy", p.String(), "action", out.Action.String()}
		if wrote != "" {
			attrs = append(attrs, "wrote", wrote, "file", s.scanFile(host), "took_ms", float64(time.Since(start).Microseconds())/1000)
		}
		if len(held) > 0 {
			attrs = append(attrs, "held_back", held)
		}
		if out.LUNByLUN {
			attrs = append(attrs, "reported", out.Reported, "added", out.Added, "skipped", out.Skipped)
		}
		if err != nil {
			log.Error("scan", append(attrs, "err", err)...)
		} else {
			log.Info("scan", attrs...)
		}
	}
	return out, err
}

// scanReported asks the target of host for its LUNs and adds each one that
// is not held and has no device yet. When the host has no device to ask
// through, LUN 0 is added first (a broad scan would add it too) unless it is
// held; if there is still none, nothing is added: the scan fails closed.
func (s Sysfs) scanReported(ctx context.Context, host int, held []uint64, out *Outcome) error {
	devs, err := s.Devices(host)
	if err != nil {
		return err
	}
	reported, err := s.ReportLUNs(ctx, host, devs)
	if errors.Is(err, ErrNoDeviceToAsk) && !slices.Contains(held, 0) {
		if err := s.ScanLUN(ctx, host, 0); err != nil {
			return err
		}
		if devs, err = s.Devices(host); err != nil {
			return err
		}
		reported, err = s.ReportLUNs(ctx, host, devs)
	}
	if err != nil {
		return fmt.Errorf("learning the target's LUNs (nothing added, LUNs %v held back): %w", held, err)
	}
	out.Reported = reported
	have := map[uint64]bool{}
	for _, d := range devs {
		have[d.LUN] = true
	}
	var errs []error
	for _, l := range reported {
		switch {
		case slices.Contains(held, l):
			out.Skipped = append(out.Skipped, l)
		case have[l]:
		default:
			if err := s.ScanLUN(ctx, host, l); err != nil {
				errs = append(errs, err)
				continue
			}
			out.Added = append(out.Added, l)
		}
	}
	return errors.Join(errs...)
}

// ReportLUNs asks the target of host for its LUNs through s.LUNs (BSG when
// nil), sending the command to one of devs, host's devices.
func (s Sysfs) ReportLUNs(ctx context.Context, host int, devs []Device) ([]uint64, error) {
	if s.LUNs == nil {
		return BSG{}.ReportLUNs(ctx, host, devs)
	}
	return s.LUNs.ReportLUNs(ctx, host, devs)
}
