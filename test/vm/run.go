package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed guest scenarios
var guestFS embed.FS

// Config says what one VM boot runs.
type Config struct {
	// Scenario names a script in scenarios/ (without .sh), or "shell" for an
	// interactive shell on the console (RunInteractive).
	Scenario string
	// Script, if set, is run instead of the named scenario (Scenario still names it in
	// messages).
	Script string
	// Env is exported to the scenario.
	Env map[string]string
	// Files maps guest paths to host files copied into the guest (e.g. static Go
	// binaries: "/usr/local/sbin/goiscsid": "/tmp/bin/goiscsid").
	Files map[string]string
	// Timeout bounds the whole boot; 0 means DefaultTimeout.
	Timeout time.Duration
	// MemoryMB is the guest's memory; 0 means 1024.
	MemoryMB int
	// CPUs is the number of guest CPUs; 0 means 2.
	CPUs int
	// Accel is "kvm" or "tcg"; "" means KVM when a probe boot under KVM works
	// on this machine (once per process), else TCG. GOISCSI_VM_ACCEL overrides
	// it.
	Accel string
	// Disk, if set, is a raw disk image with a Debian root file system
	// (NewDebianDisk): the guest boots it with systemd and udev instead of the
	// busybox initramfs, and Files and the scenario are copied into it at
	// every boot (see debian.go). Changes stay on the disk for the next Run.
	Disk string
	// Initrd, if set, is the initramfs the guest boots, as it is: a Debian
	// root's own (InstallISCSIRoot), which finds the root file system itself.
	// Nothing of the run is added to it: the scenario and Files must already
	// be in that root, which is not on a local disk: Disk is not used.
	Initrd string
	// Append is added to the kernel command line of an Initrd run (root=,
	// ip=).
	Append []string
	// QemuArgs are more qemu arguments, after the harness's own: devices a
	// scenario needs, such as a NIC or a firmware table (-acpitable).
	QemuArgs []string
	// Console, if not nil, also receives the console output as it comes.
	Console io.Writer
	// Logf, if not nil, receives progress lines (preparation, boot).
	Logf func(format string, args ...any)
}

// DefaultTimeout bounds a boot whose Config has no Timeout.
const DefaultTimeout = 5 * time.Minute

// Record is one JSON line a scenario emitted. Every value is a string; keys ending in
// "_b64" are base64 (read them with Bytes).
type Record map[string]string

// Type is the record's "type".
func (r Record) Type() string { return r["type"] }

// Int returns a field as an integer, or -1 if it is missing or not a number.
func (r Record) Int(k string) int {
	n, err := strconv.Atoi(r[k])
	if err != nil {
		return -1
	}
	return n
}

// Float returns a field as a number, or -1 if it is missing or not a number.
func (r Record) Float(k string) float64 {
	f, err := strconv.ParseFloat(r[k], 64)
	if err != nil {
		return -1
	}
	return f
}

// Bytes decodes the base64 field k+"_b64".
func (r Record) Bytes(k string) []byte {
	b, err := base64.StdEncoding.DecodeString(r[k+"_b64"])
	if err != nil {
		return []byte(fmt.Sprintf("<bad base64 in %s_b64: %v>", k, err))
	}
	return b
}

// Result is what a boot produced.
type Result struct {
	// Records are the JSON lines of the results port, in order, the final "exit"
	// record included.
	Records []Record
	// Console is everything the guest printed on its console (kernel and scenario).
	Console string
	// ExitStatus is the scenario's exit status (-1 if the guest never reported one).
	ExitStatus int
	// Accel is the accelerator the guest found itself under: "kvm" or "tcg".
	Accel string
	// Boot is the guest uptime in seconds when the scenario started.
	Boot float64
	// Duration is the wall time of the whole qemu run.
	Duration time.Duration
	// ConsoleLog is the host file that keeps the console output after the run
	// (during the run it is NAME.*.part in the same directory).
	ConsoleLog string
}

// Find returns the records of the given type.
func (r *Result) Find(typ string) []Record {
	var out []Record
	for _, rec := range r.Records {
		if rec.Type() == typ {
			out = append(out, rec)
		}
	}
	return out
}

// Cmd returns the "cmd" record (lib.sh's cmd_record) named name, or nil.
func (r *Result) Cmd(name string) Record {
	for _, rec := range r.Find("cmd") {
		if rec["name"] == name {
			return rec
		}
	}
	return nil
}

// First returns the first record of the given type, or nil.
func (r *Result) First(typ string) Record {
	for _, rec := range r.Records {
		if rec.Type() == typ {
			return rec
		}
	}
	return nil
}

// ConsoleTail returns the last n lines of the console.
func (r *Result) ConsoleTail(n int) string {
	lines := strings.Split(strings.TrimRight(r.Console, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Scenarios lists the scenario names available to Config.Scenario.
func Scenarios() []string {
	ents, _ := guestFS.ReadDir("scenarios")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".sh"); ok {
			out = append(out, n)
		}
	}
	return out
}

// Run boots the VM with the scenario and waits for it to power off. It returns an
// error, with the Result so far, when the guest panics, times out, never reports a
// status, or the scenario exits non-zero. No qemu process outlives Run.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	return run(ctx, cfg, false)
}

// RunInteractive boots the VM with the console on this process's terminal (stdin and
// stdout): Scenario "shell" gives a shell with the helpers loaded; any other scenario
// runs as in Run while you watch. Ctrl-A x quits qemu.
func RunInteractive(ctx context.Context, cfg Config) (*Result, error) {
	return run(ctx, cfg, true)
}

func run(ctx context.Context, cfg Config, interactive bool) (*Result, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := &Result{ExitStatus: -1}
	if cfg.Scenario == "" {
		return res, errors.New("vm: Config.Scenario is empty")
	}
	script := []byte(cfg.Script)
	if cfg.Script == "" && cfg.Scenario != "shell" {
		b, err := guestFS.ReadFile("scenarios/" + cfg.Scenario + ".sh")
		if err != nil {
			return res, fmt.Errorf("vm: no scenario %q (have %s)", cfg.Scenario, strings.Join(Scenarios(), ", "))
		}
		script = b
	}
	a, err := Prepare(ctx, logf)
	if err != nil {
		return res, err
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return res, errors.New("vm: qemu-system-x86_64 not found; run scripts/setup (it installs qemu-system-x86)")
	}
	work, err := os.MkdirTemp("", "goiscsi-vm-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	initrd := cfg.Initrd
	if initrd == "" {
		base := a.BaseInitrd
		if cfg.Disk != "" {
			d, err := PrepareDebian(ctx, a, logf)
			if err != nil {
				return res, err
			}
			base = d.BootInitrd
		}
		initrd = filepath.Join(work, "initrd.gz")
		if err := writeInitrd(base, cfg, script, initrd); err != nil {
			return res, err
		}
	}
	results := filepath.Join(work, "results.jsonl")
	logDir := filepath.Join(CacheDir(), "logs")
	_ = os.MkdirAll(logDir, 0o755)
	// The console goes to a file of this run's own while it runs (runs of the same
	// scenario from two checkouts share the cache), renamed when qemu is gone.
	res.ConsoleLog = filepath.Join(logDir, logName(cfg)+".console.log")
	conLog, err := os.CreateTemp(logDir, logName(cfg)+".*.part")
	if err != nil {
		return res, err
	}
	defer conLog.Close()

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	args := qemuArgs(cfg, a, chooseAccel(ctx, cfg.Accel, a.Kernel, logf), initrd, results, interactive)
	cmd := exec.CommandContext(qctx, "qemu-system-x86_64", args...)
	// qemu gets its own process group, killed whole on cancel; and it dies with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !interactive, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		if !interactive {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 5 * time.Second
	var console bytes.Buffer
	if interactive {
		cmd.Stdin = os.Stdin
		cmd.Stdout = io.MultiWriter(os.Stdout, conLog, &console)
	} else {
		w := []io.Writer{conLog, &console}
		if cfg.Console != nil {
			w = append(w, cfg.Console)
		}
		cmd.Stdout = io.MultiWriter(w...)
	}
	var qerr bytes.Buffer
	cmd.Stderr = &qerr

	logf("vm: booting %s (kernel %s)", cfg.Scenario, a.KVer)
	start := time.Now()
	err = cmd.Run()
	res.Duration = time.Since(start)
	conLog.Close()
	if os.Rename(conLog.Name(), res.ConsoleLog) != nil {
		res.ConsoleLog = conLog.Name()
	}
	res.Console = strings.ReplaceAll(console.String(), "\r\n", "\n")
	recs, bad := readResults(results)
	res.Records = recs
	if b := res.First("boot"); b != nil {
		res.Accel = b["accel"]
		res.Boot = b.Float("uptime")
	}
	if e := res.First("exit"); e != nil {
		res.ExitStatus = e.Int("status")
	}

	if qctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return res, fmt.Errorf("vm: scenario %s timed out after %s; last console line: %q (console: %s)",
			cfg.Scenario, timeout, lastLine(res.Console), res.ConsoleLog)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("vm: scenario %s: %w", cfg.Scenario, ctx.Err())
	}
	if p := panicLine(res.Console); p != "" {
		return res, fmt.Errorf("vm: scenario %s: guest kernel panic: %s (console: %s)", cfg.Scenario, p, res.ConsoleLog)
	}
	if err != nil {
		return res, fmt.Errorf("vm: qemu failed: %v: %s", err, lastLine(qerr.String()))
	}
	if bad != "" {
		return res, fmt.Errorf("vm: scenario %s wrote a line that is not JSON to the results port: %q", cfg.Scenario, bad)
	}
	if res.ExitStatus < 0 {
		return res, fmt.Errorf("vm: scenario %s: guest stopped without a final status; last console line: %q (console: %s)",
			cfg.Scenario, lastLine(res.Console), res.ConsoleLog)
	}
	if res.ExitStatus != 0 {
		msg := "no error record"
		if e := res.First("error"); e != nil {
			msg = e["msg"]
		}
		return res, fmt.Errorf("vm: scenario %s failed (exit %d): %s (console: %s)", cfg.Scenario, res.ExitStatus, msg, res.ConsoleLog)
	}
	return res, nil
}

func qemuArgs(cfg Config, a *Assets, accel, initrd, results string, interactive bool) []string {
	mem, cpus := cfg.MemoryMB, cfg.CPUs
	if mem <= 0 {
		mem = 1024
	}
	if cpus <= 0 {
		cpus = 2
	}
	args := []string{"-machine", "q35"}
	// accel comes from chooseAccel. With KVM the guest takes the host's CPU
	// model: under nested KVM qemu aborts with -cpu max (kvm_buf_set_msrs).
	cpu := "max"
	if accel == "kvm" {
		args = append(args, "-accel", "kvm")
		cpu = "host"
	} else {
		args = append(args, "-accel", "tcg")
	}
	args = append(args, "-cpu", cpu, "-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-display", "none", "-no-reboot", "-nic", "none",
		"-kernel", a.Kernel, "-initrd", initrd)
	switch {
	case cfg.Initrd != "":
		args = append(args, "-device", "virtio-rng-pci",
			"-append", strings.Join(append([]string{"console=ttyS0 quiet panic=-1"}, cfg.Append...), " "))
	case cfg.Disk != "":
		// Entropy for systemd's early boot (random seed, UUIDs) without waiting.
		args = append(args, "-drive", "file="+cfg.Disk+",if=virtio,format=raw", "-device", "virtio-rng-pci",
			"-append", "console=ttyS0 quiet panic=-1 root=/dev/vda")
	default:
		args = append(args, "-append", "console=ttyS0 quiet panic=-1")
	}
	if interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-monitor", "none", "-serial", "stdio")
	}
	// Second serial port: the results, JSON lines only.
	args = append(args, "-serial", "file:"+results)
	return append(args, cfg.QemuArgs...)
}

// writeInitrd writes the base initramfs followed by a second archive with the per-run
// files (init and addPayload's). The kernel unpacks both. For a Debian run
// (cfg.Disk) the per-run files go under /payload, which guest/debian/init copies
// into the Debian root.
func writeInitrd(baseInitrd string, cfg Config, script []byte, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	base, err := os.Open(baseInitrd)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, base)
	base.Close()
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCpio(zw)
	root := "/"
	initScript, _ := guestFS.ReadFile("guest/init")
	if cfg.Disk != "" {
		root = "/payload/"
		initScript, _ = guestFS.ReadFile("guest/debian/init")
	}
	c.File("/init", 0o755, initScript)
	if err := addPayload(c, cfg, script, root, cfg.Disk != ""); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("vm: per-run initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// addPayload adds a run's files under root: the helpers, the scenario, its
// environment and cfg.Files, and for a Debian guest guest/debian's runner and
// units.
func addPayload(c fileTree, cfg Config, script []byte, root string, debian bool) error {
	if debian {
		if err := addDebianGuest(c, root); err != nil {
			return err
		}
	}
	at := func(p string) string { return path.Join(root, p) }
	for _, p := range []string{"/etc/goiscsi", "/lib/goiscsi", "/usr/local/sbin", "/usr/local/bin"} {
		c.Dir(at(p), 0o755)
	}
	lib, _ := guestFS.ReadFile("guest/lib.sh")
	c.File(at("/lib/goiscsi/lib.sh"), 0o644, lib)
	c.File(at("/lib/goiscsi/scenario.sh"), 0o755, script)
	env := map[string]string{"GOISCSI_SCENARIO": cfg.Scenario}
	for k, v := range cfg.Env {
		env[k] = v
	}
	var eb strings.Builder
	for _, k := range sortedKeys(env) {
		if !validEnvName(k) {
			return fmt.Errorf("vm: bad environment variable name %q", k)
		}
		fmt.Fprintf(&eb, "export %s=%s\n", k, shellQuote(env[k]))
	}
	c.File(at("/etc/goiscsi/env"), 0o644, []byte(eb.String()))
	for _, g := range sortedKeys(cfg.Files) {
		if !path.IsAbs(g) {
			return fmt.Errorf("vm: guest path %q is not absolute", g)
		}
		c.HostFile(at(g), cfg.Files[g])
	}
	return nil
}

// logName names a run's console log after its scenario and environment values
// (e.g. "lunchange-goiscsi-No"), so the subtests of one test keep one log each.
func logName(cfg Config) string {
	name := cfg.Scenario
	for _, k := range sortedKeys(cfg.Env) {
		name += "-" + cfg.Env[k]
	}
	clean := []byte(name)
	for i, c := range clean {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			clean[i] = '_'
		}
	}
	if len(clean) > 100 {
		clean = clean[:100]
	}
	return string(clean)
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readResults parses the results port. It returns the records and the first line that
// is not a JSON object, if any.
func readResults(file string) ([]Record, string) {
	f, err := os.Open(file)
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	var recs []Record
	bad := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			if bad == "" {
				bad = line
				if len(bad) > 200 {
					bad = bad[:200] + "..."
				}
			}
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad
}

func panicLine(console string) string {
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "Kernel panic") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// SaveFiles writes the files the scenario sent (emit_file: "file" records) to
// dir as NAME.gz, calling wrote with each path.
func (r *Result) SaveFiles(dir string, wrote func(path string)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, rec := range r.Find("file") {
		name := filepath.Base(rec["name"])
		if name == "." || name == "/" || name == "" {
			return fmt.Errorf("vm: file record without a usable name: %q", rec["name"])
		}
		p := filepath.Join(dir, name+".gz")
		if err := os.WriteFile(p, rec.Bytes("gz"), 0o644); err != nil {
			return err
		}
		wrote(p)
	}
	return nil
}
