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
	"syscall"
)

// profiler writes goiscsid's own profiles for performance work (-profile DIR):
// each SIGUSR1 starts or stops a capture. A capture is a CPU profile and an
// execution trace (which shows where goroutines wait: network, netlink, locks,
// sysfs writes) from start to stop, and a heap profile at the stop, in files
// goiscsid-PID-N.{cpu,trace,heap} under dir. Off unless -profile is given.
type profiler struct {
	dir string
	log *slog.Logger
	n   int
	cpu *os.File
	tr  *os.File
}

// profileOnSignal toggles captures on SIGUSR1 until the returned function is
// called, which stops a capture still running.
func profileOnSignal(dir string, log *slog.Logger) (stop func()) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("profiles", "err", err)
		return func() {}
	}
	p := &profiler{dir: dir, log: log}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(sig)
		for {
			select {
			case <-sig:
				p.toggle()
			case <-quit:
				if p.cpu != nil {
					p.toggle()
				}
				return
			}
		}
	}()
	log.Info("SIGUSR1 starts and stops a profile capture", "dir", dir)
	return func() {
		close(quit)
		<-done
	}
}

func (p *profiler) name(kind string) string {
	return filepath.Join(p.dir, fmt.Sprintf("goiscsid-%d-%d.%s", os.Getpid(), p.n, kind))
}

func (p *profiler) toggle() {
	if p.cpu == nil {
		p.n++
		if err := p.start(); err != nil {
			p.log.Error("profile capture not started", "err", err)
			return
		}
		p.log.Info("profile capture started", "cpu", p.cpu.Name(), "trace", p.tr.Name())
		return
	}
	pprof.StopCPUProfile()
	trace.Stop()
	err := errors.Join(p.cpu.Close(), p.tr.Close())
	p.cpu, p.tr = nil, nil
	runtime.GC() // the heap profile shows live memory as of the last GC
	if h, herr := os.Create(p.name("heap")); herr != nil {
		err = errors.Join(err, herr)
	} else {
		err = errors.Join(err, pprof.WriteHeapProfile(h), h.Close())
	}
	if err != nil {
		p.log.Error("profile capture", "err", err)
	}
	p.log.Info("profile capture stopped", "files", p.name("*"))
}

func (p *profiler) start() error {
	cpu, err := os.Create(p.name("cpu"))
	if err != nil {
		return err
	}
	tr, err := os.Create(p.name("trace"))
	if err != nil {
		cpu.Close()
		return err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		tr.Close()
		return err
	}
	if err := trace.Start(tr); err != nil {
		pprof.StopCPUProfile()
		cpu.Close()
		tr.Close()
		return err
	}
	p.cpu, p.tr = cpu, tr
	return nil
}
