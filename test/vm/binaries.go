package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GuestPrograms are the goiscsi commands the guest gets in /usr/local/sbin, as
// package paths relative to the module root. The scenarios find them through the
// GOISCSID, GOISCSIADM, GOISCSISTART, TESTTARGET and ATTACHLUN variables of
// guest/lib.sh.
var GuestPrograms = []string{"cmd/goiscsid", "cmd/goiscsiadm", "cmd/goiscsistart", "test/target/cmd/testtarget", "initiator/example/attachlun"}

// GuestBinDir is where the guest finds the programs BuildBinaries builds.
const GuestBinDir = "/usr/local/sbin"

// ModuleRoot returns the directory of the go.mod of the module that the current
// directory belongs to (the goiscsi checkout).
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("vm: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("vm: not inside the goiscsi module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// BuildBinaries builds static (CGO_ENABLED=0) binaries of GuestPrograms into dir,
// from the module at root, and returns the Config.Files entries that put them in
// GuestBinDir. A program whose package does not exist yet or is not a main
// package is left out (logged): the scenarios that need it fail in the guest with
// a line naming it. A package that exists but does not compile is an error.
func BuildBinaries(ctx context.Context, root, dir string, logf func(string, ...any)) (map[string]string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var pkgs []string
	for _, p := range GuestPrograms {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			logf("vm: %s does not exist: not in the guest", p)
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "list", "-f", "{{.Name}}", "./"+p)
		cmd.Dir = root
		out, err := cmd.Output()
		if name := strings.TrimSpace(string(out)); err != nil || name != "main" {
			logf("vm: %s is not a main package (%q, %v): not in the guest", p, name, err)
			continue
		}
		pkgs = append(pkgs, "./"+p)
	}
	files := map[string]string{}
	if len(pkgs) == 0 {
		return files, nil
	}
	// One go build for all of them: the packages compile in parallel.
	args := append([]string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vm: go build (CGO_ENABLED=0) %s: %v\n%s", strings.Join(pkgs, " "), err, b)
	}
	for _, p := range pkgs {
		name := filepath.Base(p)
		bin := filepath.Join(dir, name)
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("vm: go build wrote no %s: %w", bin, err)
		}
		files[GuestBinDir+"/"+name] = bin
	}
	return files, nil
}

// NeedsGoiscsi reports whether a run of the scenario with env uses a program
// BuildBinaries builds: goiscsid and goiscsiadm unless INITIATOR is "stock",
// and the Go test target for the scenarios that start it. Runs that need none
// (stock open-iscsi against LIO) can go on when the tree does not build, so the
// reference results do not depend on the state of goiscsi.
func NeedsGoiscsi(scenario string, env map[string]string) bool {
	if env["INITIATOR"] != "stock" {
		return true
	}
	b, err := guestFS.ReadFile("scenarios/" + scenario + ".sh")
	return err != nil || strings.Contains(string(b), "testtarget_start")
}

// BuildDeb builds goiscsi's Debian package from the module at root with
// `make deb` into dir and returns its path: the Debian guest's scenarios install
// what an operator would.
func BuildDeb(ctx context.Context, root, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "deb", "DEBOUT="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vm: make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "goiscsi_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("vm: make deb left %d packages in %s, want 1", len(debs), dir)
	}
	return debs[0], nil
}
