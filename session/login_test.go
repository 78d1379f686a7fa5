package session

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

func TestLoginNoAuth(t *testing.T) {
	res, st, err := runLogin(t, baseConfig(), lioLike(0x21))
	if err != nil {
		t.Fatal(err)
	}
	first := st.texts[0]
	want := []string{"InitiatorName", "SessionType", "TargetName", "AuthMethod"}
	for i, k := range want {
		if i >= len(first) || first[i].Key != k {
			t.Fatalf("first PDU keys %v, want %v first", first, want)
		}
	}
	if r := st.requests[0]; !r.Transit || r.CSG != pdu.SecurityNegotiation || r.NSG != pdu.LoginOperationalNegotiation {
		t.Errorf("first request flags: %+v", r)
	}
	for i, r := range st.requests {
		if r.ITT != 0x10 || r.CmdSN != 1 || r.ISID != baseConfig().ISID {
			t.Errorf("request %d changed ITT/CmdSN/ISID: %+v", i, r)
		}
	}
	if got := st.requests[1].ExpStatSN; got != 101 {
		t.Errorf("second request ExpStatSN %d, want 101 (first StatSN 100 + 1)", got)
	}
	p := res.Params
	if res.TSIH != 0x21 || p.TargetPortalGroupTag != 1 || p.TargetAlias != "LIO Target" {
		t.Errorf("TSIH %x TPGT %d alias %q", res.TSIH, p.TargetPortalGroupTag, p.TargetAlias)
	}
	// InitialR2T is OR (we said No, LIO Yes → Yes); MaxBurstLength is min.
	if !p.InitialR2T || !p.ImmediateData || p.MaxBurstLength != 262144 || p.FirstBurstLength != 65536 ||
		p.MaxXmitDataSegmentLength != 8192 || p.MaxRecvDataSegmentLength != 262144 || p.HeaderDigest || p.DataDigest {
		t.Errorf("params %+v", p)
	}
	if res.StatSN != 101 {
		t.Errorf("StatSN %d, want 101", res.StatSN)
	}
}

// A target that stays in a stage (T=0) gets further requests with T=1 until it
// transits; one that never does is cut off.
func TestLoginTargetDelaysTransit(t *testing.T) {
	lio := lioLike(5)
	_, st, err := runLogin(t, baseConfig(), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		if n == 1 || n == 2 {
			return step{resp: pdu.LoginResponse{}} // operational, not yet
		}
		return lio(n, req, kvs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.requests) != 4 {
		t.Fatalf("%d requests, want 4", len(st.requests))
	}
	for _, r := range st.requests[1:] {
		if !r.Transit || r.NSG != pdu.FullFeaturePhase {
			t.Errorf("operational request without T=1 NSG=3: %+v", r)
		}
	}
	_, _, err = runLogin(t, baseConfig(), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		return step{resp: pdu.LoginResponse{}}
	})
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "rounds") {
		t.Fatalf("endless T=0: %v", err)
	}
}

// Text split over several Login Responses with the C bit is joined.
func TestLoginContinuation(t *testing.T) {
	lio := lioLike(7)
	var part2 []pdu.KeyValue
	res, st, err := runLogin(t, baseConfig(), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		if req.CSG == pdu.LoginOperationalNegotiation && n == 1 {
			full := lio(n, req, kvs)
			part2 = full.kvs[7:]
			return step{resp: pdu.LoginResponse{Continue: true}, kvs: full.kvs[:7]}
		}
		if n == 2 {
			if len(kvs) != 0 || !req.Transit {
				t.Errorf("continuation acknowledgement carried %v transit=%v", kvs, req.Transit)
			}
			return step{resp: pdu.LoginResponse{Transit: true, NSG: pdu.FullFeaturePhase, TSIH: 7}, kvs: part2}
		}
		return lio(n, req, kvs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Params.MaxBurstLength != 262144 || len(st.requests) != 3 {
		t.Errorf("params %+v after %d requests", res.Params, len(st.requests))
	}
}

func TestLoginStatusErrors(t *testing.T) {
	tests := []struct {
		name   string
		status pdu.LoginStatus
		kvs    []pdu.KeyValue
		check  func(*LoginError) bool
	}{
		{"auth failure", pdu.LoginAuthFailure, nil, (*LoginError).AuthFailure},
		{"not found", pdu.LoginNotFound, nil, func(e *LoginError) bool { return !e.Retryable() && !e.AuthFailure() }},
		{"service unavailable", pdu.LoginServiceUnavailable, nil, (*LoginError).Retryable},
		{"redirect", pdu.LoginTargetMovedTemp, []pdu.KeyValue{{Key: "TargetAddress", Value: "[fe80::2]:3261"}},
			func(e *LoginError) bool { return e.Redirect() && e.TargetAddress == "[fe80::2]:3261" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runLogin(t, baseConfig(), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
				return step{resp: pdu.LoginResponse{Status: tt.status}, kvs: tt.kvs}
			})
			var le *LoginError
			if !errors.As(err, &le) || !tt.check(le) {
				t.Fatalf("got %v", err)
			}
			if !strings.Contains(err.Error(), tt.status.String()) {
				t.Errorf("error %q does not name the status", err)
			}
		})
	}
}

// Responses that break RFC 7143 fail the login with a clear reason.
func TestLoginProtocolErrors(t *testing.T) {
	lio := lioLike(9)
	mutate := func(f func(*step)) handler {
		return func(n int, req pdu.LoginRequest, kvs map[string]string) step {
			s := lio(n, req, kvs)
			if req.CSG == pdu.LoginOperationalNegotiation {
				f(&s)
			}
			return s
		}
	}
	replace := func(key, value string) handler {
		return mutate(func(s *step) {
			for i := range s.kvs {
				if s.kvs[i].Key == key {
					s.kvs[i].Value = value
				}
			}
		})
	}
	raw := func(m pdu.Message) handler {
		return func(n int, req pdu.LoginRequest, kvs map[string]string) step {
			p := &pdu.PDU{}
			m.Encode(&p.Header)
			return step{raw: p}
		}
	}
	tests := []struct {
		name string
		h    handler
		want string
	}{
		{"wrong opcode", raw(&pdu.NOPIn{ITT: pdu.ReservedTag}), "expected a Login Response"},
		{"wrong ITT", raw(&pdu.LoginResponse{ITT: 99, ISID: baseConfig().ISID}), "ITT"},
		{"wrong ISID", raw(&pdu.LoginResponse{ITT: 0x10}), "ISID"},
		{"version", raw(&pdu.LoginResponse{ITT: 0x10, ISID: baseConfig().ISID, VersionActive: 1}), "version"},
		{"no TSIH", mutate(func(s *step) { s.resp.TSIH = 0 }), "TSIH"},
		{"stage backwards", mutate(func(s *step) { s.resp.NSG = pdu.LoginOperationalNegotiation }), "moved from"},
		{"T and C", mutate(func(s *step) { s.resp.Continue = true }), "both T and C"},
		{"burst above proposal", replace("MaxBurstLength", "99999999"), "MaxBurstLength"},
		{"digest not offered", replace("HeaderDigest", "CRC32C"), "not offered"},
		{"time2wait below proposal", replace("DefaultTime2Wait", "1"), "DefaultTime2Wait"},
		{"non-number answer", replace("MaxOutstandingR2T", "abc"), "not a number"},
		{"ERL above proposal", replace("ErrorRecoveryLevel", "1"), "ErrorRecoveryLevel"},
		{"key twice", mutate(func(s *step) { s.kvs = append(s.kvs, pdu.KeyValue{Key: "HeaderDigest", Value: "None"}) }), "twice"},
		{"bad text", func(n int, req pdu.LoginRequest, kvs map[string]string) step {
			p := &pdu.PDU{Data: []byte("AuthMethod\x00")}
			(&pdu.LoginResponse{ITT: req.ITT, ISID: req.ISID}).Encode(&p.Header)
			return step{raw: p}
		}, "no '='"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runLogin(t, baseConfig(), tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// chapTarget answers like a target requiring CHAP with the given algorithm,
// initiator secret and, for mutual CHAP, target name and secret.
func chapTarget(t *testing.T, alg CHAPAlgorithm, secret Secret, tname string, tsecret Secret) handler {
	challenge := []byte("0123456789abcdef")
	lio := lioLike(3)
	return func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		if req.CSG != pdu.SecurityNegotiation {
			return lio(n, req, kvs)
		}
		switch {
		case kvs["AuthMethod"] != "":
			if !inList(kvs["AuthMethod"], "CHAP") {
				return step{resp: pdu.LoginResponse{Status: pdu.LoginAuthFailure}}
			}
			return step{kvs: []pdu.KeyValue{{Key: "AuthMethod", Value: "CHAP"}}}
		case kvs["CHAP_A"] != "":
			if !inList(kvs["CHAP_A"], itoa(int(alg))) {
				return step{kvs: []pdu.KeyValue{{Key: "CHAP_A", Value: "Reject"}}}
			}
			return step{kvs: []pdu.KeyValue{{Key: "CHAP_A", Value: itoa(int(alg))}, {Key: "CHAP_I", Value: "0x2a"},
				{Key: "CHAP_C", Value: pdu.FormatBinary(challenge)}}}
		case kvs["CHAP_R"] != "":
			got, _ := pdu.ParseBinary(kvs["CHAP_R"])
			if kvs["CHAP_N"] != "alice" || !bytes.Equal(got, CHAPResponse(alg, 42, secret, challenge)) {
				return step{resp: pdu.LoginResponse{Status: pdu.LoginAuthFailure}}
			}
			out := step{resp: pdu.LoginResponse{Transit: true}}
			if kvs["CHAP_C"] != "" {
				id, _ := pdu.ParseNumber(kvs["CHAP_I"])
				c, _ := pdu.ParseBinary(kvs["CHAP_C"])
				out.kvs = []pdu.KeyValue{{Key: "CHAP_N", Value: tname}, {Key: "CHAP_R", Value: pdu.FormatBinary(CHAPResponse(alg, byte(id), tsecret, c))}}
			}
			return out
		}
		t.Errorf("unexpected security request %v", kvs)
		return step{resp: pdu.LoginResponse{Status: pdu.LoginInitiatorError}}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLoginCHAP(t *testing.T) {
	chapCfg := func(mutual bool, algs ...CHAPAlgorithm) LoginConfig {
		c := baseConfig()
		c.Auth = Auth{Method: AuthCHAP, Username: "alice", Password: "initiator-secret", Algorithms: algs}
		if mutual {
			c.Auth.UsernameIn, c.Auth.PasswordIn = "target1", "target-secret-x"
		}
		return c
	}
	for _, alg := range []CHAPAlgorithm{CHAPMD5, CHAPSHA1, CHAPSHA256, CHAPSHA3256} {
		t.Run("one-way "+alg.String(), func(t *testing.T) {
			res, st, err := runLogin(t, chapCfg(false), chapTarget(t, alg, "initiator-secret", "", ""))
			if err != nil {
				t.Fatal(err)
			}
			if res.TSIH != 3 {
				t.Errorf("TSIH %d", res.TSIH)
			}
			if got := st.texts[1][0]; got.Key != "CHAP_A" || got.Value != "8,7,6,5" {
				t.Errorf("CHAP_A offer %v", got)
			}
		})
		t.Run("mutual "+alg.String(), func(t *testing.T) {
			if _, _, err := runLogin(t, chapCfg(true), chapTarget(t, alg, "initiator-secret", "target1", "target-secret-x")); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("wrong initiator secret", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(false), chapTarget(t, CHAPMD5, "other", "", ""))
		var le *LoginError
		if !errors.As(err, &le) || !le.AuthFailure() {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("failure after a stronger algorithm asks for the MD5 retry", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(false), chapTarget(t, CHAPSHA256, "other", "", ""))
		var le *LoginError
		if !errors.Is(err, ErrCHAPAlgorithms) || !errors.As(err, &le) || !le.AuthFailure() {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong target secret", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(true), chapTarget(t, CHAPMD5, "initiator-secret", "target1", "wrong"))
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong target name", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(true), chapTarget(t, CHAPMD5, "initiator-secret", "mallory", "target-secret-x"))
		var ae *AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "mallory") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("algorithm list rejected", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(false, CHAPSHA256, CHAPSHA1), chapTarget(t, CHAPMD5, "initiator-secret", "", ""))
		if !errors.Is(err, ErrCHAPAlgorithms) {
			t.Fatalf("got %v", err)
		}
		// The retry offers MD5 alone and succeeds.
		if _, _, err := runLogin(t, chapCfg(false, CHAPSHA256).MD5Only(), chapTarget(t, CHAPMD5, "initiator-secret", "", "")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("same secret both ways", func(t *testing.T) {
		c := chapCfg(true)
		c.Auth.PasswordIn = c.Auth.Password
		_, _, err := runLogin(t, c, chapTarget(t, CHAPMD5, "initiator-secret", "target1", "initiator-secret"))
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("reflected challenge", func(t *testing.T) {
		ours := NewCHAPChallenge(CHAPMD5)
		h := chapTarget(t, CHAPMD5, "initiator-secret", "", "")
		_, _, err := runLogin(t, chapCfg(false), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
			s := h(n, req, kvs)
			for i := range s.kvs {
				if s.kvs[i].Key == "CHAP_C" {
					s.kvs[i].Value = pdu.FormatBinary(ours)
				}
			}
			return s
		})
		var ae *AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "reflection") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("secrets stay out of errors", func(t *testing.T) {
		_, _, err := runLogin(t, chapCfg(true), chapTarget(t, CHAPMD5, "initiator-secret", "target1", "wrong"))
		if err == nil || strings.Contains(err.Error(), "secret-x") || strings.Contains(err.Error(), "initiator-secret") {
			t.Fatalf("error %v", err)
		}
		var s Secret = "hunter2"
		if strings.Contains(strings.Join([]string{s.String(), s.GoString()}, ""), "hunter2") {
			t.Fatal("Secret formatting leaks")
		}
	})
}

// A key the target proposes in the response that leaves the security stage is
// answered in the first request of the next stage (an unknown key with
// NotUnderstood), and the login goes on.
func TestLoginAnswersProposalsAcrossStages(t *testing.T) {
	lio := lioLike(9)
	_, st, err := runLogin(t, baseConfig(), func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		s := lio(n, req, kvs)
		if n == 0 {
			s.kvs = append(s.kvs, kv("X-com.example.Foo", "1"))
		}
		return s
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.requests) < 2 || st.requests[1].CSG != pdu.LoginOperationalNegotiation {
		t.Fatalf("requests %+v", st.requests)
	}
	var answered bool
	for _, p := range st.texts[1] {
		answered = answered || p == kv("X-com.example.Foo", "NotUnderstood")
	}
	if !answered {
		t.Errorf("first operational request %v lacks X-com.example.Foo=NotUnderstood", st.texts[1])
	}
}
