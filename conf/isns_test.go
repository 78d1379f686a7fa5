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
