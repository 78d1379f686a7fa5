package health

import (
	"fmt"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/nlink"
)

// TestCounterNamesMatchNlink keeps the names in step with nlink's, which
// the daemon uses to build the map.
func TestCounterNamesMatchNlink(t *testing.T) {
	known := ISCSIStats{}.Map()
	for _, n := range nlink.CounterNames {
		if _, ok := known[n]; !ok {
			t.Errorf("nlink counter %s unknown here", n)
		}
	}
	if len(known) != len(nlink.CounterNames)+2 {
		t.Errorf("%d names here, nlink has %d and the two octet counters", len(known), len(nlink.CounterNames))
	}
}

func TestISCSIStatsFromMap(t *testing.T) {
	// As goiscsid builds it from nlink.Stats: the fixed counters by
	// nlink.CounterNames, the custom ones by the kernel's names.
	m := map[string]uint64{"txdata_octets": 1 << 40, "rxdata_octets": 7, "scsicmd_pdus": 10, "datain_pdus": 4,
		"digest_err": 1, "timeout_err": 2, "noptx_pdus": 3, "rjt_pdus": 5, "eh_abort_cnt": 9, "tx_sendpage_failures": 0}
	s, err := ISCSIStatsFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if s.TxDataOctets != 1<<40 || s.RxDataOctets != 7 || s.SCSICmd != 10 || s.DataIn != 4 || s.DigestErr != 1 ||
		s.TimeoutErr != 2 || s.NopTx != 3 || s.Reject != 5 || s.Custom["eh_abort_cnt"] != 9 || len(s.Custom) != 2 {
		t.Errorf("%+v", s)
	}
	back := s.Map()
	for k, v := range m {
		if back[k] != v {
			t.Errorf("Map()[%s] = %d, want %d", k, back[k], v)
		}
	}
	if n := len(back); n != 21+2 {
		t.Errorf("Map has %d entries, want the 21 fixed counters and 2 custom", n)
	}
	big := map[string]uint64{}
	for i := 0; i <= maxCustom; i++ {
		big[fmt.Sprint("c", i)] = 1
	}
	if _, err := ISCSIStatsFromMap(big); err == nil || !strings.Contains(err.Error(), "33 custom") {
		t.Errorf("33 custom counters: %v", err)
	}
}
