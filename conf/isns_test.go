package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An iSNS discovery record is written where and as stock 2.1.8 writes it
// (measured: isns/<server>,<port>/isns_config), read back as one, listed after
// the SendTargets ones, and the node links stock keeps beside it, or in isns/
// itself (its old layout, which -m discovery -t isns still uses), are neither
// records nor warnings.
func TestISNSDiscoveryRecord(t *testing.T) {
	root := t.TempDir()
	var warnings []string
	db := &DB{Root: root, Warn: func(err error) { warnings = append(warnings, err.Error()) }}
	cfg, err := ParseConfig(strings.NewReader("discovery.isns.discoveryd_poll_inval = 30\ndiscovery.startup = automatic\ndiscovery.sendtargets.port = 3261\n"), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	d := NewISNSDiscoveryRecord(cfg, "10.0.0.5", 3205)
	if err := db.SaveDiscovery(d); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveDiscovery(NewDiscoveryRecord(nil, "10.0.0.1", 3260)); err != nil {
		t.Fatal(err)
	}
	want := "# BEGIN RECORD 2.1.8\ndiscovery.startup = manual\ndiscovery.type = isns\ndiscovery.sendtargets.address = 10.0.0.5\n" +
		"discovery.sendtargets.port = 3205\ndiscovery.isns.use_discoveryd = No\ndiscovery.isns.discoveryd_poll_inval = 30\n# END RECORD\n"
	file := filepath.Join(root, "isns", "10.0.0.5,3205", "isns_config")
	if b, err := os.ReadFile(file); err != nil || string(b) != want {
		t.Fatalf("%s: %v\n%s\nwant\n%s", file, err, b, want)
	}
	if r, err := ParseRecord(strings.NewReader(want), "isns_config"); err != nil || r.Kind() != ISNSDiscoveryKind || r.Show(false) != want {
		t.Errorf("ParseRecord: %v %v", r, err)
	}
	for _, link := range []string{"isns/iqn.2003-01.org.example:t,127.0.0.1,3260,1,default", "isns/10.0.0.5,3205/iqn.2003-01.org.example:t,127.0.0.1,3260,1,default"} {
		if err := os.Symlink(filepath.Join(root, "nodes", "x"), filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := db.Discoveries()
	if err != nil || len(ds) != 2 || ds[0].Kind() != DiscoveryKind || ds[1].Kind() != ISNSDiscoveryKind ||
		ds[1].Get("discovery.isns.discoveryd_poll_inval") != "30" || len(warnings) != 0 {
		t.Fatalf("Discoveries: %v %v, warnings %q", ds, err, warnings)
	}
	if err := ds[1].Set("discovery.sendtargets.auth.authmethod", "CHAP"); err == nil {
		t.Error("an iSNS record took a SendTargets key")
	}
	if err := db.DeleteDiscovery(ds[1]); err != nil {
		t.Fatal(err)
	}
	if ds, _ := db.Discoveries(); len(ds) != 1 || ds[0].Kind() != DiscoveryKind {
		t.Errorf("after deleting the iSNS record: %v", ds)
	}
}

// isns.address and isns.port, which iscsid read until 2.0-872 and no stock
// since reads, are accepted silently as stock accepts them, set nothing in
// the records made from the file, and do not hide a misspelling of them.
func TestISNSConfigKeys(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		warnings   []string
	}{
		{"address and port", "isns.address = 192.168.0.1\nisns.port = 3205\n", nil},
		{"a port that is no number", "isns.port = three\n", nil},
		{"empty", "isns.address =\n", nil},
		{"misspelt", "isns.adress = 192.168.0.1\nisns.port = 3205\n", []string{"iscsid.conf:1: unknown key isns.adress (ignored)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(strings.NewReader(tc.text), "iscsid.conf")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cfg.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings %q, want %q", cfg.Warnings, tc.warnings)
			}
			plain, _ := ParseConfig(strings.NewReader(""), "iscsid.conf")
			for _, pair := range []struct{ got, want *Record }{
				{NewISNSDiscoveryRecord(cfg, "10.0.0.5", 3205), NewISNSDiscoveryRecord(plain, "10.0.0.5", 3205)},
				{NewDiscoveryRecord(cfg, "10.0.0.5", 3260), NewDiscoveryRecord(plain, "10.0.0.5", 3260)},
				{NewNodeRecord(cfg, "iqn.2003-01.org.example:t", "10.0.0.1", 3260, 1, "default"), NewNodeRecord(plain, "iqn.2003-01.org.example:t", "10.0.0.1", 3260, 1, "default")},
			} {
				if got, want := pair.got.Show(false), pair.want.Show(false); got != want {
					t.Errorf("a record made with these keys:\n%s\nwithout them:\n%s", got, want)
				}
			}
		})
	}
}

// Saving a node record makes the link stock keeps from its discovery
// source, where stock keeps it; deleting the record removes it.
func TestDiscoveryLinks(t *testing.T) {
	const target = "iqn.2003-01.org.example:t"
	const name = target + ",10.0.0.1,3260,1,default"
	const to = " -> nodes/" + target + "/10.0.0.1,3260,1"
	for _, tc := range []struct {
		name    string
		typ     string
		tpgt    int
		dirs    []string // discovery directories there before the save
		want    string   // the link, "" for none
		relinks string   // after RelinkNode with isns/10.0.0.5,3205 made after the save
	}{
		{"sendtargets", "send_targets", 1, []string{"send_targets/10.0.0.5,3205"}, "send_targets/10.0.0.5,3205/" + name + to, "send_targets/10.0.0.5,3205/" + name + to},
		{"sendtargets without its directory", "send_targets", 1, nil, "", ""},
		{"isns with the server's directory", "isns", 1, []string{"isns/10.0.0.5,3205"}, "isns/10.0.0.5,3205/" + name + to, "isns/10.0.0.5,3205/" + name + to},
		{"isns without it", "isns", 1, nil, "isns/" + name + to, "isns/10.0.0.5,3205/" + name + to},
		{"no tpgt", "isns", -1, []string{"isns/10.0.0.5,3205"}, "", ""},
		{"static", "static", 1, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			db := &DB{Root: root}
			for _, d := range tc.dirs {
				os.MkdirAll(filepath.Join(root, d), 0o700)
			}
			r := NewNodeRecord(nil, target, "10.0.0.1", 3260, tc.tpgt, "default")
			r.Set("node.discovery_type", tc.typ)
			r.Set("node.discovery_address", "10.0.0.5")
			r.Set("node.discovery_port", "3205")
			if err := db.SaveNode(r); err != nil {
				t.Fatal(err)
			}
			if got := links(t, root); got != tc.want {
				t.Errorf("after the save: %q, want %q", got, tc.want)
			}
			os.MkdirAll(filepath.Join(root, "isns", "10.0.0.5,3205"), 0o700)
			if err := db.RelinkNode(r); err != nil {
				t.Fatal(err)
			}
			if got := links(t, root); got != tc.relinks {
				t.Errorf("after RelinkNode: %q, want %q", got, tc.relinks)
			}
			if err := db.DeleteNode(r); err != nil {
				t.Fatal(err)
			}
			if got := links(t, root); got != "" {
				t.Errorf("after the deletion: %q", got)
			}
		})
	}
}

// links lists the symbolic links under root as "path -> target", relative
// to root.
func links(t *testing.T, root string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		to, _ := os.Readlink(p)
		rel, _ := filepath.Rel(root, p)
		relTo, _ := filepath.Rel(root, to)
		out = append(out, rel+" -> "+relTo)
		return nil
	})
	return strings.Join(out, "\n")
}
