// Command testtarget is goiscsi's iSCSI test target: "serve" runs it from a
// JSON configuration, the other subcommands drive a running one through its
// control socket. Build it static (CGO_ENABLED=0) to run it inside the test VM.
//
//	testtarget serve -config target.json [-control /run/testtarget.sock]
//	testtarget faults
//	testtarget [-s SOCKET] COMMAND [flags]   (testtarget help lists them)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goiscsi/goiscsi/test/target"
)

// defaultSocket is where serve listens and the other commands connect unless
// told otherwise ($TESTTARGET_SOCKET overrides it).
const defaultSocket = "/run/testtarget.sock"

// command is one subcommand that talks to the control socket.
type command struct {
	usage string
	run   func(fs *flag.FlagSet, args []string) (op string, req any, err error)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	socket := os.Getenv("TESTTARGET_SOCKET")
	if socket == "" {
		socket = defaultSocket
	}
	if len(args) >= 2 && args[0] == "-s" {
		socket, args = args[1], args[2:]
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], socket, stderr)
	case "faults":
		return listFaults(args[1:], stdout, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "testtarget: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	op, req, err := cmd.run(fs, args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "testtarget %s: %v\n", args[0], err)
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var result json.RawMessage
	if err := target.Control(ctx, socket, op, req, &result); err != nil {
		fmt.Fprintf(stderr, "testtarget %s: %v\n", args[0], err)
		return 1
	}
	if len(result) > 0 {
		fmt.Fprintln(stdout, string(result))
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: testtarget serve -config FILE [-control SOCKET] [-log-json]
       testtarget faults [-json]
       testtarget [-s SOCKET] COMMAND [flags]

Commands on a running target (control socket: -s, $TESTTARGET_SOCKET, or `+defaultSocket+`):`)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, name := range commandOrder {
		fmt.Fprintf(tw, "  %s\t%s\n", name, commands[name].usage)
	}
	tw.Flush()
	fmt.Fprintln(w, "Run testtarget COMMAND -h for its flags.")
}

func serve(args []string, socket string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "JSON configuration file (required)")
	control := fs.String("control", "", "control socket path (default: the configuration's control_socket, else -s)")
	logJSON := fs.Bool("log-json", false, "log JSON records instead of text")
	debug := fs.Bool("debug", false, "log debug records too")
	if err := fs.Parse(args); err != nil || *cfgPath == "" {
		if err == nil {
			fmt.Fprintln(stderr, "testtarget serve: -config is required")
		}
		return 2
	}
	opts := &slog.HandlerOptions{}
	if *debug {
		opts.Level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	cfg, err := target.LoadConfig(*cfgPath)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	srv, err := target.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer srv.Close()
	path := *control
	if path == "" {
		path = cfg.ControlSocket
	}
	if path == "" {
		path = socket
	}
	if err := srv.ServeControl(path); err != nil {
		log.Error("cannot serve control socket", "err", err)
		return 1
	}
	defer os.Remove(path)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("signal received; shutting down")
	return 0
}

func listFaults(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *asJSON {
		b, _ := json.MarshalIndent(target.Faults(), "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	for _, f := range target.Faults() {
		scope := f.Scope
		if f.Waits != "" {
			scope += " (" + f.Waits + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, scope, f.Description)
	}
	tw.Flush()
	return 0
}

// flagSense parses a KEY/ASC/ASCQ flag.
type flagSense struct{ v *target.SenseCode }

func (f flagSense) String() string {
	if f.v == nil {
		return ""
	}
	return fmt.Sprintf("%x/%02x/%02x", uint8(f.v.Key), f.v.ASC, f.v.ASCQ)
}

func (f flagSense) Set(s string) error {
	v, err := target.ParseSenseCode(s)
	*f.v = v
	return err
}

func parse(fs *flag.FlagSet, args []string, tgt *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if tgt != nil && *tgt == "" {
		return errors.New("-target is required")
	}
	return nil
}

var commandOrder = []string{"sessions", "wait-sessions", "luns", "add-lun", "remove-lun", "lun-change-ua", "aen", "ua", "drop",
	"delay", "fault", "clear-faults", "refuse"}

var commands = map[string]command{
	"sessions": {"list a target's sessions (JSON)", func(fs *flag.FlagSet, args []string) (string, any, error) {
		t := fs.String("target", "", "target name")
		if err := parse(fs, args, t); err != nil {
			return "", nil, err
		}
		return "sessions", target.TargetArgs{Target: *t}, nil
	}},
	"wait-sessions": {"wait for sessions in the full feature phase: -target T [-n 1] [-timeout 30s]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.WaitArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		fs.IntVar(&a.Count, "n", 1, "number of sessions")
		d := fs.Duration("timeout", 30*time.Second, "how long to wait")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		a.Timeout = target.Duration(*d)
		return "wait-sessions", a, nil
	}},
	"luns": {"list a target's LUN numbers", func(fs *flag.FlagSet, args []string) (string, any, error) {
		t := fs.String("target", "", "target name")
		if err := parse(fs, args, t); err != nil {
			return "", nil, err
		}
		return "luns", target.TargetArgs{Target: *t}, nil
	}},
	"add-lun": {"add a LUN: -target T -lun N (-size 64MiB | -file PATH [-size S]) [-block-size 512] [-read-only]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.AddLUNArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		fs.Uint64Var(&a.LUN.Number, "lun", 0, "LUN number")
		size := fs.String("size", "", "capacity, e.g. 64MiB")
		fs.StringVar(&a.LUN.File, "file", "", "backing file (memory when empty)")
		fs.IntVar(&a.LUN.BlockSize, "block-size", 0, "logical block size (default 512)")
		fs.BoolVar(&a.LUN.ReadOnly, "read-only", false, "refuse writes")
		fs.StringVar(&a.LUN.Serial, "serial", "", "unit serial number")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		if *size != "" {
			v, err := target.ParseByteSize(*size)
			if err != nil {
				return "", nil, err
			}
			a.LUN.Size = v
		}
		return "add-lun", a, nil
	}},
	"remove-lun": {"remove a LUN: -target T -lun N", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.RemoveLUNArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		fs.Uint64Var(&a.Number, "lun", 0, "LUN number")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		return "remove-lun", a, nil
	}},
	"lun-change-ua": {"set 3F/0E on other LUNs when LUNs change: -target T -on=true|false", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.SwitchArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		fs.BoolVar(&a.On, "on", true, "on or off")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		return "lun-change-ua", a, nil
	}},
	"aen": {"send an Async Message: -target T [-tsih N] [-event 0..4] [-lun N -sense 6/3f/0e] [-p1 -p2 -p3]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.AsyncEvent{Sense: target.SenseCode{Key: 6, ASC: 0x3f, ASCQ: 0x0e}}
		fs.StringVar(&a.Target, "target", "", "target name")
		tsih := fs.Uint("tsih", 0, "session (0: all sessions of the target)")
		ev := fs.Uint("event", 0, "AsyncEvent: 0 SCSI event, 1 logout request, 2 drop connection, 3 drop all, 4 renegotiate")
		fs.Uint64Var(&a.LUN, "lun", 0, "LUN of a SCSI event")
		fs.Var(flagSense{&a.Sense}, "sense", "sense KEY/ASC/ASCQ of a SCSI event, hex (default 6/3f/0e)")
		p1 := fs.Uint("p1", 0, "Parameter1")
		p2 := fs.Uint("p2", 0, "Parameter2 (Time2Wait for events 2 and 3)")
		p3 := fs.Uint("p3", 0, "Parameter3 (logout deadline for event 1, Time2Retain for 2 and 3)")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		if *tsih > 0xffff || *ev > 0xff || *p1 > 0xffff || *p2 > 0xffff || *p3 > 0xffff {
			return "", nil, errors.New("-tsih and -p1..-p3 take 16 bits, -event 8")
		}
		a.TSIH, a.Event = uint16(*tsih), uint8(*ev)
		a.Parameter1, a.Parameter2, a.Parameter3 = uint16(*p1), uint16(*p2), uint16(*p3)
		return "async", a, nil
	}},
	"ua": {"queue a Unit Attention: -target T (-lun N | -all-luns) -sense 6/3f/0e [-tsih N]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.UnitAttention{Sense: target.SenseCode{Key: 6, ASC: 0x3f, ASCQ: 0x0e}}
		fs.StringVar(&a.Target, "target", "", "target name")
		tsih := fs.Uint("tsih", 0, "session (0: all sessions)")
		fs.Uint64Var(&a.LUN, "lun", 0, "LUN")
		fs.BoolVar(&a.AllLUNs, "all-luns", false, "every LUN")
		fs.Var(flagSense{&a.Sense}, "sense", "sense KEY/ASC/ASCQ, hex (default 6/3f/0e)")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		if *tsih > 0xffff {
			return "", nil, errors.New("-tsih takes 16 bits")
		}
		a.TSIH = uint16(*tsih)
		return "unit-attention", a, nil
	}},
	"drop": {"drop connections: -target T [-tsih N] [-after-bytes N]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.DropArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		tsih := fs.Uint("tsih", 0, "session (0: all sessions)")
		fs.Int64Var(&a.AfterBytes, "after-bytes", 0, "drop once this many more bytes were sent (0: now)")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		a.TSIH = uint16(*tsih)
		return "drop", a, nil
	}},
	"delay": {"delay every response: -target T -d 500ms (0 stops)", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.DelayArgs{}
		fs.StringVar(&a.Target, "target", "", "target name")
		d := fs.Duration("d", 0, "delay")
		if err := parse(fs, args, &a.Target); err != nil {
			return "", nil, err
		}
		a.Delay = target.Duration(*d)
		return "delay", a, nil
	}},
	"fault": {"arm a fault (see testtarget faults): -target T -name NAME [-count N|-1]", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.FaultArgs{}
		fs.StringVar(&a.Target, "target", "", "target name (empty: Discovery sessions)")
		fs.StringVar(&a.Name, "name", "", "fault name")
		fs.IntVar(&a.Count, "count", 1, "how many times (-1: until clear-faults)")
		if err := parse(fs, args, nil); err != nil {
			return "", nil, err
		}
		if a.Name == "" {
			return "", nil, errors.New("-name is required")
		}
		return "fault", a, nil
	}},
	"clear-faults": {"disarm a target's faults: -target T", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.TargetArgs{}
		fs.StringVar(&a.Target, "target", "", "target name (empty: Discovery sessions)")
		if err := parse(fs, args, nil); err != nil {
			return "", nil, err
		}
		return "clear-faults", a, nil
	}},
	"refuse": {"refuse logins: -target T -status 0x0101 [-address 127.0.0.1:3261] [-count N|-1] (0x0000 clears)", func(fs *flag.FlagSet, args []string) (string, any, error) {
		a := target.LoginRefusal{}
		fs.StringVar(&a.Target, "target", "", "target name (empty: Discovery sessions)")
		status := fs.String("status", "", "login status class and detail, e.g. 0x0101, 0x0201, 0x0301")
		fs.StringVar(&a.Address, "address", "", "TargetAddress of a redirect")
		fs.IntVar(&a.Count, "count", 1, "how many logins (-1: until cleared)")
		if err := parse(fs, args, nil); err != nil {
			return "", nil, err
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(*status, "0x"), 16, 16)
		if err != nil {
			return "", nil, fmt.Errorf("-status %q: want 4 hex digits such as 0x0101", *status)
		}
		a.Class, a.Detail = uint8(v>>8), uint8(v)
		return "refuse-login", a, nil
	}},
}
