package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/boot"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args    string
		want    boot.Settings
		action  byte
		params  int
		wantErr string
	}{
		{"-i iqn.i -t iqn.t -g 1 -a 10.0.0.1 -p 3261 -u u -w w -U ui -W wi",
			boot.Settings{InitiatorName: "iqn.i", Target: "iqn.t", TPGT: 1, Address: "10.0.0.1", Port: 3261,
				Username: "u", Password: "w", UsernameIn: "ui", PasswordIn: "wi"}, 0, 0, ""},
		{"--initiatorname=iqn.i --targetname iqn.t --tgpt=2 --address=10.0.0.1 -P node.session.timeo.replacement_timeout=300",
			boot.Settings{InitiatorName: "iqn.i", Target: "iqn.t", TPGT: 2, Address: "10.0.0.1"}, 0, 1, ""},
		{"-g3 -a10.0.0.1", boot.Settings{TPGT: 3, Address: "10.0.0.1"}, 0, 0, ""},
		{"-d 8 -b", boot.Settings{TPGT: -1}, 'b', 0, ""},
		{"-fb", boot.Settings{TPGT: -1}, 'f', 0, ""},
		{"--fwparam_network", boot.Settings{TPGT: -1}, 'N', 0, ""},
		{"-x", boot.Settings{}, 0, 0, "invalid option -- 'x'"},
		{"--nosuch", boot.Settings{}, 0, 0, "unrecognized option '--nosuch'"},
		{"-t", boot.Settings{}, 0, 0, "option requires an argument -- 't'"},
		{"-P node.startup", boot.Settings{}, 0, 0, "Invalid --param node.startup. Missing value."},
	} {
		o, err := parse(strings.Fields(tc.args))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parse(%s) error = %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%s): %v", tc.args, err)
			continue
		}
		if o.settings != tc.want || o.action != tc.action || len(o.params) != tc.params {
			t.Errorf("parse(%s) = %+v action %q params %v, want %+v action %q, %d params", tc.args, o.settings, o.action, o.params, tc.want, tc.action, tc.params)
		}
	}
}

// TestRunWithoutKernel: what goiscsistart answers before it needs the
// kernel, as iscsistart does: the missing setting named and exit 7, the
// firmware table printed (-f) as iscsiadm -m fw prints it, no table 21.
func TestRunWithoutKernel(t *testing.T) {
	qemu := filepath.Join("..", "..", "ibft", "testdata", "qemu")
	stockFW, err := os.ReadFile(filepath.Join("..", "goiscsiadm", "testdata", "golden", "stock-fw.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// The first case of the capture is stock's -m fw, the text iscsistart -f
	// prints too (both are fw_print_entry).
	var fwText strings.Builder
	for _, l := range strings.Split(string(stockFW), "\n")[1:] {
		if !strings.HasPrefix(l, "OUT:") {
			break
		}
		fwText.WriteString(strings.TrimPrefix(l, "OUT:") + "\n")
	}
	for _, tc := range []struct {
		args, sysfs    string
		code           int
		stdout, stderr string
	}{
		{"-t iqn.t -g 1 -a 10.0.0.1", "", 7, "", "iscsistart: InitiatorName not set. Exiting iscsistart\n"},
		{"-i iqn.i -t iqn.t -a 10.0.0.1", "", 7, "", "iscsistart: Portal Group not set. Exiting iscsistart\n"},
		{"-i iqn.i -g 1 -a 10.0.0.1", "", 7, "", "iscsistart: TargetName not set. Exiting iscsistart\n"},
		{"-i iqn.i -t iqn.t -g 1", "", 7, "", "iscsistart: IP Address not set. Exiting iscsistart\n"},
		{"-f", qemu, 0, fwText.String(), ""},
		{"-f", t.TempDir(), 21, "Could not get list of targets from firmware.\n", ""},
		{"-b", t.TempDir(), 21, "Could not get boot entry.\n", ""},
		{"-N", t.TempDir(), 21, "Could not setup fw entries.\n", ""},
		{"-v", "", 0, "iscsistart version 2.1.8\n", ""},
		{"-c /tmp/other.conf -b", "", 7, "", "iscsistart: -c /tmp/other.conf: the file must be an iscsid.conf (its directory holds the node database)\n"},
	} {
		t.Setenv("GOISCSI_SYSFS", tc.sysfs)
		var stdout, stderr strings.Builder
		args := strings.Fields(tc.args)
		if !strings.Contains(tc.args, "-c ") {
			// An empty node database: no iscsid.conf, no iface records.
			args = append(args, "-c", filepath.Join(t.TempDir(), "iscsid.conf"))
		}
		code := run(args, &stdout, &stderr)
		if int(code) != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
			t.Errorf("goiscsistart %s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
