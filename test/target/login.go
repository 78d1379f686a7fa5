package target

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

// loginError ends a login with a status (and, for redirects, a TargetAddress).
type loginError struct {
	status  pdu.LoginStatus
	address string
	reason  string
}

func (e *loginError) Error() string { return fmt.Sprintf("%v: %s", e.status, e.reason) }

func fail(status pdu.LoginStatus, format string, args ...any) *loginError {
	return &loginError{status: status, reason: fmt.Sprintf(format, args...)}
}

// errLoginDropped ends a login by closing the connection without an answer.
type errLoginDropped struct{ reason string }

func (e *errLoginDropped) Error() string { return "connection dropped: " + e.reason }

// chapState is how far a CHAP exchange has come.
type chapState int

const (
	chapNone      chapState = iota // CHAP not (yet) chosen
	chapWaitA                      // AuthMethod=CHAP chosen; CHAP_A expected
	chapWaitR                      // challenge sent; CHAP_N and CHAP_R expected
	chapDone                       // initiator (and, for mutual CHAP, target) authenticated
	authNotNeeded                  // AuthMethod=None chosen
)

// loginState is one connection's login in progress.
type loginState struct {
	c         *conn
	first     pdu.LoginRequest // the first request: ISID, ITT, versions must stay
	stage     pdu.Stage
	neg       *session.Negotiator
	auth      AuthConfig
	chap      chapState
	chapAlg   session.CHAPAlgorithm
	chapID    byte
	chapChal  []byte
	responses int // Login Responses sent
	text      []byte
	fault     *faultDef
	tpgt      int
	initiator string
	sentTPGT  bool
	// wishes are the target's negotiation wishes for this login.
	wishes        map[string]string
	declaredMRDSL bool
}

// maxLoginText bounds a login request's text joined across C-bit PDUs.
const maxLoginText = 64 << 10

// login runs the login phase; on success the connection has its session and
// parameters set. A failure has been answered (or the connection is to be
// dropped) when login returns.
func (c *conn) login() error {
	l := &loginState{c: c}
	for {
		p := new(pdu.PDU)
		c.nc.SetReadDeadline(time.Now().Add(loginTimeout))
		if err := c.r.Read(p); err != nil {
			return fmt.Errorf("reading login request: %w", err)
		}
		done, err := l.step(p)
		if err != nil {
			if le, ok := err.(*loginError); ok {
				l.refuse(le)
			}
			return err
		}
		if done {
			c.nc.SetReadDeadline(time.Time{})
			return nil
		}
	}
}

// refuse sends the Login Response that ends a failed login.
func (l *loginState) refuse(le *loginError) {
	c := l.c
	c.log.Warn("login refused", "status", le.status.String(), "reason", le.reason)
	resp := pdu.LoginResponse{ISID: l.first.ISID, ITT: l.first.ITT, CSG: l.stage, Status: le.status}
	var data []byte
	if le.address != "" {
		data = pdu.AppendText(nil, pdu.KeyValue{Key: "TargetAddress", Value: le.address})
	}
	c.send(&resp, data, true)
}

// step handles one Login Request; done means the full feature phase begins.
func (l *loginState) step(p *pdu.PDU) (done bool, err error) {
	c := l.c
	var req pdu.LoginRequest
	if err := req.Decode(&p.Header); err != nil {
		return false, fail(pdu.LoginInvalidDuringLogin, "expected a Login Request, got %v", p.Header.Opcode())
	}
	if l.responses == 0 && len(l.text) == 0 {
		l.first, l.stage = req, req.CSG
		if req.VersionMin > 0 {
			return false, fail(pdu.LoginUnsupportedVersion, "Version-min %d; only 0 exists", req.VersionMin)
		}
	}
	switch {
	case len(p.AHS) > 0:
		return false, fail(pdu.LoginInitiatorError, "Login Request with an AHS")
	case req.Transit && req.Continue:
		return false, fail(pdu.LoginInitiatorError, "T and C both set")
	case req.CSG == 2 || req.CSG == pdu.FullFeaturePhase || (req.Transit && req.NSG == 2):
		return false, fail(pdu.LoginInitiatorError, "reserved or invalid stage CSG=%d NSG=%d", req.CSG, req.NSG)
	case req.Transit && req.NSG <= req.CSG:
		return false, fail(pdu.LoginInitiatorError, "transit to stage %d from %d", req.NSG, req.CSG)
	case req.ISID != l.first.ISID:
		return false, fail(pdu.LoginInitiatorError, "ISID changed within the login")
	case req.ITT != l.first.ITT:
		return false, fail(pdu.LoginInitiatorError, "ITT changed within the login")
	case req.VersionMax != l.first.VersionMax || req.VersionMin != l.first.VersionMin:
		return false, fail(pdu.LoginInitiatorError, "versions changed within the login")
	case req.CSG < l.stage:
		return false, fail(pdu.LoginInitiatorError, "stage went back from %v to %v", l.stage, req.CSG)
	}
	l.stage = req.CSG
	l.text = append(l.text, p.Data...)
	if len(l.text) > maxLoginText {
		return false, fail(pdu.LoginInitiatorError, "login text exceeds %d bytes", maxLoginText)
	}
	if req.Continue {
		// More text follows: acknowledge with an empty response.
		return false, l.respond(req, pdu.LoginResponse{CSG: req.CSG}, nil)
	}
	kvs, err := pdu.ParseText(l.text)
	l.text = nil
	if err != nil {
		return false, fail(pdu.LoginInitiatorError, "%v", err)
	}
	if l.neg == nil {
		c.loginCmdSN = req.CmdSN
		if err := l.begin(req, kvs); err != nil {
			return false, err
		}
	}
	var chap []pdu.KeyValue
	var rest []pdu.KeyValue
	for _, kv := range kvs {
		if strings.HasPrefix(kv.Key, "CHAP_") {
			chap = append(chap, kv)
		} else {
			rest = append(rest, kv)
		}
	}
	answers, err := l.neg.Handle(rest)
	if err != nil {
		return false, fail(pdu.LoginInitiatorError, "%v", err)
	}
	answers = answerDecidedBooleans(l.neg, rest, answers)
	resp := pdu.LoginResponse{CSG: req.CSG}
	if req.CSG == pdu.SecurityNegotiation {
		more, err := l.security(chap)
		if err != nil {
			return false, err
		}
		answers = append(answers, more...)
	} else {
		if len(chap) > 0 {
			return false, fail(pdu.LoginInitiatorError, "CHAP keys outside the security stage")
		}
		if l.auth.chap() && l.chap != chapDone {
			return false, fail(pdu.LoginAuthFailure, "authentication required but the initiator skipped the security stage")
		}
		if !l.declaredMRDSL {
			// Declared by hand: the negotiator counts the initiator's
			// declaration of this key as the end of its negotiation, but each
			// side declares its own.
			answers = append(answers, pdu.KeyValue{Key: "MaxRecvDataSegmentLength", Value: l.wishes["MaxRecvDataSegmentLength"]})
			l.declaredMRDSL = true
		}
	}
	if !l.sentTPGT && l.c.tgt != nil {
		// TargetPortalGroupTag goes in the first response of a Normal login.
		answers = append(answers, pdu.KeyValue{Key: "TargetPortalGroupTag", Value: strconv.Itoa(l.tpgt)})
		if l.c.tgt.alias != "" {
			answers = append(answers, pdu.KeyValue{Key: "TargetAlias", Value: l.c.tgt.alias})
		}
		l.sentTPGT = true
	}
	authed := l.chap == chapDone || l.chap == authNotNeeded || req.CSG != pdu.SecurityNegotiation
	if req.Transit && authed && !l.neg.Pending() {
		resp.Transit, resp.NSG = true, req.NSG
	}
	if resp.Transit && resp.NSG == pdu.FullFeaturePhase {
		if err := l.finish(&resp); err != nil {
			return false, err
		}
		if err := l.respond(req, resp, answers); err != nil {
			return false, err
		}
		l.c.enterFullFeature(l)
		return true, nil
	}
	if resp.Transit {
		l.stage = resp.NSG
	}
	return false, l.respond(req, resp, answers)
}

// begin handles the first complete request: who logs in to what, and whether
// the target lets them.
func (l *loginState) begin(req pdu.LoginRequest, kvs []pdu.KeyValue) error {
	c := l.c
	get := func(k string) (string, bool) {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return "", false
	}
	ini, ok := get("InitiatorName")
	if !ok || ini == "" {
		return fail(pdu.LoginMissingParameter, "no InitiatorName in the first Login Request")
	}
	l.initiator = ini
	st, ok := get("SessionType")
	if !ok {
		st = "Normal"
	}
	srv := c.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var key string
	switch st {
	case "Discovery":
		c.discovery = true
		l.auth = srv.cfg.DiscoveryAuth
	case "Normal":
		name, ok := get("TargetName")
		if !ok || name == "" {
			return fail(pdu.LoginMissingParameter, "no TargetName in the first Login Request of a Normal session")
		}
		t := srv.targets[name]
		if t == nil {
			return fail(pdu.LoginNotFound, "no target %q", name)
		}
		tpgt, served := t.tpgtFor(c.local)
		if !served {
			return fail(pdu.LoginNotFound, "target %q is not served on portal %s", name, c.local)
		}
		c.tgt, l.tpgt, l.auth, key = t, tpgt, t.auth, name
	default:
		return fail(pdu.LoginSessionTypeNotSupp, "SessionType %q", st)
	}
	c.addLogAttrs("initiator", ini, "target", key, "isid", req.ISID.String())
	if r := srv.refusals[key]; r != nil {
		if r.Count > 0 {
			r.Count--
			if r.Count == 0 {
				delete(srv.refusals, key)
			}
		}
		return &loginError{status: r.status(), address: r.Address, reason: "refused by control action"}
	}
	l.fault = srv.takeFaultLocked(key, faultScopeLogin, kindAny)
	if l.fault != nil {
		c.log.Info("fault armed for this login", "fault", l.fault.name)
	}
	if req.TSIH != 0 {
		if c.tgt == nil || c.tgt.sessions[req.TSIH] == nil {
			return fail(pdu.LoginSessionDoesNotExist, "TSIH %d names no session", req.TSIH)
		}
		return fail(pdu.LoginTooManyConnections, "MaxConnections is 1")
	}
	wishes := discoveryWishes()
	if c.tgt != nil {
		wishes = maps.Clone(c.tgt.params)
	}
	wishes["AuthMethod"] = "None"
	if l.auth.chap() {
		wishes["AuthMethod"] = "CHAP"
	}
	l.wishes = wishes
	l.neg = session.NewNegotiator(session.TargetRole, c.discovery, wishes)
	return nil
}

// decidedBooleans are the keys whose answer RFC 7143 §6.2.2 makes optional
// when the proposal already decides the result (No for an AND key, Yes for an
// OR key).
var decidedBooleans = []string{"InitialR2T", "ImmediateData", "DataPDUInOrder", "DataSequenceInOrder", "IFMarker", "OFMarker"}

// answerDecidedBooleans answers those keys anyway, as LIO and tgt do: some
// initiators keep the default when the answer is missing.
func answerDecidedBooleans(n *session.Negotiator, proposed, answers []pdu.KeyValue) []pdu.KeyValue {
	for _, kv := range proposed {
		if !slices.Contains(decidedBooleans, kv.Key) || slices.ContainsFunc(answers, func(a pdu.KeyValue) bool { return a.Key == kv.Key }) {
			continue
		}
		if v := n.Result(kv.Key); v == "Yes" || v == "No" {
			answers = append(answers, pdu.KeyValue{Key: kv.Key, Value: v})
		}
	}
	return answers
}

// discoveryWishes are the target's negotiation wishes in a Discovery session.
func discoveryWishes() map[string]string {
	d := DefaultParams()
	return map[string]string{
		"MaxRecvDataSegmentLength": d["MaxRecvDataSegmentLength"],
		"HeaderDigest":             d["HeaderDigest"],
		"DataDigest":               d["DataDigest"],
	}
}

// security runs the CHAP exchange around AuthMethod, returning CHAP keys to send.
func (l *loginState) security(chap []pdu.KeyValue) ([]pdu.KeyValue, error) {
	get := func(k string) (string, bool) {
		for _, kv := range chap {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return "", false
	}
	if l.chap == chapNone {
		switch l.neg.Result("AuthMethod") {
		case "CHAP":
			l.chap = chapWaitA
		case "None":
			if l.auth.chap() {
				return nil, fail(pdu.LoginAuthFailure, "authentication required; the initiator offered none the target accepts")
			}
			l.chap = authNotNeeded
		default:
			return nil, fail(pdu.LoginAuthFailure, "no acceptable AuthMethod")
		}
	}
	switch l.chap {
	case chapWaitA:
		a, ok := get("CHAP_A")
		if !ok {
			return nil, nil // AuthMethod answered; CHAP_A comes next
		}
		algs, _ := l.auth.algorithms()
		for _, s := range strings.Split(a, ",") {
			n, err := strconv.Atoi(s)
			if err == nil && slices.Contains(algs, session.CHAPAlgorithm(n)) {
				l.chapAlg = session.CHAPAlgorithm(n)
				break
			}
		}
		if l.chapAlg == 0 {
			return nil, fail(pdu.LoginAuthFailure, "no acceptable CHAP algorithm in CHAP_A=%s", a)
		}
		l.chapID, l.chapChal = l.c.srv.newChallenge()
		l.chap = chapWaitR
		return l.challengeKeys(), nil
	case chapWaitR:
		return l.verifyCHAP(get)
	case chapDone, authNotNeeded:
		if len(chap) > 0 {
			return nil, fail(pdu.LoginInitiatorError, "CHAP keys after authentication")
		}
	}
	return nil, nil
}

// challengeKeys are the target's CHAP_A/CHAP_I/CHAP_C, or the malformed
// values a chap-* fault asks for.
func (l *loginState) challengeKeys() []pdu.KeyValue {
	alg, id, chal := strconv.Itoa(int(l.chapAlg)), strconv.Itoa(int(l.chapID)), pdu.FormatBinary(l.chapChal)
	switch l.faultName() {
	case "chap-unoffered-algorithm":
		alg = "99"
	case "chap-bad-identifier":
		id = "300"
	case "chap-huge-challenge":
		chal = pdu.FormatBinary(make([]byte, 4000))
	case "chap-empty-challenge":
		chal = "0x"
	case "chap-malformed-challenge":
		chal = "0xZZ" + strings.Repeat("Q", 30)
	}
	return []pdu.KeyValue{{Key: "CHAP_A", Value: alg}, {Key: "CHAP_I", Value: id}, {Key: "CHAP_C", Value: chal}}
}

func (l *loginState) verifyCHAP(get func(string) (string, bool)) ([]pdu.KeyValue, error) {
	name, _ := get("CHAP_N")
	r, _ := get("CHAP_R")
	if name == "" || r == "" {
		return nil, fail(pdu.LoginAuthFailure, "CHAP_N or CHAP_R missing")
	}
	got, err := pdu.ParseBinary(r)
	if err != nil {
		return nil, fail(pdu.LoginAuthFailure, "malformed CHAP_R: %v", err)
	}
	want := session.CHAPResponse(l.chapAlg, l.chapID, session.Secret(l.auth.Secret), l.chapChal)
	if name != l.auth.Username || subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fail(pdu.LoginAuthFailure, "CHAP user %q: wrong name or response", name)
	}
	iStr, hasI := get("CHAP_I")
	cStr, hasC := get("CHAP_C")
	if !hasI && !hasC {
		l.chap = chapDone
		return nil, nil
	}
	if l.auth.MutualSecret == "" {
		return nil, fail(pdu.LoginAuthFailure, "initiator asked for mutual CHAP, which is not configured")
	}
	id, err := pdu.ParseNumber(iStr)
	if err != nil || id > 255 {
		return nil, fail(pdu.LoginAuthFailure, "initiator sent CHAP_I=%q", iStr)
	}
	chal, err := pdu.ParseBinary(cStr)
	if err != nil || len(chal) == 0 || len(chal) > 1024 {
		return nil, fail(pdu.LoginAuthFailure, "initiator sent a malformed or oversized CHAP_C")
	}
	if bytes.Equal(chal, l.chapChal) || l.c.srv.issuedChallenge(chal) {
		// A reflected challenge: RFC 7143 §9.2.1 says drop the connection.
		return nil, &errLoginDropped{reason: "initiator reflected the target's CHAP challenge"}
	}
	resp := session.CHAPResponse(l.chapAlg, byte(id), session.Secret(l.auth.MutualSecret), chal)
	user := l.auth.MutualUsername
	switch l.faultName() {
	case "chap-mutual-bad-response":
		resp[0] ^= 0xff
	case "chap-mutual-wrong-name":
		user += "-impostor"
	case "chap-mutual-missing":
		l.chap = chapDone
		return nil, nil
	}
	l.chap = chapDone
	return []pdu.KeyValue{{Key: "CHAP_N", Value: user}, {Key: "CHAP_R", Value: pdu.FormatBinary(resp)}}, nil
}

func (l *loginState) faultName() string {
	if l.fault == nil {
		return ""
	}
	return l.fault.name
}

// finish fills the final response: the session it joins or creates.
func (l *loginState) finish(resp *pdu.LoginResponse) error {
	c := l.c
	srv := c.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return &errLoginDropped{reason: "server closing"}
	}
	ss := &iscsiSession{
		isid: l.first.ISID, initiator: l.initiator, target: c.tgt, tpgt: l.tpgt,
		ua: map[uint64][]SenseCode{}, expCmdSN: l.first.CmdSN, window: 1,
	}
	if c.tgt != nil {
		ss.window = c.tgt.window
		// Session reinstatement (§6.3.5): the same initiator, ISID and portal
		// group with TSIH 0 replaces the old session.
		for tsih, old := range c.tgt.sessions {
			if old.isid == ss.isid && old.initiator == ss.initiator && old.tpgt == ss.tpgt {
				c.log.Info("reinstating session: closing the old one", "old_tsih", tsih)
				for _, oc := range old.conns {
					oc.close("session reinstated by a new login")
				}
				delete(c.tgt.sessions, tsih)
			}
		}
		ss.tsih = srv.allocTSIH()
		c.tgt.sessions[ss.tsih] = ss
	} else {
		ss.tsih = srv.allocTSIH()
	}
	// The connection joins ss.conns, where control actions find it, only
	// once it is in the full feature phase (enterFullFeature).
	c.sess, c.cid = ss, l.first.CID
	resp.TSIH = ss.tsih
	return nil
}

// respond sends one Login Response for req, or what the armed fault puts in
// its place.
func (l *loginState) respond(req pdu.LoginRequest, resp pdu.LoginResponse, kvs []pdu.KeyValue) error {
	c := l.c
	resp.ISID, resp.ITT, resp.CSG = req.ISID, req.ITT, req.CSG
	resp.VersionMax = 0
	if resp.Transit && resp.NSG == 0 {
		resp.NSG = req.NSG
	}
	if !resp.Transit {
		resp.NSG = 0
	}
	l.responses++
	c.delay()
	if l.fault != nil {
		if handled, err := l.loginFault(req, resp, kvs); handled {
			return err
		}
	}
	return c.sendLogin(&resp, pdu.AppendText(nil, kvs...))
}

// sendLogin writes a Login Response.
func (c *conn) sendLogin(resp *pdu.LoginResponse, data []byte) error {
	p := &pdu.PDU{Data: data}
	resp.Encode(&p.Header)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.stampAndWrite(p, true)
}

// enterFullFeature applies the outcome of the login to the connection.
func (c *conn) enterFullFeature(l *loginState) {
	n := l.neg
	num := func(k string) int {
		v, _ := strconv.Atoi(n.Result(k))
		return v
	}
	c.params = connParams{
		maxXmit:        pdu.DefaultMaxRecvDataSegmentLength,
		maxRecv:        pdu.DefaultMaxRecvDataSegmentLength,
		maxBurst:       num("MaxBurstLength"),
		firstBurst:     num("FirstBurstLength"),
		initialR2T:     n.Result("InitialR2T") == "Yes",
		immediateData:  n.Result("ImmediateData") == "Yes",
		maxOutstanding: num("MaxOutstandingR2T"),
		digests:        pdu.Digests{Header: n.Result("HeaderDigest") == "CRC32C", Data: n.Result("DataDigest") == "CRC32C"},
	}
	if v, ok := n.Peer("MaxRecvDataSegmentLength"); ok {
		c.params.maxXmit, _ = strconv.Atoi(v)
	}
	if l.declaredMRDSL {
		c.params.maxRecv, _ = strconv.Atoi(l.wishes["MaxRecvDataSegmentLength"])
	}
	c.r.Digests, c.r.MaxDataSegmentLength = c.params.digests, c.params.maxRecv
	c.wmu.Lock()
	c.w.Digests = c.params.digests
	c.wmu.Unlock()
	c.addLogAttrs("tsih", c.sess.tsih)
	c.log.Info("login complete", "discovery", c.discovery, "params", fmt.Sprintf("%+v", c.params))
	c.srv.mu.Lock()
	c.sess.conns = append(c.sess.conns, c)
	c.srv.mu.Unlock()
}

// challengeLength is the length of the target's CHAP challenges: 32 bytes,
// enough for every algorithm's digest length.
const challengeLength = 32

// newChallenge returns a CHAP identifier and challenge, remembered so that an
// initiator reflecting one back (on any connection) is caught. The session
// package's NewCHAPChallenge is not used: its memory is process-wide, so an
// in-process initiator would take the target's challenges for its own.
func (s *Server) newChallenge() (byte, []byte) {
	b := make([]byte, 1+challengeLength)
	rand.Read(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.challenges[s.nextChallenge%len(s.challenges)] = b[1:]
	s.nextChallenge++
	return b[0], b[1:]
}

// issuedChallenge reports whether c is one of the target's recent challenges.
func (s *Server) issuedChallenge(c []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.challenges[:], func(x []byte) bool { return bytes.Equal(x, c) })
}
