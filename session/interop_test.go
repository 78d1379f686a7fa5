package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// The interop tests log in to Debian's tgtd, a target nobody here wrote, on
// 127.0.0.1. They need root (tgtd's control socket and backing files); they
// install tgt and libiscsi-bin when missing.

type tgtd struct {
	t       *testing.T
	control string
	port    int
}

func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	out, err := exec.Command("apt-get", "install", "-y", "-qq", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("%s is missing and installing %s failed: %v\n%s", tool, pkg, err, out)
	}
}

func startTGT(t *testing.T) *tgtd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interop with tgtd needs root (tgtd's control socket); run the tests as root")
	}
	needTool(t, "tgtd", "tgt")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	g := &tgtd{t: t, control: strconv.Itoa(20000 + os.Getpid()%10000), port: port}
	cmd := exec.Command("tgtd", "-f", "-C", g.control, "--iscsi", fmt.Sprintf("portal=127.0.0.1:%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tgtd: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("tgtd log:\n%s", log.String())
		}
	})
	for i := 0; ; i++ {
		if exec.Command("tgtadm", "-C", g.control, "--lld", "iscsi", "--op", "show", "--mode", "target").Run() == nil {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				break
			}
		}
		if i > 100 {
			t.Fatalf("tgtd did not come up:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return g
}

func (g *tgtd) adm(args ...string) {
	g.t.Helper()
	out, err := exec.Command("tgtadm", append([]string{"-C", g.control, "--lld", "iscsi"}, args...)...).CombinedOutput()
	if err != nil {
		g.t.Fatalf("tgtadm %v: %v\n%s", args, err, out)
	}
}

// addTarget creates a target with one 16 MiB disk LUN 1 and params set.
func (g *tgtd) addTarget(tid int, iqn string, params ...string) {
	g.t.Helper()
	id := strconv.Itoa(tid)
	g.adm("--op", "new", "--mode", "target", "--tid", id, "-T", iqn)
	img := fmt.Sprintf("%s/lun%d.img", g.t.TempDir(), tid)
	if err := os.WriteFile(img, make([]byte, 16<<20), 0o600); err != nil {
		g.t.Fatal(err)
	}
	g.adm("--op", "new", "--mode", "logicalunit", "--tid", id, "--lun", "1", "-b", img)
	g.adm("--op", "bind", "--mode", "target", "--tid", id, "-I", "ALL")
	for i := 0; i < len(params); i += 2 {
		g.adm("--op", "update", "--mode", "target", "--tid", id, "-n", params[i], "-v", params[i+1])
	}
}

func (g *tgtd) portal() Portal { return Portal{Address: "127.0.0.1", Port: g.port, TPGT: 1} }

const (
	iniName = "iqn.2026-11.dev.goiscsi:interop"
	tgtNone = "iqn.2026-11.dev.goiscsi:none"
	tgtTune = "iqn.2026-11.dev.goiscsi:tuned"
	tgtCHAP = "iqn.2026-11.dev.goiscsi:chap"
	tgtMut  = "iqn.2026-11.dev.goiscsi:mutual"
)

func TestInteropTGT(t *testing.T) {
	g := startTGT(t)
	g.addTarget(1, tgtNone)
	g.addTarget(2, tgtTune, "MaxRecvDataSegmentLength", "65536", "MaxBurstLength", "131072",
		"FirstBurstLength", "32768", "ImmediateData", "No", "HeaderDigest", "CRC32C", "DataDigest", "CRC32C")
	g.addTarget(3, tgtCHAP)
	g.addTarget(4, tgtMut)
	g.adm("--op", "new", "--mode", "account", "--user", "alice", "--password", "alice-secret-1")
	g.adm("--op", "bind", "--mode", "account", "--tid", "3", "--user", "alice")
	g.adm("--op", "bind", "--mode", "account", "--tid", "4", "--user", "alice")
	g.adm("--op", "new", "--mode", "account", "--user", "tgtuser", "--password", "target-secret-2")
	g.adm("--op", "bind", "--mode", "account", "--tid", "4", "--user", "tgtuser", "--outgoing")

	t.Run("discovery", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := Discover(ctx, g.portal(), DiscoveryConfig{InitiatorName: iniName})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range got {
			names = append(names, d.Name)
			if len(d.Portals) != 1 || d.Portals[0] != g.portal() {
				t.Errorf("%s portals %v, want [%v]", d.Name, d.Portals, g.portal())
			}
		}
		want := []string{tgtCHAP, tgtMut, tgtNone, tgtTune}
		sort.Strings(names)
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("discovered %v, want %v", names, want)
		}
		// libiscsi's iscsi-ls, an independent initiator, sees the same.
		needTool(t, "iscsi-ls", "libiscsi-bin")
		out, err := exec.CommandContext(ctx, "iscsi-ls", "-i", iniName, fmt.Sprintf("iscsi://127.0.0.1:%d/", g.port)).CombinedOutput()
		if err != nil {
			t.Fatalf("iscsi-ls: %v\n%s", err, out)
		}
		var theirs []string
		for _, m := range regexp.MustCompile(`Target:(\S+) Portal:`).FindAllStringSubmatch(string(out), -1) {
			theirs = append(theirs, m[1])
		}
		sort.Strings(theirs)
		if strings.Join(theirs, " ") != strings.Join(want, " ") {
			t.Errorf("iscsi-ls found %v, we found %v", theirs, names)
		}
	})

	t.Run("login without authentication", func(t *testing.T) {
		res := loginAndInquire(t, g, tgtNone, Auth{Method: AuthNone}, DefaultOperational())
		// tgtd's defaults, combined with ours by the RFC result functions.
		p := res.Params
		if p.MaxBurstLength != 262144 || p.FirstBurstLength != 65536 || !p.InitialR2T || !p.ImmediateData ||
			p.MaxXmitDataSegmentLength != 8192 || p.TargetPortalGroupTag != 1 || p.HeaderDigest {
			t.Errorf("negotiated %+v", p)
		}
	})

	t.Run("negotiated values follow the target's settings", func(t *testing.T) {
		o := DefaultOperational()
		o.HeaderDigest, o.DataDigest = "CRC32C,None", "CRC32C,None"
		res := loginAndInquire(t, g, tgtTune, Auth{Method: AuthNone}, o)
		p := res.Params
		want := Params{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 262144,
			MaxXmitDataSegmentLength: 65536, MaxBurstLength: 131072, FirstBurstLength: 32768,
			InitialR2T: true, ImmediateData: false, MaxOutstandingR2T: 1, DataPDUInOrder: true,
			DataSequenceInOrder: true, DefaultTime2Wait: 2, DefaultTime2Retain: 0, MaxConnections: 1,
			TargetPortalGroupTag: 1}
		if p != want {
			t.Errorf("negotiated\n %+v\nwant\n %+v", p, want)
		}
	})

	t.Run("CHAP", func(t *testing.T) {
		// tgt 1.0.85 does MD5 only: it fails a login offering SHA1 alone with
		// 0x0200 instead of CHAP_A=Reject, and picks SHA-256 but decodes the
		// response into a 20-byte buffer. The scripted-target tests cover all
		// four algorithms; the next subtest covers the fallback.
		for _, alg := range []CHAPAlgorithm{CHAPMD5} {
			loginAndInquire(t, g, tgtCHAP, Auth{Method: AuthCHAP, Username: "alice", Password: "alice-secret-1",
				Algorithms: []CHAPAlgorithm{alg}}, DefaultOperational())
		}
	})

	t.Run("CHAP with the default algorithms falls back to MD5", func(t *testing.T) {
		auth := Auth{Method: AuthCHAP, Username: "alice", Password: "alice-secret-1"}
		_, _, err := tgtLogin(t, g, tgtCHAP, auth, DefaultOperational())
		if !errors.Is(err, ErrCHAPAlgorithms) {
			t.Fatalf("first attempt: %v, want ErrCHAPAlgorithms (tgt mishandles SHA-256)", err)
		}
		loginAndInquire(t, g, tgtCHAP, LoginConfig{Auth: auth}.MD5Only().Auth, DefaultOperational())
	})

	t.Run("mutual CHAP", func(t *testing.T) {
		loginAndInquire(t, g, tgtMut, Auth{Method: AuthCHAP, Username: "alice", Password: "alice-secret-1",
			UsernameIn: "tgtuser", PasswordIn: "target-secret-2", Algorithms: []CHAPAlgorithm{CHAPMD5}}, DefaultOperational())
	})

	t.Run("wrong secret", func(t *testing.T) {
		_, _, err := tgtLogin(t, g, tgtCHAP, Auth{Method: AuthCHAP, Username: "alice", Password: "not-the-secret",
			Algorithms: []CHAPAlgorithm{CHAPMD5}}, DefaultOperational())
		var le *LoginError
		if !errors.As(err, &le) || !le.AuthFailure() {
			t.Fatalf("got %v, want an authentication failure", err)
		}
	})

	t.Run("wrong target secret in mutual CHAP", func(t *testing.T) {
		_, _, err := tgtLogin(t, g, tgtMut, Auth{Method: AuthCHAP, Username: "alice", Password: "alice-secret-1",
			UsernameIn: "tgtuser", PasswordIn: "not-the-target-secret", Algorithms: []CHAPAlgorithm{CHAPMD5}}, DefaultOperational())
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v, want a target authentication failure", err)
		}
	})

	t.Run("no credentials for a CHAP target", func(t *testing.T) {
		_, _, err := tgtLogin(t, g, tgtCHAP, Auth{Method: AuthNone}, DefaultOperational())
		var le *LoginError
		if !errors.As(err, &le) || !le.AuthFailure() {
			t.Fatalf("got %v, want an authentication failure", err)
		}
	})

	t.Run("unknown target", func(t *testing.T) {
		_, _, err := tgtLogin(t, g, "iqn.2026-11.dev.goiscsi:nosuch", Auth{Method: AuthNone}, DefaultOperational())
		var le *LoginError
		if !errors.As(err, &le) || le.Status.Class != pdu.StatusInitiatorError {
			t.Fatalf("got %v, want an initiator-error status", err)
		}
	})
}

func tgtLogin(t *testing.T, g *tgtd, target string, auth Auth, o Operational) (*ConnTransport, *LoginResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := net.Dial("tcp", g.portal().HostPort())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tr := NewConnTransport(c)
	res, err := Login(ctx, tr, LoginConfig{
		InitiatorName: iniName, TargetName: target, ISID: pdu.ISID{0x00, 0x02, 0x3d, 0, 0, 7},
		ITT: 1, CmdSN: 1, Auth: auth, Operational: o,
	})
	return tr, res, err
}

// loginAndInquire logs in, then proves the full feature phase works by sending
// INQUIRY to LUN 1 (with whatever digests were negotiated) and logging out.
func loginAndInquire(t *testing.T, g *tgtd, target string, auth Auth, o Operational) *LoginResult {
	t.Helper()
	tr, res, err := tgtLogin(t, g, target, auth, o)
	if err != nil {
		t.Fatalf("login to %s: %v", target, err)
	}
	tr.SetFullFeature(res.Params)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmdSN, expStatSN := uint32(1), res.StatSN+1
	cmd := pdu.SCSICommand{Final: true, Read: true, Attr: pdu.AttrSimple, LUN: pdu.NewLUN(1), ITT: 2,
		ExpectedDataTransferLength: 96, CmdSN: cmdSN, ExpStatSN: expStatSN,
		CDB: [16]byte{0x12, 0, 0, 0, 96, 0}}
	p := &pdu.PDU{}
	cmd.Encode(&p.Header)
	if err := tr.Send(ctx, p); err != nil {
		t.Fatal(err)
	}
	var inquiry []byte
	for done := false; !done; {
		in, err := tr.Receive(ctx)
		if err != nil {
			t.Fatalf("INQUIRY: %v", err)
		}
		m, err := in.Decode()
		if err != nil {
			t.Fatal(err)
		}
		switch r := m.(type) {
		case *pdu.DataIn:
			inquiry = append(inquiry, in.Data...)
			if r.HasStatus {
				if r.Status != 0 {
					t.Fatalf("INQUIRY status 0x%02x", r.Status)
				}
				expStatSN, done = r.StatSN+1, true
			}
		case *pdu.SCSIResponse:
			if r.Status != 0 {
				t.Fatalf("INQUIRY status 0x%02x", r.Status)
			}
			expStatSN, done = r.StatSN+1, true
		default:
			t.Fatalf("unexpected %v", in.Header.Opcode())
		}
	}
	if len(inquiry) < 36 || inquiry[0]&0x1f != 0 || !bytes.HasPrefix(inquiry[8:], []byte("IET")) {
		t.Fatalf("INQUIRY data %q is not tgt's disk", inquiry)
	}
	if err := Logout(ctx, tr, 3, cmdSN+1, expStatSN); err != nil {
		t.Fatalf("logout: %v", err)
	}
	return res
}
