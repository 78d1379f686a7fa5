package scantest

import (
	"context"
	"slices"
	"sync"

	"github.com/goiscsi/goiscsi/scan"
)

// Reporter is a scan.LUNReporter that answers REPORT LUNS with the LUNs set
// for each host, and, as a real target, only through a running device.
type Reporter struct {
	mu   sync.Mutex
	luns map[int][]uint64
	// asked counts the questions per host.
	asked map[int]int
}

// Set makes the target of host report luns.
func (r *Reporter) Set(host int, luns ...uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.luns == nil {
		r.luns = map[int][]uint64{}
	}
	r.luns[host] = slices.Sorted(slices.Values(luns))
}

// Asked returns how many times host's target was asked.
func (r *Reporter) Asked(host int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[host]
}

// ReportLUNs implements scan.LUNReporter.
func (r *Reporter) ReportLUNs(_ context.Context, host int, devs []scan.Device) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.ContainsFunc(devs, func(d scan.Device) bool { return d.Host == host && d.State == "running" }) {
		return nil, scan.ErrNoDeviceToAsk
	}
	if r.asked == nil {
		r.asked = map[int]int{}
	}
	r.asked[host]++
	return slices.Clone(r.luns[host]), nil
}
