package conf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// stockArchive reads testdata/stock-2.1.8.txtar: files the real Debian
// open-iscsi 2.1.8 iscsiadm wrote, made with
//
//	apt-get download open-iscsi libopeniscsiusr libisns0 && dpkg-deb -x ...
//	unshare -m -n, tmpfs over /etc/iscsi /var/lib/iscsi /run/lock, then
//	iscsiadm -m node -o new / -o update / -m iface / -m discoverydb ... -o new
//
// Node tgt1 has CHAP, chap_algs, digests and startup set; tgt2 is bound to an
// iface with hwaddress, ipaddress, net_ifacename, gateway and subnet mask (the
// keys whose file order differs from -o show's); tgt3 to an IPv6 iface.
// show/ holds `-o show` of the same records. The records live in one archive
// because their names hold ':', which Go module zips refuse.
func stockArchive(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "stock-2.1.8.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var name string
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(line, " --\n") {
			name = strings.TrimSuffix(strings.TrimPrefix(line, "-- "), " --\n")
			files[name] = []byte{}
			continue
		}
		if name != "" {
			files[name] = append(files[name], line...)
		}
	}
	if len(files) < 10 {
		t.Fatalf("stock archive has %d files", len(files))
	}
	return files
}

// stockDB writes the archive's database files under a fresh root.
func stockDB(t *testing.T) *DB {
	t.Helper()
	root := t.TempDir()
	for name, data := range stockArchive(t) {
		if !strings.HasPrefix(name, "nodes/") && !strings.HasPrefix(name, "send_targets/") && !strings.HasPrefix(name, "ifaces/") {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &DB{Root: root}
}

// Records stock 2.1.8 wrote must come back byte for byte: goiscsi and open-iscsi
// share one database.
func TestStockRecordRoundTrip(t *testing.T) {
	files := stockArchive(t)
	var names []string
	for n := range files {
		if !strings.HasPrefix(n, "show/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	kinds := map[string]Kind{"nodes": NodeKind, "send_targets": DiscoveryKind, "ifaces": IfaceKind, "default-password.record": NodeKind}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want := files[name]
			r, err := ParseRecord(bytes.NewReader(want), name)
			if err != nil {
				t.Fatal(err)
			}
			if k := kinds[strings.SplitN(name, "/", 2)[0]]; r.Kind() != k {
				t.Errorf("kind %v, want %v", r.Kind(), k)
			}
			if len(r.Warnings) > 0 {
				t.Errorf("warnings on a stock record: %q", r.Warnings)
			}
			got, _ := r.MarshalText()
			if !bytes.Equal(got, want) {
				t.Errorf("changed on the round trip:\n%s", lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first line where two texts differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d: want %q, got %q", i+1, a, b)
		}
	}
	return "same"
}

// `-o show` prints in libopeniscsiusr's order, which differs from the file's.
func TestShowMatchesStock(t *testing.T) {
	files := stockArchive(t)
	for _, tc := range []struct {
		record, show string
		secrets      bool
	}{
		{"nodes/iqn.2003-01.org.example:tgt1/127.0.0.1,3260,1/default", "show/show-tgt1.txt", false},
		{"nodes/iqn.2003-01.org.example:tgt1/127.0.0.1,3260,1/default", "show/show-tgt1-S.txt", true},
		{"nodes/iqn.2003-01.org.example:tgt2/10.0.0.2,3261,2/iface0", "show/show-tgt2.txt", false},
		{"nodes/iqn.2003-01.org.example:tgt3/fe80::1,3260,3/ipv6if", "show/show-tgt3.txt", false},
		{"send_targets/127.0.0.1,3260/st_config", "show/show-st.txt", false},
		{"ifaces/ipv6if", "show/show-ipv6if.txt", false},
	} {
		t.Run(tc.show, func(t *testing.T) {
			r, err := ParseRecord(bytes.NewReader(files[tc.record]), tc.record)
			if err != nil {
				t.Fatal(err)
			}
			// goiscsi shows its own key too; stock has none.
			got := strings.Replace(r.Show(tc.secrets), "node.session.autoscan_en = Yes\n", "", 1)
			if want := string(files[tc.show]); got != want {
				t.Errorf("differs from stock: %s", lineDiff(want, got))
			}
			// -o show output parses back to the same record (secrets aside).
			back, err := ParseRecord(strings.NewReader(r.Show(true)), "show")
			if err != nil {
				t.Fatal(err)
			}
			a, _ := r.MarshalText()
			b, _ := back.MarshalText()
			if r.Kind() == NodeKind {
				b = bytes.Replace(b, []byte("node.session.autoscan_en = Yes\n"), nil, 1)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("-o show does not parse back: %s", lineDiff(string(a), string(b)))
			}
		})
	}
}

// The file order of a node's iface keys is usr/idbm.c's, not -o show's: a
// record built by goiscsi for a configured iface must match stock's file.
func TestNodeBoundToIfaceMatchesStock(t *testing.T) {
	files := stockArchive(t)
	name := "nodes/iqn.2003-01.org.example:tgt2/10.0.0.2,3261,2/iface0"
	r := NewNodeRecord(nil, "iqn.2003-01.org.example:tgt2", "10.0.0.2", 3261, 2, "iface0")
	for _, kv := range [][2]string{
		{"iface.hwaddress", "00:11:22:33:44:55"}, {"iface.net_ifacename", "eth1"}, {"iface.ipaddress", "10.1.1.5"},
		{"iface.initiatorname", "iqn.2003-01.org.example:ini"}, {"iface.bootproto", "static"},
		{"iface.subnet_mask", "255.255.255.0"}, {"iface.gateway", "10.1.1.254"}, {"iface.vlan_id", "7"},
		{"iface.mtu", "9000"}, {"node.session.autoscan_en", "<empty>"},
	} {
		if err := r.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := r.MarshalText()
	got = bytes.Replace(got, []byte("node.session.autoscan_en = Yes\n"), nil, 1)
	if want := files[name]; !bytes.Equal(got, want) {
		t.Errorf("%s", lineDiff(string(want), string(got)))
	}
}

func TestNewNodeRecordTakesConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(`# comment
node.session.autoscan_en = No
node.conn[0].timeo.login_timeout = 15

node.session.timeo.replacment_timeout = 5
iscsid.safe_logout = Yes
node.session.cmds_max = 0064
`), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "iscsid.conf:5: unknown key node.session.timeo.replacment_timeout") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	if want := []string{"node.session.autoscan_en", "node.conn[0].timeo.login_timeout", "node.session.timeo.replacment_timeout", "iscsid.safe_logout", "node.session.cmds_max"}; fmt.Sprint(cfg.Keys()) != fmt.Sprint(want) {
		t.Errorf("Keys %q", cfg.Keys())
	}
	for _, tc := range []struct{ text, want string }{
		{"node.session.scan = sometimes\n", "iscsid.conf:1: node.session.scan"},
		{"# x\nthis is not a key value line\n", "iscsid.conf:2:"},
		{"node.conn[0].timeo.login_timeout = fifteen\n", `node.conn[0].timeo.login_timeout = "fifteen": must be a number`},
		{"iface.mtu = 70000\n", "from 0 to 65535"},
		{"node.session.auth.chap_algs = MD5,MD4\n", `"MD4" is not one of`},
		{"x = " + strings.Repeat("y", 3000) + "\n", "iscsid.conf:1: line longer"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.text), "iscsid.conf"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: error %v, want one containing %q", tc.text, err, tc.want)
		}
	}
	r := NewNodeRecord(cfg, "iqn.x:t", "10.0.0.1", 3260, 2, "")
	for k, want := range map[string]string{
		"node.session.autoscan_en": "No", "node.conn[0].timeo.login_timeout": "15", "node.session.scan": "auto",
		"iface.iscsi_ifacename": "default", "node.tpgt": "2", "node.name": "iqn.x:t", "node.session.cmds_max": "64",
	} {
		if got := r.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := r.ID(); id.Portal() != "10.0.0.1:3260,2" {
		t.Errorf("portal %s", id.Portal())
	}
	// goiscsi's key never goes into the file stock reads (stock 2.1.8
	// refuses a record with a key it does not know), but it is shown right
	// after node.session.scan and sent to the daemon.
	b, _ := r.MarshalText()
	if strings.Contains(string(b), "autoscan_en") {
		t.Errorf("goiscsi's own key in the record file:\n%s", b)
	}
	if !strings.Contains(r.Show(false), "node.session.scan = auto\nnode.session.autoscan_en = No\nnode.session.reopen_max = 0\n") {
		t.Errorf("autoscan_en misplaced:\n%s", r.Show(false))
	}
	if m := r.Map(); m["node.session.autoscan_en"] != "No" || r.Own()["node.session.autoscan_en"] != "No" || len(r.Own()) != 1 {
		t.Errorf("Map %q, Own %q", m["node.session.autoscan_en"], r.Own())
	}
	// A missing iscsid.conf is no error: built-in defaults apply.
	if c, err := LoadConfig(filepath.Join(t.TempDir(), "none")); err != nil || len(c.Keys()) != 0 {
		t.Errorf("missing file: %v %v", c, err)
	}
}

func TestSetValidates(t *testing.T) {
	for _, tc := range []struct{ key, value, err, got string }{
		{"node.session.autoscan_en", "No", "", "No"},
		{"node.session.scan", "manual", "", "manual"},
		{"node.session.scan", "never", `node.session.scan = "never"`, ""},
		{"node.session.cmds_max", "lots", "must be a number", ""},
		{"node.session.cmds_max", "4294967296", "must be a number", ""},
		{"node.session.cmds_max", "+0010", "", "10"},
		{"node.session.xmit_thread_priority", "-5", "", "-5"},
		{"iface.vlan_id", "-1", "from 0 to 65535", ""},
		{"iface.tos", "255", "", "255"},
		{"iface.hop_limit", "64", `unknown record key "iface.hop_limit"`, ""}, // IPv6 only
		{"node.conn[1].port", "3260", "unknown record key", ""},
		{"node.no.such.key", "1", "unknown record key", ""},
		{"discovery.sendtargets.port", "1", "unknown record key", ""},
		{"node.session.auth.password", "a\nb", "line break", ""},
		{"node.session.auth.username", "<empty>", "", ""},
		{"node.session.auth.chap_algs", "sha256, md5,SHA256", "", "SHA256,MD5"},
		{"node.session.auth.chap_algs", "", "", "MD5"},
		{"node.conn[0].iscsi.HeaderDigest", "crc32c,none", "", "CRC32C,None"},
		{"node.startup", "Automatic", "", "automatic"},
		{"node.session.auth.authmethod", "chap", "", "CHAP"},
		{"iface.transport_name", "", "", "tcp"},
	} {
		r := NewNodeRecord(nil, "iqn.x:t", "10.0.0.1", 3260, 1, "default")
		err := r.Set(tc.key, tc.value)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Set(%q, %q) = %v, want %q", tc.key, tc.value, err, tc.err)
			continue
		}
		if err == nil && r.Get(tc.key) != tc.got {
			t.Errorf("Set(%q, %q) stored %q, want %q", tc.key, tc.value, r.Get(tc.key), tc.got)
		}
	}
	// On an IPv6 iface the IPv6 keys exist and the IPv4 ones do not.
	r := NewNodeRecord(nil, "iqn.x:t", "fe80::1", 3260, 1, "default")
	if err := r.Set("iface.ipaddress", "fe80::5"); err != nil {
		t.Fatal(err)
	}
	if err := r.Set("iface.hop_limit", "64"); err != nil {
		t.Error(err)
	}
	if err := r.Set("iface.tos", "1"); err == nil {
		t.Error("IPv4 key accepted on an IPv6 iface")
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"# BEGIN RECORD 2.1.8\nnode.name = x\nnode.tpgt = 1\n", "r:3: record ends without"},
		{"# BEGIN RECORD 2.1.8\nnode.name = x\nnode.tpgt = 1", "r:3: last line has no newline"},
		{strings.Repeat("\n", maxRecordLines+1), "more than"},
	} {
		if _, err := ParseRecord(strings.NewReader(tc.text), "r"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: %v, want %q", tc.text, err, tc.want)
		}
	}
	// What stock goes past, a reader goes past too, saying so.
	for _, tc := range []struct{ text, want string }{
		{"node.name = x\nnode.session.cmds_max = many\n", `r:2: node.session.cmds_max = "many"`},
		{"node.name = x\nnot a pair\n", `r:2: "not a pair" is not key = value`},
	} {
		r, err := ParseRecord(strings.NewReader(tc.text), "r")
		if err != nil || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.want) || r.Get("node.name") != "x" {
			t.Errorf("%.40q: %v, warnings %q, want one with %q", tc.text, err, r.Warnings, tc.want)
		}
	}
	r, err := ParseRecord(strings.NewReader("node.name = x\nnode.session.bogus = 1\n"), "r")
	if err != nil || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "r:2: unknown node record key node.session.bogus") {
		t.Errorf("unknown key: %v %q", err, r.Warnings)
	}
}

func TestStockDB(t *testing.T) {
	db := stockDB(t)
	nodes, err := db.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes {
		id := n.ID()
		ids = append(ids, fmt.Sprintf("%s %s %s", id.Target, id.Portal(), id.Iface))
	}
	want := "[iqn.2003-01.org.example:tgt1 127.0.0.1:3260,1 default iqn.2003-01.org.example:tgt2 10.0.0.2:3261,2 iface0 iqn.2003-01.org.example:tgt3 [fe80::1]:3260,3 ipv6if]"
	if fmt.Sprint(ids) != want {
		t.Errorf("nodes %v", ids)
	}
	for _, tc := range []struct {
		target, addr string
		port         int
		iface        string
		n            int
	}{
		{"", "", 0, "", 3}, {"iqn.2003-01.org.example:tgt2", "", 0, "", 1}, {"", "fe80::1", 0, "", 1},
		{"", "", 3261, "", 1}, {"", "", 0, "iface0", 1}, {"iqn.2003-01.org.example:tgt1", "", 3261, "", 0},
	} {
		got, err := db.FindNodes(tc.target, tc.addr, tc.port, tc.iface)
		if err != nil || len(got) != tc.n {
			t.Errorf("FindNodes(%q, %q, %d, %q) = %d, %v; want %d", tc.target, tc.addr, tc.port, tc.iface, len(got), err, tc.n)
		}
	}
	// Saving a stock record unchanged leaves its file byte for byte.
	files := stockArchive(t)
	for _, n := range nodes {
		if err := db.SaveNode(n); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		if strings.HasPrefix(name, "nodes/") {
			got, err := os.ReadFile(filepath.Join(db.Root, filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s rewritten differently (%v): %s", name, err, lineDiff(string(data), string(got)))
			}
		}
	}
	ds, err := db.Discoveries()
	if err != nil || len(ds) != 1 || ds[0].Get("discovery.sendtargets.auth.password") != "dp" {
		t.Fatalf("Discoveries: %v %v", ds, err)
	}
	ifs, err := db.Ifaces()
	if err != nil {
		t.Fatal(err)
	}
	var inames []string
	for _, i := range ifs {
		inames = append(inames, i.Get("iface.iscsi_ifacename")+"/"+i.Get("iface.transport_name"))
	}
	if fmt.Sprint(inames) != "[iface0/tcp ipv6if/tcp default/tcp iser/iser]" {
		t.Errorf("ifaces %v", inames)
	}
}

func TestDB(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	a := NewNodeRecord(nil, "iqn.2003-01.org.example:a", "127.0.0.1", 3260, 1, "default")
	b := NewNodeRecord(nil, "iqn.2003-01.org.example:b", "::1", 3261, 2, "default")
	for _, r := range []*Record{a, b} {
		if err := db.SaveNode(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"nodes", "nodes/iqn.2003-01.org.example:a", "nodes/iqn.2003-01.org.example:a/127.0.0.1,3260,1"} {
		if fi, err := os.Stat(filepath.Join(db.Root, p)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	fi, err := os.Stat(filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:a", "127.0.0.1,3260,1", "default"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v %v", fi, err)
	}
	// Records in the old layouts (the portal entry a file) are read too.
	writeFile := func(rel, text string) {
		p := filepath.Join(db.Root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("nodes/iqn.2003-01.org.example:c/10.0.0.9,3260", "node.name = iqn.2003-01.org.example:c\nnode.tpgt = 5\nnode.conn[0].address = 10.0.0.9\n")
	writeFile("nodes/iqn.2003-01.org.example:d/10.0.0.8,3260,7", "node.name = iqn.2003-01.org.example:d\nnode.conn[0].address = 10.0.0.8\n")
	all, err := db.Nodes()
	if err != nil || len(all) != 4 {
		t.Fatalf("Nodes: %d, %v", len(all), err)
	}
	c, _ := db.FindNodes("iqn.2003-01.org.example:c", "", 0, "")
	d, _ := db.FindNodes("iqn.2003-01.org.example:d", "", 0, "")
	if len(c) != 1 || c[0].ID().TPGT != 5 || len(d) != 1 || d[0].ID().TPGT != 7 || d[0].ID().Iface != "default" {
		t.Fatalf("old layouts: %+v %+v", c, d)
	}
	// Saving converts an old-layout record to the current layout.
	for _, r := range []*Record{c[0], d[0]} {
		if err := db.SaveNode(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"iqn.2003-01.org.example:c/10.0.0.9,3260,5/default", "iqn.2003-01.org.example:d/10.0.0.8,3260,7/default"} {
		if _, err := os.Stat(filepath.Join(db.Root, "nodes", p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:c", "10.0.0.9,3260")); !os.IsNotExist(err) {
		t.Error("pre-780 file left beside the converted record")
	}
	if all, err := db.Nodes(); err != nil || len(all) != 4 {
		t.Fatalf("after conversion: %d, %v", len(all), err)
	}
	if err := db.DeleteNode(a); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"nodes", "goiscsi/nodes"} {
		if _, err := os.Stat(filepath.Join(db.Root, dir, "iqn.2003-01.org.example:a")); !os.IsNotExist(err) {
			t.Errorf("empty target directory left in %s after delete", dir)
		}
	}
	if err := db.DeleteNode(a); err == nil {
		t.Error("deleting a missing record succeeded")
	}
	for _, bad := range []*Record{
		NewNodeRecord(nil, "../x", "10.0.0.1", 3260, 1, "default"),
		NewNodeRecord(nil, "iqn.x:y", "10.0.0.1", 3260, 1, "../../z"),
		NewNodeRecord(nil, "iqn.x:y", "", 3260, 1, "default"),
		NewDiscoveryRecord(nil, "10.0.0.1", 3260),
	} {
		if err := db.SaveNode(bad); err == nil {
			t.Errorf("SaveNode(%+v) accepted", bad.ID())
		}
	}
	// Reading is as forgiving as stock's: a bad value keeps its default, a
	// torn record or a stray entry is skipped, each named in a warning, and
	// the other records are read.
	var warnings []string
	db.Warn = func(err error) { warnings = append(warnings, err.Error()) }
	bFile := filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:b", "::1,3261,2", "default")
	os.WriteFile(bFile, []byte("node.name = iqn.2003-01.org.example:b\nnode.session.cmds_max = many\nnot a line\n"), 0o600)
	all, err = db.Nodes()
	if err != nil || len(all) != 3 || len(warnings) != 2 || !strings.Contains(warnings[1], "3261,2/default:2: node.session.cmds_max") ||
		!strings.Contains(warnings[0], "3261,2/default:3") {
		t.Errorf("broken record: %d records, %v, warnings %q", len(all), err, warnings)
	}
	if r, _ := db.FindNodes("iqn.2003-01.org.example:b", "", 0, ""); len(r) != 1 || r[0].Get("node.session.cmds_max") != "128" {
		t.Errorf("a bad value does not keep its default: %v", r)
	}
	warnings = nil
	os.WriteFile(bFile, []byte("# BEGIN RECORD 2.1.8\nnode.name = x\n"), 0o600)
	writeFile("nodes/iqn.2003-01.org.example:e/junk", "x")
	writeFile("nodes/stray-file", "x")
	all, err = db.Nodes()
	if err != nil || len(all) != 2 || len(warnings) != 3 || !strings.Contains(strings.Join(warnings, "\n"), "3261,2/default:2: record ends") ||
		!strings.Contains(strings.Join(warnings, "\n"), "e/junk: not an <address>") || !strings.Contains(strings.Join(warnings, "\n"), "stray-file: not a target") {
		t.Errorf("torn record and stray entries: %d records, %v, warnings %q", len(all), err, warnings)
	}
}

// Records written in stock's layouts are read, kept in their layout when
// saved, and new ones go where stock puts them; goiscsi's own keys never go
// into a file stock reads and go with the record.
func TestDBLayoutsAndOwnKeys(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	const tgt = "iqn.2003-01.org.example:plain"
	// A record without a tpgt is stock's plain file, whatever its iface.
	r := NewNodeRecord(nil, tgt, "10.0.0.1", 3260, -1, "eth-a")
	if err := r.Set("node.session.autoscan_en", "No"); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveNode(r); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(db.Root, "nodes", tgt, "10.0.0.1,3260")
	if !isFile(plain) {
		t.Fatalf("no plain record file %s", plain)
	}
	if b, _ := os.ReadFile(plain); strings.Contains(string(b), "autoscan_en") || !strings.Contains(string(b), "iface.iscsi_ifacename = eth-a\n") {
		t.Errorf("record file:\n%s", b)
	}
	own := filepath.Join(db.Root, "goiscsi", "nodes", tgt, "10.0.0.1,3260")
	if b, err := os.ReadFile(own); err != nil || !strings.Contains(string(b), "\nnode.session.autoscan_en = No\n") {
		t.Errorf("own keys: %q %v", b, err)
	}
	got, err := db.FindNodes(tgt, "", 0, "")
	if err != nil || len(got) != 1 || got[0].Get("node.session.autoscan_en") != "No" || got[0].ID().Iface != "eth-a" || got[0].ID().TPGT != -1 {
		t.Fatalf("read back: %v %v", got, err)
	}
	// An update stays in the plain layout.
	got[0].Set("node.startup", "automatic")
	if err := db.SaveNode(got[0]); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(db.Root, "nodes", tgt)); len(ents) != 1 || !isFile(plain) {
		t.Fatalf("layout changed: %v", ents)
	}
	// A record whose own keys are unset has no file beside it (a record
	// stock made takes them from iscsid.conf).
	stock := NewNodeRecord(nil, tgt, "10.0.0.2", 3260, 1, "default")
	delete(stock.given, "node.session.autoscan_en")
	if err := db.SaveNode(stock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(db.Root, "goiscsi", "nodes", tgt, "10.0.0.2,3260,1", "default")); !os.IsNotExist(err) {
		t.Errorf("own-keys file for a record without own keys: %v", err)
	}
	if m := stock.Map(); m["node.session.autoscan_en"] != "" {
		t.Errorf("a record without own keys sends autoscan_en %q", m["node.session.autoscan_en"])
	}
	// A bad own-keys file is warned about and ignored.
	var warnings []string
	db.Warn = func(err error) { warnings = append(warnings, err.Error()) }
	ownText, _ := os.ReadFile(own)
	forFile := regexp.MustCompile(`(?m)^goiscsi\.record_file = .*\n`).Find(ownText)
	os.WriteFile(own, append(forFile, "node.session.autoscan_en = perhaps\nnode.startup = onboot\n"...), 0o600)
	if got, _ := db.FindNodes(tgt, "10.0.0.1", 0, ""); len(got) != 1 || got[0].Get("node.session.autoscan_en") != "Yes" || got[0].Get("node.startup") != "automatic" || len(warnings) != 2 {
		t.Errorf("bad own keys: %v, warnings %q", got, warnings)
	}
	// Deleting takes the own keys too.
	if err := db.DeleteNode(got[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(own); !os.IsNotExist(err) {
		t.Errorf("own keys left after delete: %v", err)
	}
}

// goiscsi's own keys apply to the record file they were written for: through
// updates in place, as stock makes them, but not to a record deleted and made
// again at the same path, where they are warned about, ignored, and removed by
// the next write.
func TestOwnKeysFollowTheirRecordFile(t *testing.T) {
	for _, tpgt := range []int{-1, 1} {
		var warnings []string
		db := &DB{Root: t.TempDir(), Warn: func(err error) { warnings = append(warnings, err.Error()) }}
		r := NewNodeRecord(nil, "iqn.2003-01.org.example:follow", "10.0.0.1", 3260, tpgt, "default")
		r.Set("node.session.autoscan_en", "No")
		if err := db.SaveNode(r); err != nil {
			t.Fatal(err)
		}
		rel := stockPath(r.ID())
		file := filepath.Join(db.nodesDir(), rel)
		own := filepath.Join(db.ownDir(), rel)
		autoscan := func() string {
			t.Helper()
			warnings = nil
			rs, err := db.FindNodes(r.ID().Target, "", 0, "")
			if err != nil || len(rs) != 1 {
				t.Fatalf("tpgt %d: %d records, %v", tpgt, len(rs), err)
			}
			return rs[0].Get("node.session.autoscan_en")
		}
		// Stock's update: the file truncated and written again.
		text, _ := os.ReadFile(file)
		if err := os.WriteFile(file, bytes.Replace(text, []byte("node.startup = manual"), []byte("node.startup = automatic"), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := autoscan(); got != "No" || len(warnings) != 0 {
			t.Errorf("tpgt %d: after an update in place: autoscan_en %q, warnings %q", tpgt, got, warnings)
		}
		// Stock's delete, then a new record at that path.
		os.Remove(file)
		if err := os.WriteFile(file, text, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := autoscan(); got != "Yes" || len(warnings) != 1 || !strings.Contains(warnings[0], rel) || !strings.Contains(warnings[0], "ignored") {
			t.Errorf("tpgt %d: a record made anew: autoscan_en %q, warnings %q", tpgt, got, warnings)
		}
		rs, _ := db.FindNodes(r.ID().Target, "", 0, "")
		rs[0].Set("node.startup", "onboot")
		if err := db.SaveNode(rs[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(own); !os.IsNotExist(err) {
			t.Errorf("tpgt %d: the stale own keys survive a write: %v", tpgt, err)
		}
		// goiscsi's own rewrite (a new file renamed into place) keeps its keys.
		rs[0].Set("node.session.autoscan_en", "No")
		for range 2 {
			if err := db.SaveNode(rs[0]); err != nil {
				t.Fatal(err)
			}
		}
		if got := autoscan(); got != "No" || len(warnings) != 0 {
			t.Errorf("tpgt %d: after goiscsi's writes: autoscan_en %q, warnings %q", tpgt, got, warnings)
		}
		// Keys that name no file at all are no one's.
		os.WriteFile(own, []byte("node.session.autoscan_en = No\n"), 0o600)
		if got := autoscan(); got != "Yes" || len(warnings) != 1 {
			t.Errorf("tpgt %d: own keys naming no file: autoscan_en %q, warnings %q", tpgt, got, warnings)
		}
	}
}

func TestDiscoveryAndIfaceRecords(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	cfg, err := ParseConfig(strings.NewReader("discovery.sendtargets.auth.authmethod = CHAP\ndiscovery.sendtargets.auth.username = u\n"), "c")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDiscoveryRecord(cfg, "127.0.0.1", 3260)
	if err := d.Set("discovery.sendtargets.auth.password", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveDiscovery(d); err != nil {
		t.Fatal(err)
	}
	ds, err := db.Discoveries()
	if err != nil || len(ds) != 1 || ds[0].Get("discovery.sendtargets.auth.username") != "u" || ds[0].Get("discovery.sendtargets.auth.password") != "pw" {
		t.Fatalf("Discoveries: %v %v", ds, err)
	}
	if !strings.Contains(ds[0].Show(false), "discovery.sendtargets.auth.password = ********\n") {
		t.Error("secret not masked")
	}
	if err := db.DeleteDiscovery(d); err != nil {
		t.Fatal(err)
	}
	if ds, err := db.Discoveries(); err != nil || len(ds) != 0 {
		t.Errorf("after delete: %v %v", ds, err)
	}
	i := NewIfaceRecord("iface0")
	if err := i.Set("iface.net_ifacename", "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveIface(i); err != nil {
		t.Fatal(err)
	}
	ifs, err := db.Ifaces()
	if err != nil || len(ifs) != 3 || ifs[0].Get("iface.net_ifacename") != "eth1" {
		t.Fatalf("Ifaces: %v %v", ifs, err)
	}
	if err := db.DeleteIface("iface0"); err != nil {
		t.Fatal(err)
	}
}

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"node.session.auth.password": true, "node.session.auth.password_in": true,
		"discovery.sendtargets.auth.password": true, "discovery.sendtargets.auth.password_in": true,
		"node.session.auth.username": false, "node.session.auth.password_length": false,
	} {
		if IsSecretKey(k) != want {
			t.Errorf("IsSecretKey(%q) = %v", k, !want)
		}
	}
}

// Concurrent writers of one record: every read sees one whole version with
// its own keys applied, and no temporary file is left.
func TestConcurrentSavesNeverTear(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	base := NewNodeRecord(nil, "iqn.x:t", "127.0.0.1", 3260, 1, "default")
	base.Set("node.session.autoscan_en", "No")
	if err := db.SaveNode(base); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(db.nodesDir(), stockPath(base.ID()))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr error
	var readOnce sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		var warned error
		reader := &DB{Root: db.Root, Warn: func(err error) { warned = err }}
		for {
			select {
			case <-stop:
				return
			default:
			}
			rs, err := reader.Nodes()
			switch {
			case err == nil && warned != nil:
				err = warned
			case err == nil && len(rs) != 1:
				err = fmt.Errorf("listing %d records", len(rs))
			case err == nil && rs[0].Get("node.session.autoscan_en") != "No":
				err = fmt.Errorf("autoscan_en %q", rs[0].Get("node.session.autoscan_en"))
			}
			if err != nil {
				readOnce.Do(func() { readErr = err })
				return
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			f, err := os.Open(path)
			if err != nil {
				readOnce.Do(func() { readErr = err })
				return
			}
			r, err := ParseRecordKind(f, path, NodeKind)
			f.Close()
			if err == nil && r.Get("node.session.auth.username") != "" && len(r.Get("node.session.auth.username"))%100 != 1 {
				err = fmt.Errorf("torn username %d bytes", len(r.Get("node.session.auth.username")))
			}
			if err != nil {
				readOnce.Do(func() { readErr = err })
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for i := 0; i < 8; i++ {
		writers.Add(1)
		go func(i int) {
			defer writers.Done()
			r := base.Clone()
			r.Set("node.session.auth.username", strings.Repeat("u", 100*i+1))
			for j := 0; j < 30; j++ {
				if err := db.SaveNode(r); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	// goiscsi's writers take turns: the own keys name the record left.
	var warnings []string
	db.Warn = func(err error) { warnings = append(warnings, err.Error()) }
	rs, err := db.Nodes()
	if err != nil || len(rs) != 1 || len(warnings) != 0 {
		t.Fatalf("%d records, %v, warnings %q", len(rs), err, warnings)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestInitiatorName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "initiatorname.iscsi")
	os.WriteFile(p, []byte("## generated\nInitiatorName=iqn.1993-08.org.debian:01:abc\nInitiatorAlias=host1\n"), 0o600)
	name, alias, err := ReadInitiatorName(p)
	if err != nil || name != "iqn.1993-08.org.debian:01:abc" || alias != "host1" {
		t.Fatalf("%q %q %v", name, alias, err)
	}
	os.WriteFile(p, []byte("# nothing\n"), 0o600)
	if _, _, err := ReadInitiatorName(p); err == nil {
		t.Error("file without a name accepted")
	}
	if n := NewInitiatorName(""); !strings.HasPrefix(n, "iqn.2004-10.com.goiscsi:") || len(n) != len("iqn.2004-10.com.goiscsi:")+12 || n == NewInitiatorName("") {
		t.Errorf("NewInitiatorName %q", n)
	}
	if a, b := NewInitiatorName("host-a"), NewInitiatorName("host-a"); a != b || a == NewInitiatorName("host-b") {
		t.Errorf("NewInitiatorName(hostID) not stable per host: %q %q", a, b)
	}
}

// FuzzParseRecord: no panic, and whatever parses writes out a record that
// parses again to the same text.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("# BEGIN RECORD 2.1.8\nnode.name = iqn.x:y\nnode.tpgt = 1\n# END RECORD\n"))
	f.Add([]byte("node.session.scan = manual\nnode.session.cmds_max = 12x\n"))
	f.Add([]byte("iface.iscsi_ifacename = ipv6x\niface.hop_limit = 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		out, _ := r.MarshalText()
		r2, err := ParseRecordKind(bytes.NewReader(out), "again", r.Kind())
		if err != nil {
			t.Fatalf("a record written by MarshalText does not parse: %v\n%s", err, out)
		}
		if out2, _ := r2.MarshalText(); !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
		_ = r.Show(false)
	})
}

// FuzzParseConfig: no panic, and every accepted config yields records.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("node.session.scan = auto\n# x\nbad line\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		r := NewNodeRecord(c, "iqn.x:y", "127.0.0.1", 3260, 1, "default")
		out, _ := r.MarshalText()
		if _, err := ParseRecord(bytes.NewReader(out), "again"); err != nil {
			t.Fatalf("record from an accepted config does not parse: %v\n%s", err, out)
		}
		NewDiscoveryRecord(c, "127.0.0.1", 3260)
	})
}

// The example shipped with goiscsi must load cleanly: it is what users copy.
func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "iscsid.conf.example"))
	if err != nil || len(c.Warnings) > 0 || len(c.Keys()) < 20 {
		t.Fatalf("iscsid.conf.example: %v, warnings %q, %d keys", err, c.Warnings, len(c.Keys()))
	}
	if v, _ := c.Get("node.session.autoscan_en"); v != "Yes" {
		t.Errorf("autoscan_en = %q", v)
	}
}
