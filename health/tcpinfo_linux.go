package health

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadTCPInfo returns the TCP_INFO of the socket fd. goiscsid keeps each
// connection's socket open after BIND_CONN hands it to iscsi_tcp, and the
// kernel sends and receives on that very socket, so its fd shows the path's
// retransmissions, RTT and windows while the connection lives. The call takes
// the socket lock for a moment and does not block.
//
// unix.GetsockoptTCPInfo discards the length the kernel filled; this reads it
// too, so that fields an older kernel lacks are known to be absent (see
// TCPInfo.Len).
func ReadTCPInfo(fd int) (TCPInfo, error) {
	var raw unix.TCPInfo
	n := uint32(unsafe.Sizeof(raw))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&raw)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return TCPInfo{}, fmt.Errorf("health: getsockopt TCP_INFO on fd %d: %w", fd, e)
	}
	if n < endTotalRetrans {
		// Every Linux since 2.6 fills at least this much; less is not TCP.
		return TCPInfo{}, fmt.Errorf("health: getsockopt TCP_INFO on fd %d returned %d bytes, want at least %d", fd, n, endTotalRetrans)
	}
	return fromRaw(&raw, int(n)), nil
}

// ReadConnTCPInfo returns the TCP_INFO of a connection's socket, for a
// *net.TCPConn or anything else that gives its syscall.RawConn, without
// duplicating the fd.
func ReadConnTCPInfo(c syscall.Conn) (TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return TCPInfo{}, fmt.Errorf("health: TCP_INFO: %w", err)
	}
	var (
		info TCPInfo
		rerr error
	)
	if err := rc.Control(func(fd uintptr) { info, rerr = ReadTCPInfo(int(fd)) }); err != nil {
		return TCPInfo{}, fmt.Errorf("health: TCP_INFO: %w", err)
	}
	return info, rerr
}

// fromRaw converts the kernel's struct, of which n bytes were filled (the rest
// is zero because raw was zeroed), into TCPInfo.
func fromRaw(r *unix.TCPInfo, n int) TCPInfo {
	us := func(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }
	ms := func(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }
	return TCPInfo{
		Len:     n,
		State:   r.State,
		CAState: r.Ca_state, Retransmits: r.Retransmits, Probes: r.Probes, Backoff: r.Backoff, Options: r.Options,
		RTO: us(r.Rto), ATO: us(r.Ato), SndMSS: r.Snd_mss, RcvMSS: r.Rcv_mss,
		Unacked: r.Unacked, Sacked: r.Sacked, Lost: r.Lost, Retrans: r.Retrans,
		LastDataSent: ms(r.Last_data_sent), LastDataRecv: ms(r.Last_data_recv), LastAckRecv: ms(r.Last_ack_recv),
		PMTU: r.Pmtu, RcvSsthresh: r.Rcv_ssthresh, RTT: us(r.Rtt), RTTVar: us(r.Rttvar),
		SndSsthresh: r.Snd_ssthresh, SndCwnd: r.Snd_cwnd, AdvMSS: r.Advmss, Reordering: r.Reordering,
		RcvRTT: us(r.Rcv_rtt), RcvSpace: r.Rcv_space, TotalRetrans: r.Total_retrans,
		PacingRate: r.Pacing_rate, MaxPacingRate: r.Max_pacing_rate,
		BytesAcked: r.Bytes_acked, BytesReceived: r.Bytes_received,
		SegsOut: r.Segs_out, SegsIn: r.Segs_in,
		NotsentBytes: r.Notsent_bytes, MinRTT: us(r.Min_rtt), DataSegsIn: r.Data_segs_in, DataSegsOut: r.Data_segs_out,
		DeliveryRate:  r.Delivery_rate,
		BusyTime:      time.Duration(r.Busy_time) * time.Microsecond,
		RwndLimited:   time.Duration(r.Rwnd_limited) * time.Microsecond,
		SndbufLimited: time.Duration(r.Sndbuf_limited) * time.Microsecond,
		Delivered:     r.Delivered, DeliveredCE: r.Delivered_ce,
		BytesSent: r.Bytes_sent, BytesRetrans: r.Bytes_retrans, DSACKDups: r.Dsack_dups, ReordSeen: r.Reord_seen,
		RcvOOOPack: r.Rcv_ooopack, SndWnd: r.Snd_wnd, RcvWnd: r.Rcv_wnd, Rehash: r.Rehash,
		TotalRTO: uint32(r.Total_rto), TotalRTORecoveries: uint32(r.Total_rto_recoveries), TotalRTOTime: ms(r.Total_rto_time),
	}
}
