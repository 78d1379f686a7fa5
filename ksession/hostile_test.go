package ksession_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/pdu"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/test/target"
)

// The hostile target matrix: every fault of test/target's catalogue, injected
// into a target running in a process of its own, against the initiator's two
// login paths (a plain TCP login as discovery does it, and a kernel session
// through the fake kernel) and, for command faults, against a kernel session
// doing I/O. Each case must end in bounded time with a clear error or a clean
// recovery, allocate little, leave no goroutine behind, and leave a healthy
// session to another target of the same target process working.

const (
	hostileIQN  = "iqn.2026-11.dev.goiscsi:hostile"
	hostileCHAP = "iqn.2026-11.dev.goiscsi:hostile-chap"
	hostileMut  = "iqn.2026-11.dev.goiscsi:hostile-mutual"
	healthyIQN  = "iqn.2026-11.dev.goiscsi:healthy"
	chapUser    = "hostile-user"
	chapSecret  = "hostile-secret-1"
	mutUser     = "hostile-target"
	mutSecret   = "hostile-target-secret"
)

// targetProcessEnv names the configuration file a re-executed test binary
// serves as the test target (see TestMain).
const targetProcessEnv = "GOISCSI_TEST_TARGET_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(targetProcessEnv); cfg != "" {
		os.Exit(serveTargetProcess(cfg))
	}
	os.Exit(m.Run())
}

// serveTargetProcess runs the test target of the configuration file at path,
// prints its portals as one JSON line, and serves until stdin closes.
func serveTargetProcess(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := target.LoadConfig(path)
	if err != nil {
		log.Error("configuration", "err", err)
		return 1
	}
	srv, err := target.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer srv.Close()
	if err := srv.ServeControl(cfg.ControlSocket); err != nil {
		log.Error("control socket", "err", err)
		return 1
	}
	portals := map[string]session.Portal{}
	for _, tc := range cfg.Targets {
		ps, err := srv.Portals(tc.Name)
		if err != nil {
			log.Error("portals", "err", err)
			return 1
		}
		portals[tc.Name] = ps[0]
	}
	json.NewEncoder(os.Stdout).Encode(portals)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// targetProcess is a test target in a child process.
type targetProcess struct {
	control string
	portals map[string]session.Portal
	log     string // the child's log file
}

func startTargetProcess(t *testing.T) *targetProcess {
	t.Helper()
	dir := t.TempDir()
	tp := &targetProcess{control: filepath.Join(dir, "control.sock"), log: filepath.Join(dir, "target.log")}
	portal := []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}}
	lun := []target.LUNConfig{{Number: 0, Size: 1 << 20}}
	// DefaultTime2Wait 0 (with the initiator's 0) lets a recovery log in
	// again at once.
	params := map[string]string{"DefaultTime2Wait": "0"}
	cfg := target.Config{ControlSocket: tp.control,
		DiscoveryAuth: target.AuthConfig{Method: "CHAP", Username: chapUser, Secret: chapSecret, MutualUsername: mutUser, MutualSecret: mutSecret},
		Targets: []target.TargetConfig{
			{Name: hostileIQN, PortalGroups: portal, LUNs: lun, Params: params},
			{Name: hostileCHAP, PortalGroups: portal, LUNs: lun, Params: params,
				Auth: target.AuthConfig{Method: "CHAP", Username: chapUser, Secret: chapSecret}},
			{Name: hostileMut, PortalGroups: portal, LUNs: lun, Params: params,
				Auth: target.AuthConfig{Method: "CHAP", Username: chapUser, Secret: chapSecret, MutualUsername: mutUser, MutualSecret: mutSecret}},
			{Name: healthyIQN, PortalGroups: portal, LUNs: lun},
		}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "target.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(tp.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), targetProcessEnv+"="+cfgPath)
	cmd.Stderr = logFile
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &tp.portals) != nil {
		b, _ := os.ReadFile(tp.log)
		t.Fatalf("test target process did not start: %v\n%s", err, b)
	}
	return tp
}

func (tp *targetProcess) do(t *testing.T, op string, args any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := target.Control(ctx, tp.control, op, args, nil); err != nil {
		t.Fatalf("test target %s: %v", op, err)
	}
}

// logRecorder keeps a session's log records as text, for checks that an error
// was logged clearly.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: &sync.Mutex{}, lines: new([]string)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, lines: h.lines, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.lines, "\n")
}

// hostileWant is what one fault must lead to.
type hostileWant struct {
	// Login faults: what the error of a plain login and of a kernel login
	// must match, or succeeds. A discovery (whose target asks for mutual
	// CHAP) must end as the plain login does unless discovery says otherwise.
	plain, kernel, discovery string
	// Command faults: the connection error the kernel reports (0: none, the
	// session must stay up untouched), and what the command's error must
	// match ("" means it completes with GOOD status).
	connError nlink.ConnError
	command   string
	// logged must match a record of the session's log ("" checks nothing).
	logged string
	// count is how many times the fault is injected (0 means once, -1 for
	// ever).
	count int
	// slowPDU marks a fault whose PDU takes long to arrive (16 MiB under
	// the race detector on a loaded machine): the session's NOP-Outs wait 10
	// s, so that their timeout does not end the connection first.
	slowPDU bool
	// stream marks a fault that sends a stream of PDUs: what is allocated
	// grows with their number, so only what stays allocated is bounded.
	stream bool
}

// succeeds is the expected outcome of a login that must work despite the fault.
const succeeds = "(succeeds)"

// hostileWants holds the expected outcome of every fault of the catalogue; a
// fault added to test/target without an entry here fails the matrix.
var hostileWants = map[string]hostileWant{
	"login-bad-version":  {plain: `version 1`, kernel: `version 1`},
	"login-wrong-itt":    {plain: `ITT`, kernel: `ISCSI_ERR_BAD_ITT`},
	"login-wrong-isid":   {plain: `ISID`, kernel: `ISID`},
	"login-wrong-opcode": {plain: `expected a Login Response, got Text Response`, kernel: `expected a Login Response, got Text Response`},
	"login-out-of-order": {plain: `response is for stage LoginOperationalNegotiation, request was in SecurityNegotiation`, kernel: `response is for stage LoginOperationalNegotiation`},
	"login-duplicate-response": {plain: `response is for stage SecurityNegotiation, request was in LoginOperationalNegotiation`, kernel: `response is for stage SecurityNegotiation`,
		discovery: `AuthMethod="CHAP": key renegotiated`},
	"login-t-and-c":        {plain: `both T and C`, kernel: `both T and C`},
	"login-nsg-backwards":  {plain: `moved from`, kernel: `moved from`, discovery: `target transited although the initiator did not ask to`},
	"login-reserved-stage": {plain: `reserved stage 2`, kernel: `reserved stage 2`, discovery: `target transited although the initiator did not ask to`},
	"login-tsih-zero":      {plain: `TSIH`, kernel: `TSIH`},
	"login-huge-text":      {plain: `data segment 65536 bytes exceeds limit 8192`, kernel: `ISCSI_ERR_PROTO`},
	"login-text-no-nul":    {plain: `NUL`, kernel: `NUL`},
	"login-bad-value":      {plain: `MaxRecvDataSegmentLength`, kernel: `MaxRecvDataSegmentLength`},
	// A discovery session wants no digests: it refuses HeaderDigest=Bogus
	// and goes on without, as RFC 7143 §6.2.1 allows.
	"login-unoffered-value":    {plain: `HeaderDigest`, kernel: `HeaderDigest`, discovery: succeeds},
	"login-duplicate-key":      {plain: `DefaultTime2Wait`, kernel: `DefaultTime2Wait`},
	"login-unknown-key":        {plain: succeeds, kernel: succeeds},
	"login-no-response":        {plain: `deadline exceeded`, kernel: `deadline exceeded`},
	"login-endless-continue":   {plain: `64 KiB`, kernel: `64 KiB`},
	"login-never-transit":      {plain: `no full feature phase after 32 login rounds`, kernel: `no full feature phase after 32 login rounds`},
	"login-reject-pdu":         {plain: `got Reject`, kernel: `deadline exceeded`},
	"login-truncated-pdu":      {plain: `stream ended inside the BHS`, kernel: `ISCSI_ERR_TCP_CONN_CLOSE`},
	"login-drop":               {plain: `EOF`, kernel: `ISCSI_ERR_TCP_CONN_CLOSE`},
	"chap-unoffered-algorithm": {plain: `CHAP_A`, kernel: `CHAP_A`},
	"chap-bad-identifier":      {plain: `CHAP_I`, kernel: `CHAP_I`},
	"chap-huge-challenge":      {plain: `CHAP_C`, kernel: `CHAP_C`},
	"chap-empty-challenge":     {plain: `CHAP_C`, kernel: `CHAP_C`},
	"chap-malformed-challenge": {plain: `CHAP_C`, kernel: `CHAP_C`},
	"chap-mutual-bad-response": {plain: `CHAP response is wrong`, kernel: `CHAP response is wrong`},
	"chap-mutual-wrong-name":   {plain: `authenticated as "hostile-target-impostor"`, kernel: `authenticated as "hostile-target-impostor"`},
	"chap-mutual-missing":      {plain: `CHAP_N`, kernel: `CHAP_N`},
	"redirect-loop":            {count: -1, plain: `login redirected: target moved temporarily \(0x0101\) to 127\.0\.0\.1:`, kernel: `redirected 8 times in a row \(a redirect loop\?\)`},
	"redirect-no-address":      {plain: `TargetAddress`, kernel: `TargetAddress`},
	"redirect-bad-address":     {plain: `to \[::1`, kernel: `target address "\[::1": unclosed`},

	"response-wrong-itt":    {connError: nlink.ErrBadITT, command: `ISCSI_ERR_BAD_ITT`},
	"response-duplicate":    {connError: nlink.ErrBadITT},
	"response-none":         {command: `timed out`},
	"response-reject":       {command: `timed out`},
	"bad-data-length":       {connError: nlink.ErrHdrDigest, command: `ISCSI_ERR_HDR_DGST`},
	"unknown-opcode":        {connError: nlink.ErrBadOpcode, command: `ISCSI_ERR_BAD_OPCODE`},
	"truncated-pdu":         {connError: nlink.ErrTCPConnClose, command: `ISCSI_ERR_TCP_CONN_CLOSE`},
	"huge-data-segment":     {connError: nlink.ErrDataLen, command: `ISCSI_ERR_DATALEN`, slowPDU: true},
	"bad-header-digest":     {connError: nlink.ErrHdrDigest, command: `ISCSI_ERR_HDR_DGST`},
	"bad-data-digest":       {connError: nlink.ErrDataDigest, command: `ISCSI_ERR_DATA_DGST`},
	"ahs-garbage":           {connError: nlink.ErrHdrDigest, command: `ISCSI_ERR_HDR_DGST`},
	"statsn-jump":           {},
	"maxcmdsn-invalid":      {},
	"expcmdsn-backwards":    {},
	"sense-length-mismatch": {command: `sense data`},
	"datain-bad-offset":     {connError: nlink.ErrDataOffset, command: `ISCSI_ERR_DATA_OFFSET`},
	"datain-bad-datasn":     {connError: nlink.ErrDataSN, command: `ISCSI_ERR_DATASN`},
	"datain-overflow":       {connError: nlink.ErrDataOffset, command: `ISCSI_ERR_DATA_OFFSET`},
	"datain-no-data":        {},
	"datain-for-write":      {connError: nlink.ErrDataOffset, command: `ISCSI_ERR_DATA_OFFSET`},
	"r2t-for-read":          {connError: nlink.ErrProto, command: `ISCSI_ERR_PROTO`},
	"r2t-bad-offset":        {connError: nlink.ErrDataLen, command: `ISCSI_ERR_DATALEN`},
	"r2t-zero-length":       {connError: nlink.ErrDataLen, command: `ISCSI_ERR_DATALEN`},
	"endless-nop-in":        {stream: true},
	"nop-in-with-data":      {connError: nlink.ErrProto, command: `ISCSI_ERR_PROTO`},
	"async-bad-sense":       {logged: `Async Message with unreadable sense data`},
	"async-huge":            {connError: nlink.ErrProto, command: `ISCSI_ERR_PROTO`},
	"async-unknown-event":   {logged: `Async Message not supported.*event=reserved async event 77`},
	"text-unsolicited":      {connError: nlink.ErrBadITT, command: `ISCSI_ERR_BAD_ITT`},
	"logout-unsolicited":    {connError: nlink.ErrBadITT, command: `ISCSI_ERR_BAD_ITT`},
	"tmf-unsolicited":       {connError: nlink.ErrBadITT, command: `ISCSI_ERR_BAD_ITT`},
	"reset-connection":      {connError: nlink.ErrTCPConnClose, command: `ISCSI_ERR_TCP_CONN_CLOSE`},
}

// Bounds every case must stay within.
const (
	hostileLoginTimeout = 2 * time.Second
	hostileCmdTimeout   = 3 * time.Second
	// hostileRecovery bounds a kernel session's relogin after a connection
	// error (Time2Wait 0, ping timeouts of 1 s).
	hostileRecovery = 5 * time.Second
	// hostileAlloc bounds what one faulty attempt may allocate: a login takes
	// tens of KiB, and the 16 MiB data segment must be refused before it is
	// read.
	hostileAlloc = 4 << 20
)

func TestHostileTargetMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the hostile target matrix takes about half a minute")
	}
	tp := startTargetProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(tp.log)
			t.Logf("test target log (tail):\n%s", tail(string(b), 60))
		}
	})
	k := nlinktest.New()
	defer k.Close()
	kc := k.Conn()
	defer kc.Close()

	// The healthy session: a pattern written now must read back after every
	// case.
	ctx := context.Background()
	healthy, err := ksession.Establish(ctx, kc, hostileNode(tp, healthyIQN), ksession.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Logout(ctx)
	pattern := bytes.Repeat([]byte("healthy session data "), 4096/21+1)[:4096]
	if res, err := k.Command(ctx, healthy.SID, 0, cdb10(0x2a, 0, 8), pattern, 0); err != nil || res.Status != 0 {
		t.Fatalf("write on the healthy session: %+v %v", res, err)
	}
	healthyIO := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), hostileCmdTimeout)
		defer cancel()
		res, err := k.Command(ctx, healthy.SID, 0, cdb10(0x28, 0, 8), nil, len(pattern))
		if err != nil || res.Status != 0 || !bytes.Equal(res.Data, pattern) {
			t.Errorf("the healthy session to another target no longer reads its data back: %+v %v", res, err)
		}
	}
	// Each case runs on a goroutine of its own, on top of what runs now.
	baseline, fds := runtime.NumGoroutine()+1, openFDs(t)

	faults := target.Faults()
	if len(faults) < 30 {
		t.Fatalf("the catalogue has %d faults, the issue asks for at least 30", len(faults))
	}
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			want, ok := hostileWants[f.Name]
			if !ok {
				t.Errorf("fault %s has no expected outcome in hostileWants; add one", f.Name)
			}
			switch f.Scope {
			case "login":
				hostileLogin(t, tp, kc, f.Name, want)
			case "command":
				hostileCommand(t, tp, k, kc, f, want)
			default:
				t.Fatalf("fault %s has scope %q", f.Name, f.Scope)
			}
			healthyIO(t)
			if left := settle(t, baseline, fds); left != "" {
				t.Errorf("goroutines or descriptors left behind (baseline %d and %d):\n%s", baseline, fds, left)
			}
			if sids := k.Sessions(); len(sids) != 1 || sids[0] != healthy.SID {
				t.Errorf("kernel sessions left: %v (want only the healthy %d)", sids, healthy.SID)
			}
		})
	}
}

func hostileNode(tp *targetProcess, name string) ksession.Node {
	p := tp.portals[name]
	to := conf.DefaultTimeouts()
	to.Login = hostileLoginTimeout
	to.NoopInterval, to.NoopTimeout = 1, 1
	n := ksession.Node{Node: conf.Node{
		Target: name, InitiatorName: kIni, Operational: session.DefaultOperational(), Auth: session.Auth{Method: session.AuthNone},
		Address: p.Address, Port: p.Port, TPGT: p.TPGT, Iface: conf.Iface{Name: "default"}, Timeouts: to,
		CmdsMax: 128, QueueDepth: 32,
	}}
	// Digests on, so the digest faults have something to break; Time2Wait 0
	// (the result is the larger wish) for a relogin at once.
	n.Operational.HeaderDigest, n.Operational.DataDigest = "CRC32C", "CRC32C"
	n.Operational.DefaultTime2Wait = 0
	switch name {
	case hostileCHAP:
		n.Auth = session.Auth{Method: session.AuthCHAP, Username: chapUser, Password: chapSecret}
	case hostileMut:
		n.Auth = session.Auth{Method: session.AuthCHAP, Username: chapUser, Password: chapSecret,
			UsernameIn: mutUser, PasswordIn: mutSecret}
	}
	return n
}

// faultTarget is the target a fault needs: CHAP faults a CHAP target, mutual
// ones a mutual CHAP target.
func faultTarget(name string) string {
	switch {
	case strings.HasPrefix(name, "chap-mutual-"):
		return hostileMut
	case strings.HasPrefix(name, "chap-"):
		return hostileCHAP
	}
	return hostileIQN
}

// bounded runs f, failing the test when it takes longer than limit or leaves
// more than hostileAlloc allocated, and returns how much it allocated in all.
func bounded(t *testing.T, what string, limit time.Duration, f func()) (allocated uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(limit + 5*time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s hangs: no return after %v\n%s", what, time.Since(start), buf[:runtime.Stack(buf, true)])
	}
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %v, more than %v", what, d, limit)
	}
	runtime.ReadMemStats(&after)
	allocated = after.TotalAlloc - before.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&after)
	if kept := int64(after.HeapAlloc) - int64(before.HeapAlloc); kept > hostileAlloc {
		t.Errorf("%s left %d KiB allocated, more than %d", what, kept>>10, hostileAlloc>>10)
	}
	return allocated
}

// hostileLogin injects a login fault and logs in both ways: the attempt must
// fail (or succeed) as want says, and a second attempt, with the fault used up,
// must succeed.
func hostileLogin(t *testing.T, tp *targetProcess, kc *nlink.Conn, fault string, want hostileWant) {
	name := faultTarget(fault)
	n := hostileNode(tp, name)
	if want.discovery == "" {
		want.discovery = want.plain
	}
	for _, path := range []struct {
		name   string
		target string // where the fault goes: "" for discovery sessions
		want   string
		login  func(ctx context.Context) error
	}{
		{"plain", name, want.plain, func(ctx context.Context) error { return plainLogin(ctx, n) }},
		{"discovery", "", want.discovery, func(ctx context.Context) error {
			targets, err := session.Discover(ctx, tp.portals[hostileIQN], session.DiscoveryConfig{InitiatorName: kIni,
				Auth: session.Auth{Method: session.AuthCHAP, Username: chapUser, Password: chapSecret, UsernameIn: mutUser, PasswordIn: mutSecret}})
			if err == nil && len(targets) != 4 {
				err = fmt.Errorf("discovery found %d targets, want 4", len(targets))
			}
			return err
		}},
		{"kernel", name, want.kernel, func(ctx context.Context) error {
			s, err := ksession.Establish(ctx, kc, n, ksession.Hooks{}, nil)
			if err == nil {
				err = s.Logout(ctx)
			}
			return err
		}},
	} {
		tp.do(t, "fault", target.FaultArgs{Target: path.target, Name: fault, Count: want.count})
		var err error
		alloc := bounded(t, path.name+" login", hostileLoginTimeout+time.Second, func() {
			ctx, cancel := context.WithTimeout(context.Background(), hostileLoginTimeout)
			defer cancel()
			err = path.login(ctx)
		})
		switch {
		case path.want == "":
			t.Errorf("no expected outcome of the %s login", path.name)
		case path.want == succeeds && err != nil:
			t.Errorf("%s login: %v, want success", path.name, err)
		case path.want == succeeds:
		case err == nil:
			t.Errorf("%s login succeeded, want an error matching %q", path.name, path.want)
		case !regexp.MustCompile(path.want).MatchString(err.Error()):
			t.Errorf("%s login: %q does not say %q", path.name, err, path.want)
		default:
			t.Logf("%s login: %v (%d KiB allocated)", path.name, err, alloc>>10)
		}
		if alloc > hostileAlloc {
			t.Errorf("%s login allocated %d KiB, more than %d", path.name, alloc>>10, hostileAlloc>>10)
		}
		tp.do(t, "clear-faults", target.TargetArgs{Target: path.target})
		ctx, cancel := context.WithTimeout(context.Background(), hostileLoginTimeout)
		if err := path.login(ctx); err != nil {
			t.Errorf("%s login after the fault: %v", path.name, err)
		}
		cancel()
	}
}

// plainLogin logs in and out on a TCP connection of its own, as discovery
// does.
func plainLogin(ctx context.Context, n ksession.Node) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", n.Address, n.Port))
	if err != nil {
		return err
	}
	defer c.Close()
	cfg := n.LoginConfig()
	cfg.ISID, cfg.ITT, cfg.CmdSN = pdu.ISID{0x00, 0x02, 0x3d, 0, 0, 0x77}, 1, 1
	tr := session.NewConnTransport(c)
	res, err := session.Login(ctx, tr, cfg)
	if err != nil {
		return err
	}
	tr.SetFullFeature(res.Params)
	return session.Logout(ctx, tr, 2, cfg.CmdSN, res.StatSN+1)
}

// hostileCommand injects a command fault into a fresh kernel session's next
// command: the command ends as want says, the kernel's connection error (if
// any) is recovered from with a relogin, and the session does I/O again.
func hostileCommand(t *testing.T, tp *targetProcess, k *nlinktest.Kernel, kc *nlink.Conn, f target.FaultInfo, want hostileWant) {
	rec := newLogRecorder()
	recovered := make(chan int, 4)
	failed := make(chan error, 1)
	hooks := ksession.Hooks{
		Recovered: func(_ *ksession.Session, attempts int) { recovered <- attempts },
		Failed:    func(_ *ksession.Session, err error) { failed <- err },
	}
	ctx := context.Background()
	n := hostileNode(tp, hostileIQN)
	if want.slowPDU {
		n.Timeouts.NoopInterval, n.Timeouts.NoopTimeout = 10, 10
	}
	s, err := ksession.Establish(ctx, kc, n, hooks, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Logout(ctx); err != nil {
			t.Errorf("logout: %v", err)
		}
	}()
	tp.do(t, "fault", target.FaultArgs{Target: hostileIQN, Name: f.Name})
	defer tp.do(t, "clear-faults", target.TargetArgs{Target: hostileIQN})

	var res *nlinktest.Result
	alloc := bounded(t, "command", hostileCmdTimeout+time.Second, func() {
		ctx, cancel := context.WithTimeout(ctx, hostileCmdTimeout)
		defer cancel()
		res, err = faultCommand(ctx, k, s.SID, f.Waits)
	})
	switch {
	case want.command == "" && (err != nil || res.Status != 0):
		t.Errorf("command: %+v %v, want GOOD", res, err)
	case want.command != "" && err == nil:
		t.Errorf("command: %+v, want an error matching %q", res, want.command)
	case want.command != "" && !regexp.MustCompile(want.command).MatchString(err.Error()):
		t.Errorf("command: %q does not say %q", err, want.command)
	default:
		t.Logf("command: %v (%d KiB allocated)", err, alloc>>10)
	}
	if alloc > hostileAlloc && !want.stream {
		t.Errorf("command allocated %d KiB, more than %d", alloc>>10, hostileAlloc>>10)
	}
	if want.connError != 0 {
		start := time.Now()
		select {
		case attempts := <-recovered:
			t.Logf("recovered in %v (%d attempts)", time.Since(start).Round(time.Millisecond), attempts)
		case err := <-failed:
			t.Fatalf("recovery gave up: %v", err)
		case <-time.After(hostileRecovery):
			t.Fatalf("no recovery within %v; state %s; log:\n%s", hostileRecovery, s.State(), rec.text())
		}
		if !strings.Contains(rec.text(), "error="+want.connError.String()) {
			t.Errorf("the log does not name %v:\n%s", want.connError, rec.text())
		}
	}
	if want.logged != "" {
		// The session logs what it got from its event loop.
		deadline := time.Now().Add(hostileRecovery)
		for !regexp.MustCompile(want.logged).MatchString(rec.text()) {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say %q:\n%s", want.logged, rec.text())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if s.State() != ksession.LoggedIn {
		t.Fatalf("session state %s after the fault", s.State())
	}
	cctx, cancel := context.WithTimeout(ctx, hostileCmdTimeout)
	defer cancel()
	if res, err := k.Command(cctx, s.SID, 0, cdb10(0x28, 0, 8), nil, 4096); err != nil || res.Status != 0 {
		t.Errorf("I/O after the fault: %+v %v", res, err)
	}
	if want.connError == 0 {
		// That command's answer came on the connection after all the
		// target sent for the fault, and the kernel reads a connection in
		// order: a connection error the fault caused came first, and
		// failed the command or had the session bind a new connection
		// before it was sent.
		binds := 0
		for _, r := range k.Requests() {
			if r.Type == nlink.BindConn && r.SID == s.SID {
				binds++
			}
		}
		if binds != 1 || strings.Contains(rec.text(), "connection error") {
			t.Errorf("connection error where none was expected (%d connections bound):\n%s", binds, rec.text())
		}
	}
}

// faultCommand runs the command a fault waits for: a 4 KiB read, or a 128 KiB
// write (past FirstBurstLength, so that it needs an R2T).
func faultCommand(ctx context.Context, k *nlinktest.Kernel, sid uint32, waits string) (*nlinktest.Result, error) {
	if waits == "a write" {
		return k.Command(ctx, sid, 0, cdb10(0x2a, 64, 256), make([]byte, 128<<10), 0)
	}
	return k.Command(ctx, sid, 0, cdb10(0x28, 0, 8), nil, 4096)
}

func cdb10(op byte, lba uint32, blocks uint16) []byte {
	c := []byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

// settle waits up to two seconds for the goroutines and open descriptors to
// come back to their baseline, and describes what is left when they do not.
func settle(t *testing.T, goroutines, fds int) string {
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines || openFDs(t) > fds {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			return fmt.Sprintf("%d goroutines, %d descriptors\n%s", runtime.NumGoroutine(), openFDs(t), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
