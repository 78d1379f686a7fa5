package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goiscsi/goiscsi/pdu"
)

// Transport carries the PDUs of one connection. The daemon's transport goes
// through the kernel (SEND_PDU out, RECV_PDU in); discovery and tests use a plain
// TCP connection ([NewConnTransport]).
type Transport interface {
	Send(ctx context.Context, p *pdu.PDU) error
	Receive(ctx context.Context) (*pdu.PDU, error)
}

// AuthMethod is node.session.auth.authmethod.
type AuthMethod string

// Authentication methods.
const (
	AuthNone AuthMethod = "None"
	AuthCHAP AuthMethod = "CHAP"
)

// Auth is the authentication a login uses.
type Auth struct {
	Method   AuthMethod
	Username string
	Password Secret
	// UsernameIn and PasswordIn make CHAP mutual: the target must prove it
	// knows PasswordIn.
	UsernameIn string
	PasswordIn Secret
	// Algorithms is the CHAP_A offer in order of preference; empty means
	// DefaultCHAPAlgorithms.
	Algorithms []CHAPAlgorithm
}

func (a Auth) mutual() bool { return a.UsernameIn != "" || a.PasswordIn != "" }

// LoginConfig is everything one login needs.
type LoginConfig struct {
	InitiatorName  string
	InitiatorAlias string
	// TargetName is empty for a Discovery session.
	TargetName string
	Discovery  bool
	ISID       pdu.ISID
	// TSIH is 0 for a new session, and for reinstating one after an error.
	TSIH      uint16
	CID       uint16
	ITT       uint32
	CmdSN     uint32
	ExpStatSN uint32
	Auth      Auth
	// Operational holds the operational values to propose.
	Operational Operational
	// RDMA is a login over iSER (RFC 7145): a Normal session negotiates
	// RDMAExtensions and the iSER data segment lengths (iser.go).
	RDMA bool
}

// MD5Only returns a copy of c that offers CHAP with MD5 alone, for the retry
// against old targets that reject a list of CHAP algorithms.
func (c LoginConfig) MD5Only() LoginConfig {
	c.Auth.Algorithms = []CHAPAlgorithm{CHAPMD5}
	return c
}

// LoginResult is the state a successful login leaves for the full feature phase.
type LoginResult struct {
	Params Params
	TSIH   uint16
	// StatSN is the last StatSN received; the connection's ExpStatSN is
	// StatSN+1.
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

// ErrCHAPAlgorithms is returned when the target refuses the offered list of CHAP
// algorithms, or fails authentication after choosing one other than MD5; callers
// retry once with LoginConfig.MD5Only, which old targets need. The error also
// wraps the target's LoginError when there is one.
var ErrCHAPAlgorithms = errors.New("target refused the offered CHAP algorithms")

// LoginError is a login the target ended with a non-zero status.
type LoginError struct {
	Status pdu.LoginStatus
	Stage  pdu.Stage
	// TargetAddress is where a redirection points (status class 1).
	TargetAddress string
}

func (e *LoginError) Error() string {
	if e.Status.Class == pdu.StatusRedirection {
		return fmt.Sprintf("login redirected: %v to %s", e.Status, e.TargetAddress)
	}
	return fmt.Sprintf("login failed in %v: %v", e.Stage, e.Status)
}

// Redirect reports whether the target redirected the login.
func (e *LoginError) Redirect() bool { return e.Status.Class == pdu.StatusRedirection }

// Retryable reports a target-side failure the RFC says to retry later (class 3).
func (e *LoginError) Retryable() bool { return e.Status.Class == pdu.StatusTargetError }

// AuthFailure reports that the target refused this initiator's credentials.
func (e *LoginError) AuthFailure() bool {
	return e.Status == pdu.LoginAuthFailure || e.Status == pdu.LoginAuthorizationFailure
}

// AuthError is a target that failed to authenticate itself in mutual CHAP, or
// one that attempted a reflection attack.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return "target authentication failed: " + e.Reason }

// ProtocolError is a login response that breaks RFC 7143.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "login protocol error: " + e.Reason }

// Login runs the login phase of one connection over t, from the first Login
// Request to the full feature phase (RFC 7143 §6.3). The caller bounds it with
// ctx (node.conn[0].timeo.login_timeout) and owns the connection.
func Login(ctx context.Context, t Transport, cfg LoginConfig) (*LoginResult, error) {
	l := &login{t: t, cfg: cfg, stage: pdu.SecurityNegotiation, expStatSN: cfg.ExpStatSN}
	wishes := cfg.Operational.wishes()
	if cfg.RDMA && !cfg.Discovery {
		cfg.Operational.rdmaWishes(wishes)
	}
	switch {
	case cfg.Auth.Method == AuthCHAP && cfg.Auth.mutual():
		wishes["AuthMethod"] = "CHAP"
	case cfg.Auth.Method == AuthCHAP:
		wishes["AuthMethod"] = "CHAP,None"
	default:
		wishes["AuthMethod"] = "None"
	}
	if cfg.Auth.Method == AuthCHAP && cfg.Auth.mutual() && cfg.Auth.Password == cfg.Auth.PasswordIn {
		return nil, &AuthError{Reason: "the initiator and target CHAP secrets are the same; RFC 7143 forbids it"}
	}
	l.neg = NewNegotiator(InitiatorRole, cfg.Discovery, wishes)
	l.chap = &chapInitiator{auth: cfg.Auth}
	return l.run(ctx)
}

type login struct {
	t         Transport
	cfg       LoginConfig
	neg       *Negotiator
	chap      *chapInitiator
	stage     pdu.Stage
	expStatSN uint32
	tsih      uint16
	res       LoginResult
	rounds    int
}

// maxRounds bounds the request/response rounds of one login, so a target that
// never transits cannot keep the login alive until its timeout.
const maxRounds = 32

// reply is one Login Response with its text sorted out.
type reply struct {
	transit bool
	nsg     pdu.Stage
	chap    map[string]string // CHAP_* keys
	answers []pdu.KeyValue    // this side's answers to the target's proposals
}

func (l *login) run(ctx context.Context) (*LoginResult, error) {
	answers, err := l.security(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.operational(ctx, answers); err != nil {
		return nil, err
	}
	return l.finish()
}

// firstKeys are the declarations the first Login Request must carry.
func (l *login) firstKeys() []pdu.KeyValue {
	kvs := []pdu.KeyValue{{Key: "InitiatorName", Value: l.cfg.InitiatorName}}
	if l.cfg.InitiatorAlias != "" {
		kvs = append(kvs, pdu.KeyValue{Key: "InitiatorAlias", Value: l.cfg.InitiatorAlias})
	}
	// SessionType always goes out explicitly: LIO refuses a login without it.
	if l.cfg.Discovery {
		return append(kvs, pdu.KeyValue{Key: "SessionType", Value: "Discovery"})
	}
	return append(kvs, pdu.KeyValue{Key: "SessionType", Value: "Normal"},
		pdu.KeyValue{Key: "TargetName", Value: l.cfg.TargetName})
}

// security runs SecurityNegotiation: AuthMethod, then CHAP when chosen. It
// returns the answers to what the target proposed in its last response, which
// go out in the next stage.
func (l *login) security(ctx context.Context) ([]pdu.KeyValue, error) {
	wantCHAP := l.cfg.Auth.Method == AuthCHAP
	kvs := append(l.firstKeys(), l.neg.Propose("AuthMethod")...)
	r, err := l.round(ctx, kvs, !wantCHAP, pdu.LoginOperationalNegotiation)
	if err != nil {
		return nil, err
	}
	switch method := l.neg.Result("AuthMethod"); method {
	case "None":
		if wantCHAP && l.cfg.Auth.mutual() {
			return nil, &AuthError{Reason: "target refused to authenticate (AuthMethod=None) although mutual CHAP is configured"}
		}
	case "CHAP":
		if r.transit {
			return nil, &ProtocolError{Reason: "target chose CHAP but left the security stage without it"}
		}
		if r, err = l.round(ctx, append(r.answers, pdu.KeyValue{Key: "CHAP_A", Value: l.chap.offer()}), false, 0); err != nil {
			// Old targets end the login when offered a list of algorithms
			// instead of answering CHAP_A=Reject (open-iscsi issue 180).
			var le *LoginError
			if errors.As(err, &le) && strings.Contains(l.chap.offer(), ",") {
				return nil, fmt.Errorf("%w: %w", ErrCHAPAlgorithms, err)
			}
			return nil, err
		}
		if r.transit {
			return nil, &ProtocolError{Reason: "target left the security stage before CHAP completed"}
		}
		chapAnswers, err := l.chap.answer(r.chap["CHAP_A"], r.chap["CHAP_I"], r.chap["CHAP_C"])
		if err != nil {
			return nil, err
		}
		kvs := r.answers
		for _, kv := range chapAnswers {
			kvs = append(kvs, pdu.KeyValue{Key: kv[0], Value: kv[1]})
		}
		if r, err = l.round(ctx, kvs, true, pdu.LoginOperationalNegotiation); err != nil {
			// Some targets accept a stronger algorithm they then mishandle
			// (tgt 1.0.85 with SHA-256 answers 0x0200): a failure after
			// anything but MD5 asks for the MD5-only retry too.
			var le *LoginError
			if errors.As(err, &le) && le.Status.Class == pdu.StatusInitiatorError && l.chap.alg != CHAPMD5 {
				return nil, fmt.Errorf("%w: %w", ErrCHAPAlgorithms, err)
			}
			return nil, err
		}
		if l.cfg.Auth.mutual() {
			if err := l.chap.verify(r.chap["CHAP_N"], r.chap["CHAP_R"]); err != nil {
				return nil, err
			}
		} else if len(r.chap) > 0 {
			return nil, &ProtocolError{Reason: "target sent CHAP keys after the CHAP response"}
		}
	default:
		return nil, &ProtocolError{Reason: fmt.Sprintf("target chose AuthMethod=%s", method)}
	}
	// Keep asking to transit until the target does.
	for !r.transit {
		if r, err = l.round(ctx, r.answers, true, pdu.LoginOperationalNegotiation); err != nil {
			return nil, err
		}
		if len(r.chap) > 0 {
			return nil, &ProtocolError{Reason: "unexpected CHAP keys from the target"}
		}
	}
	l.stage = r.nsg
	return r.answers, nil
}

// operational runs LoginOperationalNegotiation up to the full feature phase;
// its first request carries answers left from the security stage.
func (l *login) operational(ctx context.Context, answers []pdu.KeyValue) error {
	keys := operationalKeys
	switch {
	case l.cfg.Discovery:
		keys = discoveryKeys
	case l.cfg.RDMA:
		keys = rdmaKeys
	}
	kvs := append(answers, l.neg.Propose(keys...)...)
	for {
		r, err := l.round(ctx, kvs, true, pdu.FullFeaturePhase)
		if err != nil {
			return err
		}
		if len(r.chap) > 0 {
			return &ProtocolError{Reason: "CHAP keys in the operational stage"}
		}
		if r.transit {
			if len(r.answers) > 0 {
				return &ProtocolError{Reason: fmt.Sprintf("target entered the full feature phase with its proposals %v unanswered", r.answers)}
			}
			l.stage = r.nsg
			return nil
		}
		kvs = r.answers
	}
}

// round sends one request and sorts out the response: CHAP keys apart, the
// rest through the negotiator.
func (l *login) round(ctx context.Context, kvs []pdu.KeyValue, transit bool, next pdu.Stage) (*reply, error) {
	l.rounds++
	if l.rounds > maxRounds {
		return nil, &ProtocolError{Reason: fmt.Sprintf("no full feature phase after %d login rounds", maxRounds)}
	}
	resp, data, err := l.exchange(ctx, kvs, transit, next)
	if err != nil {
		return nil, err
	}
	pairs, err := pdu.ParseText(data)
	if err != nil {
		return nil, &ProtocolError{Reason: err.Error()}
	}
	r := &reply{transit: resp.Transit, nsg: resp.NSG, chap: map[string]string{}}
	var rest []pdu.KeyValue
	for _, kv := range pairs {
		if strings.HasPrefix(kv.Key, "CHAP_") {
			if _, dup := r.chap[kv.Key]; dup {
				return nil, &ProtocolError{Reason: kv.Key + " sent twice"}
			}
			r.chap[kv.Key] = kv.Value
			continue
		}
		rest = append(rest, kv)
	}
	if r.answers, err = l.neg.Handle(rest); err != nil {
		return nil, err
	}
	return r, nil
}

// exchange sends one login request carrying kvs and returns the target's
// response, with the text of C-bit continuations joined.
func (l *login) exchange(ctx context.Context, kvs []pdu.KeyValue, transit bool, next pdu.Stage) (*pdu.LoginResponse, []byte, error) {
	data := pdu.AppendText(nil, kvs...)
	if len(data) > pdu.DefaultMaxRecvDataSegmentLength {
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("login request text is %d bytes, more than the 8192 a Login PDU may carry", len(data))}
	}
	req := pdu.LoginRequest{
		Transit: transit, CSG: l.stage, ISID: l.cfg.ISID, TSIH: l.cfg.TSIH,
		ITT: l.cfg.ITT, CID: l.cfg.CID, CmdSN: l.cfg.CmdSN, ExpStatSN: l.expStatSN,
	}
	if transit {
		req.NSG = next
	}
	var text []byte
	for {
		p := &pdu.PDU{Data: data}
		req.Encode(&p.Header)
		if err := l.t.Send(ctx, p); err != nil {
			return nil, nil, fmt.Errorf("send login request: %w", err)
		}
		resp, chunk, err := l.receive(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		text = append(text, chunk...)
		if len(text) > 64*1024 {
			return nil, nil, &ProtocolError{Reason: "login response text exceeds 64 KiB"}
		}
		if !resp.Continue {
			return resp, text, nil
		}
		// The target has more text: acknowledge with an empty request
		// (RFC 7143 §6.3.3, C bit), still asking to transit so the target
		// can do so with its last part.
		data = nil
	}
}

func (l *login) receive(ctx context.Context, req pdu.LoginRequest) (*pdu.LoginResponse, []byte, error) {
	p, err := l.t.Receive(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("receive login response: %w", err)
	}
	var resp pdu.LoginResponse
	if err := resp.Decode(&p.Header); err != nil {
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("expected a Login Response, got %v", p.Header.Opcode())}
	}
	if resp.Status.Class != pdu.StatusSuccess {
		e := &LoginError{Status: resp.Status, Stage: l.stage}
		if e.Redirect() {
			if kvs, err := pdu.ParseText(p.Data); err == nil {
				for _, kv := range kvs {
					if kv.Key == "TargetAddress" {
						e.TargetAddress = kv.Value
					}
				}
			}
			if e.TargetAddress == "" {
				return nil, nil, &ProtocolError{Reason: "redirection without a TargetAddress"}
			}
		}
		return nil, nil, e
	}
	switch {
	case resp.VersionActive != 0:
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("target chose version %d; only 0 exists", resp.VersionActive)}
	case resp.ITT != req.ITT:
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("response ITT 0x%x does not match request ITT 0x%x", resp.ITT, req.ITT)}
	case resp.ISID != req.ISID:
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("response ISID %v does not match %v", resp.ISID, req.ISID)}
	case resp.CSG != req.CSG:
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("response is for stage %v, request was in %v", resp.CSG, req.CSG)}
	case resp.Transit && resp.Continue:
		return nil, nil, &ProtocolError{Reason: "response has both T and C set"}
	case resp.Transit && !req.Transit:
		return nil, nil, &ProtocolError{Reason: "target transited although the initiator did not ask to"}
	case resp.Transit && (resp.NSG <= resp.CSG || resp.NSG > req.NSG || resp.NSG == 2):
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("target moved from %v to %v (asked for %v)", resp.CSG, resp.NSG, req.NSG)}
	case l.cfg.TSIH != 0 && resp.TSIH != 0 && resp.TSIH != l.cfg.TSIH:
		return nil, nil, &ProtocolError{Reason: fmt.Sprintf("target changed TSIH from %d to %d", l.cfg.TSIH, resp.TSIH)}
	}
	l.expStatSN = resp.StatSN + 1
	l.tsih = resp.TSIH
	l.res.StatSN, l.res.ExpCmdSN, l.res.MaxCmdSN = resp.StatSN, resp.ExpCmdSN, resp.MaxCmdSN
	return &resp, p.Data, nil
}

func (l *login) finish() (*LoginResult, error) {
	if l.tsih == 0 {
		return nil, &ProtocolError{Reason: "final login response carries no TSIH"}
	}
	p := params(l.neg, l.cfg.Operational)
	if l.cfg.RDMA && !l.cfg.Discovery {
		if err := rdmaParams(l.neg, l.cfg.Operational, &p); err != nil {
			return nil, err
		}
	}
	if p.FirstBurstLength > p.MaxBurstLength && !p.InitialR2T {
		return nil, &ProtocolError{Reason: fmt.Sprintf("negotiated FirstBurstLength %d exceeds MaxBurstLength %d", p.FirstBurstLength, p.MaxBurstLength)}
	}
	if p.ErrorRecoveryLevel != 0 || p.MaxConnections > 1 {
		return nil, &ProtocolError{Reason: "target negotiated error recovery or connection counts the kernel does not support"}
	}
	l.res.Params = p
	l.res.TSIH = l.tsih
	return &l.res, nil
}
