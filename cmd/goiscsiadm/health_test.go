package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/health"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
)

// healthDaemon answers like goiscsid with two sessions, 3 healthy and 4 not.
type healthDaemon struct{ old bool } // old: a goiscsid without OpHealth

func (h *healthDaemon) ServeMgmt(_ context.Context, req *mgmt.Request) *mgmt.Response {
	sess := func(sid int, addr string) mgmt.Session {
		return mgmt.Session{SID: sid, HostNo: sid + 1, TargetName: runIQN, TPGT: 1, Address: addr, Port: 3260,
			PersistentAddress: addr, PersistentPort: 3260, Iface: "default", Transport: "tcp"}
	}
	snap := func(sid int, portal string, problems ...string) health.Snapshot {
		return health.Snapshot{PathID: health.PathID{Target: runIQN, Portal: portal, Iface: "default", SID: uint32(sid)},
			Verdict: health.Verdict{Healthy: len(problems) == 0, Problems: problems},
			TCP:     &health.TCPReport{State: "ESTABLISHED", CAState: "Open", TotalRetrans: 7},
			Totals:  health.Totals{RetransmittedSegments: 7}}
	}
	snaps := map[int]health.Snapshot{
		3: snap(3, "127.0.0.1:3260,1"),
		4: snap(4, "127.0.0.2:3260,1", "3.2% of segments retransmitted over the last 5 minutes (960 of 30000)", "2 recoveries in the last hour"),
	}
	switch req.Op {
	case mgmt.OpSessions:
		return &mgmt.Response{Sessions: []mgmt.Session{sess(3, "127.0.0.1"), sess(4, "127.0.0.2")}}
	case mgmt.OpStats:
		return &mgmt.Response{Stats: &mgmt.Stats{TxDataOctets: 512, RxDataOctets: 4096, Counters: map[string]uint64{"scsicmd_pdus": 9}}}
	case mgmt.OpHealth:
		if h.old {
			break
		}
		if req.SID == 0 {
			return &mgmt.Response{Health: []health.Snapshot{snaps[3], snaps[4]}}
		}
		s, ok := snaps[req.SID]
		if !ok {
			return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", req.SID)}
		}
		return &mgmt.Response{Health: []health.Snapshot{s}}
	}
	return &mgmt.Response{Error: iscsierr.Errorf(iscsierr.InvalidMgmtReq, "unknown request %q", req.Op)}
}

func serveHealth(t *testing.T, h *healthDaemon) {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "initiatorname.iscsi"), []byte("InitiatorName=iqn.2026-11.dev.goiscsi:me\n"), 0o600)
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", t.TempDir())
	sock := filepath.Join(t.TempDir(), "d.sock")
	t.Setenv("GOISCSI_SOCKET", sock)
	ln, err := mgmt.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	me := uint32(os.Geteuid())
	srv := &mgmt.Server{Handler: h, Logger: slog.New(slog.DiscardHandler), Authorize: func(uid uint32) bool { return uid == me }}
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// stockStats3 is what stock prints for session 3 with the fake's counters.
const stockStats3 = "Stats for session [sid: 3, target: " + runIQN + ", portal: 127.0.0.1,3260]\n" +
	"iSCSI SNMP:\n\ttxdata_octets: 512\n\trxdata_octets: 4096\n\tnoptx_pdus: 0\n\tscsicmd_pdus: 9\n\ttmfcmd_pdus: 0\n" +
	"\tlogin_pdus: 0\n\ttext_pdus: 0\n\tdataout_pdus: 0\n\tlogout_pdus: 0\n\tsnack_pdus: 0\n\tnoprx_pdus: 0\n" +
	"\tscsirsp_pdus: 0\n\ttmfrsp_pdus: 0\n\ttextrsp_pdus: 0\n\tdatain_pdus: 0\n\tlogoutrsp_pdus: 0\n\tr2t_pdus: 0\n" +
	"\tasync_pdus: 0\n\trjt_pdus: 0\n\tdigest_err: 0\n\ttimeout_err: 0\n"

func TestHealthCommands(t *testing.T) {
	serveHealth(t, &healthDaemon{})
	for _, tc := range []struct {
		args   []string
		code   iscsierr.Code
		stdout string // exact; or, with a trailing "…", the start
		stderr string
	}{
		{[]string{"-m", "session", "--health"}, iscsierr.Trans,
			"[sid: 3, target: " + runIQN + ", portal: 127.0.0.1:3260,1, iface: default]: OK\n" +
				"[sid: 4, target: " + runIQN + ", portal: 127.0.0.2:3260,1, iface: default]: UNHEALTHY\n" +
				"\t3.2% of segments retransmitted over the last 5 minutes (960 of 30000)\n\t2 recoveries in the last hour\n",
			"iscsiadm: 1 of 2 paths unhealthy\n"},
		{[]string{"-m", "session", "-r", "3", "--health"}, 0,
			"[sid: 3, target: " + runIQN + ", portal: 127.0.0.1:3260,1, iface: default]: OK\n", ""},
		{[]string{"-m", "session", "--health", "-r", "4"}, iscsierr.Trans, "[sid: 4, target: " + runIQN + ", portal: 127.0.0.2:3260,1, iface: default]: UNHEALTHY\n…", "iscsiadm: 1 of 1 path unhealthy\n"},
		{[]string{"-m", "session", "-r", "9", "--health"}, iscsierr.SysfsLookup, "", "iscsiadm: could not read session targetname: 5\niscsiadm: Could not get session info for sid 9\n"},
		// Stock's lines unchanged, goiscsid's after them.
		{[]string{"-m", "session", "-r", "3", "-s"}, 0, stockStats3 + "goiscsi Path Health:\n\tPath: target " + runIQN + " portal 127.0.0.1:3260,1 iface default sid 3\n\t\tHealth: OK\n…", ""},
		{[]string{"-m", "node", "--health"}, iscsierr.Inval, "", "iscsiadm: node mode: option '--health' is not allowed/supported\n"},
		{[]string{"-m", "session", "--health", "-s"}, iscsierr.Inval, "", "iscsiadm: --health takes only -r sessionid and --json\n"},
		{[]string{"-m", "session", "--health", "-P", "1"}, iscsierr.Inval, "", "iscsiadm: --health takes only -r sessionid and --json\n"},
	} {
		x := adm(t, tc.args...)
		okOut := x.Stdout == tc.stdout
		if prefix, ok := strings.CutSuffix(tc.stdout, "…"); ok {
			okOut = strings.HasPrefix(x.Stdout, prefix)
		}
		if x.Code != tc.code || !okOut || x.Stderr != tc.stderr {
			t.Errorf("%q: exit %d, stdout\n%s\nstderr %q; want exit %d, stdout\n%s\nstderr %q", tc.args, x.Code, x.Stdout, x.Stderr, tc.code, tc.stdout, tc.stderr)
		}
	}

	x := adm(t, "-m", "session", "--health", "--json")
	var got struct{ Health []health.Snapshot }
	if err := json.Unmarshal([]byte(x.Stdout), &got); err != nil || x.Code != iscsierr.Trans || len(got.Health) != 2 ||
		got.Health[1].Verdict.Healthy || got.Health[1].SID != 4 || got.Health[0].TCP.TotalRetrans != 7 {
		t.Errorf("--health --json: exit %d, %v, %+v", x.Code, err, got)
	}
	x = adm(t, "-m", "session", "-s", "--json")
	var st struct {
		Stats []struct {
			SID      int               `json:"sid"`
			Counters map[string]uint64 `json:"counters"`
			Health   *health.Snapshot  `json:"health"`
		}
	}
	if err := json.Unmarshal([]byte(x.Stdout), &st); err != nil || x.Code != 0 || len(st.Stats) != 2 || st.Stats[0].Counters["scsicmd_pdus"] != 9 ||
		st.Stats[1].Health == nil || st.Stats[1].Health.Verdict.Healthy {
		t.Errorf("-s --json: exit %d, %v, %+v\n%s", x.Code, err, st, x.Stdout)
	}
}

// A goiscsid without health: -s prints stock's lines alone, --health says
// the daemon does not know the request.
func TestHealthWithOldDaemon(t *testing.T) {
	serveHealth(t, &healthDaemon{old: true})
	if x := adm(t, "-m", "session", "-r", "3", "-s"); x.Code != 0 || x.Stdout != stockStats3 {
		t.Errorf("-s: exit %d, stdout %q", x.Code, x.Stdout)
	}
	if x := adm(t, "-m", "session", "--health"); x.Code != iscsierr.InvalidMgmtReq || !strings.Contains(x.Stderr, "unknown request") {
		t.Errorf("--health: exit %d, stderr %q", x.Code, x.Stderr)
	}
}
