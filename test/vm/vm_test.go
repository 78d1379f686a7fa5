//go:build vm

package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goiscsiBinaries builds the static binaries the guest runs and returns the
// Files entries that put them in /usr/local/sbin.
func goiscsiBinaries(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, pkg := range []string{"goiscsid", "goiscsiadm"} {
		bin := filepath.Join(dir, pkg)
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
		out["/usr/local/sbin/"+pkg] = bin
	}
	return out
}

func boot(t *testing.T, scenario string, env map[string]string) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Scenario: scenario, Env: env, Files: goiscsiBinaries(t), Logf: t.Logf})
	if res != nil {
		for _, r := range res.Records {
			t.Logf("record: %v", map[string]string(r))
		}
		t.Logf("accel %s, wall %v", res.Accel, res.Duration)
	}
	if err != nil {
		if res != nil {
			t.Logf("console tail:\n%s", res.ConsoleTail(80))
		}
		t.Fatalf("scenario %s: %v", scenario, err)
	}
	return res
}

// TestVMStockLogin runs the login scenario with stock open-iscsi 2.1.8: the
// reference every goiscsi scenario is compared with.
func TestVMStockLogin(t *testing.T) {
	res := boot(t, "login", nil)
	checkLogin(t, res)
}

// TestVMGoiscsiLogin runs the same scenario with goiscsid and goiscsiadm.
func TestVMGoiscsiLogin(t *testing.T) {
	res := boot(t, "login", map[string]string{"INITIATOR": "goiscsi"})
	checkLogin(t, res)
}

func checkLogin(t *testing.T, res *Result) {
	t.Helper()
	if r := res.First("dd"); r == nil || r["want"] == "" || r["got"] != r["want"] {
		t.Errorf("data written did not read back identical: %v", r)
	}
	if r := res.First("after_logout"); r == nil || r["sessions"] != "0" || r["dev_present"] != "no" {
		t.Errorf("after logout: %v", r)
	}
	if r := res.First("login_ready"); r != nil {
		t.Logf("login until block device: %s ms", r["ms"])
	}
	for _, r := range res.Find("cmd") {
		if r["name"] == "session_p3" && !strings.Contains(string(r.Bytes("stdout")), "Attached scsi disk") {
			t.Errorf("-m session -P 3 lists no disk:\n%s", r.Bytes("stdout"))
		}
	}
}

// TestVMDemo runs the README's demo: every LUN with autoscan on, LUN 0 alone
// with node.session.autoscan_en = No, then exactly the LUN asked for.
func TestVMDemo(t *testing.T) {
	res := boot(t, "demo", map[string]string{"INITIATOR": "goiscsi"})
	want := map[string]string{"autoscan_on": "3", "autoscan_off": "1", "scan_lun_2": "2"}
	for _, r := range res.Find("devices") {
		if w, ok := want[r["phase"]]; ok {
			if r["count"] != w {
				t.Errorf("%s: %s devices (%s), want %s", r["phase"], r["count"], r["list"], w)
			}
			delete(want, r["phase"])
		}
	}
	if len(want) > 0 {
		t.Errorf("phases never reached: %v", want)
	}
}

// TestVMLUNAddedWhileLoggedIn is the seed's scenario: a LUN added on a live
// session. Stock never shows it; goiscsid scans for it under autoscan and
// leaves it alone with autoscan_en = No.
func TestVMLUNAddedWhileLoggedIn(t *testing.T) {
	for _, tc := range []struct {
		initiator, autoscan, appears string
	}{
		{"stock", "Yes", "no"},
		{"goiscsi", "Yes", "yes"},
		{"goiscsi", "No", "no"},
	} {
		t.Run(tc.initiator+"-autoscan-"+tc.autoscan, func(t *testing.T) {
			res := boot(t, "lunchange", map[string]string{"INITIATOR": tc.initiator, "AUTOSCAN": tc.autoscan})
			r := res.First("after_add")
			if r == nil || r["appeared"] != tc.appears {
				t.Errorf("new LUN appeared = %v, want %s", r, tc.appears)
			}
		})
	}
}
