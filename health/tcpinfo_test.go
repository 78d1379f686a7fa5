package health

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestTCPInfoOffsets(t *testing.T) {
	var u unix.TCPInfo
	for _, c := range []struct {
		name      string
		end, want uintptr
	}{
		{"total_retrans", unsafe.Offsetof(u.Total_retrans) + 4, endTotalRetrans},
		{"max_pacing_rate", unsafe.Offsetof(u.Max_pacing_rate) + 8, endMaxPacingRate},
		{"bytes_received", unsafe.Offsetof(u.Bytes_received) + 8, endBytesReceived},
		{"segs_in", unsafe.Offsetof(u.Segs_in) + 4, endSegsIn},
		{"data_segs_out", unsafe.Offsetof(u.Data_segs_out) + 4, endDataSegsOut},
		{"delivery_rate", unsafe.Offsetof(u.Delivery_rate) + 8, endDeliveryRate},
		{"sndbuf_limited", unsafe.Offsetof(u.Sndbuf_limited) + 8, endSndbufLimited},
		{"delivered_ce", unsafe.Offsetof(u.Delivered_ce) + 4, endDeliveredCE},
		{"reord_seen", unsafe.Offsetof(u.Reord_seen) + 4, endReordSeen},
		{"rcv_ooopack", unsafe.Offsetof(u.Rcv_ooopack) + 4, endRcvOOOPack},
		{"snd_wnd", unsafe.Offsetof(u.Snd_wnd) + 4, endSndWnd},
		{"rehash", unsafe.Offsetof(u.Rehash) + 4, endRehash},
		{"total_rto_time", unsafe.Offsetof(u.Total_rto_time) + 4, endTotalRTOTime},
	} {
		if c.end != c.want {
			t.Errorf("tcpi_%s ends at %d in x/sys's TCPInfo, the constant says %d", c.name, c.end, c.want)
		}
	}
}

// loopbackPair returns both ends of a real TCP connection on 127.0.0.1.
func loopbackPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		t.Fatal("accept: ", ctx.Err())
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

func TestReadTCPInfoLoopback(t *testing.T) {
	client, server := loopbackPair(t)
	before, err := ReadConnTCPInfo(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel filled %d bytes of struct tcp_info (x/sys knows %d)", before.Len, unsafe.Sizeof(unix.TCPInfo{}))
	if before.StateName() != "ESTABLISHED" {
		t.Errorf("state %s, want ESTABLISHED", before.StateName())
	}
	if !before.HasBytesSent() || !before.HasDataSegs() {
		t.Fatalf("kernel fills only %d bytes: this test needs Linux 4.19 or later", before.Len)
	}
	if before.SndMSS == 0 || before.SndCwnd == 0 || before.PMTU == 0 {
		t.Errorf("mss %d cwnd %d pmtu %d: want them set on an established socket", before.SndMSS, before.SndCwnd, before.PMTU)
	}

	// The server reads 1 MiB and answers one byte. That byte's segment
	// acknowledges the whole MiB, and the kernel counts the ACK before it
	// hands the byte to the reader: once the client has read it,
	// bytes_acked has moved. No polling.
	const n = 1 << 20
	done := make(chan error, 1)
	go func() {
		if _, err := io.CopyN(io.Discard, server, n); err != nil {
			done <- err
			return
		}
		_, err := server.Write([]byte{1})
		done <- err
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, err := ReadConnTCPInfo(client)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.BytesAcked - before.BytesAcked; got < n {
		t.Errorf("bytes_acked grew by %d, want at least %d", got, n)
	}
	if after.BytesReceived-before.BytesReceived != 1 {
		t.Errorf("bytes_received grew by %d, want 1", after.BytesReceived-before.BytesReceived)
	}
	if got := after.BytesSent - before.BytesSent; got < n {
		t.Errorf("bytes_sent grew by %d, want at least %d", got, n)
	}
	if after.DataSegsOut <= before.DataSegsOut || after.SegsOut <= before.SegsOut {
		t.Errorf("segments out %d→%d, data segments %d→%d: want growth", before.SegsOut, after.SegsOut, before.DataSegsOut, after.DataSegsOut)
	}
	if after.RTT <= 0 || after.RTT > time.Second {
		t.Errorf("srtt %v on loopback", after.RTT)
	}
	if after.TotalRetrans != 0 {
		t.Logf("loopback retransmitted %d segments (possible on a loaded machine)", after.TotalRetrans)
	}

	// The server side received what the client sent.
	srv, err := ReadConnTCPInfo(server)
	if err != nil {
		t.Fatal(err)
	}
	if srv.BytesReceived < n || srv.DataSegsIn == 0 {
		t.Errorf("server bytes_received %d data_segs_in %d, want at least %d bytes", srv.BytesReceived, srv.DataSegsIn, n)
	}

	// The same through the raw fd, as goiscsid holds it after BIND_CONN.
	f, err := client.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byFD, err := ReadTCPInfo(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if byFD.BytesAcked < after.BytesAcked {
		t.Errorf("by fd bytes_acked %d, by conn %d", byFD.BytesAcked, after.BytesAcked)
	}
}

func TestReadTCPInfoErrors(t *testing.T) {
	if _, err := ReadTCPInfo(-1); err == nil {
		t.Error("fd -1: no error")
	}
	// A UDP socket has no TCP_INFO.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := ReadTCPInfo(fd); err == nil {
		t.Error("UDP socket: no error")
	} else {
		t.Log(err)
	}
}
