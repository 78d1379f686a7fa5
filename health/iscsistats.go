package health

import (
	"fmt"
	"sort"
)

// ISCSIStats are the kernel's counters of one iSCSI connection (GET_STATS,
// struct iscsi_stats), as goiscsid reads them every sampling interval.
//
// iscsi_tcp fills only the octet counters, the SCSI command, response,
// Data-In, Data-Out, R2T and task-management PDU counters and three custom
// counters (tx_sendpage_failures, rx_discontiguous_hdr, eh_abort_cnt):
// DigestErr, TimeoutErr and the NOP, login, text, logout, SNACK, async and
// reject counts stay zero with it (drivers/scsi/libiscsi_tcp.c,
// iscsi_tcp_conn_get_stats). A digest error there ends the connection with
// ISCSI_ERR_HDR_DGST or ISCSI_ERR_DATA_DGST instead, which the daemon reports
// through Tracker.ConnError; the Tracker counts both sources. The counters
// live as long as the kernel connection and survive relogins on it.
type ISCSIStats struct {
	TxDataOctets uint64 `json:"txdata_octets"`
	RxDataOctets uint64 `json:"rxdata_octets"`
	NopTx        uint64 `json:"noptx_pdus"`
	SCSICmd      uint64 `json:"scsicmd_pdus"`
	TMFCmd       uint64 `json:"tmfcmd_pdus"`
	Login        uint64 `json:"login_pdus"`
	Text         uint64 `json:"text_pdus"`
	DataOut      uint64 `json:"dataout_pdus"`
	Logout       uint64 `json:"logout_pdus"`
	SNACK        uint64 `json:"snack_pdus"`
	NopRx        uint64 `json:"noprx_pdus"`
	SCSIRsp      uint64 `json:"scsirsp_pdus"`
	TMFRsp       uint64 `json:"tmfrsp_pdus"`
	TextRsp      uint64 `json:"textrsp_pdus"`
	DataIn       uint64 `json:"datain_pdus"`
	LogoutRsp    uint64 `json:"logoutrsp_pdus"`
	R2T          uint64 `json:"r2t_pdus"`
	Async        uint64 `json:"async_pdus"`
	Reject       uint64 `json:"rjt_pdus"`
	DigestErr    uint64 `json:"digest_err"`
	TimeoutErr   uint64 `json:"timeout_err"`
	// Custom are the transport's own counters by name (eh_abort_cnt…).
	Custom map[string]uint64 `json:"custom,omitempty"`
}

// maxCustom bounds Custom: the kernel sends at most ISCSI_STATS_CUSTOM_MAX (32).
const maxCustom = 32

// counterFields lists the fixed counters by the names iscsiadm -s prints
// (and nlink.CounterNames holds), in struct iscsi_stats order.
func (s *ISCSIStats) counterFields() []struct {
	name string
	p    *uint64
} {
	return []struct {
		name string
		p    *uint64
	}{
		{"txdata_octets", &s.TxDataOctets}, {"rxdata_octets", &s.RxDataOctets},
		{"noptx_pdus", &s.NopTx}, {"scsicmd_pdus", &s.SCSICmd}, {"tmfcmd_pdus", &s.TMFCmd},
		{"login_pdus", &s.Login}, {"text_pdus", &s.Text}, {"dataout_pdus", &s.DataOut},
		{"logout_pdus", &s.Logout}, {"snack_pdus", &s.SNACK}, {"noprx_pdus", &s.NopRx},
		{"scsirsp_pdus", &s.SCSIRsp}, {"tmfrsp_pdus", &s.TMFRsp}, {"textrsp_pdus", &s.TextRsp},
		{"datain_pdus", &s.DataIn}, {"logoutrsp_pdus", &s.LogoutRsp}, {"r2t_pdus", &s.R2T},
		{"async_pdus", &s.Async}, {"rjt_pdus", &s.Reject}, {"digest_err", &s.DigestErr},
		{"timeout_err", &s.TimeoutErr},
	}
}

// ISCSIStatsFromMap builds ISCSIStats from counters named as iscsiadm -s and
// nlink.CounterNames name them ("txdata_octets", "scsicmd_pdus", …,
// "digest_err", "timeout_err"); any other name is a transport's custom
// counter. The daemon builds the map from nlink.Stats:
//
//	m := map[string]uint64{"txdata_octets": s.TxDataOctets, "rxdata_octets": s.RxDataOctets}
//	for i, n := range nlink.CounterNames { m[n] = uint64(s.Counters[i]) }
//	for _, c := range s.Custom { m[c.Name] = c.Value }
//
// More than 32 custom counters (the kernel's limit) is an error naming the count.
func ISCSIStatsFromMap(m map[string]uint64) (ISCSIStats, error) {
	var s ISCSIStats
	known := map[string]*uint64{}
	for _, f := range s.counterFields() {
		known[f.name] = f.p
	}
	for name, v := range m {
		if p, ok := known[name]; ok {
			*p = v
			continue
		}
		if s.Custom == nil {
			s.Custom = map[string]uint64{}
		}
		s.Custom[name] = v
	}
	if len(s.Custom) > maxCustom {
		return ISCSIStats{}, fmt.Errorf("health: %d custom iSCSI counters, the kernel sends at most %d", len(s.Custom), maxCustom)
	}
	return s, nil
}

// Map returns the counters by iscsiadm's names, custom ones included.
func (s ISCSIStats) Map() map[string]uint64 {
	m := map[string]uint64{}
	for _, f := range s.counterFields() {
		m[f.name] = *f.p
	}
	for k, v := range s.Custom {
		m[k] = v
	}
	return m
}

// sortedKeys returns the keys of m in sorted order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
