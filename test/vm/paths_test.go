//go:build vm

package vm

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sessionIDRE matches what names a session in listings and messages; the
// two initiators' sessions of one boot have different SIDs.
var sessionIDRE = regexp.MustCompile(`sid: \d+|SID: \d+|tcp: \[\d+\]`)

// ownLineRE matches the lines goiscsiadm adds to stock's -P 1 text on purpose.
var ownLineRE = regexp.MustCompile(`(?m)^\t*(Scan Policy|Held Back LUN): .*\n`)

// comparable is a listing with its SIDs replaced and goiscsi's own lines left out.
func comparable(b []byte) string {
	return sessionIDRE.ReplaceAllStringFunc(ownLineRE.ReplaceAllString(string(b), ""), func(m string) string {
		return strings.TrimRight(m, "0123456789]") + "N"
	})
}

// TestVMPaths runs the paths scenario: stock and goiscsi in one boot, the same
// commands. Over two veth NICs into a target namespace, ifaces bound by
// net_ifacename and by hwaddress discover and log in as stock's do, each
// session's writes leave through its own NIC only, also for an iface logging
// in to the portal behind the other NIC (the binding beats the route);
// nr_sessions 2 makes two sessions, -r SID -o new a third, -r SID -u ends
// exactly that one, nr_sessions 4 four; -W returns before the sessions exist;
// an iface bound only by IP address is refused with stock's exit codes (11
// discovery, 8 login); a
// multipathd map over the two NICs' sessions survives one NIC going down during
// a 64 MiB write (data identical) and uses both paths once it is back; an
// IPv6 portal discovers, logs in and carries data. All of it also with stock's
// iscsiadm talking to goiscsid. Every listing and message
// equals stock's but for the SIDs.
func TestVMPaths(t *testing.T) {
	res := boot(t, "paths", nil)
	cmd := cmdOf(t, res)
	same := []string{"iface_a", "iface_a_bind", "iface_b", "iface_b_bind", "discovery", "nodes", "discovery_all", "rt", "noop_int", "noop_tmo", "logout_ab",
		"login_aa", "login_bb", "login_ab", "p1", "logout_paths", "delete_nodes", "delete_a", "delete_b",
		"nr_new", "nr_set", "nr_login", "nr_session", "nr_again", "nr_add", "nr_one", "nr_logout",
		"nr4_set", "nr4_login", "nr4_logout", "nr2_set", "nowait", "nowait_logout",
		"ip_iface", "ip_bind", "ip_new", "ip_timeout", "ip_retry", "ip_delete_node", "ip_delete",
		"v6_discovery", "v6_login", "v6_p1", "v6_logout"}
	for _, name := range same {
		s := cmd("stock_" + name)
		for _, other := range []string{"goiscsi", "stockadm"} {
			g := cmd(other + "_" + name)
			if s["rc"] != g["rc"] || comparable(s.Bytes("stdout")) != comparable(g.Bytes("stdout")) || comparable(s.Bytes("stderr")) != comparable(g.Bytes("stderr")) {
				t.Errorf("%s: stock exit %s\n%s%s\n%s exit %s\n%s%s", name, s["rc"], s.Bytes("stdout"), s.Bytes("stderr"),
					other, g["rc"], g.Bytes("stdout"), g.Bytes("stderr"))
			}
		}
	}
	for _, who := range []string{"stock", "goiscsi", "stockadm"} {
		for name, rc := range map[string]string{"discovery": "0", "login_aa": "0", "login_bb": "0", "login_ab": "0",
			"nr_login": "0", "nr_again": "15", "nr_add": "0", "nr_one": "0", "nowait": "0", "v6_login": "0",
			"ip_discovery": "11", "ip_login": "8"} {
			if r := cmd(who + "_" + name); r["rc"] != rc {
				t.Errorf("%s %s: exit %s, want %s\n%s%s", who, name, r["rc"], rc, r.Bytes("stdout"), r.Bytes("stderr"))
			}
		}
		// A record per portal and iface: the target's two portals and the
		// other targets LIO names (127.0.0.1, [::1]), through eth-a and eth-b.
		if out := string(cmd(who + "_nodes").Bytes("stdout")); strings.Count(out, "\n") != 8 {
			t.Errorf("%s: -m node after discovery through eth-a and eth-b:\n%s", who, out)
		}
		ss := string(cmd(who + "_ss").Bytes("stdout"))
		for _, conn := range []string{"10.1.0.1:[0-9]+ +10.1.0.2:3260", "10.2.0.1:[0-9]+ +10.2.0.2:3260", "10.1.0.1:[0-9]+ +10.2.0.2:3260"} {
			if !regexp.MustCompile(conn).MatchString(ss) {
				t.Errorf("%s: no connection %s in ss:\n%s", who, conn, ss)
			}
		}
		t.Logf("%s ip_discovery %s ms: %s; ip_login %s ms: %s", who, cmd(who + "_ip_discovery")["ms"], cmd(who+"_ip_discovery").Bytes("stderr"),
			cmd(who + "_ip_login")["ms"], cmd(who+"_ip_login").Bytes("stderr"))
	}
	for _, r := range res.Find("traffic") {
		a, _ := strconv.Atoi(r["vethA"])
		b, _ := strconv.Atoi(r["vethB"])
		own, other := a, b
		if r["path"] == "bb" {
			own, other = b, a
		}
		if own < 8<<20 || other > 1<<20 {
			t.Errorf("%s %s: 8 MiB written, vethA sent %d bytes, vethB %d", r["who"], r["path"], a, b)
		}
	}
	if n := len(res.Find("traffic")); n != 9 {
		t.Errorf("%d traffic records, want 3 per run", n)
	}
	mp := res.Find("multipath")
	for _, r := range mp {
		if r["rc"] != "0" || r["got"] != r["want"] {
			t.Errorf("%s: 64 MiB written to the map with vethA pulled at %s ms: exit %s (%s), read back %s, wrote %s",
				r["who"], r["down_ms"], r["rc"], r["err"], r["got"], r["want"])
		}
		t.Logf("%s: vethA down %s ms into the write, write done after %s ms with %s active path(s); both paths active %s ms after vethA came back",
			r["who"], r["down_ms"], r["write_ms"], r["active_after_write"], r["back_ms"])
	}
	if len(mp) != 3 {
		t.Errorf("%d multipath records, want one per run", len(mp))
	}
	for _, r := range res.Find("sessions") {
		want := map[string]string{"added": "3", "one_out": "2", "node_out": "0", "four": "4", "by_ip": "0", "end": "0"}[r["phase"]]
		if r["count"] != want || (r["phase"] == "one_out" && r["gone"] != "yes") {
			t.Errorf("%s after %s: %s sessions (the one logged out gone: %s), want %s", r["who"], r["phase"], r["count"], r["gone"], want)
		}
	}
	for _, r := range res.Find("nowait") {
		t.Logf("%s: -W returned, the sessions came %s ms later; the login itself took %s ms", r["who"], r["ms"], cmd(r["who"] + "_nowait")["ms"])
	}
	if t.Failed() {
		logFile(t, res, "goiscsid_log")
	}
}
