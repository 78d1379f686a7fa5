package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/isns/isnstest"
)

// With an iSNS discovery record saying use_discoveryd = Yes, the daemon
// registers with the server, writes the record of the target the server
// names, logs in to it (node.startup = automatic in iscsid.conf), logs out
// when the server reports it gone, keeps the record, and deregisters when it
// stops.
func TestFollowISNS(t *testing.T) {
	f, logs, s, db := isnsFixture(t, "node.startup = automatic\nnode.conn[0].timeo.login_timeout = 5\n")
	root := db.Root
	// A record without use_discoveryd is not followed.
	if err := db.SaveDiscovery(conf.NewISNSDiscoveryRecord(nil, "127.0.0.1", 1)); err != nil {
		t.Fatal(err)
	}
	f.d.cfg, _ = conf.LoadConfig(filepath.Join(root, "iscsid.conf"))
	stop := f.d.followISNS(context.Background(), db, testIni)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	waitUntil(t, "registration", func() bool { return s.SCNBitmap(testIni) != 0 })
	tp := netip.MustParseAddrPort(f.rec["node.conn[0].address"] + ":" + f.rec["node.conn[0].port"])
	if err := s.AddTarget(testIQN, "", tp); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a session to the target the SCN named", func() bool { return len(f.kernel.Sessions()) == 1 })
	recs, _ := db.FindNodes(testIQN, "", 0, "")
	if len(recs) != 1 || recs[0].Get("node.discovery_type") != "isns" || s.Addr() != net.JoinHostPort(recs[0].Get("node.discovery_address"), recs[0].Get("node.discovery_port")) {
		t.Fatalf("records: %v", recs)
	}
	if err := s.RemoveTarget(testIQN); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the logout", func() bool { return len(f.kernel.Sessions()) == 0 })
	if recs, _ := db.FindNodes(testIQN, "", 0, ""); len(recs) != 1 {
		t.Errorf("the record went with the target: %v", recs)
	}
	stop()
	stopped = true
	if s.Registered(testIni) {
		t.Error("still registered after the daemon stopped following")
	}
	for _, want := range []string{"following the server", "iSNS: registered", "event=added", "iSNS: logged in", "event=removed",
		"iSNS: logged out", "iSNS: deregistered"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "127.0.0.1:1") {
		t.Errorf("a record without use_discoveryd was followed:\n%s", logs.String())
	}
}

// A target an SCN names whose record says node.startup = manual (or onboot,
// which is for the initramfs) gets its record and no login: node.startup
// decides, as the issue asks, not the SCN.
func TestFollowISNSStartupNotAutomatic(t *testing.T) {
	for _, startup := range []string{"manual", "onboot"} {
		t.Run(startup, func(t *testing.T) {
			f, logs, s, db := isnsFixture(t, "node.startup = "+startup+"\n")
			root := db.Root
			f.d.cfg, _ = conf.LoadConfig(filepath.Join(root, "iscsid.conf"))
			stop := f.d.followISNS(context.Background(), db, testIni)
			waitUntil(t, "registration", func() bool { return s.SCNBitmap(testIni) != 0 })
			tp := netip.MustParseAddrPort(f.rec["node.conn[0].address"] + ":" + f.rec["node.conn[0].port"])
			if err := s.AddTarget(testIQN, "", tp); err != nil {
				stop()
				t.Fatal(err)
			}
			waitUntil(t, "the follower's decision", func() bool {
				l := logs.String()
				return strings.Contains(l, "iSNS: not logging in") || strings.Contains(l, "iSNS: logged in") || strings.Contains(l, "iSNS: login failed")
			})
			// stop waits for every login the follower started, so a
			// login it should not have made would be done by now.
			stop()
			if n := len(f.kernel.Sessions()); n != 0 {
				t.Errorf("%d sessions to a target whose record says node.startup = %s", n, startup)
			}
			if strings.Contains(logs.String(), "iSNS: logged in") || strings.Contains(logs.String(), "iSNS: login failed") {
				t.Errorf("the follower tried a login:\n%s", logs.String())
			}
			recs, _ := db.FindNodes(testIQN, "", 0, "")
			if len(recs) != 1 || recs[0].Get("node.startup") != startup || recs[0].Get("node.discovery_type") != "isns" {
				t.Errorf("records: %v", recs)
			}
		})
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects log lines written from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// isnsFixture is a daemon whose log goes to logs, an iSNS server, and a node
// database with iscsid.conf holding iscsidConf and a discovery record of the server
// with use_discoveryd = Yes.
func isnsFixture(t *testing.T, iscsidConf string) (*fixture, *logBuffer, *isnstest.Server, *conf.DB) {
	t.Helper()
	f := newFixture(t)
	logs := &logBuffer{}
	f.d.log = slog.New(slog.NewTextHandler(logs, nil))
	s, err := isnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	host, p, _ := net.SplitHostPort(s.Addr())
	port, _ := strconv.Atoi(p)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "iscsid.conf"), []byte(iscsidConf), 0o600); err != nil {
		t.Fatal(err)
	}
	db := &conf.DB{Root: root}
	drec := conf.NewISNSDiscoveryRecord(nil, host, port)
	drec.Set("discovery.isns.use_discoveryd", "Yes")
	if err := db.SaveDiscovery(drec); err != nil {
		t.Fatal(err)
	}
	return f, logs, s, db
}
