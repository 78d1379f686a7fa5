package main

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// stockNoise are stderr lines stock prints in the capture environment that
// are about that environment, not about the command: it asks iscsid (which
// was not running) for iscsid.conf's path on -o new, and tries to start it.
var stockNoise = []string{
	"iscsiadm: can't open iscsid.startup configuration file ",
	"iscsiadm: iscsid is not running. Could not start it up automatically",
	"iscsiadm: can not connect to iSCSI daemon (111)!",
	"System has not been booted with systemd",
	"Failed to connect to bus",
}

// stockOrder are commands whose lines stock prints in the order readdir gives
// the record files (creation order on tmpfs), where goiscsiadm goes by the
// sorted order its -m node listing uses; for them the same lines in any
// order pass.
var stockOrder = map[string]bool{
	"-m node -L automatic":        true,
	"-m node -o delete":           true,
	"-m discoverydb -o show -P 1": true,
}

type stockCase struct {
	args           string
	stdout, stderr []string
	code           int
}

func readStockSequence(t *testing.T, name string) []stockCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []stockCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "== iscsiadm "):
			out = append(out, stockCase{args: strings.TrimPrefix(line, "== iscsiadm ")})
		case strings.HasPrefix(line, "OUT:"):
			out[len(out)-1].stdout = append(out[len(out)-1].stdout, line[4:])
		case strings.HasPrefix(line, "ERR:"):
			out[len(out)-1].stderr = append(out[len(out)-1].stderr, line[4:])
		case strings.HasPrefix(line, "RC:"):
			out[len(out)-1].code, _ = strconv.Atoi(line[3:])
		}
	}
	return out
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func without(ls []string, drop func(string) bool) []string {
	var out []string
	for _, l := range ls {
		if !drop(l) {
			out = append(out, l)
		}
	}
	return out
}

func sameLines(a, b []string, anyOrder bool) bool {
	if anyOrder {
		a, b = append([]string(nil), a...), append([]string(nil), b...)
		sort.Strings(a)
		sort.Strings(b)
	}
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestStockSequence replays, in one fresh database, the command lines of a
// capture of stock open-iscsi 2.1.8 (testdata/golden/capture-stock.sh: no
// iscsid.conf, no iscsid, no sessions) and compares stdout, stderr and the
// exit status line by line. Deliberate differences are filtered here, each
// with its reason: stock's lines about reaching iscsid (stockNoise);
// goiscsiadm's extra line saying where it looked for goiscsid; the
// node.session.autoscan_en key, which goiscsi's records have and stock's do
// not; the database root, /etc/iscsi in the capture.
func TestStockSequence(t *testing.T) {
	root := t.TempDir()
	t.Setenv("GOISCSI_ROOT", root)
	t.Setenv("GOISCSI_SYSFS", t.TempDir())
	t.Setenv("GOISCSI_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	cases := readStockSequence(t, "stock-seq-records.txt")
	if len(cases) < 40 {
		t.Fatalf("only %d captured command lines", len(cases))
	}
	for _, c := range cases {
		x := adm(t, strings.Fields(c.args)...)
		gotOut := without(lines(x.Stdout), func(l string) bool { return strings.HasPrefix(l, "node.session.autoscan_en = ") })
		gotErr := without(lines(x.Stderr), func(l string) bool { return strings.HasPrefix(l, "iscsiadm: goiscsid is not running ") })
		wantErr := without(c.stderr, func(l string) bool {
			for _, n := range stockNoise {
				if strings.HasPrefix(l, n) {
					return true
				}
			}
			return false
		})
		for i := range wantErr {
			wantErr[i] = strings.ReplaceAll(wantErr[i], "/etc/iscsi", root)
		}
		if int(x.Code) != c.code {
			t.Errorf("iscsiadm %s: exit %d, stock %d", c.args, x.Code, c.code)
		}
		if !sameLines(gotOut, c.stdout, stockOrder[c.args]) {
			t.Errorf("iscsiadm %s: stdout\n%s\nstock:\n%s", c.args, strings.Join(gotOut, "\n"), strings.Join(c.stdout, "\n"))
		}
		if !sameLines(gotErr, wantErr, stockOrder[c.args]) {
			t.Errorf("iscsiadm %s: stderr\n%s\nstock:\n%s", c.args, strings.Join(gotErr, "\n"), strings.Join(wantErr, "\n"))
		}
	}
}
