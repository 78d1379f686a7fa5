// Command vmrun boots the test VM with one scenario and shows its console: the
// README's demo, and a way to try a scenario by hand.
//
//	go run ./test/vm/cmd/vmrun -scenario demo [-env KEY=VALUE]... [-records] [-q]
//
// The console streams to stdout; -records adds the scenario's JSON records,
// decoded, after it; -q shows the records only. It exits 1 when the scenario
// fails (non-zero exit, kernel panic, timeout, or a missing tool on the host).
//
// With -disk FILE the guest boots the systemd Debian on that disk image instead
// (made from the prepared Debian root when FILE does not exist; later runs keep
// what earlier ones changed; -open-iscsi starts it with stock open-iscsi
// installed), with goiscsi's Debian package in /var/cache/goiscsi-test:
//
//	go run ./test/vm/cmd/vmrun -disk /tmp/d.img -scenario systemd-install -env STAGE=1 -env BOOT_TARGET=iqn.2026-11.dev.goiscsi:boot
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
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
	records := flag.Bool("records", false, "after the console, print the scenario's JSON records readably")
	quiet := flag.Bool("q", false, "print only the records (and the console's tail on failure), not the console")
	disk := flag.String("disk", "", "boot the systemd Debian on this disk `image` (created when missing)")
	openISCSI := flag.Bool("open-iscsi", false, "with -disk: create the disk with stock open-iscsi installed")
	filesDir := flag.String("files", "", "write the files the scenario sent (emit_file) into `dir`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "goiscsi-vmrun-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	var files map[string]string
	if *disk != "" {
		image := vm.DebianPlain
		if *openISCSI {
			image = vm.DebianOpenISCSI
		}
		files, err = debian(ctx, dir, *disk, image)
	} else {
		files, err = build(ctx, dir)
	}
	if err != nil {
		if vm.NeedsGoiscsi(*scenario, env) {
			os.RemoveAll(dir)
			fmt.Fprintln(os.Stderr, "vmrun:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "vmrun: goiscsi does not build; running this stock-only scenario without it: %v\n", err)
		files = nil
	}
	cfg := vm.Config{Scenario: *scenario, Env: env, Files: files, Timeout: *timeout, Disk: *disk,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	if !*quiet {
		cfg.Console = os.Stdout
	}
	run := vm.Run
	if *scenario == "shell" {
		run = vm.RunInteractive
	}
	res, err := run(ctx, cfg)
	os.RemoveAll(dir)
	if *records || *quiet {
		summarize(res)
	}
	if *filesDir != "" && res != nil {
		if ferr := res.SaveFiles(*filesDir, func(p string) { fmt.Fprintf(os.Stderr, "vmrun: wrote %s\n", p) }); ferr != nil {
			fmt.Fprintln(os.Stderr, "vmrun:", ferr)
			os.Exit(1)
		}
	}
	if err != nil {
		if *quiet && res != nil {
			fmt.Fprintf(os.Stderr, "console tail:\n%s\n", res.ConsoleTail(40))
		}
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vmrun: scenario %s passed in %v (%s)\n", *scenario, res.Duration.Round(time.Second), res.Accel)
}

// build compiles the static goiscsi binaries the guest runs into dir.
func build(ctx context.Context, dir string) (map[string]string, error) {
	root, err := vm.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	return vm.BuildBinaries(ctx, root, dir, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
}

// debian makes the Debian disk at path if it does not exist and builds the
// package into dir; it returns the Files entry that puts the package in the guest.
func debian(ctx context.Context, dir, path string, image vm.DebianImage) (map[string]string, error) {
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	if _, err := os.Stat(path); os.IsNotExist(err) {
		made, err := vm.NewDebianDisk(ctx, dir, image, logf)
		if err != nil {
			return nil, err
		}
		if err := os.Rename(made, path); err != nil {
			return nil, fmt.Errorf("-disk %s: %w (use a path on the file system of %s)", path, err, os.TempDir())
		}
	}
	root, err := vm.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	deb, err := vm.BuildDeb(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	return map[string]string{vm.DebianOfflineDir + "/goiscsi.deb": deb}, nil
}

// summarize prints the scenario's records one a line, "type key=value ...", with
// base64 fields decoded and indented below.
func summarize(res *vm.Result) {
	if res == nil {
		return
	}
	fmt.Println("--- records")
	for _, r := range res.Records {
		keys := make([]string, 0, len(r))
		for k := range r {
			if k != "type" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var line, blobs strings.Builder
		line.WriteString(r.Type())
		if r.Type() == "file" {
			fmt.Printf("file %s: %d bytes gzipped (-files DIR writes it)\n", r["name"], len(r.Bytes("gz")))
			continue
		}
		for _, k := range keys {
			if name, ok := strings.CutSuffix(k, "_b64"); ok {
				if b := r.Bytes(name); len(b) > 0 {
					fmt.Fprintf(&blobs, "    %s:\n", name)
					for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
						fmt.Fprintf(&blobs, "      %s\n", l)
					}
				}
				continue
			}
			fmt.Fprintf(&line, " %s=%q", k, r[k])
		}
		fmt.Println(line.String())
		fmt.Print(blobs.String())
	}
}
