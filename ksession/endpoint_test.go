package ksession_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/test/target"
)

const kISERIQN = "iqn.2026-11.dev.goiscsi:kernel-iser"

// startISERTarget is a target that accepts RDMAExtensions, as LIO's iSER
// portal does (the fake kernel carries its PDUs over TCP).
func startISERTarget(t *testing.T, params map[string]string) (*target.Server, session.Portal) {
	t.Helper()
	p := target.DefaultParams()
	p["RDMAExtensions"] = "Yes"
	for k, v := range params {
		p[k] = v
	}
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{Name: kISERIQN,
		PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs:         []target.LUNConfig{{Number: 0, Size: 1 << 20}}, Params: p}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ps, err := srv.Portals(kISERIQN)
	if err != nil {
		t.Fatal(err)
	}
	return srv, ps[0]
}

func iserNode(t *testing.T, p session.Portal) ksession.Node {
	n := node(t, kISERIQN, p)
	n.Iface.Name, n.Iface.Transport = "iser", ksession.TransportISER
	return n
}

// types lists the request types the kernel got, without SET_PARAMs.
func types(k *nlinktest.Kernel) []nlink.MessageType {
	var out []nlink.MessageType
	for _, r := range k.Requests() {
		if r.Type == nlink.SetParam || r.Type == nlink.SendPDU ||
			(r.Type == nlink.EPPoll && len(out) > 0 && out[len(out)-1] == nlink.EPPoll) {
			continue // polls until the endpoint is up: how many is timing
		}
		out = append(out, r.Type)
	}
	return out
}

func TestEstablishISER(t *testing.T) {
	_, p := startISERTarget(t, nil)
	k := nlinktest.New()
	defer k.Close()
	conn := nlinktest.ISERConn(k.Conn())
	ctx := context.Background()
	s, err := ksession.Establish(ctx, conn, iserNode(t, p), ksession.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range k.Requests() {
		if r.Handle != nlinktest.ISERHandle {
			t.Fatalf("%v carried handle %#x, not iSER's", r.Type, r.Handle)
		}
	}
	want := []nlink.MessageType{nlink.EPConnect, nlink.EPPoll, nlink.CreateBoundSession, nlink.CreateConn, nlink.BindConn, nlink.StartConn}
	if got := types(k); !prefix(got, want) {
		t.Fatalf("requests %v, want %v first", got, want)
	}
	if r := k.Requests()[0]; r.Addr.String() != p.HostPort() || !r.NonBlocking {
		t.Errorf("EP_CONNECT to %v non-blocking %v, want %s non-blocking", r.Addr, r.NonBlocking, p.HostPort())
	}
	res := s.Result().Params
	// The target declares neither length: the initiator's declarations
	// stand (node.conn[0].iscsi.MaxRecvDataSegmentLength, and 8192 for
	// an unset MaxXmitDataSegmentLength, as open-iscsi declares).
	if res.MaxRecvDataSegmentLength != 262144 || res.MaxXmitDataSegmentLength != 8192 || res.HeaderDigest {
		t.Errorf("negotiated %+v: want recv 262144, xmit 8192", res)
	}
	if got, _ := k.Param(s.SID, nlink.ParamMaxRecvDLength); got != "262144" {
		t.Errorf("MAX_RECV_DLENGTH %q", got)
	}
	if err := s.WithSocket(func(int) error { return nil }); err != ksession.ErrNoSocket {
		t.Errorf("WithSocket over iSER: %v, want ErrNoSocket", err)
	}
	before := len(k.Requests())
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	var teardown []nlink.MessageType
	for _, r := range k.Requests()[before:] {
		if r.Type != nlink.SendPDU {
			teardown = append(teardown, r.Type)
		}
	}
	// open-iscsi's order: the endpoint goes before the connection stops.
	wantDown := []nlink.MessageType{nlink.UnbindSession, nlink.EPDisconnect, nlink.StopConn, nlink.DestroyConn, nlink.DestroySession}
	if !prefix(teardown, wantDown) || len(teardown) != len(wantDown) {
		t.Errorf("logout sent %v, want %v", teardown, wantDown)
	}
	if n, e := len(k.Sessions()), k.Endpoints(); n != 0 || e != 0 {
		t.Fatalf("%d sessions and %d endpoints left after logout", n, e)
	}
}

func prefix(got, want []nlink.MessageType) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Without an RDMA device the endpoint never comes up (EP_POLL -1): the login
// fails as a retryable connection failure, the endpoint is disconnected and
// nothing is left; no TCP connection is ever tried.
func TestEstablishISERUnreachable(t *testing.T) {
	_, p := startISERTarget(t, nil)
	k := nlinktest.New()
	defer k.Close()
	k.Unreachable(true)
	n := iserNode(t, p)
	n.Dial = nil
	_, err := ksession.Establish(context.Background(), nlinktest.ISERConn(k.Conn()), n, ksession.Hooks{}, nil)
	if !errors.Is(err, ksession.ErrEndpointDown) || !strings.Contains(err.Error(), "TRANSPORT_EP_POLL returned -1") {
		t.Fatalf("unreachable: %v", err)
	}
	if !ksession.Retryable(err) {
		t.Errorf("%v is not retryable", err)
	}
	if got, want := types(k), []nlink.MessageType{nlink.EPConnect, nlink.EPPoll, nlink.EPDisconnect}; !prefix(got, want) || len(got) != len(want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	if len(k.Sessions()) != 0 || k.Endpoints() != 0 {
		t.Fatal("left something in the kernel")
	}
}

// A target that will not do iSER fails the login for good; the endpoint and
// the session are gone.
func TestEstablishISERTargetRefusesRDMA(t *testing.T) {
	_, p := startISERTarget(t, map[string]string{"RDMAExtensions": "No"})
	k := nlinktest.New()
	defer k.Close()
	_, err := ksession.Establish(context.Background(), nlinktest.ISERConn(k.Conn()), iserNode(t, p), ksession.Hooks{}, nil)
	if err == nil || !strings.Contains(err.Error(), "RDMAExtensions") || ksession.Retryable(err) {
		t.Fatalf("target without iSER: %v", err)
	}
	if len(k.Sessions()) != 0 || k.Endpoints() != 0 {
		t.Fatalf("%d sessions, %d endpoints left", len(k.Sessions()), k.Endpoints())
	}
}

// A dropped iSER connection is recovered over a new endpoint.
func TestISERRecovery(t *testing.T) {
	srv, p := startISERTarget(t, nil)
	k := nlinktest.New()
	defer k.Close()
	recovered := make(chan struct{}, 1)
	ctx := context.Background()
	s, err := ksession.Establish(ctx, nlinktest.ISERConn(k.Conn()), iserNode(t, p),
		ksession.Hooks{Recovered: func(*ksession.Session, int) { recovered <- struct{}{} }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Logout(ctx)
	// The target files the session once its final Login Response is out,
	// which may be a moment after the initiator has read it.
	for i := 0; ; i++ {
		n, err := srv.DropConnections(kISERIQN, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if i == 100 {
			t.Fatal("the target never had the session's connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-recovered:
	case <-time.After(15 * time.Second):
		t.Fatalf("no recovery; state %s", s.State())
	}
	connects, disconnects := 0, 0
	for _, r := range k.Requests() {
		switch r.Type {
		case nlink.EPConnect:
			connects++
		case nlink.EPDisconnect:
			disconnects++
		case nlink.CreateSession:
			t.Errorf("recovery sent CREATE_SESSION")
		}
	}
	if connects != 2 || disconnects != 1 || !k.Started(s.SID, 0) || k.Endpoints() != 1 {
		t.Errorf("%d connects, %d disconnects, started %v, %d endpoints", connects, disconnects, k.Started(s.SID, 0), k.Endpoints())
	}
}
