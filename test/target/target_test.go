package target

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

func TestDiscovery(t *testing.T) {
	for _, limit := range []int{0, 40, 7} {
		cfg := testConfig()
		// Small limits force F=0/TTT continuations; 7 bytes also splits
		// single key=value pairs with the C bit.
		cfg.TextSegmentLimit = limit
		s := startServer(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		targets, err := session.Discover(ctx, portal(t, s, testIQN), session.DiscoveryConfig{InitiatorName: testIniName})
		cancel()
		if err != nil {
			t.Fatalf("limit %d: Discover: %v", limit, err)
		}
		var names []string
		for _, dt := range targets {
			names = append(names, dt.Name)
			want, _ := s.Portals(dt.Name)
			if !slices.Equal(dt.Portals, want) {
				t.Errorf("limit %d: %s portals %v, want %v", limit, dt.Name, dt.Portals, want)
			}
		}
		if want := []string{testIQN, testCHAPIQN, testMutualIQN}; !slices.Equal(names, want) {
			t.Errorf("limit %d: discovered %v, want %v", limit, names, want)
		}
	}
}

func TestDiscoveryAuth(t *testing.T) {
	cfg := testConfig()
	cfg.DiscoveryAuth = AuthConfig{Method: "CHAP", Username: "disc", Secret: "discovery-secret"}
	s := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := portal(t, s, testIQN)
	_, err := session.Discover(ctx, p, session.DiscoveryConfig{InitiatorName: testIniName})
	var le *session.LoginError
	if !errors.As(err, &le) || !le.AuthFailure() {
		t.Fatalf("discovery without credentials: %v, want an authentication failure", err)
	}
	got, err := session.Discover(ctx, p, session.DiscoveryConfig{InitiatorName: testIniName,
		Auth: session.Auth{Method: session.AuthCHAP, Username: "disc", Password: "discovery-secret"}})
	if err != nil || len(got) != 3 {
		t.Fatalf("discovery with CHAP: %v %v", got, err)
	}
}

func TestLoginCHAP(t *testing.T) {
	s := startServer(t, testConfig())
	for _, alg := range []session.CHAPAlgorithm{session.CHAPMD5, session.CHAPSHA1, session.CHAPSHA256, session.CHAPSHA3256} {
		ini := mustLogin(t, s, testCHAPIQN, loginOpts{auth: session.Auth{Method: session.AuthCHAP, Username: "alice",
			Password: "alice-secret-12", Algorithms: []session.CHAPAlgorithm{alg}}})
		if r := ini.mustCommand(0, cdbTUR, nil, 0); r.status != statusGood {
			t.Errorf("%v: TUR status %d", alg, r.status)
		}
	}
	mustLogin(t, s, testMutualIQN, loginOpts{auth: session.Auth{Method: session.AuthCHAP, Username: "bob",
		Password: "bob-secret-1234", UsernameIn: "target", PasswordIn: "target-secret-12"}})

	var le *session.LoginError
	for name, o := range map[string]loginOpts{
		"wrong secret": {auth: session.Auth{Method: session.AuthCHAP, Username: "alice", Password: "wrong-secret-00"}},
		"wrong user":   {auth: session.Auth{Method: session.AuthCHAP, Username: "mallory", Password: "alice-secret-12"}},
		"no auth":      {},
	} {
		if _, err := dialLogin(t, s, testCHAPIQN, o); !errors.As(err, &le) || !le.AuthFailure() {
			t.Errorf("%s: %v, want an authentication failure", name, err)
		}
	}
	// A target that answers mutual CHAP with the wrong secret is caught by
	// the initiator.
	_, err := dialLogin(t, s, testMutualIQN, loginOpts{auth: session.Auth{Method: session.AuthCHAP, Username: "bob",
		Password: "bob-secret-1234", UsernameIn: "target", PasswordIn: "not-the-secret"}})
	var ae *session.AuthError
	if !errors.As(err, &ae) {
		t.Errorf("mutual CHAP with the wrong target secret: %v, want an AuthError", err)
	}
}

func TestLoginErrors(t *testing.T) {
	s := startServer(t, testConfig())
	var le *session.LoginError
	p := portal(t, s, testIQN)
	if _, err := loginAt(t, p, "iqn.2026-11.dev.goiscsi:nope"); !errors.As(err, &le) || le.Status != pdu.LoginNotFound {
		t.Errorf("unknown target: %v, want not found", err)
	}
	// The CHAP target is not served on the plain target's portal.
	if _, err := loginAt(t, p, testCHAPIQN); !errors.As(err, &le) || le.Status != pdu.LoginNotFound {
		t.Errorf("target on a foreign portal: %v, want not found", err)
	}
}

func loginAt(t *testing.T, p session.Portal, name string) (*session.LoginResult, error) {
	c, err := dialTCP(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return session.Login(ctx, session.NewConnTransport(c), session.LoginConfig{
		InitiatorName: testIniName, TargetName: name, ISID: pdu.ISID{0, 2, 0x3d, 0, 0, 9}, ITT: 1, CmdSN: 1,
		Auth: session.Auth{Method: session.AuthNone}, Operational: session.DefaultOperational(),
	})
}

func TestReadWrite(t *testing.T) {
	s := startServer(t, testConfig())
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i/512) ^ byte(i) ^ seed
		}
		return b
	}
	for name, op := range map[string]session.Operational{
		"defaults": session.DefaultOperational(),
		"R2T only": func() session.Operational {
			o := session.DefaultOperational()
			o.InitialR2T, o.ImmediateData = true, false
			o.MaxRecvDataSegmentLength = 4096 // small Data-In PDUs
			o.MaxBurstLength = 65536          // several R2Ts
			return o
		}(),
		"digests": func() session.Operational {
			o := session.DefaultOperational()
			o.HeaderDigest, o.DataDigest = "CRC32C", "CRC32C"
			return o
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			ini := mustLogin(t, s, testIQN, loginOpts{op: &op})
			data := pattern(600<<10, name[0])
			if r := ini.mustCommand(1, cdbWrite10(8, uint16(len(data)/512)), data, 0); r.status != statusGood || r.under || r.over {
				t.Fatalf("write: %+v", r)
			}
			r := ini.mustCommand(1, cdbRead10(8, uint16(len(data)/512)), nil, len(data))
			if r.status != statusGood || !bytes.Equal(r.data, data) {
				t.Fatalf("read back: status %d, %d bytes, equal %v", r.status, len(r.data), bytes.Equal(r.data, data))
			}
		})
	}
}

func TestSCSI(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	r := ini.mustCommand(0, cdbReportLUNs, nil, 4096)
	if got := reportedLUNs(r.data); r.status != statusGood || !slices.Equal(got, []uint64{0, 1, 300}) {
		t.Errorf("REPORT LUNS: status %d, LUNs %v", r.status, got)
	}
	if r.status == statusGood && !bytes.Equal(r.data[16:24], []byte{0, 1, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("LUN 1 encoded as % x, want peripheral addressing 00 01", r.data[16:24])
	}
	inq := []byte{opInquiry, 0, 0, 0, 96, 0}
	if r := ini.mustCommand(300, inq, nil, 96); r.status != statusGood || r.data[0] != 0 {
		t.Errorf("INQUIRY LUN 300: status %d, byte 0 %#x", r.status, r.data[0])
	}
	if r := ini.mustCommand(7, inq, nil, 96); r.status != statusGood || r.data[0] != 0x7f {
		t.Errorf("INQUIRY to no LUN: status %d, byte 0 %#x, want PQ 3 PDT 0x1f", r.status, r.data[0])
	}
	if r := ini.mustCommand(7, cdbTUR, nil, 0); r.status != statusCheckCondition || !r.sense.Is(0x25, 0) {
		t.Errorf("TUR to no LUN: %d %v", r.status, r.sense)
	}
	if r := ini.mustCommand(0, []byte{0xc5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, 0); r.status != statusCheckCondition ||
		r.sense.Key != pdu.IllegalRequest || !r.sense.Is(0x20, 0) {
		t.Errorf("unknown opcode: %d %v", r.status, r.sense)
	}
	// VPD 0x83: NAA identifiers differ per LUN.
	vpd83 := []byte{opInquiry, 1, 0x83, 0, 255, 0}
	a, b := ini.mustCommand(0, vpd83, nil, 255), ini.mustCommand(1, vpd83, nil, 255)
	if a.status != statusGood || a.data[5] != 0x03 || bytes.Equal(a.data[8:24], b.data[8:24]) {
		t.Errorf("VPD 0x83: % x / % x", a.data, b.data)
	}
	rc16 := []byte{opServiceActionIn, saReadCapacity16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}
	if r := ini.mustCommand(1, rc16, nil, 32); r.status != statusGood || binary.BigEndian.Uint64(r.data) != 4<<20/512-1 {
		t.Errorf("READ CAPACITY 16: %d % x", r.status, r.data)
	}
	if r := ini.mustCommand(1, cdbRead10(4<<20/512-1, 2), nil, 1024); r.status != statusCheckCondition || !r.sense.Is(0x21, 0) {
		t.Errorf("read past the end: %d %v", r.status, r.sense)
	}
	ms := []byte{opModeSense6, 0, modePageCaching, 0, 255, 0}
	if r := ini.mustCommand(1, ms, nil, 255); r.status != statusGood || r.data[3] != 8 || r.data[12] != modePageCaching {
		t.Errorf("MODE SENSE caching: %d % x", r.status, r.data)
	}
	if r := ini.mustCommand(1, []byte{opSyncCache10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, 0); r.status != statusGood {
		t.Errorf("SYNCHRONIZE CACHE: %d", r.status)
	}
	// Residuals: a 1-block read with EDTL 1000.
	if r := ini.mustCommand(1, cdbRead10(0, 1), nil, 1000); r.status != statusGood || !r.under || r.residual != 488 {
		t.Errorf("underflow read: %+v", r)
	}
}

func TestLUNChangesAndUnitAttention(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	if err := s.AddLUN(testIQN, LUNConfig{Number: 2, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// Every other LUN reports 3F/0E once; the new one does not.
	for _, lun := range []uint64{0, 1, 300} {
		if r := ini.mustCommand(lun, cdbTUR, nil, 0); r.status != statusCheckCondition || !r.sense.ReportedLUNsDataChanged() {
			t.Errorf("LUN %d after add: %d %v, want 3F/0E", lun, r.status, r.sense)
		}
		if r := ini.mustCommand(lun, cdbTUR, nil, 0); r.status != statusGood {
			t.Errorf("LUN %d second TUR: %d %v", lun, r.status, r.sense)
		}
	}
	if r := ini.mustCommand(2, cdbTUR, nil, 0); r.status != statusGood {
		t.Errorf("new LUN 2: %d %v", r.status, r.sense)
	}
	// REPORT LUNS clears pending 3F/0E.
	if err := s.RemoveLUN(testIQN, 2); err != nil {
		t.Fatal(err)
	}
	if r := ini.mustCommand(0, cdbReportLUNs, nil, 4096); !slices.Equal(reportedLUNs(r.data), []uint64{0, 1, 300}) {
		t.Errorf("REPORT LUNS after removal: %v", reportedLUNs(r.data))
	}
	if r := ini.mustCommand(1, cdbTUR, nil, 0); r.status != statusGood {
		t.Errorf("3F/0E not cleared by REPORT LUNS: %v", r.sense)
	}
	if r := ini.mustCommand(2, cdbTUR, nil, 0); !r.sense.Is(0x25, 0) {
		t.Errorf("removed LUN: %v", r.sense)
	}
	// The switch turns the LIO-like behaviour off.
	if err := s.SetLUNChangeUA(testIQN, false); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLUN(testIQN, LUNConfig{Number: 2, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if r := ini.mustCommand(0, cdbTUR, nil, 0); r.status != statusGood {
		t.Errorf("UA although the switch is off: %v", r.sense)
	}
	// Any Unit Attention on demand; REQUEST SENSE reports and clears it.
	n, err := s.SetUnitAttention(UnitAttention{Target: testIQN, LUN: 1, Sense: SenseCode{pdu.UnitAttention, 0x2a, 0x09}})
	if err != nil || n != 1 {
		t.Fatalf("SetUnitAttention: %d %v", n, err)
	}
	if r := ini.mustCommand(1, []byte{opRequestSense, 0, 0, 0, 18, 0}, nil, 18); r.status != statusGood || r.data[12] != 0x2a || r.data[13] != 0x09 {
		t.Errorf("REQUEST SENSE: % x", r.data)
	}
	if r := ini.mustCommand(1, cdbTUR, nil, 0); r.status != statusGood {
		t.Errorf("UA not cleared by REQUEST SENSE: %v", r.sense)
	}
	if _, err := s.SetUnitAttention(UnitAttention{Target: testIQN, AllLUNs: true, Sense: SenseCode{pdu.UnitAttention, 0x29, 0}}); err != nil {
		t.Fatal(err)
	}
	if r := ini.mustCommand(300, cdbRead10(0, 1), nil, 512); !r.sense.Is(0x29, 0) || r.data != nil {
		t.Errorf("read with a pending UA: %d %v", r.status, r.sense)
	}
	sess, _ := s.Sessions(testIQN)
	if len(sess) != 1 || len(sess[0].PendingUA) != 3 {
		t.Errorf("sessions: %+v, want one with UAs pending on LUNs 0, 1, 2", sess)
	}
}

func TestAsyncEvents(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	n, err := s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: 0, LUN: 300, Sense: senseLUNsChanged})
	if err != nil || n != 1 {
		t.Fatalf("SendAsyncEvent: %d %v", n, err)
	}
	m := ini.waitAsync(5 * time.Second)
	sense, err := pdu.ParseAsyncSCSIEvent(ini.lastAsyncData)
	if m.Event != pdu.AsyncSCSIEvent || m.LUN.Number() != 300 || err != nil || !sense.ReportedLUNsDataChanged() {
		t.Errorf("event 0: %+v, sense %v %v", m, sense, err)
	}
	// Event 4: the initiator renegotiates with a Text Request.
	s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: 4})
	if m := ini.waitAsync(5 * time.Second); m.Event != pdu.AsyncRenegotiate {
		t.Errorf("event 4: %+v", m)
	}
	ini.send(&pdu.TextRequest{Final: true, ITT: 77, TTT: pdu.ReservedTag, CmdSN: ini.cmdSN, ExpStatSN: ini.expStatSN},
		pdu.AppendText(nil, pdu.KeyValue{Key: "MaxRecvDataSegmentLength", Value: "4096"}))
	ini.cmdSN++
	p, err := ini.receive(5 * time.Second)
	if err != nil || p.Header.Opcode() != pdu.OpTextResponse || !p.Header.Final() {
		t.Fatalf("text response: %v %v", p, err)
	}
	if r := ini.mustCommand(1, cdbRead10(0, 16), nil, 8192); r.status != statusGood {
		t.Errorf("read after renegotiation: %d", r.status)
	}
	// Event 1 without a Logout: dropped after the deadline.
	start := time.Now()
	s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: 1, Parameter3: 1})
	if m := ini.waitAsync(5 * time.Second); m.Event != pdu.AsyncLogoutRequest || m.Parameter3 != 1 {
		t.Errorf("event 1: %+v", m)
	}
	if _, err := ini.receive(10 * time.Second); err == nil || time.Since(start) < time.Second {
		t.Errorf("connection after the logout deadline: %v after %v", err, time.Since(start))
	}
	// Event 1 answered by a Logout: a clean logout.
	ini = mustLogin(t, s, testIQN, loginOpts{})
	s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: 1, Parameter3: 5})
	ini.waitAsync(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := session.Logout(ctx, ini.tr, 99, ini.cmdSN, ini.expStatSN); err != nil {
		t.Errorf("logout after event 1: %v", err)
	}
	// Events 2 and 3: the message, then the connection goes.
	for _, ev := range []uint8{2, 3} {
		ini = mustLogin(t, s, testIQN, loginOpts{})
		s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: ev, Parameter2: 3, Parameter3: 7})
		m := ini.waitAsync(5 * time.Second)
		if uint8(m.Event) != ev || m.Parameter2 != 3 || m.Parameter3 != 7 {
			t.Errorf("event %d: %+v", ev, m)
		}
		if _, err := ini.receive(5 * time.Second); err == nil {
			t.Errorf("event %d: connection still up", ev)
		}
	}
	if _, err := s.SendAsyncEvent(AsyncEvent{Target: testIQN, TSIH: 999}); err == nil {
		t.Error("event to a session that does not exist succeeded")
	}
}

func TestDropDelayRefuse(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	if n, err := s.DropConnections(testIQN, 0, 100); err != nil || n != 1 {
		t.Fatalf("DropConnections: %d %v", n, err)
	}
	if _, err := ini.command(1, cdbRead10(0, 8), nil, 4096); err == nil {
		t.Error("read survived a drop after 100 bytes")
	}
	ini = mustLogin(t, s, testIQN, loginOpts{})
	s.DropConnections(testIQN, 0, 0)
	if _, err := ini.receive(5 * time.Second); !errors.Is(err, io.EOF) && err == nil {
		t.Errorf("after drop: %v", err)
	}

	ini = mustLogin(t, s, testIQN, loginOpts{})
	s.SetDelay(testIQN, 300*time.Millisecond)
	start := time.Now()
	ini.mustCommand(0, cdbTUR, nil, 0)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("delayed TUR took %v", d)
	}
	s.SetDelay(testIQN, 0)

	var le *session.LoginError
	s.RefuseLogins(LoginRefusal{Target: testIQN, Class: 3, Detail: 1})
	if _, err := dialLogin(t, s, testIQN, loginOpts{}); !errors.As(err, &le) || !le.Retryable() {
		t.Errorf("refused login: %v", err)
	}
	mustLogin(t, s, testIQN, loginOpts{}) // count 1: the next one gets in
	s.RefuseLogins(LoginRefusal{Target: testIQN, Class: 1, Detail: 2, Address: "[::1]:3261,1", Count: -1})
	for range 2 {
		if _, err := dialLogin(t, s, testIQN, loginOpts{}); !errors.As(err, &le) || !le.Redirect() || le.TargetAddress != "[::1]:3261,1" {
			t.Errorf("redirect: %v", err)
		}
	}
	s.RefuseLogins(LoginRefusal{Target: testIQN})
	mustLogin(t, s, testIQN, loginOpts{})
}

func TestSessionReinstatement(t *testing.T) {
	s := startServer(t, testConfig())
	old := mustLogin(t, s, testIQN, loginOpts{})
	mustLogin(t, s, testIQN, loginOpts{isid: pdu.ISID{0, 2, 0x3d, 0, 0, 2}})
	ini := mustLogin(t, s, testIQN, loginOpts{}) // same ISID as old, TSIH 0
	if _, err := old.receive(5 * time.Second); err == nil {
		t.Error("the reinstated session's connection is still up")
	}
	sess, _ := s.Sessions(testIQN)
	if len(sess) != 2 {
		t.Errorf("%d sessions, want 2: %+v", len(sess), sess)
	}
	ini.mustCommand(0, cdbTUR, nil, 0)
}

func TestTaskManagement(t *testing.T) {
	s := startServer(t, testConfig())
	op := session.DefaultOperational()
	op.InitialR2T, op.ImmediateData = true, false
	ini := mustLogin(t, s, testIQN, loginOpts{op: &op})
	other := mustLogin(t, s, testIQN, loginOpts{isid: pdu.ISID{0, 2, 0x3d, 0, 0, 5}})
	// A write waiting for its data is the task to abort.
	cmd := pdu.SCSICommand{Final: true, Write: true, LUN: pdu.NewLUN(1), ITT: 500, ExpectedDataTransferLength: 4096, CmdSN: ini.cmdSN, ExpStatSN: ini.expStatSN}
	copy(cmd.CDB[:], cdbWrite10(0, 8))
	ini.cmdSN++
	ini.send(&cmd, nil)
	if p, err := ini.receive(5 * time.Second); err != nil || p.Header.Opcode() != pdu.OpR2T {
		t.Fatalf("R2T: %v %v", p, err)
	}
	tmf := func(fn uint8, lun uint64, ref uint32) uint8 {
		t.Helper()
		ini.send(&pdu.TaskMgmtRequest{Immediate: true, Function: fn, LUN: pdu.NewLUN(lun), ITT: 600 + uint32(fn),
			ReferencedTaskTag: ref, CmdSN: ini.cmdSN, ExpStatSN: ini.expStatSN, RefCmdSN: ini.cmdSN - 1}, nil)
		p, err := ini.receive(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r pdu.TaskMgmtResponse
		if err := r.Decode(&p.Header); err != nil {
			t.Fatal(err)
		}
		return r.Response
	}
	if r := tmf(pdu.TMFAbortTask, 1, 500); r != pdu.TMFComplete {
		t.Errorf("ABORT TASK: %d", r)
	}
	if r := tmf(pdu.TMFAbortTask, 1, 500); r != pdu.TMFTaskDoesNotExist {
		t.Errorf("second ABORT TASK: %d", r)
	}
	if r := tmf(pdu.TMFLogicalUnitReset, 1, 0); r != pdu.TMFComplete {
		t.Errorf("LUN RESET: %d", r)
	}
	if r := tmf(pdu.TMFLogicalUnitReset, 9, 0); r != pdu.TMFLUNDoesNotExist {
		t.Errorf("LUN RESET of no LUN: %d", r)
	}
	if r := tmf(pdu.TMFTargetWarmReset, 0, 0); r != pdu.TMFComplete {
		t.Errorf("TARGET WARM RESET: %d", r)
	}
	if r := tmf(pdu.TMFTaskReassign, 0, 0); r != pdu.TMFReassignNotSupported {
		t.Errorf("TASK REASSIGN: %d", r)
	}
	if r := other.mustCommand(1, cdbTUR, nil, 0); !r.sense.Is(0x29, 0x03) {
		t.Errorf("other session after LUN RESET: %v", r.sense)
	}
	if r := ini.mustCommand(1, cdbTUR, nil, 0); r.status != statusGood {
		t.Errorf("resetting session: %v", r.sense)
	}
}

func TestNOP(t *testing.T) {
	cfg := testConfig()
	// Pings every 100 ms; an answer may take a loaded machine (under -race)
	// longer than that, so the wait for one is a second: the ignored one
	// below drops the connection after it.
	cfg.NOPInInterval, cfg.NOPInTimeout = Duration(100*time.Millisecond), Duration(time.Second)
	s := startServer(t, cfg)
	ini := mustLogin(t, s, testIQN, loginOpts{})
	ini.send(&pdu.NOPOut{Immediate: true, ITT: 42, TTT: pdu.ReservedTag, CmdSN: ini.cmdSN, ExpStatSN: ini.expStatSN}, []byte("ping"))
	for {
		p, err := ini.receive(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var in pdu.NOPIn
		in.Decode(&p.Header)
		if in.ITT == 42 {
			if string(p.Data) != "ping" {
				t.Errorf("echo %q", p.Data)
			}
			break
		}
	}
	// Target pings: answered, the connection stays; ignored, it goes.
	for range 3 {
		p, err := ini.receive(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var in pdu.NOPIn
		if err := in.Decode(&p.Header); err != nil || in.TTT == pdu.ReservedTag {
			t.Fatalf("target ping: %v %+v", err, in)
		}
		ini.send(&pdu.NOPOut{Immediate: true, LUN: in.LUN, ITT: pdu.ReservedTag, TTT: in.TTT, CmdSN: ini.cmdSN, ExpStatSN: ini.expStatSN}, nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := ini.receive(time.Until(deadline)); err != nil {
			if time.Now().After(deadline) {
				t.Fatal("unanswered pings did not drop the connection")
			}
			break
		}
	}
}

func TestCommandOrdering(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	tur := func(itt, cmdSN uint32) {
		m := pdu.SCSICommand{Final: true, LUN: pdu.NewLUN(0), ITT: itt, CmdSN: cmdSN, ExpStatSN: ini.expStatSN}
		copy(m.CDB[:], cdbTUR)
		ini.send(&m, nil)
	}
	// CmdSN 3 before 2: both are answered, 2 first; CmdSN far outside the
	// window is ignored.
	tur(1003, ini.cmdSN+1)
	tur(1999, ini.cmdSN+5000)
	tur(1002, ini.cmdSN)
	var order []uint32
	for range 2 {
		p, err := ini.receive(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, p.Header.ITT())
		if exp := binary.BigEndian.Uint32(p.Header[28:32]); exp != ini.cmdSN+uint32(len(order)) {
			t.Errorf("ExpCmdSN %d after %d commands from %d", exp, len(order), ini.cmdSN)
		}
	}
	if !slices.Equal(order, []uint32{1002, 1003}) {
		t.Errorf("answered %v, want 1002 then 1003", order)
	}
	if p, err := ini.receive(300 * time.Millisecond); err == nil {
		t.Errorf("command outside the window was answered: %v", p.Header.String())
	}
}

func TestMalformedFromInitiator(t *testing.T) {
	s := startServer(t, testConfig())
	ini := mustLogin(t, s, testIQN, loginOpts{})
	// An unknown opcode and a target opcode: Rejects, the connection stays.
	p := &pdu.PDU{}
	p.Header[0] = 0x1a
	ini.tr.Send(context.Background(), p)
	p = &pdu.PDU{}
	(&pdu.NOPIn{ITT: 1}).Encode(&p.Header)
	ini.tr.Send(context.Background(), p)
	// Immediate data although ImmediateData... is allowed; data for a read is not.
	m := pdu.SCSICommand{Final: true, Read: true, LUN: pdu.NewLUN(0), ITT: 9, CmdSN: ini.cmdSN, ExpectedDataTransferLength: 512}
	copy(m.CDB[:], cdbRead10(0, 1))
	ini.send(&m, make([]byte, 512))
	ini.cmdSN++
	ini.mustCommand(0, cdbTUR, nil, 0)
	var reasons []uint8
	for _, r := range ini.rejects {
		var rj pdu.Reject
		rj.Decode(&r.Header)
		reasons = append(reasons, rj.Reason)
	}
	if !slices.Equal(reasons, []uint8{pdu.RejectCommandNotSupported, pdu.RejectProtocolError, pdu.RejectProtocolError}) {
		t.Errorf("reject reasons %v", reasons)
	}
	// A data segment above the declared limit drops the connection.
	p = &pdu.PDU{Data: make([]byte, 300000)}
	(&pdu.NOPOut{Immediate: true, ITT: 5, TTT: pdu.ReservedTag}).Encode(&p.Header)
	ini.tr.Send(context.Background(), p)
	if _, err := ini.receive(5 * time.Second); err == nil {
		t.Error("connection survived an oversized data segment")
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target.json")
	os.WriteFile(path, []byte(`{
  "targets": [{"name": "iqn.2026-11.dev.goiscsi:f", "portal_groups": [{"tag": 1, "portals": ["127.0.0.1:0"]}],
    "luns": [{"number": 0, "size": "2MiB"}, {"number": 5, "file": "`+filepath.Join(dir, "lun5.img")+`", "size": 1048576, "block_size": 4096}],
    "lun_change_ua": false, "params": {"MaxBurstLength": "65536"}}],
  "nop_in_interval": "5s"
}`), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Targets[0].LUNs[0].Size != 2<<20 || time.Duration(cfg.NOPInInterval) != 5*time.Second || *cfg.Targets[0].LUNChangeUA {
		t.Errorf("parsed %+v", cfg)
	}
	s := startServer(t, cfg)
	if st, err := os.Stat(filepath.Join(dir, "lun5.img")); err != nil || st.Size() != 1<<20 {
		t.Errorf("backing file: %v %v", st, err)
	}
	ini := mustLogin(t, s, "iqn.2026-11.dev.goiscsi:f", loginOpts{})
	if r := ini.mustCommand(5, cdbWrite10(1, 1), bytes.Repeat([]byte{0xab}, 4096), 0); r.status != statusGood {
		t.Fatalf("write: %d %v", r.status, r.sense)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "lun5.img"))
	if !bytes.Equal(b[4096:8192], bytes.Repeat([]byte{0xab}, 4096)) {
		t.Error("write did not reach the file")
	}
	for _, bad := range []string{
		`{"targets": [{"name": "x", "portal_groups": [{"tag": 1, "portals": ["127.0.0.1:0"]}], "bogus": 1}]}`,
		`{"targets": [{"name": "x", "portal_groups": []}]}`,
		`{"targets": [{"name": "x", "portal_groups": [{"tag": 1, "portals": ["a:1"]}], "luns": [{"number": 0}]}]}`,
		`{"targets": [{"name": "x", "portal_groups": [{"tag": 1, "portals": ["a:1"]}], "auth": {"method": "CHAP"}}]}`,
	} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := LoadConfig(path); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := New(&Config{Targets: []TargetConfig{{Name: "x", PortalGroups: []PortalGroupConfig{{Portals: []string{"0.0.0.0:0"}}}}}}, testLogger(t)); err == nil ||
		!strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback portal: %v", err)
	}
}

func TestControlSocket(t *testing.T) {
	s := startServer(t, testConfig())
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	if err := s.ServeControl(sock); err != nil {
		t.Fatal(err)
	}
	ini := mustLogin(t, s, testIQN, loginOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var faults []FaultInfo
	if err := Control(ctx, sock, "faults", nil, &faults); err != nil || len(faults) < 30 {
		t.Fatalf("faults: %d %v", len(faults), err)
	}
	if err := Control(ctx, sock, "add-lun", AddLUNArgs{Target: testIQN, LUN: LUNConfig{Number: 2, Size: 1 << 20}}, nil); err != nil {
		t.Fatal(err)
	}
	var sent int
	if err := Control(ctx, sock, "async", AsyncEvent{Target: testIQN, Sense: senseLUNsChanged}, &sent); err != nil || sent != 1 {
		t.Fatalf("async: %d %v", sent, err)
	}
	ini.waitAsync(5 * time.Second)
	var sess []SessionInfo
	if err := Control(ctx, sock, "sessions", TargetArgs{Target: testIQN}, &sess); err != nil || len(sess) != 1 {
		t.Fatalf("sessions: %v %v", sess, err)
	}
	var luns []uint64
	if err := Control(ctx, sock, "luns", TargetArgs{Target: testIQN}, &luns); err != nil || !slices.Equal(luns, []uint64{0, 1, 2, 300}) {
		t.Errorf("luns: %v %v", luns, err)
	}
	for op, args := range map[string]any{
		"remove-lun":     RemoveLUNArgs{Target: testIQN, Number: 2},
		"lun-change-ua":  SwitchArgs{Target: testIQN, On: false},
		"unit-attention": UnitAttention{Target: testIQN, LUN: 0, Sense: senseLUNsChanged},
		"delay":          DelayArgs{Target: testIQN, Delay: Duration(time.Millisecond)},
		"fault":          FaultArgs{Target: testIQN, Name: "response-none"},
		"clear-faults":   TargetArgs{Target: testIQN},
		"refuse-login":   LoginRefusal{Target: testIQN, Class: 3, Detail: 2},
		"drop":           DropArgs{Target: testIQN},
	} {
		if err := Control(ctx, sock, op, args, nil); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
	if err := Control(ctx, sock, "no-such-op", nil, nil); err == nil {
		t.Error("unknown operation accepted")
	}
	if err := Control(ctx, sock, "fault", FaultArgs{Target: testIQN, Name: "no-such-fault"}, nil); err == nil {
		t.Error("unknown fault accepted")
	}
}

func TestParseSenseCode(t *testing.T) {
	if s, err := ParseSenseCode("6/3f/0e"); err != nil || s != senseLUNsChanged {
		t.Errorf("6/3f/0e: %v %v", s, err)
	}
	for _, bad := range []string{"", "6/3f", "16/00/00", "6/3f/zz"} {
		if _, err := ParseSenseCode(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestIPv6Portal(t *testing.T) {
	cfg := &Config{Targets: []TargetConfig{{Name: testIQN, PortalGroups: []PortalGroupConfig{{Tag: 1, Portals: []string{"[::1]:0"}}},
		LUNs: []LUNConfig{{Number: 0, Size: 1 << 20}}}}}
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	s.Close()
	s = startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := session.Discover(ctx, portal(t, s, testIQN), session.DiscoveryConfig{InitiatorName: testIniName})
	if err != nil || len(got) != 1 || got[0].Portals[0].Address != "::1" {
		t.Fatalf("IPv6 discovery: %+v %v", got, err)
	}
	mustLogin(t, s, testIQN, loginOpts{}).mustCommand(0, cdbTUR, nil, 0)
}

// TestCloseEndsGoroutines closes a busy server: sessions with target pings,
// a write waiting for data, a control connection, a logout deadline timer.
func TestCloseEndsGoroutines(t *testing.T) {
	if left := leftGoroutines(2 * time.Second); left != "" {
		t.Fatalf("goroutines of earlier tests still running:\n%s", left)
	}
	cfg := testConfig()
	cfg.NOPInInterval = Duration(time.Hour)
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	if err := s.ServeControl(sock); err != nil {
		t.Fatal(err)
	}
	ctl, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	op := session.DefaultOperational()
	op.InitialR2T, op.ImmediateData = true, false
	ini := mustLogin(t, s, testIQN, loginOpts{op: &op})
	m := pdu.SCSICommand{Final: true, Write: true, LUN: pdu.NewLUN(0), ITT: 7, ExpectedDataTransferLength: 512, CmdSN: ini.cmdSN}
	copy(m.CDB[:], cdbWrite10(0, 1))
	ini.send(&m, nil)
	if p, err := ini.receive(5 * time.Second); err != nil || p.Header.Opcode() != pdu.OpR2T {
		t.Fatalf("R2T for the write: %v %v", p, err) // then the write waits for its data
	}
	mustLogin(t, s, testCHAPIQN, loginOpts{auth: session.Auth{Method: session.AuthCHAP, Username: "alice", Password: "alice-secret-12"}})
	if n, err := s.SendAsyncEvent(AsyncEvent{Target: testIQN, Event: 1, Parameter3: 3600}); n != 1 || err != nil {
		t.Fatalf("logout request sent on %d connections: %v", n, err) // its deadline timer runs once sent
	}
	// A control request answered: its connection waits for the next one.
	fmt.Fprintf(ctl, `{"op":"sessions","args":{"target":%q}}`+"\n", testIQN)
	ctl.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(ctl).ReadString('\n'); err != nil || !strings.Contains(line, "result") {
		t.Fatalf("control answer %q: %v", line, err)
	}
	half, err := dialTCP(portal(t, s, testIQN)) // a connection stuck in its login
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte{0x43})
	// It is served, as the two logged in are, once the server lists it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections served after 5s, want 3", n)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftGoroutines(time.Second); left != "" {
		t.Errorf("goroutines left after Close:\n%s", left)
	}
}
