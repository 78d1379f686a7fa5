//go:build vm

package vm

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemuChildren lists the qemu processes whose parent is this test process.
func qemuChildren(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "qemu") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == me {
			out = append(out, pid)
		}
	}
	return out
}

// TestVMHarnessFailures proves the harness's bars: a scenario that hangs is cut
// at its timeout, a guest kernel panic and a failing scenario each come back as
// one line saying so, and no qemu survives any of them.
func TestVMHarnessFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         string
	}{
		{"timeout", "log hanging on purpose; sleep 600", 20 * time.Second, "timed out after 20s"},
		{"panic", "echo 1 >/proc/sys/kernel/sysrq; echo c >/proc/sysrq-trigger; sleep 60", time.Minute, "guest kernel panic"},
		{"fail", "fail 'on purpose'", time.Minute, "failed (exit 1): on purpose"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				for _, pid := range qemuChildren(t) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Errorf("qemu %d outlived Run", pid)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			res, err := Run(ctx, Config{Scenario: "harness-" + tc.name, Script: tc.script, Timeout: tc.timeout, Logf: t.Logf})
			if err == nil {
				t.Fatalf("Run succeeded: %v", res.Records)
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Second), err)
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, tc.want)
			}
			if pids := qemuChildren(t); len(pids) > 0 {
				t.Errorf("qemu %v still running after Run returned", pids)
			}
		})
	}
}

// TestVMCancel cancels a boot from outside (as an interrupted vmrun or a test
// that gives up does): Run returns at once and leaves no qemu behind.
func TestVMCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(8 * time.Second)
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, Config{Scenario: "harness-cancel", Script: "sleep 600", Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Run after cancel: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run returned %v after the cancel", d-8*time.Second)
	}
	if pids := qemuChildren(t); len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("qemu %v still running after Run returned", pids)
	}
}
