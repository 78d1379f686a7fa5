// Command vmrun boots the test VM with one scenario and shows its console: the
// README's demo, and a way to try a scenario by hand.
//
//	go run ./test/vm/cmd/vmrun -scenario demo [-env KEY=VALUE]...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goiscsi/goiscsi/test/vm"
)

type envFlags map[string]string

func (e envFlags) String() string { return fmt.Sprint(map[string]string(e)) }

func (e envFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("-env %q: want KEY=VALUE", s)
	}
	e[k] = v
	return nil
}

func main() {
	env := envFlags{}
	scenario := flag.String("scenario", "demo", "scenario to run: "+strings.Join(vm.Scenarios(), ", ")+", or shell")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on the whole boot")
	flag.Var(env, "env", "KEY=VALUE exported to the scenario (repeatable)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "goiscsi-vmrun-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	files, err := build(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	cfg := vm.Config{Scenario: *scenario, Env: env, Files: files, Timeout: *timeout, Console: os.Stdout,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	run := vm.Run
	if *scenario == "shell" {
		run = vm.RunInteractive
	}
	res, err := run(ctx, cfg)
	os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vmrun: scenario %s passed in %v (%s)\n", *scenario, res.Duration.Round(time.Second), res.Accel)
}

// build compiles the static goiscsi binaries the guest runs into dir.
func build(dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"goiscsid", "goiscsiadm"} {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", name, err, b)
		}
		out["/usr/local/sbin/"+name] = bin
	}
	return out, nil
}
