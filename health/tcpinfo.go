package health

import (
	"fmt"
	"time"
)

// TCPInfo is the kernel's struct tcp_info for one socket (getsockopt
// IPPROTO_TCP TCP_INFO), with durations as time.Duration and names spelled out.
//
// Older kernels fill a shorter struct: Len says how many bytes the kernel
// wrote, and a field past it is zero because the kernel does not have it, not
// because its value is zero. The Has* methods say which groups are present.
// Debian 12's 6.1 kernel fills 232 bytes (everything through SndWnd); the
// newest fields (RcvWnd, Rehash, TotalRTO*) need Linux 6.2–6.7.
//
// The segment counters are 32 bits in the kernel and wrap (at 10 Gbit/s with
// 9000-byte frames, in about 8 hours): the Tracker takes differences modulo
// 2^32. The byte counters are 64 bits.
type TCPInfo struct {
	// Len is the number of bytes of struct tcp_info the kernel filled.
	Len int

	State   uint8 // TCP state: 1 ESTABLISHED … 11 CLOSING (see StateName)
	CAState uint8 // congestion-avoidance state: 0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss
	// Retransmits is how many times in a row the retransmission timer has
	// fired for the oldest unacknowledged segment (0 while ACKs arrive): a
	// path where nothing is acknowledged shows 1, 2, 3… as the timer backs off.
	Retransmits uint8
	Probes      uint8 // unanswered zero-window probes
	Backoff     uint8 // exponential backoff of the retransmission timer
	Options     uint8 // TCPI_OPT_* bits negotiated (timestamps 1, SACK 2, window scaling 4, ECN 8)

	RTO    time.Duration // retransmission timeout
	ATO    time.Duration // delayed-ACK timeout
	SndMSS uint32        // send maximum segment size, bytes
	RcvMSS uint32        // receive MSS estimate, bytes

	Unacked uint32 // segments sent and not yet acknowledged
	Sacked  uint32 // segments selectively acknowledged
	Lost    uint32 // segments in flight the stack believes lost
	Retrans uint32 // segments retransmitted and not yet acknowledged (in flight)

	LastDataSent time.Duration // since the last data segment was sent
	LastDataRecv time.Duration // since the last data segment was received
	LastAckRecv  time.Duration // since the last ACK was received

	PMTU        uint32        // path MTU, bytes
	RcvSsthresh uint32        // receive slow-start threshold
	RTT         time.Duration // smoothed round-trip time (srtt)
	RTTVar      time.Duration // round-trip time mean deviation
	SndSsthresh uint32        // send slow-start threshold, segments
	SndCwnd     uint32        // congestion window, segments
	AdvMSS      uint32        // advertised MSS, bytes
	Reordering  uint32        // reordering degree the stack assumes
	RcvRTT      time.Duration // receiver-side RTT estimate
	RcvSpace    uint32        // receive buffer space the stack aims for, bytes
	// TotalRetrans counts segments retransmitted over the socket's life: the
	// per-path form of netstat -s's "segments retransmitted".
	TotalRetrans uint32

	PacingRate    uint64 // bytes/s (Linux 3.15)
	MaxPacingRate uint64 // bytes/s, SO_MAX_PACING_RATE (Linux 3.15)

	BytesAcked    uint64 // payload bytes acknowledged by the peer (Linux 4.1)
	BytesReceived uint64 // payload bytes received in order (Linux 4.1)

	SegsOut uint32 // segments sent, retransmissions and pure ACKs included (Linux 4.2)
	SegsIn  uint32 // segments received, pure ACKs included (Linux 4.2)

	NotsentBytes uint32        // bytes in the send queue not yet sent (Linux 4.6)
	MinRTT       time.Duration // lowest RTT seen in the last few minutes (Linux 4.6)
	DataSegsIn   uint32        // segments received carrying data (Linux 4.6)
	DataSegsOut  uint32        // segments sent carrying data, retransmissions included (Linux 4.6)

	DeliveryRate uint64 // recent delivery rate, bytes/s (Linux 4.9)

	BusyTime      time.Duration // time with data in flight (Linux 4.10)
	RwndLimited   time.Duration // time limited by the peer's receive window (Linux 4.10)
	SndbufLimited time.Duration // time limited by our send buffer (Linux 4.10)

	Delivered   uint32 // segments delivered, retransmissions included (Linux 4.18)
	DeliveredCE uint32 // of them, with ECN CE marks (Linux 4.18)

	BytesSent    uint64 // payload bytes sent, retransmissions included (Linux 4.19)
	BytesRetrans uint64 // payload bytes retransmitted (Linux 4.19)
	DSACKDups    uint32 // segments the peer reported received twice (spurious retransmissions, Linux 4.19)
	ReordSeen    uint32 // reordering events seen (Linux 4.19)

	RcvOOOPack uint32 // data segments received out of order (Linux 5.4): the peer's losses show here
	SndWnd     uint32 // peer's advertised receive window, bytes (Linux 5.4)

	RcvWnd uint32 // our advertised receive window, bytes (Linux 6.2)
	Rehash uint32 // PLB or timeout-triggered flow-label rehashes (Linux 6.2)

	TotalRTO           uint32        // retransmission-timer expirations over the socket's life (Linux 6.7)
	TotalRTORecoveries uint32        // recoveries that began with a timer expiration (Linux 6.7)
	TotalRTOTime       time.Duration // time spent in timer-driven recovery (Linux 6.7)
}

// Offsets in struct tcp_info where each optional group ends: the kernel fills
// a group only if it fills at least that many bytes. Measured with
// unsafe.Offsetof on golang.org/x/sys/unix.TCPInfo (x86_64, and the layout has
// no architecture-dependent padding); TestTCPInfoOffsets checks them.
const (
	endTotalRetrans  = 104 // tcpi_total_retrans, the last field of Linux 2.6–3.14
	endMaxPacingRate = 120
	endBytesReceived = 136
	endSegsIn        = 144
	endDataSegsOut   = 160
	endDeliveryRate  = 168
	endSndbufLimited = 192
	endDeliveredCE   = 200
	endReordSeen     = 224
	endRcvOOOPack    = 228
	endSndWnd        = 232
	endRehash        = 240
	endTotalRTOTime  = 248
)

// HasBytesCounters reports whether BytesAcked and BytesReceived are filled (Linux 4.1).
func (t *TCPInfo) HasBytesCounters() bool { return t.Len >= endBytesReceived }

// HasSegs reports whether SegsOut and SegsIn are filled (Linux 4.2).
func (t *TCPInfo) HasSegs() bool { return t.Len >= endSegsIn }

// HasDataSegs reports whether DataSegsOut, DataSegsIn and MinRTT are filled (Linux 4.6).
func (t *TCPInfo) HasDataSegs() bool { return t.Len >= endDataSegsOut }

// HasLimited reports whether BusyTime, RwndLimited and SndbufLimited are filled (Linux 4.10).
func (t *TCPInfo) HasLimited() bool { return t.Len >= endSndbufLimited }

// HasBytesSent reports whether BytesSent, BytesRetrans, DSACKDups and ReordSeen are filled (Linux 4.19).
func (t *TCPInfo) HasBytesSent() bool { return t.Len >= endReordSeen }

// HasOOO reports whether RcvOOOPack is filled (Linux 5.4).
func (t *TCPInfo) HasOOO() bool { return t.Len >= endRcvOOOPack }

// HasTotalRTO reports whether TotalRTO, TotalRTORecoveries and TotalRTOTime are filled (Linux 6.7).
func (t *TCPInfo) HasTotalRTO() bool { return t.Len >= endTotalRTOTime }

// sentSegs returns the segment count retransmission percentages are taken
// against, and whether the kernel has one: data segments where known (pure
// ACKs would dilute the figure on a read-mostly path), else all segments.
func (t *TCPInfo) sentSegs() (uint32, bool) {
	switch {
	case t.HasDataSegs():
		return t.DataSegsOut, true
	case t.HasSegs():
		return t.SegsOut, true
	}
	return 0, false
}

var tcpStateNames = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}

// StateName returns the TCP state as ss prints it in upper case (ESTABLISHED, CLOSE_WAIT…).
func (t *TCPInfo) StateName() string {
	if int(t.State) < len(tcpStateNames) && tcpStateNames[t.State] != "" {
		return tcpStateNames[t.State]
	}
	return fmt.Sprintf("state %d", t.State)
}

var caStateNames = [...]string{"Open", "Disorder", "CWR", "Recovery", "Loss"}

// CAStateName returns the congestion-avoidance state's name (Open, Disorder,
// CWR, Recovery, Loss): Recovery and Loss mean the stack is repairing losses.
func (t *TCPInfo) CAStateName() string {
	if int(t.CAState) < len(caStateNames) {
		return caStateNames[t.CAState]
	}
	return fmt.Sprintf("ca_state %d", t.CAState)
}
