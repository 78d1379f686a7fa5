package session

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// scriptedTarget answers each Login (or Text/Logout) Request with what handle
// returns. It runs on one end of a net.Pipe; the test logs in on the other.
type scriptedTarget struct {
	t        *testing.T
	requests []pdu.LoginRequest
	texts    [][]pdu.KeyValue
}

// step is one response: header fields to set and the text to carry. raw, when
// set, is sent instead.
type step struct {
	resp pdu.LoginResponse
	kvs  []pdu.KeyValue
	raw  *pdu.PDU
}

type handler func(n int, req pdu.LoginRequest, kvs map[string]string) step

func runLogin(t *testing.T, cfg LoginConfig, h handler) (*LoginResult, *scriptedTarget, error) {
	t.Helper()
	ini, tgt := net.Pipe()
	st := &scriptedTarget{t: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer tgt.Close()
		r, w := pdu.NewReader(tgt), pdu.NewWriter(tgt)
		for n := 0; ; n++ {
			var p pdu.PDU
			if err := r.Read(&p); err != nil {
				return
			}
			var req pdu.LoginRequest
			if err := req.Decode(&p.Header); err != nil {
				return
			}
			kvs, err := pdu.ParseText(p.Data)
			if err != nil {
				t.Errorf("initiator sent bad text: %v", err)
				return
			}
			st.requests = append(st.requests, req)
			st.texts = append(st.texts, kvs)
			m := map[string]string{}
			for _, kv := range kvs {
				m[kv.Key] = kv.Value
			}
			s := h(n, req, m)
			out := s.raw
			if out == nil {
				resp := s.resp
				resp.ISID, resp.ITT, resp.CSG = req.ISID, req.ITT, req.CSG
				if resp.Transit && resp.NSG == 0 {
					resp.NSG = req.NSG
				}
				resp.StatSN = uint32(100 + n)
				resp.ExpCmdSN, resp.MaxCmdSN = req.CmdSN, req.CmdSN+31
				out = &pdu.PDU{Data: pdu.AppendText(nil, s.kvs...)}
				resp.Encode(&out.Header)
			}
			if err := w.Write(out); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := NewConnTransport(ini)
	res, err := Login(ctx, tr, cfg)
	ini.Close()
	<-done
	return res, st, err
}

func baseConfig() LoginConfig {
	return LoginConfig{
		InitiatorName: "iqn.2026-11.dev.goiscsi:initiator",
		TargetName:    "iqn.2026-11.dev.goiscsi:target",
		ISID:          pdu.ISID{0x00, 0x02, 0x3d, 0, 0, 1},
		ITT:           0x10,
		CmdSN:         1,
		Auth:          Auth{Method: AuthNone},
		Operational:   DefaultOperational(),
	}
}

// lioLike answers the way LIO does for an unauthenticated login: AuthMethod=None,
// then its own values for the operational keys.
func lioLike(tsih uint16) handler {
	return func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		switch req.CSG {
		case pdu.SecurityNegotiation:
			return step{resp: pdu.LoginResponse{Transit: req.Transit},
				kvs: []pdu.KeyValue{{Key: "AuthMethod", Value: "None"}, {Key: "TargetPortalGroupTag", Value: "1"}}}
		default:
			return step{resp: pdu.LoginResponse{Transit: true, NSG: pdu.FullFeaturePhase, TSIH: tsih}, kvs: []pdu.KeyValue{
				{Key: "HeaderDigest", Value: "None"}, {Key: "DataDigest", Value: "None"},
				{Key: "DefaultTime2Wait", Value: "2"}, {Key: "DefaultTime2Retain", Value: "0"},
				{Key: "ErrorRecoveryLevel", Value: "0"}, {Key: "InitialR2T", Value: "Yes"},
				{Key: "ImmediateData", Value: "Yes"}, {Key: "MaxBurstLength", Value: "262144"},
				{Key: "FirstBurstLength", Value: "65536"}, {Key: "MaxOutstandingR2T", Value: "1"},
				{Key: "MaxConnections", Value: "1"}, {Key: "DataPDUInOrder", Value: "Yes"},
				{Key: "DataSequenceInOrder", Value: "Yes"}, {Key: "MaxRecvDataSegmentLength", Value: "8192"},
				{Key: "TargetAlias", Value: "LIO Target"},
			}}
		}
	}
}

func kv(k, v string) pdu.KeyValue   { return pdu.KeyValue{Key: k, Value: v} }
func kvp(k, v string) *pdu.KeyValue { return &pdu.KeyValue{Key: k, Value: v} }
