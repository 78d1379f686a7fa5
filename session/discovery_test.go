package session

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

func TestParseTargetAddress(t *testing.T) {
	tests := []struct {
		in   string
		want Portal
		err  bool
	}{
		{"10.0.0.1:3260,1", Portal{"10.0.0.1", 3260, 1}, false},
		{"10.0.0.1:3261", Portal{"10.0.0.1", 3261, -1}, false},
		{"10.0.0.1,2", Portal{"10.0.0.1", 3260, 2}, false},
		{"10.0.0.1", Portal{"10.0.0.1", 3260, -1}, false},
		{"[fe80::1]:3260,1", Portal{"fe80::1", 3260, 1}, false},
		{"[fe80::1],1", Portal{"fe80::1", 3260, 1}, false}, // open-iscsi mis-parses this one
		{"[::1]", Portal{"::1", 3260, -1}, false},
		{"storage.example.com:3260,7", Portal{"storage.example.com", 3260, 7}, false},
		{"", Portal{}, true},
		{":3260", Portal{}, true},
		{"[fe80::1", Portal{}, true},
		{"[nothex]:3260", Portal{}, true},
		{"10.0.0.1:0,1", Portal{}, true},
		{"10.0.0.1:99999", Portal{}, true},
		{"10.0.0.1:3260,x", Portal{}, true},
		{"10.0.0.1:3260,", Portal{}, true},
		{"[::1]x", Portal{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTargetAddress(tt.in)
		if tt.err != (err != nil) || got != tt.want {
			t.Errorf("ParseTargetAddress(%q) = %+v, %v", tt.in, got, err)
		}
	}
	if s := (Portal{"fe80::1", 3260, 1}).String(); s != "[fe80::1]:3260,1" {
		t.Errorf("String = %s", s)
	}
}

// discoveryTarget serves one discovery login and a SendTargets answer split into
// several Text Responses (F=0 with a TTT), the last one also using the C bit.
func discoveryTarget(t *testing.T, ln net.Listener) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	r, w := pdu.NewReader(c), pdu.NewWriter(c)
	statSN := uint32(1)
	send := func(m pdu.Message, kvs ...pdu.KeyValue) {
		p := &pdu.PDU{Data: pdu.AppendText(nil, kvs...)}
		m.Encode(&p.Header)
		w.Write(p)
		statSN++
	}
	answer := pdu.AppendText(nil,
		kv("TargetName", "iqn.2026-11.dev.goiscsi:t1"), kv("TargetAddress", "127.0.0.1:3260,1"),
		kv("TargetAddress", "[::1]:3260,1"),
		kv("TargetName", "iqn.2026-11.dev.goiscsi:t2"))
	chunks := [][]byte{answer[:30], answer[30:70], answer[70:]}
	for {
		var p pdu.PDU
		if err := r.Read(&p); err != nil {
			return
		}
		m, _ := p.Decode()
		switch req := m.(type) {
		case *pdu.LoginRequest:
			kvs, _ := pdu.ParseText(p.Data)
			if req.CSG == pdu.SecurityNegotiation {
				if kvs[1].Value != "Discovery" {
					t.Errorf("SessionType %v", kvs[1])
				}
				send(&pdu.LoginResponse{Transit: true, NSG: 1, ISID: req.ISID, ITT: req.ITT, StatSN: statSN}, kv("AuthMethod", "None"))
			} else {
				for _, kv := range kvs {
					if kv.Key == "MaxBurstLength" || kv.Key == "InitialR2T" {
						t.Errorf("session key %v proposed in a discovery session", kv)
					}
				}
				send(&pdu.LoginResponse{Transit: true, CSG: 1, NSG: 3, ISID: req.ISID, ITT: req.ITT, TSIH: 1, StatSN: statSN},
					kv("HeaderDigest", "None"), kv("DataDigest", "None"),
					kv("DefaultTime2Wait", "2"), kv("DefaultTime2Retain", "0"),
					kv("ErrorRecoveryLevel", "0"))
			}
		case *pdu.TextRequest:
			i := 0
			if req.TTT != pdu.ReservedTag {
				i = int(req.TTT)
			}
			resp := &pdu.TextResponse{ITT: req.ITT, TTT: uint32(i + 1), StatSN: statSN}
			if i == len(chunks)-1 {
				resp.Final, resp.TTT = true, pdu.ReservedTag
			}
			out := &pdu.PDU{Data: chunks[i]}
			resp.Encode(&out.Header)
			w.Write(out)
			statSN++
		case *pdu.LogoutRequest:
			send(&pdu.LogoutResponse{ITT: req.ITT, StatSN: statSN})
			return
		}
	}
}

func TestDiscover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go discoveryTarget(t, ln)
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := Discover(ctx, Portal{"127.0.0.1", port, -1}, DiscoveryConfig{InitiatorName: "iqn.2026-11.dev.goiscsi:i"})
	if err != nil {
		t.Fatal(err)
	}
	want := []DiscoveredTarget{
		{"iqn.2026-11.dev.goiscsi:t1", []Portal{{"127.0.0.1", 3260, 1}, {"::1", 3260, 1}}},
		{"iqn.2026-11.dev.goiscsi:t2", []Portal{{"127.0.0.1", port, -1}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestDiscoverUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Discover(ctx, Portal{"127.0.0.1", port, -1}, DiscoveryConfig{InitiatorName: "iqn.x"})
	if err == nil {
		t.Fatal("no error")
	}
}

// A target that accepts the connection and then says nothing: the context
// bounds the wait.
func TestDiscoverSilentTarget(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			<-done // silent until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Discover(ctx, Portal{"127.0.0.1", ln.Addr().(*net.TCPAddr).Port, -1}, DiscoveryConfig{InitiatorName: "iqn.x"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v, want the deadline at 300ms", err, time.Since(start))
	}
}
