package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var generated = regexp.MustCompile(`^iqn\.2004-10\.com\.goiscsi:[0-9a-f]{12}$`)

func TestPrintsNewName(t *testing.T) {
	var out1, out2, errb bytes.Buffer
	if rc := run(nil, &out1, &errb); rc != 0 || !generated.MatchString(strings.TrimSpace(out1.String())) {
		t.Fatalf("rc %d, stdout %q, stderr %q", rc, out1.String(), errb.String())
	}
	run(nil, &out2, &errb)
	if out1.String() == out2.String() {
		t.Errorf("two runs printed the same name %q", out1.String())
	}
}

func TestWriteOnce(t *testing.T) {
	const kept = "InitiatorName=iqn.1993-08.org.debian:01:abcdef\nInitiatorAlias=host1\n"
	for _, tc := range []struct {
		name     string
		before   *string // nil: no file
		wantKept bool
	}{
		{"no file", nil, false},
		{"file with a name", ptr("## comment\n" + kept), true},
		{"GenerateName=yes", ptr("GenerateName=yes\n"), false},
		{"empty InitiatorName=", ptr("InitiatorName=\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "iscsi", "initiatorname.iscsi")
			if tc.before != nil {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(*tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb bytes.Buffer
			if rc := run([]string{"-w", path}, &out, &errb); rc != 0 {
				t.Fatalf("rc %d: %s", rc, errb.String())
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimSpace(out.String())
			if tc.wantKept {
				if string(b) != *tc.before || name != "iqn.1993-08.org.debian:01:abcdef" {
					t.Fatalf("existing name not kept: printed %q, file now %q", name, b)
				}
				return
			}
			if !generated.MatchString(name) || !strings.HasSuffix(string(b), "\nInitiatorName="+name+"\n") {
				t.Fatalf("printed %q, file %q", name, b)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			// A second run keeps what the first wrote.
			var again bytes.Buffer
			run([]string{"-w", path}, &again, &errb)
			if again.String() != out.String() {
				t.Errorf("second run printed %q, first %q", again.String(), out.String())
			}
		})
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		rc   int
		msg  string
	}{
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"-p", "iqn.x"}, 2, "flag provided but not defined"},
		{"file is a directory", []string{"-w", dir}, 1, dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if rc := run(tc.args, &out, &errb); rc != tc.rc || !strings.Contains(errb.String(), tc.msg) || out.Len() != 0 {
				t.Fatalf("rc %d stdout %q stderr %q; want rc %d and %q", rc, out.String(), errb.String(), tc.rc, tc.msg)
			}
		})
	}
}

func ptr(s string) *string { return &s }
