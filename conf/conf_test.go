package conf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Records stock 2.1.8 wrote must come back byte for byte: goiscsi and open-iscsi
// share one database.
func TestStockRecordRoundTrip(t *testing.T) {
	for _, name := range []string{"stock-2.1.8-default.record", "stock-2.1.8-password.record"} {
		want := readFile(t, name)
		r, err := ParseRecord(bytes.NewReader(want), name, NodeKind)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.MarshalText()
		// autoscan_en is goiscsi's: present with its default in every record.
		got = bytes.Replace(got, []byte("node.session.autoscan_en = Yes\n"), nil, 1)
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed on the round trip:\n%s", name, got)
		}
	}
}

func TestShowMatchesStock(t *testing.T) {
	r, err := ParseRecord(bytes.NewReader(readFile(t, "stock-2.1.8-password.record")), "x", NodeKind)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Replace(r.Show(false), "node.session.autoscan_en = Yes\n", "", 1)
	if want := string(readFile(t, "stock-2.1.8-show.txt")); got != want {
		t.Errorf("-o show differs from stock:\n%s", got)
	}
	if !strings.Contains(r.Show(true), "node.session.auth.password = sekrit\n") {
		t.Error("-S does not show the secret")
	}
}

func TestNewNodeRecordTakesConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(`# comment
node.session.autoscan_en = No
node.conn[0].timeo.login_timeout = 15
node.session.timeo.replacment_timeout = 5
iscsid.safe_logout = Yes
`), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "iscsid.conf:4: unknown key node.session.timeo.replacment_timeout") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	for text, want := range map[string]string{
		"node.session.scan = sometimes\n":              "iscsid.conf:1: node.session.scan",
		"# x\nthis is not a key value line\n":          "iscsid.conf:2:",
		"node.conn[0].timeo.login_timeout = fifteen\n": "must be a number",
	} {
		if _, err := ParseConfig(strings.NewReader(text), "iscsid.conf"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", text, err, want)
		}
	}
	r := NewNodeRecord(cfg, "iqn.x:t", "10.0.0.1", 3260, 2, "")
	for k, want := range map[string]string{
		"node.session.autoscan_en": "No", "node.conn[0].timeo.login_timeout": "15", "node.session.scan": "auto",
		"iface.iscsi_ifacename": "default", "node.tpgt": "2", "node.name": "iqn.x:t",
	} {
		if got := r.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := r.ID(); id.Portal() != "10.0.0.1:3260,2" {
		t.Errorf("portal %s", id.Portal())
	}
}

func TestSetValidates(t *testing.T) {
	r := NewNodeRecord(nil, "iqn.x:t", "10.0.0.1", 3260, 1, "default")
	for _, tc := range []struct{ key, value, err string }{
		{"node.session.autoscan_en", "No", ""},
		{"node.session.scan", "manual", ""},
		{"node.session.scan", "never", "node.session.scan"},
		{"node.session.cmds_max", "lots", "must be a number"},
		{"node.no.such.key", "1", "unknown record key"},
		{"node.session.auth.password", "a\nb", "line break"},
		{"node.session.auth.username", "<empty>", ""},
	} {
		err := r.Set(tc.key, tc.value)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Set(%q, %q) = %v, want %q", tc.key, tc.value, err, tc.err)
		}
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
	fi, err := os.Stat(filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:a", "127.0.0.1,3260,1", "default"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v %v", fi, err)
	}
	// A record in the old layout (the portal is a file) is read too.
	old := filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:c", "10.0.0.9,3260")
	os.MkdirAll(filepath.Dir(old), 0o700)
	os.WriteFile(old, []byte("node.name = iqn.2003-01.org.example:c\nnode.conn[0].address = 10.0.0.9\n"), 0o600)
	all, err := db.Nodes()
	if err != nil || len(all) != 3 {
		t.Fatalf("Nodes: %d, %v", len(all), err)
	}
	found, _ := db.FindNodes("iqn.2003-01.org.example:b", "", 0, "")
	if len(found) != 1 || found[0].ID().Address != "::1" || found[0].ID().TPGT != 2 {
		t.Fatalf("FindNodes b: %+v", found)
	}
	if err := db.DeleteNode(a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(db.Root, "nodes", "iqn.2003-01.org.example:a")); !os.IsNotExist(err) {
		t.Error("empty target directory left after delete")
	}
	// A broken record is an error naming its file, not a silent skip.
	os.WriteFile(db.nodePath(b.ID()), []byte("node.session.cmds_max = many\n"), 0o600)
	if _, err := db.Nodes(); err == nil || !strings.Contains(err.Error(), "3261,2/default:1") {
		t.Errorf("broken record: %v", err)
	}
	d := NewDiscoveryRecord(nil, "127.0.0.1", 3260)
	if err := db.SaveDiscovery(d); err != nil {
		t.Fatal(err)
	}
	ds, err := db.Discoveries()
	if err != nil || len(ds) != 1 || ds[0].Get("discovery.sendtargets.address") != "127.0.0.1" {
		t.Fatalf("Discoveries: %v %v", ds, err)
	}
}

func TestConcurrentSavesNeverTear(t *testing.T) {
	db := &DB{Root: t.TempDir()}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := NewNodeRecord(nil, "iqn.x:t", "127.0.0.1", 3260, 1, "default")
			r.Set("node.session.auth.username", strings.Repeat("u", 100*i+1))
			for j := 0; j < 20; j++ {
				if err := db.SaveNode(r); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	rs, err := db.Nodes()
	if err != nil || len(rs) != 1 {
		t.Fatalf("%d records, %v", len(rs), err)
	}
	ents, _ := os.ReadDir(filepath.Dir(db.nodePath(rs[0].ID())))
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
	if n := NewInitiatorName(); !strings.HasPrefix(n, "iqn.2004-10.com.goiscsi:") || n == NewInitiatorName() {
		t.Errorf("NewInitiatorName %q", n)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("# BEGIN RECORD 2.1.8\nnode.name = iqn.x:y\nnode.tpgt = 1\n# END RECORD\n"))
	f.Add([]byte("node.session.scan = manual\nnode.session.cmds_max = 12x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(bytes.NewReader(b), "fuzz", NodeKind)
		if err != nil {
			return
		}
		out, _ := r.MarshalText()
		r2, err := ParseRecord(bytes.NewReader(out), "again", NodeKind)
		if err != nil {
			t.Fatalf("a record written by MarshalText does not parse: %v\n%s", err, out)
		}
		if out2, _ := r2.MarshalText(); !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("node.session.scan = auto\n# x\nbad line\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		NewNodeRecord(c, "iqn.x:y", "127.0.0.1", 3260, 1, "default")
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

// A value in another case is stored as stock spells it: stock reads an unknown
// spelling as the default, so "chap" would mean no CHAP there.
func TestValuesStoredAsStockSpellsThem(t *testing.T) {
	r := NewNodeRecord(nil, "iqn.x:t", "10.0.0.1", 3260, 1, "default")
	for k, v := range map[string]string{"node.session.auth.authmethod": "chap", "node.session.autoscan_en": "no", "node.startup": "Automatic"} {
		if err := r.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := r.MarshalText()
	for _, want := range []string{"node.session.auth.authmethod = CHAP\n", "node.session.autoscan_en = No\n", "node.startup = automatic\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record lacks %q", want)
		}
	}
}
