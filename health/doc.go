// Package health measures and judges each iSCSI path: the TCP connection of a
// session, as goiscsid owns it.
//
// The everyday iSCSI problem is a sick path (a bad cable that makes TCP
// retransmit, a congested link, a flapping target) that stock open-iscsi can
// only show through the kernel's per-session PDU counters and that operators
// find with netstat -s on the whole host. goiscsid connects each socket
// itself, hands it to the kernel with BIND_CONN and keeps the fd open, and it
// sees every connection error and recovery, so it can say per path what is
// wrong.
//
// # Measuring
//
// [ReadTCPInfo] reads a socket's TCP_INFO (retransmissions, RTT, windows, bytes
// sent and acknowledged…) into [TCPInfo]. A [Tracker] per session keeps the
// daemon's samples (TCP_INFO and the kernel's GET_STATS counters, as
// [ISCSIStats]) in a bounded ring and the events the daemon reports:
// connection errors, recoveries, logins, state changes, NOP round trips, LUNs
// held back from scans. It has no goroutines and no clock of its own.
//
// The daemon feeds it like this:
//
//   - after each successful login (first login and every relogin):
//     Login(now, latency, nil) — before sampling the new socket; a failed
//     attempt: Login(now, latency, err). SetState on each session state change.
//   - every Options.Interval (10 s): ReadTCPInfo on the socket fd and
//     nlink.Conn.GetStats, then Sample(Sample{Time: now, TCP: &ti, ISCSI: &st})
//     (a nil field when that read failed or there is no socket during
//     recovery), then Evaluate(now, th): log a warning with the verdict on
//     TurnedUnhealthy, a notice on Recovered.
//   - on CONN_ERROR: ConnError(now, uint32(code), code.String()), then
//     RecoveryStarted(now, "") when recovery begins;
//     RecoveryEnded(now, 0, err) when the session is reinstated (err nil) or
//     given up.
//   - every sample: SetHeldBackLUNs(n, luns) with the LUNs held back from
//     broad scans (the host removed them, or goiscsiadm --remove-lun).
//   - NOP round trips, if the daemon measures them: PingRTT(now, rtt).
//
// # Judging
//
// [Tracker.Judge] returns a [Verdict]: OK, or problems in words, such as
// "3.2% of segments retransmitted over the last 5 minutes (960 of 30000)",
// "2 recoveries in the last hour (ISCSI_ERR_TCP_CONN_CLOSE (1020) ×2), 41 s
// without I/O", "round-trip time 180 ms (threshold 100 ms)", "4 digest errors
// in the last 5 minutes". [Tracker.Evaluate] also reports each transition
// between healthy and unhealthy once. [Thresholds] come from iscsid.conf keys
// under goiscsi.health. ([ParseThresholds]; defaults and their reasons at
// each field):
//
//	goiscsi.health.interval          10     sampling interval, s (Options)
//	goiscsi.health.history           300    samples kept, s (Options; default: the window)
//	goiscsi.health.window            300    span of the rate checks, s
//	goiscsi.health.retrans_percent   1      retransmitted share of sent data segments, %
//	goiscsi.health.min_segments      1000   fewer data segments in the window: not judged
//	goiscsi.health.ooo_percent       2      out-of-order share of received data segments, %
//	goiscsi.health.rtt_ms            100    smoothed TCP RTT, or average NOP round trip
//	goiscsi.health.rto_streak        2      retransmission-timer expiries in a row now
//	goiscsi.health.max_recoveries    1      recoveries allowed within recovery_window
//	goiscsi.health.recovery_window   3600   s
//	goiscsi.health.max_digest_errors 0      digest errors allowed within the window
//	goiscsi.health.settle            60     s of OK before a path counts as recovered
//
// Durations take whole seconds or a unit ("5m"). 0 turns a check off
// (interval, history, window and recovery_window must be at least 1 s).
//
// # Reporting
//
// [Tracker.Snapshot] returns a [Snapshot] for goiscsiadm --json and, through
// [Snapshot.WriteText], its text listings. [WriteMetrics] writes the metrics
// of a set of Trackers in the Prometheus text format (package promtext), each
// series labelled target, portal, iface and sid:
//
//	name                                                type     meaning
//	goiscsi_session_healthy                             gauge    1 when the checks find no problem, else 0
//	goiscsi_session_problems                            gauge    number of problems found
//	goiscsi_session_recovering                          gauge    1 while session recovery is in progress
//	goiscsi_session_rtt_seconds                         gauge    smoothed TCP RTT (tcpi_rtt)
//	goiscsi_session_rtt_variance_seconds                gauge    RTT mean deviation (tcpi_rttvar)
//	goiscsi_session_min_rtt_seconds                     gauge    lowest recent RTT (tcpi_min_rtt)
//	goiscsi_session_tcp_rto_seconds                     gauge    retransmission timeout (tcpi_rto)
//	goiscsi_session_tcp_cwnd_segments                   gauge    congestion window (tcpi_snd_cwnd)
//	goiscsi_session_tcp_unacked_segments                gauge    segments in flight (tcpi_unacked)
//	goiscsi_session_tcp_lost_segments                   gauge    in-flight segments believed lost (tcpi_lost)
//	goiscsi_session_tcp_delivery_rate_bytes_per_second  gauge    recent delivery rate (tcpi_delivery_rate)
//	goiscsi_session_tcp_retransmit_ratio                gauge    retransmitted share over the window, 0–1
//	goiscsi_session_tcp_data_segments_sent_total        counter  data segments sent (tcpi_data_segs_out)
//	goiscsi_session_tcp_retransmitted_segments_total    counter  segments retransmitted (tcpi_total_retrans)
//	goiscsi_session_tcp_data_segments_received_total    counter  data segments received (tcpi_data_segs_in)
//	goiscsi_session_tcp_out_of_order_segments_total     counter  received out of order (tcpi_rcv_ooopack)
//	goiscsi_session_tcp_sent_bytes_total                counter  payload bytes sent (tcpi_bytes_sent)
//	goiscsi_session_tcp_retransmitted_bytes_total       counter  payload bytes retransmitted (tcpi_bytes_retrans)
//	goiscsi_session_tcp_acked_bytes_total               counter  payload bytes acknowledged (tcpi_bytes_acked)
//	goiscsi_session_tcp_received_bytes_total            counter  payload bytes received (tcpi_bytes_received)
//	goiscsi_session_tcp_busy_seconds_total              counter  time with data in flight (tcpi_busy_time)
//	goiscsi_session_tcp_rwnd_limited_seconds_total      counter  time held back by the target's window
//	goiscsi_session_tcp_sndbuf_limited_seconds_total    counter  time held back by the send buffer
//	goiscsi_session_iscsi_tx_bytes_total                counter  GET_STATS txdata_octets
//	goiscsi_session_iscsi_rx_bytes_total                counter  GET_STATS rxdata_octets
//	goiscsi_session_iscsi_pdus_total{pdu}               counter  GET_STATS *_pdus (pdu="scsicmd", "datain"…)
//	goiscsi_session_iscsi_digest_errors_total           counter  digest errors (connection errors + digest_err)
//	goiscsi_session_iscsi_timeout_errors_total          counter  GET_STATS timeout_err
//	goiscsi_session_iscsi_transport_counter_total{counter} counter  the transport's custom counters (eh_abort_cnt…)
//	goiscsi_session_connection_errors_total{cause}      counter  CONN_ERRORs by cause ("ISCSI_ERR_NOP_TIMEDOUT (1022)")
//	goiscsi_session_recoveries_total                    counter  session recoveries begun
//	goiscsi_session_recovery_seconds_total              counter  time in recovery, without I/O
//	goiscsi_session_logins_total{result}                counter  login attempts, result="ok" or "failed"
//	goiscsi_session_last_login_latency_seconds          gauge    latest successful login's duration
//	goiscsi_session_state_seconds_total{state}          counter  time in each session state
//	goiscsi_session_nop_rtt_seconds                     summary  NOP round trips: quantiles 0, 0.5, 0.9, 1 over
//	                                                             the window; _sum and _count over the session's life
//	goiscsi_session_held_back_luns                      gauge    LUNs held back from scans
//
// The counters are the Tracker's sums of counter growth, across relogins and
// new sockets, so they only grow while goiscsid runs. TCP gauges are absent
// until a TCP_INFO was sampled.
//
// # NOP-Out round trips
//
// With iscsi_tcp the kernel sends the periodic NOP-Outs itself
// (node.conn[0].timeo.noop_out_interval, passed as PING_TMO/RECV_TMO) and
// keeps their replies: libiscsi's iscsi_nop_out_rsp passes a NOP-In to
// userspace only when it answers a NOP-Out that is not the kernel's own
// ping_task, and it records no round-trip time anywhere userspace can read.
// A NOP-Out that userspace sends with SEND_PDU in the full feature phase does
// come back: libiscsi gives it a task and an ITT of its own, and the NOP-In
// answering it arrives as a RECV_PDU event (drivers/scsi/libiscsi.c in
// Linux 6.1: iscsi_alloc_mgmt_task, __iscsi_complete_pdu, iscsi_nop_out_rsp).
// The daemon can time that round trip, from SEND_PDU to RECV_PDU, as
// "NOP RTT"; it carries no data (the kernel refuses a data segment on
// non-login PDUs) and includes the netlink hops, which are microseconds.
package health
