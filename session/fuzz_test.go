package session

import (
	"bytes"
	"context"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

// streamTransport answers every request with the next PDU of a byte stream:
// deterministic, so the fuzzer sees stable coverage.
type streamTransport struct{ r *pdu.Reader }

func (s *streamTransport) Send(context.Context, *pdu.PDU) error { return nil }

func (s *streamTransport) Receive(context.Context) (*pdu.PDU, error) {
	p := new(pdu.PDU)
	return p, s.r.Read(p)
}

// FuzzLoginResponse logs in against a hostile target whose responses are the
// fuzzer's bytes: the login must end with a result or an error, never a panic,
// and never succeed without a TSIH.
func FuzzLoginResponse(f *testing.F) {
	isid := baseConfig().ISID
	stream := func(msgs ...any) []byte {
		var out []byte
		for i := 0; i < len(msgs); i += 2 {
			p := &pdu.PDU{Data: pdu.AppendText(nil, msgs[i+1].([]pdu.KeyValue)...)}
			msgs[i].(pdu.Message).Encode(&p.Header)
			out, _ = p.Append(out, pdu.Digests{})
		}
		return out
	}
	f.Add(stream(
		&pdu.LoginResponse{Transit: true, NSG: 1, ISID: isid, ITT: 0x10}, []pdu.KeyValue{kv("AuthMethod", "None")},
		&pdu.LoginResponse{Transit: true, CSG: 1, NSG: 3, ISID: isid, ITT: 0x10, TSIH: 1},
		[]pdu.KeyValue{kv("MaxBurstLength", "512"), kv("HeaderDigest", "None"), kv("MaxRecvDataSegmentLength", "0x2000")},
	), false)
	f.Add(stream(
		&pdu.LoginResponse{ISID: isid, ITT: 0x10}, []pdu.KeyValue{kv("AuthMethod", "CHAP")},
		&pdu.LoginResponse{ISID: isid, ITT: 0x10}, []pdu.KeyValue{kv("CHAP_A", "5"), kv("CHAP_I", "0x01"), kv("CHAP_C", "0bAAAAAAAAAAAAAAAAAAAAAA==")},
		&pdu.LoginResponse{Transit: true, NSG: 1, ISID: isid, ITT: 0x10}, []pdu.KeyValue{kv("CHAP_N", "t"), kv("CHAP_R", "0x00")},
	), true)
	f.Add(stream(&pdu.LoginResponse{ISID: isid, ITT: 0x10, Status: pdu.LoginTargetMovedPerm}, []pdu.KeyValue{kv("TargetAddress", "[::1]:3261,1")}), false)
	f.Fuzz(func(t *testing.T, responses []byte, chap bool) {
		cfg := baseConfig()
		if chap {
			cfg.Auth = Auth{Method: AuthCHAP, Username: "u", Password: "p", UsernameIn: "t", PasswordIn: "q"}
		}
		res, err := Login(context.Background(), &streamTransport{pdu.NewReader(bytes.NewReader(responses))}, cfg)
		if err == nil && res.TSIH == 0 {
			t.Fatal("login succeeded without a TSIH")
		}
	})
}

func FuzzParseTargetAddress(f *testing.F) {
	for _, s := range []string{"10.0.0.1:3260,1", "[fe80::1]:3260,1", "[::1],2", "host.example", "a:1,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseTargetAddress(s)
		if err != nil {
			return
		}
		if p.Address == "" || p.Port < 1 || p.Port > 65535 || p.TPGT < -1 || p.TPGT > 65535 {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		if p.TPGT >= 0 {
			again, err := ParseTargetAddress(p.String())
			if err != nil || again != p {
				t.Fatalf("%q → %+v → %q → %+v, %v", s, p, p.String(), again, err)
			}
		}
	})
}

// FuzzNegotiator feeds arbitrary text to both roles: answers are well formed and
// nothing panics.
func FuzzNegotiator(f *testing.F) {
	f.Add([]byte("HeaderDigest=CRC32C,None\x00MaxBurstLength=0x100000\x00InitialR2T=No\x00X-foo=1\x00"), false)
	f.Add([]byte("MaxConnections=2\x00SendTargets=All\x00"), true)
	f.Fuzz(func(t *testing.T, text []byte, discovery bool) {
		kvs, err := pdu.ParseText(text)
		if err != nil {
			return
		}
		for _, role := range []Role{InitiatorRole, TargetRole} {
			n := NewNegotiator(role, discovery, DefaultOperational().wishes())
			n.Propose(operationalKeys...)
			answers, err := n.Handle(kvs)
			if err != nil {
				continue
			}
			out := pdu.AppendText(nil, answers...)
			if _, err := pdu.ParseText(out); err != nil && !bytes.Contains(out, []byte{0, 0}) {
				t.Fatalf("answers do not re-parse: %v", err)
			}
			_ = params(n, DefaultOperational())
		}
	})
}

// FuzzSendTargets runs the SendTargets exchange of a discovery session against
// a hostile target whose Text Responses are the fuzzer's bytes: it ends with
// targets or an error, never a panic, and every target it returns has a name
// and a usable portal.
func FuzzSendTargets(f *testing.F) {
	text := func(final bool, ttt uint32, kvs ...pdu.KeyValue) []byte {
		p := &pdu.PDU{Data: pdu.AppendText(nil, kvs...)}
		(&pdu.TextResponse{Final: final, ITT: 1, TTT: ttt}).Encode(&p.Header)
		b, _ := p.Append(nil, pdu.Digests{})
		return b
	}
	f.Add(text(true, pdu.ReservedTag, kv("TargetName", "iqn.2003-01.org.example:t1"), kv("TargetAddress", "10.0.0.1:3260,1"),
		kv("TargetAddress", "[fe80::1]:3260,1"), kv("TargetName", "iqn.2003-01.org.example:t2")))
	f.Add(append(text(false, 7, kv("TargetName", "iqn.2003-01.org.example:t1")), text(true, pdu.ReservedTag, kv("TargetAddress", "h:1,2"))...))
	fallback := Portal{Address: "192.0.2.1", Port: DefaultPort, TPGT: 1}
	f.Fuzz(func(t *testing.T, responses []byte) {
		targets, err := SendTargets(context.Background(), &streamTransport{pdu.NewReader(bytes.NewReader(responses))}, &LoginResult{}, 1, 1, fallback)
		if err != nil {
			return
		}
		for _, tg := range targets {
			if tg.Name == "" || len(tg.Portals) == 0 {
				t.Fatalf("target %+v", tg)
			}
			for _, p := range tg.Portals {
				if p.Address == "" || p.Port < 1 || p.Port > 65535 {
					t.Fatalf("target %s portal %+v", tg.Name, p)
				}
			}
		}
	})
}
