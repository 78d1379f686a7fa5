package initiator

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/isns/isnstest"
)

const (
	isnsT1 = "iqn.2026-12.dev.goiscsi:isns-one"
	isnsT2 = "iqn.2026-12.dev.goiscsi:isns-two"
)

func isnsServer(t *testing.T) (*isnstest.Server, Portal) {
	t.Helper()
	s, err := isnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	host, port, _ := net.SplitHostPort(s.Addr())
	p, _ := strconv.Atoi(port)
	return s, Portal{Address: host, Port: p}
}

// An iSNS discovery makes the node records stock makes (discovery type isns,
// the server as their discovery source), no discovery record in discovery
// mode, keeps a record's settings, drops what the server stopped naming, and
// keeps everything when the server names nothing.
func TestDiscoverISNS(t *testing.T) {
	s, srv := isnsServer(t)
	ctx := context.Background()
	if err := s.AddTarget(isnsT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTarget(isnsT2, "", netip.MustParseAddrPort("127.0.0.2:3261"), netip.MustParseAddrPort("[fd00::2]:3260")); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, nil)
	recs, err := c.DiscoverISNS(ctx, srv, ISNSOptions{DeleteStale: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		id := r.ID()
		got = append(got, id.Portal()+" "+id.Target+" "+r.Get("node.discovery_type")+" "+r.Get("node.discovery_address")+" "+r.Get("node.discovery_port"))
	}
	src := " isns " + srv.Address + " " + strconv.Itoa(srv.Port)
	want := []string{"127.0.0.1:3260,1 " + isnsT1 + src, "127.0.0.2:3261,1 " + isnsT2 + src, "[fd00::2]:3260,1 " + isnsT2 + src}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if all, _ := c.Nodes(); len(all) != 3 {
		t.Errorf("%d records stored, want 3", len(all))
	}
	if ds, _ := c.DB().Discoveries(); len(ds) != 0 {
		t.Errorf("-m discovery -t isns stored a discovery record: %v", ds)
	}
	// No server directory: stock's links lie in isns/ itself.
	link := func(target, portal string) string {
		return "isns/" + target + "," + portal + ",1,default -> nodes/" + target + "/" + portal + ",1"
	}
	wantLinks(t, c.Root, link(isnsT1, "127.0.0.1,3260"), link(isnsT2, "127.0.0.2,3261"), link(isnsT2, "fd00::2,3260"))

	// A setting survives rediscovery; a target the server dropped goes.
	r1, _ := c.DB().FindNodes(isnsT1, "", 0, "")
	r1[0].Set("node.startup", "automatic")
	if err := c.SaveNode(r1[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTarget(isnsT2); err != nil {
		t.Fatal(err)
	}
	recs, err = c.DiscoverISNS(ctx, srv, ISNSOptions{DeleteStale: true})
	if err != nil || len(recs) != 1 || recs[0].Get("node.startup") != "automatic" {
		t.Fatalf("rediscovery: %v %v", recs, err)
	}
	if all, _ := c.Nodes(); len(all) != 1 {
		t.Errorf("%d records after the server dropped %s, want 1", len(all), isnsT2)
	}
	wantLinks(t, c.Root, link(isnsT1, "127.0.0.1,3260"))

	// Nothing named: stock's "No portals found" (21), and the record stays.
	if err := s.RemoveTarget(isnsT1); err != nil {
		t.Fatal(err)
	}
	_, err = c.DiscoverISNS(ctx, srv, ISNSOptions{DeleteStale: true})
	if iscsierr.CodeOf(err) != iscsierr.NoObjsFound || !strings.Contains(err.Error(), "No portals found") {
		t.Errorf("discovery of nothing: %v", err)
	}
	if all, _ := c.Nodes(); len(all) != 1 {
		t.Errorf("%d records after a discovery that found nothing, want 1", len(all))
	}
}

// In discoverydb mode the server's record is made from iscsid.conf's
// discovery.isns.* keys, in stock's layout, and listed among the discovery
// records; nonpersistent writes nothing.
func TestDiscoverISNSRecord(t *testing.T) {
	s, srv := isnsServer(t)
	if err := s.AddTarget(isnsT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, nil)
	os.WriteFile(filepath.Join(c.Root, "iscsid.conf"), []byte("discovery.isns.use_discoveryd = Yes\ndiscovery.startup = automatic\n"), 0o600)
	if _, err := c.DiscoverISNS(context.Background(), srv, ISNSOptions{UseRecord: true, NonPersistent: true}); err != nil {
		t.Fatal(err)
	}
	if all, _ := c.Nodes(); len(all) != 0 || c.ISNSDiscoveryRecord(srv.Address, srv.Port) != nil {
		t.Fatalf("nonpersistent discovery stored %d records", len(all))
	}
	if _, err := c.DiscoverISNS(context.Background(), srv, ISNSOptions{UseRecord: true}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(c.Root, "isns", srv.Address+","+strconv.Itoa(srv.Port), "isns_config")
	b, err := os.ReadFile(file)
	want := "# BEGIN RECORD 2.1.8\ndiscovery.startup = manual\ndiscovery.type = isns\ndiscovery.sendtargets.address = 127.0.0.1\n" +
		"discovery.sendtargets.port = " + strconv.Itoa(srv.Port) + "\ndiscovery.isns.use_discoveryd = Yes\ndiscovery.isns.discoveryd_poll_inval = -1\n# END RECORD\n"
	if err != nil || string(b) != want {
		t.Fatalf("%s: %v\n%s\nwant\n%s", file, err, b, want)
	}
	if d := c.ISNSDiscoveryRecord(srv.Address, srv.Port); d == nil || c.DiscoveryRecord(srv.Address, srv.Port) != nil {
		t.Errorf("the iSNS record is not found as one, or found as a SendTargets one")
	}
}

// The links from the server to its records go where stock puts them: in
// isns/ after -m discovery (no server directory), into the server's
// directory when -m discoverydb rediscovers the record, and away with the
// record.
func TestDiscoverISNSLinks(t *testing.T) {
	s, srv := isnsServer(t)
	if err := s.AddTarget(isnsT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, nil)
	ctx := context.Background()
	server := srv.Address + "," + strconv.Itoa(srv.Port)
	const name = isnsT1 + ",127.0.0.1,3260,1,default"
	const to = " -> nodes/" + isnsT1 + "/127.0.0.1,3260,1"
	if _, err := c.DiscoverISNS(ctx, srv, ISNSOptions{DeleteStale: true}); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, c.Root, "isns/"+name+to)
	if _, err := c.DiscoverISNS(ctx, srv, ISNSOptions{UseRecord: true, DeleteStale: true}); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, c.Root, "isns/"+server+"/"+name+to)
	recs, _ := c.DB().FindNodes(isnsT1, "", 0, "")
	if errs, err := c.DeleteNodes(ctx, recs); err != nil || len(errs) != 1 || errs[0] != nil {
		t.Fatalf("DeleteNodes: %v %v", errs, err)
	}
	wantLinks(t, c.Root)
}

// wantLinks checks the symbolic links under root's isns/ and send_targets/,
// each as "path -> target", relative to root.
func wantLinks(t *testing.T, root string, want ...string) {
	t.Helper()
	var got []string
	for _, dir := range []string{"isns", "send_targets"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Type()&os.ModeSymlink == 0 {
				return nil
			}
			to, _ := os.Readlink(p)
			rel, _ := filepath.Rel(root, p)
			relTo, _ := filepath.Rel(root, to)
			got = append(got, rel+" -> "+relTo)
			return nil
		})
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("links:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A server that wants the initiator registered first gets it registered for
// the query and deregistered after; one that refuses the registration gives
// stock's 26.
func TestDiscoverISNSRegisters(t *testing.T) {
	s, srv := isnsServer(t)
	s.SourceMustBeRegistered = true
	if err := s.AddTarget(isnsT1, "", netip.MustParseAddrPort("127.0.0.1:3260")); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, nil)
	recs, err := c.DiscoverISNS(context.Background(), srv, ISNSOptions{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("DiscoverISNS: %v %v", recs, err)
	}
	if s.Registered(hostIQ) {
		t.Error("the initiator is still registered after the discovery")
	}
	s.Intercept = func(req *isns.Message) *isns.Message {
		if req.Function == isns.DevAttrReg {
			return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, Status: isns.StatusSourceUnauthorized}
		}
		return nil
	}
	_, err = c.DiscoverISNS(context.Background(), srv, ISNSOptions{})
	if iscsierr.CodeOf(err) != iscsierr.ISNSRegFailed || !strings.Contains(err.Error(), "Could not register "+hostIQ+" with iSNS server") {
		t.Errorf("refused registration: %v", err)
	}
}

// Timeout bounds the whole discovery, not each request: a server that
// answers the query Source Unknown late and then never answers the
// registration ends it within one timeout, where a bound per request would
// let it run to the query's delay plus a whole timeout.
func TestDiscoverISNSOneDeadline(t *testing.T) {
	const timeout = 2 * time.Second
	const queryDelay = 3 * timeout / 4
	s, srv := isnsServer(t)
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) }) // before s.Close, which waits for its connections
	s.Intercept = func(req *isns.Message) *isns.Message {
		switch req.Function {
		case isns.DevAttrQry:
			time.Sleep(queryDelay) // a slow server, not synchronisation
			return &isns.Message{Function: req.Function.Response(), Flags: isns.FlagServer, Status: isns.StatusSourceUnknown}
		default:
			<-stall
			return nil
		}
	}
	c, _ := newClient(t, nil)
	start := time.Now()
	_, err := c.DiscoverISNS(context.Background(), srv, ISNSOptions{Timeout: timeout})
	took := time.Since(start)
	if iscsierr.CodeOf(err) != iscsierr.ISNSRegFailed || !strings.Contains(err.Error(), "no response") {
		t.Errorf("error %v: want code 26 naming the registration's missing response", err)
	}
	// Per request it would take queryDelay + timeout = 3.5 s.
	if took < timeout || took > timeout+queryDelay/2 {
		t.Errorf("took %v with a timeout of %v for the whole discovery", took, timeout)
	}
	t.Logf("took %v: %v", took, err)
}

// A dead or hostile server ends the discovery with stock's 25 in bounded
// time, saying what went wrong, and no record is made.
func TestDiscoverISNSDeadServer(t *testing.T) {
	const timeout = 300 * time.Millisecond
	listen := func(t *testing.T, serve func(net.Conn)) Portal {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go serve(c)
			}
		}()
		return Portal{Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	}
	refused := func(t *testing.T) Portal {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := Portal{Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
		ln.Close()
		return p
	}
	for _, tc := range []struct {
		name   string
		server func(t *testing.T) Portal
		want   []string // one of these names the cause
	}{
		{"refuses", refused, []string{"connection refused"}},
		{"closes", func(t *testing.T) Portal { return listen(t, func(c net.Conn) { c.Close() }) },
			// The request may be written before the close, or meet it.
			[]string{"closed the connection", "connection reset by peer", "broken pipe"}},
		{"garbage", func(t *testing.T) Portal {
			return listen(t, func(c net.Conn) {
				defer c.Close()
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
				c.Read(make([]byte, 1))
			})
		}, []string{"unsupported iSNSP version"}},
		{"silent", func(t *testing.T) Portal {
			return listen(t, func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}, []string{"no response"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, nil)
			start := time.Now()
			_, err := c.DiscoverISNS(context.Background(), tc.server(t), ISNSOptions{Timeout: timeout})
			took := time.Since(start)
			named := false
			for _, w := range tc.want {
				named = named || (err != nil && strings.Contains(err.Error(), w))
			}
			if iscsierr.CodeOf(err) != iscsierr.ISNSQuery || !strings.Contains(err.Error(), "iSNS discovery failed") || !named {
				t.Errorf("error %v: want code 25 and one of %q", err, tc.want)
			}
			if took > 4*timeout {
				t.Errorf("took %v with a timeout of %v", took, timeout)
			}
			if all, _ := c.Nodes(); len(all) != 0 {
				t.Errorf("%d records made", len(all))
			}
		})
	}
}
