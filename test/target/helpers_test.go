package target

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
)

const (
	testIQN       = "iqn.2026-11.dev.goiscsi:test"
	testCHAPIQN   = "iqn.2026-11.dev.goiscsi:chap"
	testMutualIQN = "iqn.2026-11.dev.goiscsi:mutual"
	testIniName   = "iqn.2026-11.dev.goiscsi:tester"
)

// testConfig is a server with three targets: no auth (LUNs 0, 1 and 300),
// CHAP, and mutual CHAP, each on its own ephemeral loopback port.
func testConfig() *Config {
	return &Config{Targets: []TargetConfig{
		{
			Name: testIQN, Alias: "plain",
			PortalGroups: []PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
			LUNs:         []LUNConfig{{Number: 0, Size: 1 << 20}, {Number: 1, Size: 4 << 20}, {Number: 300, Size: 1 << 20}},
		},
		{
			Name:         testCHAPIQN,
			PortalGroups: []PortalGroupConfig{{Tag: 2, Portals: []string{"127.0.0.1:0"}}},
			Auth:         AuthConfig{Method: "CHAP", Username: "alice", Secret: "alice-secret-12"},
			LUNs:         []LUNConfig{{Number: 0, Size: 1 << 20}},
		},
		{
			Name:         testMutualIQN,
			PortalGroups: []PortalGroupConfig{{Tag: 3, Portals: []string{"127.0.0.1:0"}}},
			Auth: AuthConfig{Method: "CHAP", Username: "bob", Secret: "bob-secret-1234",
				MutualUsername: "target", MutualSecret: "target-secret-12"},
			LUNs: []LUNConfig{{Number: 0, Size: 1 << 20}},
		},
	}}
}

// testLogger sends the server's log to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startServer runs cfg and closes it at the end of the test.
func startServer(t testing.TB, cfg *Config) *Server {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestMain fails the run when a goroutine of this package outlives the
// servers the tests closed.
func TestMain(m *testing.M) {
	code := m.Run()
	if left := leftGoroutines(2 * time.Second); left != "" {
		fmt.Fprintf(os.Stderr, "goroutines left after every server was closed:\n%s\n", left)
		code = 1
	}
	os.Exit(code)
}

// leftGoroutines waits up to patience for the goroutines running this
// package's code to end, and returns the stacks of those that did not.
func leftGoroutines(patience time.Duration) string {
	deadline := time.Now().Add(patience)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "goiscsi/test/target.(*") && !strings.Contains(g, "leftGoroutines") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func portal(t testing.TB, s *Server, name string) session.Portal {
	t.Helper()
	ps, err := s.Portals(name)
	if err != nil || len(ps) == 0 {
		t.Fatalf("portals of %s: %v %v", name, ps, err)
	}
	return ps[0]
}

// initiator is a minimal initiator for the tests: it logs in with the
// session package and then sends commands and reads what comes back,
// keeping Async Messages and Rejects aside.
type initiator struct {
	t         testing.TB
	conn      net.Conn
	tr        *session.ConnTransport
	res       *session.LoginResult
	itt       uint32
	cmdSN     uint32
	expStatSN uint32
	async     []*pdu.PDU
	rejects   []*pdu.PDU
	// lastAsyncData is the data segment of the message waitAsync returned.
	lastAsyncData []byte
	// timeout bounds each wait for a response.
	timeout time.Duration
	// maxRecv is the target's MaxRecvDataSegmentLength (our send limit).
	maxRecv int
}

type loginOpts struct {
	timeout time.Duration
	isid    pdu.ISID
	auth    session.Auth
	op      *session.Operational
}

func dialLogin(t testing.TB, s *Server, name string, o loginOpts) (*initiator, error) {
	t.Helper()
	p := portal(t, s, name)
	c, err := net.Dial("tcp", p.HostPort())
	if err != nil {
		t.Fatal(err)
	}
	op := session.DefaultOperational()
	if o.op != nil {
		op = *o.op
	}
	if o.isid == (pdu.ISID{}) {
		o.isid = pdu.ISID{0x00, 0x02, 0x3d, 0, 0, 1}
	}
	if o.auth.Method == "" {
		o.auth.Method = session.AuthNone
	}
	tr := session.NewConnTransport(c)
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	res, err := session.Login(ctx, tr, session.LoginConfig{
		InitiatorName: testIniName, TargetName: name, ISID: o.isid, ITT: 1, CmdSN: 1,
		Auth: o.auth, Operational: op,
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	tr.SetFullFeature(res.Params)
	ini := &initiator{t: t, conn: c, tr: tr, res: res, itt: 100, cmdSN: 1, expStatSN: res.StatSN + 1, timeout: 5 * time.Second,
		maxRecv: int(res.Params.MaxXmitDataSegmentLength)}
	if ini.maxRecv == 0 {
		ini.maxRecv = 8192
	}
	t.Cleanup(func() { c.Close() })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	for {
		sess, err := s.WaitSessions(ctx2, name, 1)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(sess, func(si SessionInfo) bool { return si.TSIH == res.TSIH }) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ini, nil
}

func mustLogin(t testing.TB, s *Server, name string, o loginOpts) *initiator {
	t.Helper()
	ini, err := dialLogin(t, s, name, o)
	if err != nil {
		t.Fatalf("login to %s: %v", name, err)
	}
	return ini
}

func (i *initiator) send(m pdu.Message, data []byte) {
	i.t.Helper()
	p := &pdu.PDU{Data: data}
	m.Encode(&p.Header)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := i.tr.Send(ctx, p); err != nil {
		i.t.Fatalf("send %v: %v", p.Header.Opcode(), err)
	}
}

// next returns the next PDU, whatever it is.
func (i *initiator) next(timeout time.Duration) (*pdu.PDU, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := i.tr.Receive(ctx)
	if err != nil {
		return nil, err
	}
	if p.Header.Opcode() != pdu.OpDataIn || p.Header[1]&0x01 != 0 {
		i.expStatSN = binary.BigEndian.Uint32(p.Header[24:28]) + 1
	}
	return p, nil
}

// receive returns the next PDU that is not an Async Message or Reject,
// keeping those aside.
func (i *initiator) receive(timeout time.Duration) (*pdu.PDU, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := i.next(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		switch p.Header.Opcode() {
		case pdu.OpAsyncMessage:
			i.async = append(i.async, p)
		case pdu.OpReject:
			i.rejects = append(i.rejects, p)
		default:
			return p, nil
		}
	}
}

// waitAsync returns the next Async Message.
func (i *initiator) waitAsync(timeout time.Duration) *pdu.AsyncMessage {
	i.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(i.async) == 0 {
		p, err := i.next(time.Until(deadline))
		if err != nil {
			i.t.Fatalf("waiting for an Async Message: %v", err)
		}
		if p.Header.Opcode() != pdu.OpAsyncMessage {
			i.t.Fatalf("waiting for an Async Message, got %v", p.Header.String())
		}
		i.async = append(i.async, p)
	}
	p := i.async[0]
	i.async = i.async[1:]
	var m pdu.AsyncMessage
	if err := m.Decode(&p.Header); err != nil {
		i.t.Fatal(err)
	}
	i.lastAsyncData = p.Data
	return &m
}

// result is what a SCSI command came back with.
type result struct {
	status   uint8
	sense    pdu.Sense
	data     []byte
	resp     pdu.SCSIResponse // when a SCSI Response carried the status
	residual uint32
	under    bool
	over     bool
}

// command runs one SCSI command: data to write (sent as immediate data,
// unsolicited Data-Out and R2T answers as the session allows) or readLen
// bytes expected back.
func (i *initiator) command(lun uint64, cdb []byte, write []byte, readLen int) (*result, error) {
	i.t.Helper()
	i.itt++
	m := pdu.SCSICommand{Final: true, Attr: pdu.AttrSimple, LUN: pdu.NewLUN(lun), ITT: i.itt, CmdSN: i.cmdSN, ExpStatSN: i.expStatSN}
	i.cmdSN++
	copy(m.CDB[:], cdb)
	params := i.res.Params
	var imm []byte
	if write != nil {
		m.Write = true
		m.ExpectedDataTransferLength = uint32(len(write))
		if params.ImmediateData {
			imm = write[:min(len(write), int(params.FirstBurstLength), i.maxRecv)]
		}
		unsol := len(imm)
		if !params.InitialR2T {
			unsol = min(len(write), int(params.FirstBurstLength))
		}
		m.Final = unsol == len(imm)
		i.send(&m, imm)
		for off, sn := len(imm), uint32(0); off < unsol; sn++ {
			n := min(unsol-off, i.maxRecv)
			i.send(&pdu.DataOut{Final: off+n == unsol, LUN: m.LUN, ITT: m.ITT, TTT: pdu.ReservedTag,
				ExpStatSN: i.expStatSN, DataSN: sn, BufferOffset: uint32(off)}, write[off:off+n])
			off += n
		}
	} else {
		m.Read = readLen > 0
		m.ExpectedDataTransferLength = uint32(readLen)
		i.send(&m, nil)
	}
	r := &result{}
	for {
		p, err := i.receive(i.timeout)
		if err != nil {
			return nil, err
		}
		switch p.Header.Opcode() {
		case pdu.OpR2T:
			var r2t pdu.R2T
			r2t.Decode(&p.Header)
			if r2t.ITT != m.ITT {
				return nil, fmt.Errorf("R2T for ITT %x, want %x", r2t.ITT, m.ITT)
			}
			end := int(r2t.BufferOffset + r2t.DesiredDataTransferLength)
			if end > len(write) {
				return nil, fmt.Errorf("R2T asks for %d..%d of %d bytes", r2t.BufferOffset, end, len(write))
			}
			for off, sn := int(r2t.BufferOffset), uint32(0); off < end; sn++ {
				n := min(end-off, i.maxRecv)
				i.send(&pdu.DataOut{Final: off+n == end, LUN: m.LUN, ITT: m.ITT, TTT: r2t.TTT,
					ExpStatSN: i.expStatSN, DataSN: sn, BufferOffset: uint32(off)}, write[off:off+n])
				off += n
			}
		case pdu.OpDataIn:
			var d pdu.DataIn
			d.Decode(&p.Header)
			if d.ITT != m.ITT {
				return nil, fmt.Errorf("Data-In for ITT %x, want %x", d.ITT, m.ITT)
			}
			if int(d.BufferOffset) != len(r.data) {
				return nil, fmt.Errorf("Data-In offset %d, have %d bytes", d.BufferOffset, len(r.data))
			}
			r.data = append(r.data, p.Data...)
			if d.HasStatus {
				r.status, r.residual, r.under, r.over = d.Status, d.Residual, d.Underflow, d.Overflow
				return r, nil
			}
		case pdu.OpSCSIResponse:
			r.resp.Decode(&p.Header)
			if r.resp.ITT != m.ITT {
				return nil, fmt.Errorf("SCSI Response for ITT %x, want %x", r.resp.ITT, m.ITT)
			}
			r.status, r.residual, r.under, r.over = r.resp.Status, r.resp.Residual, r.resp.Underflow, r.resp.Overflow
			if len(p.Data) > 0 {
				sense, _, err := pdu.ParseSenseSegment(p.Data)
				if err != nil {
					return nil, err
				}
				if r.sense, err = pdu.ParseSense(sense); err != nil {
					return nil, err
				}
			}
			return r, nil
		default:
			return nil, fmt.Errorf("unexpected %v while waiting for a SCSI status", p.Header.Opcode())
		}
	}
}

func (i *initiator) mustCommand(lun uint64, cdb []byte, write []byte, readLen int) *result {
	i.t.Helper()
	r, err := i.command(lun, cdb, write, readLen)
	if err != nil {
		i.t.Fatalf("command %x to LUN %d: %v", cdb[0], lun, err)
	}
	return r
}

func cdbRead10(lba uint32, blocks uint16) []byte {
	c := []byte{opRead10, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func cdbWrite10(lba uint32, blocks uint16) []byte {
	c := cdbRead10(lba, blocks)
	c[0] = opWrite10
	return c
}

var (
	cdbTUR        = []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	cdbReportLUNs = []byte{opReportLUNs, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}
)

// reportedLUNs decodes REPORT LUNS data into Linux LUN numbers.
func reportedLUNs(data []byte) []uint64 {
	var out []uint64
	for off := 8; off+8 <= len(data); off += 8 {
		var l pdu.LUN
		copy(l[:], data[off:])
		out = append(out, l.Number())
	}
	return out
}

func dialTCP(p session.Portal) (net.Conn, error) {
	return net.DialTimeout("tcp", p.HostPort(), 5*time.Second)
}
