package ksession_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/test/target"
	"golang.org/x/sys/unix"
)

// localPort is the local TCP port of the session's socket, read through
// WithSocket.
func localPort(t *testing.T, s *ksession.Session) int {
	t.Helper()
	var port int
	err := s.WithSocket(func(fd int) error {
		if _, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		port = sa.(*unix.SockaddrInet4).Port
		return nil
	})
	if err != nil {
		t.Fatalf("WithSocket: %v", err)
	}
	return port
}

// The hooks a daemon needs for per-path health see a broken connection's
// whole story in order, WithSocket hands out the socket of the connection in
// use (the new one after a relogin, none after a logout), and Ping times a
// NOP-Out the target answers.
func TestHooksReportRecoveryAndWithSocketFollowsRelogin(t *testing.T) {
	iqn := "iqn.2026-12.dev.goiscsi:hooks"
	srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{Name: iqn,
		PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
		LUNs:         []target.LUNConfig{{Number: 0, Size: 1 << 20}},
		Params:       map[string]string{"DefaultTime2Wait": "0"}}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ps, _ := srv.Portals(iqn)
	k := nlinktest.New()
	defer k.Close()
	events := make(chan string, 32)
	hooks := ksession.Hooks{
		ConnError:    func(_ *ksession.Session, e nlink.ConnError) { events <- "conn-error " + e.String() },
		Recovering:   func(_ *ksession.Session, cause string) { events <- "recovering " + cause },
		StateChanged: func(_ *ksession.Session, st ksession.State) { events <- "state " + st.String() },
		Relogin: func(_ *ksession.Session, took time.Duration, err error) {
			if took <= 0 || took > 5*time.Second {
				events <- "relogin took " + took.String()
				return
			}
			events <- "relogin " + errString(err)
		},
		Recovered: func(*ksession.Session, int) { events <- "recovered" },
	}
	n := node(t, iqn, ps[0])
	n.Operational.DefaultTime2Wait = 0
	ctx := context.Background()
	s, err := ksession.Establish(ctx, k.Conn(), n, hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := localPort(t, s)
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	rtt, err := s.Ping(pctx)
	pcancel()
	if err != nil || rtt <= 0 || rtt > 5*time.Second {
		t.Errorf("Ping: %v, %v", rtt, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := srv.WaitSessions(wctx, iqn, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := srv.DropConnections(iqn, 0, 0); err != nil || n != 1 {
		t.Fatalf("target dropped %d connections (%v), want 1", n, err)
	}
	var got []string
	timeout := time.After(15 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "recovered" {
		select {
		case e := <-events:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("no recovery; events %q", got)
		}
	}
	want := []string{"conn-error ", "recovering ", "state REOPEN", "relogin ok", "state LOGGED_IN", "recovered"}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d is %q, want %q…", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[1], "ISCSI_ERR") || strings.TrimPrefix(got[0], "conn-error ") != strings.TrimPrefix(got[1], "recovering ") {
		t.Errorf("the recovery's cause %q is not the connection error %q", got[1], got[0])
	}
	if after := localPort(t, s); after == before {
		t.Errorf("WithSocket gave the same local port %d after a relogin: still the old socket?", after)
	}
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WithSocket(func(int) error { return nil }); !errors.Is(err, ksession.ErrNoSocket) {
		t.Errorf("WithSocket after logout: %v, want ErrNoSocket", err)
	}
	if _, err := s.Ping(ctx); err == nil {
		t.Error("Ping after logout succeeded")
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
