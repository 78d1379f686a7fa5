//go:build vm

package vm

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sidRE matches the session ID a login or logout message names: the two
// initiators' sessions of one boot have different ones.
var sidRE = regexp.MustCompile(`sid: \d+`)

func sidless(b []byte) string { return sidRE.ReplaceAllString(string(b), "sid: N") }

// TestVMISNS runs the isns scenario: Debian's isnsd with targets registered by
// isnsadm. Stock and goiscsi, in one boot, print the same for -m discovery -t
// isns, the login and logout, the discoverydb commands and the listings, write
// the same record files and links to them, exit 25 with stock's last line for
// a server that refuses or closes, and read back what they wrote. goiscsid,
// following the server's record, writes the record of a target registered
// while it runs and logs in to it (node.startup = automatic), logs out when
// the target is deregistered and keeps the record, and deregisters when it
// stops. A server that sends garbage or never answers ends goiscsiadm's
// discovery with 25 within its 10 s timeout; with the target gone both find
// no portals (21). Stock's -m discoverydb -o delete then deletes the records
// goiscsi made, finding them through goiscsi's links.
func TestVMISNS(t *testing.T) {
	res := boot(t, "isns", nil)
	cmd := cmdOf(t, res)
	for _, name := range []string{"discovery", "login", "logout", "list", "dbnew", "dbshow", "dbdiscover", "dblist", "dblist1"} {
		s, g := cmd("stock_"+name), cmd("goiscsi_"+name)
		if s["rc"] != "0" {
			t.Errorf("stock %s: exit %s\n%s", name, s["rc"], s.Bytes("stderr"))
		}
		if s["rc"] != g["rc"] || sidless(s.Bytes("stdout")) != sidless(g.Bytes("stdout")) || string(s.Bytes("stderr")) != string(g.Bytes("stderr")) {
			t.Errorf("%s: stock exit %s\n%s%s\ngoiscsi exit %s\n%s%s", name, s["rc"], s.Bytes("stdout"), s.Bytes("stderr"),
				g["rc"], g.Bytes("stdout"), g.Bytes("stderr"))
		}
	}
	if out := string(cmd("stock_discovery").Bytes("stdout")); out != "127.0.0.1:3260,1 iqn.2003-01.org.example:isns-one\n" {
		t.Errorf("stock discovery printed %q", out)
	}
	const lastLine = "iscsiadm: Could not perform iSNS discovery: iSNS query failed\n"
	for _, name := range []string{"stock_refused", "goiscsi_refused", "stock_closes", "goiscsi_closes", "goiscsi_garbage", "goiscsi_silent"} {
		r := cmd(name)
		if r["rc"] != "25" || !strings.HasSuffix(string(r.Bytes("stderr")), lastLine) {
			t.Errorf("%s: exit %s after %s ms\n%s", name, r["rc"], r["ms"], r.Bytes("stderr"))
		}
		if strings.HasPrefix(name, "goiscsi_") && (r.Float("ms") < 0 || r.Float("ms") > 15000) {
			t.Errorf("%s took %s ms, want at most the 10 s timeout and the command's start", name, r["ms"])
		}
		t.Logf("%s: %s ms\n%s", name, r["ms"], r.Bytes("stderr"))
	}
	records := map[string]map[string]string{"stock": {}, "goiscsi": {}}
	for _, r := range res.Find("record") {
		records[r["who"]][r["path"]] = string(r.Bytes("text"))
	}
	if len(records["stock"]) != 2 {
		t.Errorf("stock wrote %d record files, want the node's and isns_config: %v", len(records["stock"]), records["stock"])
	}
	sameEntries(t, "record", records["stock"], records["goiscsi"])
	// The links stock keeps from isns/ to the records: in isns/ itself
	// after -m discovery (no server directory yet), in the server's
	// directory after -m discoverydb made one and rediscovered.
	links := map[string]map[string]string{"stock": {}, "goiscsi": {}}
	for _, r := range res.Find("link") {
		links[r["who"]][r["stage"]+" "+r["path"]] = r["to"]
	}
	if len(links["stock"]) != 2 {
		t.Errorf("stock made %d links, want one after the discovery and one at the end: %v", len(links["stock"]), links["stock"])
	}
	sameEntries(t, "link", links["stock"], links["goiscsi"])
	t.Logf("links: %v", links["stock"])
	for _, r := range res.Find("tree") {
		t.Logf("isns/ of %s: %s", r["who"], r["list"])
	}
	for _, r := range res.Find("dd") {
		if r["want"] == "" || r["got"] != r["want"] || r["target"] != r["want"] {
			t.Errorf("data written did not read back identical: %v", r)
		}
	}
	if n := len(res.Find("dd")); n != 2 {
		t.Errorf("%d data checks, want 2 (stock and goiscsi)", n)
	}

	add := res.First("scn_added")
	if add == nil || add["sid"] == "" || add["startup"] != "node.startup = automatic" || add["dtype"] != "node.discovery_type = isns" {
		t.Errorf("target registered while goiscsid ran: %v", add)
	} else {
		t.Logf("SCN to record and session: %s ms", add["ms"])
	}
	if rm := res.First("scn_removed"); rm == nil || strings.TrimSpace(rm["record"]) != "default" {
		t.Errorf("target deregistered while goiscsid ran: %v", rm)
	} else {
		t.Logf("SCN to logout: %s ms", rm["ms"])
	}
	const me = InitiatorName
	if out := string(cmd("goiscsi_isnsnodes").Bytes("stdout")); !strings.Contains(out, strconv.Quote(me)) {
		t.Errorf("isnsd does not list goiscsid's initiator while it runs:\n%s", out)
	}
	if out := string(cmd("goiscsi_isnsnodes_after").Bytes("stdout")); strings.Contains(out, strconv.Quote(me)) {
		t.Errorf("isnsd still lists goiscsid's initiator after it stopped:\n%s", out)
	}
	if l := res.First("goiscsid_log"); l != nil {
		t.Logf("goiscsid's iSNS log:\n%s", l.Bytes("text"))
	}

	for _, name := range []string{"stock_gone", "goiscsi_gone"} {
		if r := cmd(name); r["rc"] != "21" || string(r.Bytes("stderr")) != "iscsiadm: No portals found\n" {
			t.Errorf("%s: exit %s\n%s", name, r["rc"], r.Bytes("stderr"))
		}
	}
	if r := cmd("goiscsi_nodes"); !strings.Contains(string(r.Bytes("stdout")), "127.0.0.1:3260,1 iqn.2003-01.org.example:isns-one\n") {
		t.Errorf("the record of the deregistered target went:\n%s", r.Bytes("stdout"))
	}
	if r := cmd("stock_dbdelete"); r["rc"] != "0" {
		t.Errorf("stock's -m discoverydb -o delete: exit %s\n%s", r["rc"], r.Bytes("stderr"))
	}
	if l := res.First("after_dbdelete"); l == nil || strings.Contains(l["list"], "isns-") || strings.Contains(l["list"], "127.0.0.1,3205") {
		t.Errorf("stock's -m discoverydb -o delete left goiscsi's records or the server's directory (it finds the records through the links): %v", l)
	}
}

// sameEntries fails t for each entry (a record file's text, a link's target) of
// the node database that stock and goiscsi did not both make alike.
func sameEntries(t *testing.T, what string, stock, goiscsi map[string]string) {
	t.Helper()
	for path, want := range stock {
		if got, ok := goiscsi[path]; !ok || got != want {
			t.Errorf("%s %s: stock's is\n%s\ngoiscsi's (%v) is\n%s", what, path, want, ok, got)
		}
	}
	for path := range goiscsi {
		if _, ok := stock[path]; !ok {
			t.Errorf("goiscsi made %s %s, stock did not", what, path)
		}
	}
}
