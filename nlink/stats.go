package nlink

import (
	"bytes"
	"fmt"
)

// Stats are a connection's counters (struct iscsi_stats).
type Stats struct {
	TxDataOctets uint64
	RxDataOctets uint64
	// Counters in the kernel's order: noptx, scsicmd, tmfcmd, login, text,
	// dataout, logout, snack, noprx, scsirsp, tmfrsp, textrsp, datain,
	// logoutrsp, r2t, async, rjt, digest_err, timeout_err.
	Counters [19]uint32
	// Custom are transport-specific counters (iscsi_tcp reports eh_abort_cnt
	// and friends).
	Custom []CustomStat
}

// CustomStat is one transport-specific counter.
type CustomStat struct {
	Name  string
	Value uint64
}

// CounterNames names Stats.Counters as iscsiadm -s prints them.
var CounterNames = [19]string{
	"noptx_pdus", "scsicmd_pdus", "tmfcmd_pdus", "login_pdus", "text_pdus",
	"dataout_pdus", "logout_pdus", "snack_pdus", "noprx_pdus", "scsirsp_pdus",
	"tmfrsp_pdus", "textrsp_pdus", "datain_pdus", "logoutrsp_pdus", "r2t_pdus",
	"async_pdus", "rjt_pdus", "digest_err", "timeout_err",
}

const (
	statsHeader    = 96 // fixed part of struct iscsi_stats
	customStatSize = 72 // char desc[64]; uint64 value
	maxCustomStats = 32
)

func (s *Stats) marshal() []byte {
	b := make([]byte, statsHeader+customStatSize*len(s.Custom))
	ne.PutUint64(b[0:], s.TxDataOctets)
	ne.PutUint64(b[8:], s.RxDataOctets)
	for i, c := range s.Counters {
		ne.PutUint32(b[16+4*i:], c)
	}
	ne.PutUint32(b[92:], uint32(len(s.Custom)))
	for i, c := range s.Custom {
		off := statsHeader + i*customStatSize
		copy(b[off:off+63], c.Name)
		ne.PutUint64(b[off+64:], c.Value)
	}
	return b
}

func unmarshalStats(b []byte) (*Stats, error) {
	if len(b) < statsHeader {
		return nil, fmt.Errorf("nlink: GET_STATS payload of %d bytes, need %d", len(b), statsHeader)
	}
	s := &Stats{TxDataOctets: ne.Uint64(b[0:]), RxDataOctets: ne.Uint64(b[8:])}
	for i := range s.Counters {
		s.Counters[i] = ne.Uint32(b[16+4*i:])
	}
	n := int(ne.Uint32(b[92:]))
	if n > maxCustomStats || statsHeader+n*customStatSize > len(b) {
		return nil, fmt.Errorf("nlink: GET_STATS claims %d custom counters in %d bytes", n, len(b))
	}
	for i := 0; i < n; i++ {
		off := statsHeader + i*customStatSize
		name := b[off : off+64]
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		s.Custom = append(s.Custom, CustomStat{Name: string(name), Value: ne.Uint64(b[off+64:])})
	}
	return s, nil
}
