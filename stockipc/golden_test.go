package stockipc_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/stockipc"
)

// The requests Debian 12's iscsiadm (open-iscsi 2.1.8) sent to the server in
// TestStockIscsiadm, kept in testdata/stock-2.1.8 (rewrite them with
// go test -run TestStockIscsiadm -update, as root), decode to the records it
// wrote itself.
func TestDecodeStockRequests(t *testing.T) {
	reqs, err := filepath.Glob("testdata/stock-2.1.8/*.req")
	if err != nil || len(reqs) < 5 {
		t.Fatalf("golden requests: %v %v", reqs, err)
	}
	want := map[string]stockipc.Command{
		"config-file":       stockipc.CmdConfigFile,
		"immediate-stop":    stockipc.CmdImmediateStop,
		"login-chap":        stockipc.CmdSessionLogin,
		"login-ipv6-portal": stockipc.CmdSessionLogin,
		"login-ipv6-iface":  stockipc.CmdSessionLogin,
	}
	for _, path := range reqs {
		name := strings.TrimSuffix(filepath.Base(path), ".req")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := stockipc.DecodeRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Command != want[name] || r.Size != 16104 || r.Version() != "2.1.1 to 2.1.10" || r.Unsupported != "" {
				t.Errorf("%s: %+v", name, r)
			}
			if rec, err := os.ReadFile(strings.TrimSuffix(path, ".req") + ".record"); err == nil {
				compareRecord(t, r.Record, parseRecordFile(t, rec))
			} else if r.Command == stockipc.CmdSessionLogin {
				t.Fatal(err)
			}
			// What decodes encodes to what decodes the same (the bytes
			// themselves differ: iscsiadm leaves pointers and the fields
			// idbm does not list in the struct).
			b2, err := stockipc.EncodeRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := stockipc.DecodeRequest(b2)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, r2) {
				t.Errorf("re-encoded request decodes to %+v, want %+v", r2, r)
			}
		})
	}
}

// The comparison itself finds a changed value and an extra one.
func TestCompareRecordCatches(t *testing.T) {
	b, err := os.ReadFile("testdata/stock-2.1.8/login-chap.req")
	if err != nil {
		t.Fatal(err)
	}
	r, err := stockipc.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := os.ReadFile("testdata/stock-2.1.8/login-chap.record")
	file := parseRecordFile(t, rec)
	if file["node.session.auth.chap_algs"] != "SHA256,MD5" || file["node.conn[0].iscsi.HeaderDigest"] != "CRC32C,None" {
		t.Fatalf("golden record lacks the values set: %v", file)
	}
	r.Record["node.session.scan"] = "auto"
	r.Record["iface.ipaddress"] = "10.0.0.1"
	if d := recordDiff(r.Record, file); len(d) != 2 || !strings.HasPrefix(d[0], "iface.ipaddress: request") || !strings.HasPrefix(d[1], "node.session.scan: file") {
		t.Errorf("recordDiff found %q, want the changed and the extra value", d)
	}
	// A secret never shows in the request's log form.
	if s := r.LogValue().String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "iqn.2003-01.org.example:tgt1") {
		t.Errorf("LogValue %s", s)
	}
}
