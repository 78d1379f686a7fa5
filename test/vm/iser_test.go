//go:build vm

package vm

import (
	"strings"
	"testing"
)

// TestVMISER runs the iser scenario: iSER over soft-RoCE (rdma_rxe on a
// dummy netdev, LIO's portal with iser on), stock open-iscsi and goiscsi in
// one boot. Without an RDMA device discovery and login through an iser iface
// fail for both with stock's exit codes (11 after reopen_max retries, 8
// connection timed out) and stderr, and nothing falls back to TCP; with rxe0
// both discover over iSER (stock's iscsiadm through the kernel, goiscsiadm
// through goiscsid) and print the same, log in over iSER (host driver
// iscsi_iser, -P 1 "Iface Transport: iser", no TCP connection to :3260,
// the same data segment lengths), write and read back 32 MiB identical,
// recover after the target dropped the session (TPG disabled for 3 s) over a
// new endpoint with 8 MiB read back identical, and log out, leaving no target
// session and no kernel endpoint. goiscsid killed and started again takes the
// iSER session over (listing, statistics, 4 MiB read back, the logout).
func TestVMISER(t *testing.T) {
	res := boot(t, "iser", nil)
	cmds := map[string]Record{}
	for _, r := range res.Find("cmd") {
		cmds[r["name"]] = r
	}
	cmd := func(name string) Record {
		t.Helper()
		r, ok := cmds[name]
		if !ok {
			t.Fatalf("no record of %s", name)
		}
		return r
	}
	show := func(r Record) string {
		return "exit " + r["rc"] + " after " + r["ms"] + " ms\n" + string(r.Bytes("stdout")) + string(r.Bytes("stderr"))
	}

	// 1. No RDMA device.
	for _, name := range []string{"nodev_discovery", "nodev_login"} {
		st, g := cmd("stock_"+name), cmd("goiscsi_"+name)
		t.Logf("%s: stock %s\ngoiscsi %s", name, show(st), show(g))
		if st["rc"] != g["rc"] || string(st.Bytes("stderr")) != withoutReason(g.Bytes("stderr")) {
			t.Errorf("%s differs: stock %s\ngoiscsi %s", name, show(st), show(g))
		}
	}
	if r := cmd("stock_nodev_discovery"); r["rc"] != "11" {
		t.Errorf("stock discovery without an RDMA device: %s", show(r))
	}
	if r := cmd("stock_nodev_login"); r["rc"] != "8" {
		t.Errorf("stock login without an RDMA device: %s", show(r))
	}
	for _, r := range res.Find("nodev") {
		if r["sessions"] != "0" || r["tcp"] != "" {
			t.Errorf("%s without an RDMA device: %s sessions, TCP %q", r["who"], r["sessions"], r["tcp"])
		}
	}

	// 2. rxe0.
	if r := cmd("stock_discovery"); r["rc"] != "0" || !strings.Contains(string(r.Bytes("stdout")), "10.9.9.1:3260,1 iqn.2003-01.org.example:iser") {
		t.Errorf("stock discovery over iSER: %s", show(r))
	}
	if s, g := cmd("stock_discovery"), cmd("goiscsi_discovery"); s["rc"] != g["rc"] || string(s.Bytes("stdout")) != string(g.Bytes("stdout")) {
		t.Errorf("discovery over iSER: stock %s\ngoiscsi %s", show(s), show(g))
	}
	t.Logf("discovery over iSER: stock %s ms, goiscsi %s ms", cmd("stock_discovery")["ms"], cmd("goiscsi_discovery")["ms"])
	for _, r := range res.Find("discovery_tcp") {
		if r["tcp"] != "" {
			t.Errorf("%s discovery left TCP connections to :3260: %s", r["who"], r["tcp"])
		}
	}
	sessions := map[string]Record{}
	for _, r := range res.Find("session") {
		sessions[r["who"]] = r
	}
	for _, who := range []string{"stock", "goiscsi"} {
		if r := cmd(who + "_login"); r["rc"] != "0" {
			t.Errorf("%s login over iSER: %s", who, show(r))
		}
		s, ok := sessions[who]
		if !ok {
			t.Fatalf("no session record of %s", who)
		}
		if strings.TrimSpace(s["endpoints"]) == "" {
			t.Errorf("%s session: no endpoint in /sys/class/iscsi_endpoint (the check after logout would prove nothing)", who)
		}
		if s["tcp"] != "" || s["proc_name"] != "iscsi_iser" {
			t.Errorf("%s session: TCP %q, host driver %q (want none, iscsi_iser)", who, s["tcp"], s["proc_name"])
		}
		if p1 := string(cmd(who + "_p1").Bytes("stdout")); !strings.Contains(p1, "Iface Transport: iser") {
			t.Errorf("%s -P 1:\n%s", who, p1)
		}
		if r := cmd(who + "_stats"); r["rc"] != "0" || !strings.Contains(string(r.Bytes("stdout")), "iSCSI SNMP") {
			t.Errorf("%s -m session -s: %s", who, show(r))
		}
		if r := cmd(who + "_logout"); r["rc"] != "0" {
			t.Errorf("%s logout: %s", who, show(r))
		}
		t.Logf("%s: login %s ms, max_recv_dlength %s, max_xmit_dlength %s, header digest %s", who, cmd(who + "_login")["ms"],
			s["mrdsl"], s["mxdsl"], s["hdrdgst"])
	}
	if s, g := sessions["stock"], sessions["goiscsi"]; s["mrdsl"] != g["mrdsl"] || s["mxdsl"] != g["mxdsl"] {
		t.Errorf("data segment lengths: stock %s/%s, goiscsi %s/%s", s["mrdsl"], s["mxdsl"], g["mrdsl"], g["mxdsl"])
	}
	for _, r := range res.Find("recovery") {
		if r["down"] != "yes" || r["back"] != "yes" || r["sessions"] != "1" || r["tcp"] != "" {
			t.Errorf("%s recovery: %v", r["who"], map[string]string(r))
		}
		t.Logf("%s recovery over iSER: logged in %s ms after the target came back", r["who"], r["ms"])
	}
	if p1 := string(cmd("goiscsi_takeover_p1").Bytes("stdout")); !strings.Contains(p1, "Iface Transport: iser") || !strings.Contains(p1, "LOGGED IN") {
		t.Errorf("goiscsi -P 1 after goiscsid's restart:\n%s", p1)
	}
	if r := cmd("goiscsi_takeover_stats"); r["rc"] != "0" {
		t.Errorf("goiscsi -s after goiscsid's restart: %s", show(r))
	}
	for _, r := range res.Find("after_logout") {
		if strings.TrimSpace(r["target_sessions"]) != "" || strings.TrimSpace(r["endpoints"]) != "" {
			t.Errorf("%s logout left target sessions %q, kernel endpoints %q", r["who"], r["target_sessions"], r["endpoints"])
		}
	}
	dds, whos := res.Find("dd"), res.Find("dd_who")
	if len(dds) != 5 || len(whos) != 5 {
		t.Fatalf("%d dd records, want login and recovery of each initiator and goiscsi's takeover", len(dds))
	}
	for i, d := range dds {
		if d["want"] != d["got"] || d["want"] != d["target"] {
			t.Errorf("%s after %s: wrote %s, read %s, target holds %s", whos[i]["who"], whos[i]["phase"], d["want"], d["got"], d["target"])
		}
		t.Logf("%s over iSER after %s: %s MiB written in %s ms, read in %s ms", whos[i]["who"], whos[i]["phase"], d["mib"], d["write_ms"], d["read_ms"])
	}
}

// withoutReason drops the line goiscsiadm adds to a failed login's stderr
// (goiscsid's own reason), golden's one named difference there.
func withoutReason(b []byte) string {
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(l, "iscsiadm: goiscsid: ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
