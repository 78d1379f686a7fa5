package target

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// faultScope is when an injected fault fires.
type faultScope int

const (
	// faultScopeLogin faults fire during the next login to the target.
	faultScopeLogin faultScope = iota
	// faultScopeCommand faults fire on the next SCSI Command of a session of
	// the target that fits the fault (a read, a write, or any).
	faultScopeCommand
)

func (s faultScope) String() string {
	if s == faultScopeLogin {
		return "login"
	}
	return "command"
}

// commandKind is which SCSI commands a command fault waits for.
type commandKind int

const (
	kindAny   commandKind = iota
	kindRead              // a command with the R bit and data to return
	kindWrite             // a command with the W bit and data to receive
)

func (k commandKind) String() string {
	return [...]string{"any command", "a read", "a write"}[k]
}

// faultDef is one named malformed answer.
type faultDef struct {
	name  string
	scope faultScope
	kind  commandKind
	doc   string
}

// Faults is the catalogue of injectable faults. Tests of initiator fault
// tolerance refer to these names; README.md documents each.
var faults = []faultDef{
	// Login faults: the next login to the target gets them.
	{"login-bad-version", faultScopeLogin, kindAny, "first Login Response has Version-active 1 (only 0 exists)"},
	{"login-wrong-itt", faultScopeLogin, kindAny, "first Login Response carries an ITT the request did not"},
	{"login-wrong-isid", faultScopeLogin, kindAny, "first Login Response echoes a different ISID"},
	{"login-wrong-opcode", faultScopeLogin, kindAny, "a Text Response (0x24) arrives where the first Login Response belongs"},
	{"login-out-of-order", faultScopeLogin, kindAny, "the first request gets a final-looking response for another stage (CSG 1, T=1, NSG 3, TSIH set)"},
	{"login-duplicate-response", faultScopeLogin, kindAny, "the first Login Response is sent twice, so the second answers no request"},
	{"login-t-and-c", faultScopeLogin, kindAny, "first Login Response has both T and C set"},
	{"login-nsg-backwards", faultScopeLogin, kindAny, "first Login Response transits to its own stage (NSG = CSG)"},
	{"login-reserved-stage", faultScopeLogin, kindAny, "first Login Response transits to the reserved stage 2"},
	{"login-tsih-zero", faultScopeLogin, kindAny, "the final Login Response carries TSIH 0"},
	{"login-huge-text", faultScopeLogin, kindAny, "first Login Response carries 65536 bytes of text, above the 8192 a login PDU may have"},
	{"login-text-no-nul", faultScopeLogin, kindAny, "first Login Response text lacks its final NUL"},
	{"login-bad-value", faultScopeLogin, kindAny, "first Login Response declares MaxRecvDataSegmentLength=1, below the minimum 512"},
	{"login-unoffered-value", faultScopeLogin, kindAny, "first Login Response answers HeaderDigest=Bogus, a value nobody offered"},
	{"login-duplicate-key", faultScopeLogin, kindAny, "first Login Response sends DefaultTime2Wait twice"},
	{"login-unknown-key", faultScopeLogin, kindAny, "first Login Response proposes FooBarKey=1, a key no RFC defines (answer NotUnderstood)"},
	{"login-no-response", faultScopeLogin, kindAny, "the first Login Request is never answered (login timeout)"},
	{"login-endless-continue", faultScopeLogin, kindAny, "every Login Response has C=1 with more text, so the login never ends"},
	{"login-never-transit", faultScopeLogin, kindAny, "no Login Response ever sets T, so the login never leaves its stage"},
	{"login-reject-pdu", faultScopeLogin, kindAny, "a Reject (protocol error) arrives where the first Login Response belongs"},
	{"login-truncated-pdu", faultScopeLogin, kindAny, "20 bytes of the first Login Response, then the connection closes"},
	{"login-drop", faultScopeLogin, kindAny, "the connection closes instead of the first Login Response"},
	{"chap-unoffered-algorithm", faultScopeLogin, kindAny, "the CHAP challenge names CHAP_A=99, which the initiator did not offer"},
	{"chap-bad-identifier", faultScopeLogin, kindAny, "the CHAP challenge has CHAP_I=300, outside 0..255"},
	{"chap-huge-challenge", faultScopeLogin, kindAny, "the CHAP challenge CHAP_C is 4000 bytes (RFC limit 1024)"},
	{"chap-empty-challenge", faultScopeLogin, kindAny, "the CHAP challenge CHAP_C is empty (0x)"},
	{"chap-malformed-challenge", faultScopeLogin, kindAny, "the CHAP challenge CHAP_C is not hex (0xZZ…)"},
	{"chap-mutual-bad-response", faultScopeLogin, kindAny, "mutual CHAP: the target's CHAP_R is wrong"},
	{"chap-mutual-wrong-name", faultScopeLogin, kindAny, "mutual CHAP: the target answers with another CHAP_N"},
	{"chap-mutual-missing", faultScopeLogin, kindAny, "mutual CHAP: the target skips CHAP_N/CHAP_R and transits"},
	{"redirect-loop", faultScopeLogin, kindAny, "the login is redirected (0x0101) to the very portal it came to; inject with count -1 for an endless loop"},
	{"redirect-no-address", faultScopeLogin, kindAny, "the login is redirected (0x0101) without a TargetAddress"},
	{"redirect-bad-address", faultScopeLogin, kindAny, "the login is redirected (0x0101) to the unparsable TargetAddress \"[::1\""},

	// Command faults: the next fitting SCSI Command of a session gets them.
	{"response-wrong-itt", faultScopeCommand, kindAny, "the command's final status carries an ITT no task has"},
	{"response-duplicate", faultScopeCommand, kindAny, "the command's final status is sent twice"},
	{"response-none", faultScopeCommand, kindAny, "the command is never answered (command timeout, then task management)"},
	{"response-reject", faultScopeCommand, kindAny, "a Reject (command not supported) answers the command instead of a status"},
	{"bad-data-length", faultScopeCommand, kindAny, "the status PDU declares 64 more data bytes than follow, desynchronising the stream"},
	{"unknown-opcode", faultScopeCommand, kindAny, "a PDU with the reserved target opcode 0x3a arrives before the status"},
	{"truncated-pdu", faultScopeCommand, kindAny, "20 bytes of the status PDU, then the connection closes"},
	{"huge-data-segment", faultScopeCommand, kindAny, "a NOP-In declaring a 16 MiB-1 data segment (and carrying it) arrives before the status"},
	{"bad-header-digest", faultScopeCommand, kindAny, "the status PDU's header digest is wrong (needs HeaderDigest=CRC32C)"},
	{"bad-data-digest", faultScopeCommand, kindRead, "the first Data-In's data digest is wrong (needs DataDigest=CRC32C)"},
	{"ahs-garbage", faultScopeCommand, kindAny, "the status PDU carries an 8-byte AHS of an unknown type"},
	{"statsn-jump", faultScopeCommand, kindAny, "StatSN jumps by 1000 at the command's status"},
	{"maxcmdsn-invalid", faultScopeCommand, kindAny, "the status PDU has MaxCmdSN = ExpCmdSN - 2, a window RFC 7143 forbids"},
	{"expcmdsn-backwards", faultScopeCommand, kindAny, "the status PDU has ExpCmdSN 100 below the true value"},
	{"sense-length-mismatch", faultScopeCommand, kindAny, "the command gets CHECK CONDITION whose SenseLength claims 200 bytes but 18 follow"},
	{"datain-bad-offset", faultScopeCommand, kindRead, "the first Data-In has a BufferOffset past the expected data transfer length"},
	{"datain-bad-datasn", faultScopeCommand, kindRead, "the first Data-In has DataSN 7 instead of 0"},
	{"datain-overflow", faultScopeCommand, kindRead, "an extra Data-In carries 512 bytes past the expected length, without the O flag"},
	{"datain-no-data", faultScopeCommand, kindRead, "a read gets GOOD status without its data and without a residual"},
	{"datain-for-write", faultScopeCommand, kindWrite, "a write gets a Data-In instead of R2T/status"},
	{"r2t-for-read", faultScopeCommand, kindRead, "a read gets an R2T before its data"},
	{"r2t-bad-offset", faultScopeCommand, kindWrite, "the first R2T asks for data past the expected data transfer length"},
	{"r2t-zero-length", faultScopeCommand, kindWrite, "the first R2T asks for 0 bytes"},
	{"endless-nop-in", faultScopeCommand, kindAny, "the target pings (NOP-In with TTT) back to back, up to 10000 times or until the connection ends"},
	{"nop-in-with-data", faultScopeCommand, kindAny, "an unsolicited NOP-In (ITT and TTT reserved) carrying 64 bytes of data"},
	{"async-bad-sense", faultScopeCommand, kindAny, "an Async Message event 0 whose SenseLength claims 100 bytes but 18 follow"},
	{"async-huge", faultScopeCommand, kindAny, "an Async Message event 0 with a 16 KiB data segment (kernel limit 8192)"},
	{"async-unknown-event", faultScopeCommand, kindAny, "an Async Message with the reserved event 77"},
	{"text-unsolicited", faultScopeCommand, kindAny, "a Text Response no request asked for"},
	{"logout-unsolicited", faultScopeCommand, kindAny, "a Logout Response no request asked for"},
	{"tmf-unsolicited", faultScopeCommand, kindAny, "a Task Management Response no request asked for"},
	{"reset-connection", faultScopeCommand, kindAny, "the TCP connection is reset (RST) instead of an answer"},
}

// FaultInfo describes one injectable fault.
type FaultInfo struct {
	Name string `json:"name"`
	// Scope is "login" (fires during the next login) or "command" (fires on
	// the next fitting SCSI Command).
	Scope string `json:"scope"`
	// Waits says which command a command fault waits for: "any command", "a
	// read" or "a write".
	Waits       string `json:"waits,omitempty"`
	Description string `json:"description"`
}

// Faults lists the injectable faults.
func Faults() []FaultInfo {
	out := make([]FaultInfo, len(faults))
	for i, f := range faults {
		out[i] = FaultInfo{Name: f.name, Scope: f.scope.String(), Description: f.doc}
		if f.scope == faultScopeCommand {
			out[i].Waits = f.kind.String()
		}
	}
	return out
}

func lookupFault(name string) *faultDef {
	for i := range faults {
		if faults[i].name == name {
			return &faults[i]
		}
	}
	return nil
}

// pendingFault is an injected fault waiting to fire; count -1 fires forever.
type pendingFault struct {
	def   *faultDef
	count int
}

// takeFaultLocked removes and returns the first pending fault of the key
// (target name, "" for Discovery sessions) that fits; the caller holds s.mu.
func (s *Server) takeFaultLocked(key string, scope faultScope, kind commandKind) *faultDef {
	q := s.faults[key]
	for i, pf := range q {
		if pf.def.scope != scope || (pf.def.kind != kindAny && pf.def.kind != kind) {
			continue
		}
		if pf.count > 0 {
			pf.count--
		}
		if pf.count == 0 {
			s.faults[key] = slices.Delete(q, i, i+1)
		}
		s.log.Info("fault fires", "fault", pf.def.name, "target", key)
		return pf.def
	}
	return nil
}

// takeCommandFault returns the next command fault for a command of kind.
func (c *conn) takeCommandFault(kind commandKind) *faultDef {
	if c.tgt == nil {
		return nil
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.srv.takeFaultLocked(c.tgt.name, faultScopeCommand, kind)
}

// loginFault replaces or alters a Login Response as the armed fault says;
// handled means the fault took care of the response (err ends the login).
func (l *loginState) loginFault(req pdu.LoginRequest, resp pdu.LoginResponse, kvs []pdu.KeyValue) (handled bool, err error) {
	c := l.c
	first := l.responses == 1
	name := l.fault.name
	text := pdu.AppendText(nil, kvs...)
	once := func() { l.fault = nil }
	if name == "login-endless-continue" || name == "login-never-transit" {
		// The response stays in the request's stage, and so does the login.
		l.stage = req.CSG
	}
	switch {
	case name == "login-endless-continue":
		resp.Transit, resp.NSG, resp.Continue = false, 0, true
		return true, c.sendLogin(&resp, pdu.AppendText(nil, pdu.KeyValue{Key: "X-goiscsi-filler", Value: strings.Repeat("f", 200)})[:100])
	case name == "login-never-transit":
		resp.Transit, resp.NSG = false, 0
		return true, c.sendLogin(&resp, text)
	case name == "login-tsih-zero":
		if resp.Transit && resp.NSG == pdu.FullFeaturePhase {
			resp.TSIH = 0
			once()
		}
		return true, c.sendLogin(&resp, text)
	case strings.HasPrefix(name, "chap-"):
		return false, nil // applied where the CHAP keys are built
	case !first:
		return false, nil
	}
	once()
	switch name {
	case "login-bad-version":
		resp.VersionActive = 1
	case "login-wrong-itt":
		resp.ITT ^= 0x5a5a5a5a
	case "login-wrong-isid":
		resp.ISID[5] ^= 0xff
	case "login-wrong-opcode":
		return true, c.send(&pdu.TextResponse{Final: true, ITT: req.ITT, TTT: pdu.ReservedTag}, text, true)
	case "login-out-of-order":
		resp = pdu.LoginResponse{ISID: req.ISID, ITT: req.ITT, Transit: true, CSG: pdu.LoginOperationalNegotiation, NSG: pdu.FullFeaturePhase, TSIH: 0xbeef}
	case "login-duplicate-response":
		if err := c.sendLogin(&resp, text); err != nil {
			return true, err
		}
	case "login-t-and-c":
		resp.Transit, resp.Continue, resp.NSG = true, true, req.NSG
	case "login-nsg-backwards":
		resp.Transit, resp.NSG = true, req.CSG
	case "login-reserved-stage":
		resp.Transit, resp.NSG = true, 2
	case "login-huge-text":
		text = pdu.AppendText(nil, pdu.KeyValue{Key: "X-goiscsi-filler", Value: strings.Repeat("h", 65536-18)})
	case "login-text-no-nul":
		text = append(text, "TargetAlias=unterminated"...)
	case "login-bad-value":
		text = pdu.AppendText(text, pdu.KeyValue{Key: "MaxRecvDataSegmentLength", Value: "1"})
	case "login-unoffered-value":
		text = pdu.AppendText(text, pdu.KeyValue{Key: "HeaderDigest", Value: "Bogus"})
	case "login-duplicate-key":
		text = pdu.AppendText(text, pdu.KeyValue{Key: "DefaultTime2Wait", Value: "2"}, pdu.KeyValue{Key: "DefaultTime2Wait", Value: "2"})
	case "login-unknown-key":
		text = pdu.AppendText(text, pdu.KeyValue{Key: "FooBarKey", Value: "1"})
	case "login-no-response":
		return true, nil
	case "login-reject-pdu":
		h := pdu.BHS{}
		req.Encode(&h)
		return true, c.send(&pdu.Reject{Reason: pdu.RejectProtocolError}, h[:], true)
	case "login-truncated-pdu":
		c.sendCustom(&resp, text, true, nil, func(b []byte) []byte { return b[:20] })
		return true, &errLoginDropped{reason: "fault login-truncated-pdu"}
	case "login-drop":
		return true, &errLoginDropped{reason: "fault login-drop"}
	case "redirect-loop":
		return true, &loginError{status: pdu.LoginTargetMovedTemp, address: c.local, reason: "fault redirect-loop"}
	case "redirect-no-address":
		return true, &loginError{status: pdu.LoginTargetMovedTemp, reason: "fault redirect-no-address"}
	case "redirect-bad-address":
		return true, &loginError{status: pdu.LoginTargetMovedTemp, address: "[::1", reason: "fault redirect-bad-address"}
	}
	return true, c.sendLogin(&resp, text)
}

// sendCustom stamps and encodes m with data like send, lets hdr alter the
// header before the digests are computed and wire alter the bytes on the way
// out (either may be nil), and writes the result.
func (c *conn) sendCustom(m pdu.Message, data []byte, advance bool, hdr func(*pdu.BHS), wire func([]byte) []byte) error {
	p := &pdu.PDU{Data: data}
	m.Encode(&p.Header)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	exp, max := c.window()
	binary.BigEndian.PutUint32(p.Header[24:28], c.statSN)
	binary.BigEndian.PutUint32(p.Header[28:32], exp)
	binary.BigEndian.PutUint32(p.Header[32:36], max)
	if advance {
		c.statSN++
	}
	if hdr != nil {
		hdr(&p.Header)
	}
	b, err := p.Append(nil, c.w.Digests)
	if err != nil {
		return err
	}
	if wire != nil {
		b = wire(b)
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.nc.Write(b)
	return err
}

// statusFault describes how a command fault alters the PDU that carries a
// command's status; nil functions mean no change.
type statusFault struct {
	hdr  func(*pdu.BHS)
	wire func([]byte) []byte
	// twice sends the status PDU a second time.
	twice bool
	// closeAfter drops the connection once the PDU is out.
	closeAfter bool
}

// beforeStatus runs the part of a command fault that comes before (or
// instead of) the command's status. It returns how to alter the status PDU,
// and false when the status must not be sent at all.
func (c *conn) beforeStatus(f *faultDef, m *pdu.SCSICommand) (statusFault, bool) {
	var sf statusFault
	if f == nil {
		return sf, true
	}
	c.log.Info("command fault", "fault", f.name, "itt", m.ITT)
	switch f.name {
	case "response-wrong-itt":
		sf.hdr = func(h *pdu.BHS) { binary.BigEndian.PutUint32(h[16:20], m.ITT^0x40000000) }
	case "response-duplicate":
		sf.twice = true
	case "response-none":
		return sf, false
	case "response-reject":
		h := pdu.BHS{}
		m.Encode(&h)
		c.send(&pdu.Reject{Reason: pdu.RejectCommandNotSupported}, h[:], true)
		return sf, false
	case "bad-data-length":
		sf.wire = func(b []byte) []byte {
			n := int(b[5])<<16 | int(b[6])<<8 | int(b[7]) + 64
			b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
			return b
		}
	case "unknown-opcode":
		c.sendCustom(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: pdu.ReservedTag}, nil, false,
			func(h *pdu.BHS) { h[0] = 0x3a }, nil)
	case "truncated-pdu":
		sf.wire = func(b []byte) []byte { return b[:20] }
		sf.closeAfter = true
	case "huge-data-segment":
		c.sendCustom(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: pdu.ReservedTag}, make([]byte, pdu.MaxDataSegmentLength), false, nil, nil)
	case "bad-header-digest":
		if !c.params.digests.Header {
			c.log.Warn("fault bad-header-digest needs HeaderDigest=CRC32C; sending a correct PDU")
		}
		sf.wire = func(b []byte) []byte {
			if c.params.digests.Header {
				b[pdu.BHSLength] ^= 0xff
			}
			return b
		}
	case "ahs-garbage":
		sf.wire = func(b []byte) []byte {
			// Insert an AHS (length 5, type 0x3f) after the BHS; the header
			// digest, if any, no longer matches either.
			out := append([]byte{}, b[:pdu.BHSLength]...)
			out[4] = 2 // TotalAHSLength in words
			out = append(out, 0x00, 0x05, 0x3f, 0x00, 1, 2, 3, 4)
			return append(out, b[pdu.BHSLength:]...)
		}
	case "statsn-jump":
		c.wmu.Lock()
		c.statSN += 1000
		c.wmu.Unlock()
	case "maxcmdsn-invalid":
		sf.hdr = func(h *pdu.BHS) {
			exp := binary.BigEndian.Uint32(h[28:32])
			binary.BigEndian.PutUint32(h[32:36], exp-2)
		}
	case "expcmdsn-backwards":
		sf.hdr = func(h *pdu.BHS) {
			binary.BigEndian.PutUint32(h[28:32], binary.BigEndian.Uint32(h[28:32])-100)
		}
	case "endless-nop-in":
		for i := 0; i < 10000 && c.ctx.Err() == nil; i++ {
			if c.send(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: c.newTTT()}, nil, false) != nil {
				break
			}
		}
	case "nop-in-with-data":
		c.send(&pdu.NOPIn{ITT: pdu.ReservedTag, TTT: pdu.ReservedTag}, make([]byte, 64), false)
	case "async-bad-sense":
		data := pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, pdu.UnitAttention, 0x3f, 0x0e))
		data[0], data[1] = 0, 100
		c.send(&pdu.AsyncMessage{LUN: m.LUN, Event: pdu.AsyncSCSIEvent}, data, true)
	case "async-huge":
		data := pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, pdu.UnitAttention, 0x3f, 0x0e))
		c.send(&pdu.AsyncMessage{LUN: m.LUN, Event: pdu.AsyncSCSIEvent}, append(data, make([]byte, 16<<10)...), true)
	case "async-unknown-event":
		c.send(&pdu.AsyncMessage{Event: 77}, nil, true)
	case "text-unsolicited":
		c.send(&pdu.TextResponse{Final: true, ITT: m.ITT ^ 0x20000000, TTT: pdu.ReservedTag}, nil, true)
	case "logout-unsolicited":
		c.send(&pdu.LogoutResponse{ITT: m.ITT ^ 0x20000000}, nil, true)
	case "tmf-unsolicited":
		c.send(&pdu.TaskMgmtResponse{ITT: m.ITT ^ 0x20000000}, nil, true)
	case "r2t-for-read":
		c.send(&pdu.R2T{LUN: m.LUN, ITT: m.ITT, TTT: c.newTTT(), DesiredDataTransferLength: m.ExpectedDataTransferLength}, nil, false)
	case "datain-for-write":
		c.send(&pdu.DataIn{Final: true, LUN: m.LUN, ITT: m.ITT, TTT: pdu.ReservedTag}, make([]byte, 512), false)
	case "reset-connection":
		c.resetConnection()
		return sf, false
	}
	return sf, true
}

// resetConnection closes the connection with a TCP RST instead of a FIN.
func (c *conn) resetConnection() {
	if tc, ok := c.nc.Conn.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.close("fault reset-connection")
}

// InjectFault arms a named fault (see Faults) for a target, count times
// (count -1: until ClearFaults; 0 means 1). target "" arms login faults for
// Discovery sessions.
func (s *Server) InjectFault(target, name string, count int) error {
	f := lookupFault(name)
	if f == nil {
		return fmt.Errorf("no fault %q (list them with the faults command)", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if target != "" {
		if _, err := s.target(target); err != nil {
			return err
		}
	} else if f.scope != faultScopeLogin {
		return fmt.Errorf("fault %s is a command fault; Discovery sessions have no commands", name)
	}
	if count == 0 {
		count = 1
	}
	s.faults[target] = append(s.faults[target], &pendingFault{def: f, count: count})
	s.log.Info("action: inject fault", "target", target, "fault", name, "scope", f.scope.String(), "count", count)
	return nil
}

// ClearFaults disarms every pending fault of a target ("" for Discovery).
func (s *Server) ClearFaults(target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, target)
	s.log.Info("action: clear faults", "target", target)
}
