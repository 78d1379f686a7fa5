package vm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kvmProbe remembers, for the whole process, whether qemu can run the guest's
// kernel under KVM here.
var kvmProbe struct {
	once sync.Once
	ok   bool
	why  string
}

// chooseAccel returns "kvm" or "tcg" for a boot: GOISCSI_VM_ACCEL if set, else
// cfgAccel if set, else "kvm" when a short probe boot of the kernel under KVM
// works on this machine, else "tcg". /dev/kvm alone proves nothing: under nested
// virtualisation qemu may open it and then abort (kvm_buf_set_msrs).
func chooseAccel(ctx context.Context, cfgAccel, kernel string, logf func(string, ...any)) string {
	if e := os.Getenv("GOISCSI_VM_ACCEL"); e != "" {
		return e
	}
	if cfgAccel != "" {
		return cfgAccel
	}
	kvmProbe.once.Do(func() {
		kvmProbe.ok, kvmProbe.why = probeKVM(ctx, kernel)
		if kvmProbe.ok {
			logf("vm: KVM works here: guests run under KVM (GOISCSI_VM_ACCEL=tcg to force TCG)")
		} else {
			logf("vm: no usable KVM (%s): guests run under TCG", kvmProbe.why)
		}
	})
	if kvmProbe.ok {
		return "kvm"
	}
	return "tcg"
}

// probeKVM boots the kernel without an initramfs under KVM: it panics at once for
// want of a root file system and, with panic=-1 and -no-reboot, qemu exits. KVM
// works if the kernel got that far. Under KVM the kernel prints its first console
// line well within a second; a guest silent for 5 s is a KVM that hangs (seen
// under nested virtualisation), and the probe gives up then.
func probeKVM(ctx context.Context, kernel string) (bool, string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, err.Error()
	}
	f.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "kvm", "-cpu", "host",
		"-smp", "1", "-m", "256", "-display", "none", "-no-reboot", "-nic", "none", "-monitor", "none",
		"-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 5 * time.Second
	out := &firstWrite{ch: make(chan struct{})}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return false, err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-out.ch:
		err = <-done
	case err = <-done:
	case <-time.After(5 * time.Second):
		cancel()
		<-done
		return false, "a guest under KVM printed nothing in 5 s"
	}
	text := out.String()
	switch {
	case ctx.Err() != nil:
		return false, "probe boot under KVM timed out"
	case err != nil:
		return false, "qemu -accel kvm: " + lastLine(text)
	case !strings.Contains(text, "Kernel panic"):
		return false, "probe boot under KVM never reached the kernel's panic: " + lastLine(text)
	}
	return true, ""
}

// firstWrite collects output and closes ch at the first write.
type firstWrite struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	ch   chan struct{}
	seen bool
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen {
		w.seen = true
		close(w.ch)
	}
	return w.buf.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
