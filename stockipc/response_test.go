package stockipc

import (
	"reflect"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/nlink"
)

// Where stock iscsiadm reads each answer's fields (gcc-measured offsets of
// iscsiadm_rsp_t, the same in every 2.1.x release).
func TestEncodeResponseLayout(t *testing.T) {
	stats := &nlink.Stats{TxDataOctets: 0x1122334455667788, RxDataOctets: 7, Custom: []nlink.CustomStat{{Name: "eh_abort_cnt", Value: 3}, {Name: "tx_sendpage_failures", Value: 9}}}
	for i := range stats.Counters {
		stats.Counters[i] = uint32(100 + i)
	}
	for _, c := range []struct {
		name  string
		r     *Response
		check map[int]uint64 // offset → little-endian uint32 (or uint64 at the octet counters)
		str   map[int]string
	}{
		{"error", &Response{Command: CmdSessionLogin, Err: 24}, map[int]uint64{0: 1, 4: 24, 8: 0}, nil},
		{"stats", &Response{Command: CmdSessionStats, Stats: stats},
			map[int]uint64{0: 7, 8: uevGetStats, 64: 0x1122334455667788, 72: 7, 80: 100, 80 + 4*18: 118, 156: 2, 160 + 64: 3, 232 + 64: 9},
			map[int]string{160: "eh_abort_cnt", 232: "tx_sendpage_failures"}},
		{"config", &Response{Command: CmdConfigFile, Config: "/etc/iscsi/iscsid.conf"}, map[int]uint64{0: 10}, map[int]string{8: "/etc/iscsi/iscsid.conf"}},
		{"session info", &Response{Command: CmdSessionInfo, SessionState: SessionReopen, ConnState: ConnCleanupWait}, map[int]uint64{0: 13, 8: 2, 12: 6}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := EncodeResponse(c.r)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != ResponseSize {
				t.Fatalf("%d bytes", len(b))
			}
			for off, v := range c.check {
				got := uint64(ne.Uint32(b[off:]))
				if off == 64 || off == 72 || off == 160+64 || off == 232+64 {
					got = ne.Uint64(b[off:])
				}
				if got != v {
					t.Errorf("byte %d: %#x, want %#x", off, got, v)
				}
			}
			for off, s := range c.str {
				if string(b[off:off+len(s)]) != s || b[off+len(s)] != 0 {
					t.Errorf("byte %d: %q, want %q", off, b[off:off+len(s)+1], s)
				}
			}
			back, err := DecodeResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, c.r) {
				t.Errorf("decoded %+v, want %+v", back, c.r)
			}
		})
	}
}

func TestEncodeResponseRefuses(t *testing.T) {
	many := &nlink.Stats{Custom: make([]nlink.CustomStat, 33)}
	for _, c := range []struct {
		r    *Response
		want string
	}{
		{&Response{Command: CmdSessionLogin, Stats: &nlink.Stats{}}, "SESSION_LOGIN answer carries stats"},
		{&Response{Command: CmdSessionStats, Config: "x"}, "SESSION_STATS answer carries a config string"},
		{&Response{Command: CmdConfigIName, ConnState: 3}, "CONFIG_INAME answer carries session states"},
		{&Response{Command: CmdConfigIName, Config: strings.Repeat("i", 255)}, "CONFIG_INAME answer of 255 bytes: at most 254"},
		{&Response{Command: CmdSessionStats, Stats: many}, "33 custom counters, iscsiadm_rsp_t holds 32"},
		{&Response{Command: CmdSessionStats, Stats: &nlink.Stats{Custom: []nlink.CustomStat{{Name: strings.Repeat("n", 64)}}}}, "at most 63 bytes"},
		{&Response{Command: CmdSessionInfo, ConnState: 1 << 40}, "does not fit in an int"},
	} {
		if _, err := EncodeResponse(c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.r, err, c.want)
		}
	}
	if _, err := DecodeResponse(make([]byte, 10)); err == nil {
		t.Error("10-byte response decoded")
	}
	b, _ := EncodeResponse(&Response{Command: CmdSessionStats, Stats: &nlink.Stats{}})
	ne.PutUint32(b[statsCustomLen:], 33)
	if _, err := DecodeResponse(b); err == nil || !strings.Contains(err.Error(), "33 custom counters") {
		t.Errorf("33 custom counters: %v", err)
	}
	// An error answer to SESSION_STATS carries no stats.
	b, _ = EncodeResponse(&Response{Command: CmdSessionStats, Err: 2})
	if r, err := DecodeResponse(b); err != nil || r.Stats != nil || r.Err != 2 {
		t.Errorf("stats error answer: %+v %v", r, err)
	}
}
