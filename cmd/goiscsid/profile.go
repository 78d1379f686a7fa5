package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
)

// profiler writes goiscsid's own profiles for performance work (-profile DIR).
// SIGUSR1 starts or stops a CPU profile (and writes a heap profile at its
// stop); SIGUSR2 starts or stops an execution trace, which shows where
// goroutines wait (network, netlink, locks, sysfs writes). The two are taken
// apart because the trace's own cost, several times goiscsid's work under
// qemu's emulation, would be most of a CPU profile taken beside it. Files are
// goiscsid-PID-N.{cpu,heap,trace} under dir. Off unless -profile is given.
type profiler struct {
	dir string
	log *slog.Logger
	n   int
	cpu *os.File
	tr  *os.File
}

// profileOnSignal toggles captures on SIGUSR1 and SIGUSR2 until the returned
// function is called, which stops the captures still running.
func profileOnSignal(dir string, log *slog.Logger) (stop func()) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("profiles", "err", err)
		return func() {}
	}
	p := &profiler{dir: dir, log: log}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(sig)
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGUSR1 {
					p.toggleCPU()
				} else {
					p.toggleTrace()
				}
			case <-quit:
				if p.cpu != nil {
					p.toggleCPU()
				}
				if p.tr != nil {
					p.toggleTrace()
				}
				return
			}
		}
	}()
	log.Info("SIGUSR1 starts and stops a CPU profile, SIGUSR2 an execution trace", "dir", dir)
	return func() {
		close(quit)
		<-done
	}
}

func (p *profiler) name(kind string) string {
	return filepath.Join(p.dir, fmt.Sprintf("goiscsid-%d-%d.%s", os.Getpid(), p.n, kind))
}

// create opens the next capture's file of kind.
func (p *profiler) create(kind string) (*os.File, error) {
	p.n++
	return os.Create(p.name(kind))
}

func (p *profiler) toggleCPU() {
	if p.cpu == nil {
		f, err := p.create("cpu")
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			p.log.Error("CPU profile not started", "err", err)
			return
		}
		p.cpu = f
		p.log.Info("CPU profile started", "file", f.Name())
		return
	}
	pprof.StopCPUProfile()
	err := p.cpu.Close()
	heap := strings.TrimSuffix(p.cpu.Name(), ".cpu") + ".heap"
	p.cpu = nil
	runtime.GC() // the heap profile shows live memory as of the last GC
	h, herr := os.Create(heap)
	if herr == nil {
		herr = errors.Join(pprof.WriteHeapProfile(h), h.Close())
	}
	if err = errors.Join(err, herr); err != nil {
		p.log.Error("CPU profile", "err", err)
	}
	p.log.Info("CPU profile stopped", "heap", heap)
}

func (p *profiler) toggleTrace() {
	if p.tr == nil {
		f, err := p.create("trace")
		if err == nil {
			if err = trace.Start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			p.log.Error("execution trace not started", "err", err)
			return
		}
		p.tr = f
		p.log.Info("execution trace started", "file", f.Name())
		return
	}
	trace.Stop()
	if err := p.tr.Close(); err != nil {
		p.log.Error("execution trace", "err", err)
	}
	p.log.Info("execution trace stopped", "file", p.tr.Name())
	p.tr = nil
}
