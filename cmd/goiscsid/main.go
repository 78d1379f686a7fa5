// Command goiscsid is the iSCSI initiator daemon: it logs in to targets through
// the kernel's iscsi_tcp (ISCSI_UEVENT netlink), keeps the sessions up, and scans
// for SCSI devices only as each session's scan policy allows. goiscsiadm talks to
// it over a root-only unix socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/internal/sockserve"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/scan"
	"github.com/goiscsi/goiscsi/stockipc"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goiscsid:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("goiscsid", flag.ContinueOnError)
	configPath := fs.String("c", "/etc/iscsi/iscsid.conf", "iscsid.conf `file`")
	initiatorPath := fs.String("i", "/etc/iscsi/initiatorname.iscsi", "initiator name `file`")
	debug := fs.Int("d", 0, "debug `level` (0-8; 1 and above log each kernel request)")
	// goiscsid never forks: under systemd (Type=notify) and in scripts it runs in
	// the foreground; -f is accepted for iscsid's command lines.
	fs.Bool("f", true, "run in the foreground (always the case)")
	socket := fs.String("socket", mgmt.DefaultSocket, "management socket `path`")
	sysfsRoot := fs.String("sysfs", "/sys", "sysfs `root` (for tests)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	profileDir := fs.String("profile", "", "on SIGUSR1, start or stop a CPU profile, on SIGUSR2 an execution trace, in `dir` (for performance work)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("goiscsid version", version)
		return nil
	}
	level := slog.LevelInfo
	if *debug > 0 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// goiscsid's heap is a few MB even with hundreds of sessions. Where
	// transparent huge pages are on for every process (as in the test VM's
	// Debian kernel), the runtime's heap got 2 MB pages: 10 of its 19 MB RSS
	// with 64 sessions were huge pages mostly unused. Small pages keep its
	// footprint what it uses; the kernel applies this to later page faults.
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		log.Debug("transparent huge pages stay on", "err", err)
	}
	// goiscsid waits: on the network, and on the kernel, which takes iSCSI
	// netlink requests one at a time and does their work in the caller's
	// system call. One P runs all of its Go code; a second one only spun
	// idle and kept its own caches: with 64 sessions under TCG, one P took
	// RSS from 13.8-14.3 to 12.4-12.8 MB and goiscsid's CPU over a logout
	// of all from 1.05-1.25 to 0.81-0.85 s, -L all as fast. GOMAXPROCS in
	// the environment wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}

	cfg, err := conf.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("iscsid.conf", "warning", w)
	}
	name, alias, err := conf.ReadInitiatorName(*initiatorPath)
	if err != nil {
		return fmt.Errorf("initiator name: %w", err)
	}
	if alias == "" {
		alias, _ = os.Hostname()
	}
	k, err := nlink.Dial(nlink.DialOptions{SysfsRoot: *sysfsRoot, Logger: log})
	if err != nil {
		return err
	}
	defer k.Close()
	passed, err := sockserve.Activated()
	if err != nil {
		return err
	}
	ownLn, stockLn, err := listeners(*socket, passed)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *profileDir != "" {
		defer profileOnSignal(*profileDir, log)()
	}

	d := newDaemon(k, scan.Sysfs{Root: *sysfsRoot}, name, alias, cfg, log)
	d.stop = cancel
	d.configPath = *configPath
	if err := d.startHealth(ctx, cfg); err != nil {
		return err
	}
	d.holds = &scan.Holds{Dir: heldDir}
	if ul, err := scan.ListenUevents(d.deviceEvent, d.eventsLost); err != nil {
		log.Warn("kernel uevents unavailable: unit attentions will not trigger scans, and LUNs the host removes are not held back", "err", err)
	} else {
		defer ul.Close()
		d.events = ul
		go func() {
			if err := ul.Run(ctx); ctx.Err() == nil {
				log.Error("kernel uevents", "err", err)
			}
		}()
	}
	go d.watchHeld(ctx)
	db := &conf.DB{Root: filepath.Dir(*configPath), Warn: func(err error) { log.Warn("node database", "err", err) }}
	d.db = db
	d.adopt(func(target, address string, port int, iface string) (*conf.Record, error) {
		recs, err := db.FindNodes(target, address, port, iface)
		if err != nil || len(recs) == 0 {
			return nil, err
		}
		return recs[0], nil
	})
	defer d.followISNS(ctx, db, name)()
	own := &mgmt.Server{Handler: d, Logger: log}
	stock := &stockipc.Server{Handler: d, Logger: log}
	log.Info("goiscsid started", "version", version, "initiator", name, "socket", *socket, "iscsiadm_socket", stockLn.Addr().String())
	if _, err := sdNotify("READY=1\nSTATUS=Ready to process requests"); err != nil {
		log.Warn("systemd notification", "err", err)
	}
	err = serveAll(ctx,
		func(ctx context.Context) error { return own.Serve(ctx, ownLn) },
		func(ctx context.Context) error { return stock.Serve(ctx, stockLn) })
	sdNotify("STOPPING=1")
	// Sessions stay up when the daemon stops, as with iscsid: the kernel keeps
	// them and I/O goes on. The next goiscsid takes them over (adopt).
	if err != nil {
		// A socket that stopped serving is a failure systemd must see
		// (Restart=on-failure): goiscsid exits non-zero.
		log.Error("goiscsid stopped: a socket failed; sessions stay logged in", "err", err)
		return err
	}
	log.Info("goiscsid stopped; sessions stay logged in")
	return nil
}

// serveAll runs the servers until ctx ends or one of them fails, which ends
// the others too; it returns the first failure.
func serveAll(ctx context.Context, servers ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, serve := range servers {
		go func() {
			err := serve(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
