// Command goiscsistart is goiscsi's iscsistart: it logs in to the target a
// host boots from before the root file system is mounted, from the boot
// firmware's table (-b) or from explicit settings (-i -t -g -a ...), without a
// daemon, and exits once the session is up and scanned, leaving it to the
// kernel; goiscsid takes it over when it starts. -f prints the table's
// targets, -N brings up their NICs with the table's static addresses. The
// options are iscsistart's, as initramfs-tools and dracut call it; the work is
// package boot's.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/goiscsi/goiscsi/boot"
	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ibft"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/scan"
)

const usage = `Usage: iscsistart [OPTION]
Open-iSCSI initiator.
  -c, --config=[path]      set config file (default /etc/iscsi/iscsid.conf).
  -i, --initiatorname=name set InitiatorName to name (Required)
  -t, --targetname=name    set TargetName to name (Required)
  -g, --tgpt=N             set target portal group tag to N (Required)
  -a, --address=A.B.C.D    set IP address to A.B.C.D (Required)
  -p, --port=N             set port to N (Default 3260)
  -u, --username=N         set username to N (optional)
  -w, --password=N         set password to N (optional
  -U, --username_in=N      set incoming username to N (optional)
  -W, --password_in=N      set incoming password to N (optional)
  -d, --debug=debuglevel   print debugging information 
  -b, --fwparam_connect    create a session to the target using iBFT or OF
  -N, --fwparam_network    bring up the network as specified by iBFT or OF
  -f, --fwparam_print      print the iBFT or OF info to STDOUT 
  -P, --param=NAME=VALUE   set parameter with the name NAME to VALUE
  -h, --help               display this help and exit
  -v, --version            display version and exit
`

// options is a parsed command line.
type options struct {
	config   string
	settings boot.Settings
	params   [][2]string
	debug    int
	// action is the first of -b, -N, -f, -h, -v given ('b', 'N', 'f', 'h',
	// 'v'), 0 for a login from the explicit settings. iscsistart acts on -N,
	// -f, -h and -v the moment it reads them.
	action byte
}

// shortOpts maps each option letter to whether it takes a value; longOpts
// maps the long names to the letters.
var (
	shortOpts = map[byte]bool{'c': true, 'P': true, 'i': true, 't': true, 'g': true, 'a': true, 'p': true,
		'd': true, 'u': true, 'w': true, 'U': true, 'W': true, 'b': false, 'N': false, 'f': false, 'v': false, 'h': false}
	longOpts = map[string]byte{"config": 'c', "initiatorname": 'i', "targetname": 't', "tgpt": 'g', "address": 'a',
		"port": 'p', "username": 'u', "password": 'w', "username_in": 'U', "password_in": 'W', "debug": 'd',
		"fwparam_connect": 'b', "fwparam_network": 'N', "fwparam_print": 'f', "param": 'P', "help": 'h', "version": 'v'}
)

// parse reads argv (without the program name) as iscsistart's getopt_long
// does for its options: bundled short options, values attached or following,
// --name=value or --name value. An error is a message for stderr.
func parse(args []string) (*options, error) {
	o := &options{config: "/etc/iscsi/iscsid.conf", settings: boot.Settings{TPGT: -1}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var letter byte
		var value string
		hasValue := false
		switch {
		case strings.HasPrefix(a, "--") && len(a) > 2:
			name, v, eq := strings.Cut(a[2:], "=")
			l, ok := longOpts[name]
			if !ok {
				return nil, fmt.Errorf("unrecognized option '--%s'", name)
			}
			letter, value, hasValue = l, v, eq
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				takes, ok := shortOpts[a[j]]
				if !ok {
					return nil, fmt.Errorf("invalid option -- '%c'", a[j])
				}
				if takes {
					letter = a[j]
					if j+1 < len(a) {
						value, hasValue = a[j+1:], true
					}
					break
				}
				if err := o.set(a[j], ""); err != nil {
					return nil, err
				}
			}
			if letter == 0 {
				continue
			}
		default:
			continue // iscsistart ignores operands
		}
		if shortOpts[letter] && !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option requires an argument -- '%c'", letter)
			}
			i++
			value = args[i]
		}
		if err := o.set(letter, value); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *options) set(letter byte, v string) error {
	s := &o.settings
	switch letter {
	case 'c':
		o.config = v
	case 'i':
		s.InitiatorName = v
	case 't':
		s.Target = v
	case 'g':
		s.TPGT, _ = strconv.Atoi(v) // atoi: a bad number is 0, as in iscsistart
	case 'a':
		s.Address = v
	case 'p':
		s.Port, _ = strconv.Atoi(v)
	case 'u':
		s.Username = v
	case 'w':
		s.Password = v
	case 'U':
		s.UsernameIn = v
	case 'W':
		s.PasswordIn = v
	case 'd':
		o.debug, _ = strconv.Atoi(v)
	case 'P':
		name, value, ok := strings.Cut(v, "=")
		if !ok || value == "" {
			return iscsierr.Errorf(iscsierr.Inval, "Invalid --param %s. Missing value.", v)
		}
		o.params = append(o.params, [2]string{name, value})
	default:
		if o.action == 0 {
			o.action = letter
		}
	}
	return nil
}

func main() {
	os.Exit(int(run(os.Args[1:], os.Stdout, os.Stderr)))
}

// run carries out a command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) iscsierr.Code {
	warn := func(format string, a ...any) { fmt.Fprintf(stderr, "iscsistart: "+format+"\n", a...) }
	fail := func(code iscsierr.Code, format string, a ...any) iscsierr.Code {
		warn(format, a...)
		return code
	}
	warnErr := func(err error) { warn("%v", err) }
	o, err := parse(args)
	if err != nil {
		var ie *iscsierr.Error
		if errors.As(err, &ie) {
			return fail(ie.Code, "%s", ie.Message)
		}
		warn("%v", err)
		fmt.Fprintln(stderr, "Try `iscsistart --help' for more information.")
		return iscsierr.Inval
	}
	if filepath.Base(o.config) != "iscsid.conf" {
		return fail(iscsierr.Inval, "-c %s: the file must be an iscsid.conf (its directory holds the node database)", o.config)
	}
	level := slog.LevelWarn
	if o.debug > 0 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c := &initiator.Client{Root: filepath.Dir(o.config), Sysfs: os.Getenv("GOISCSI_SYSFS")}
	switch o.action {
	case 'h':
		io.WriteString(stdout, usage)
		return iscsierr.Success
	case 'v':
		fmt.Fprintln(stdout, "iscsistart version 2.1.8")
		return iscsierr.Success
	case 'f':
		boots, err := c.FirmwareTargets(warnErr)
		if err != nil {
			fmt.Fprintln(stdout, "Could not get list of targets from firmware.")
			return iscsierr.CodeOf(err)
		}
		for _, b := range boots {
			io.WriteString(stdout, c.FirmwareText(b, false))
		}
		return iscsierr.Success
	case 'N':
		return setupNICs(c, stdout, warn)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var recs []*conf.Record
	if o.action == 'b' {
		boots, err := c.FirmwareTargets(warnErr)
		if err != nil {
			fmt.Fprintln(stdout, "Could not get boot entry.")
			return iscsierr.CodeOf(err)
		}
		for _, b := range boots {
			r, err := c.FirmwareRecord(b, "default")
			if err != nil {
				return fail(iscsierr.CodeOf(err), "Could not start boot session to %s,%s,%d: %v", b.Target.Name, ibft.Addr(b.Target.IP), b.Target.Port, err)
			}
			recs = append(recs, r)
		}
	} else {
		r, err := o.settings.Record()
		if err != nil {
			var ie *iscsierr.Error
			if errors.As(err, &ie) {
				return fail(ie.Code, "%s", ie.Message)
			}
			return fail(iscsierr.Inval, "%v", err)
		}
		recs = append(recs, r)
	}
	k, err := nlink.Dial(nlink.DialOptions{SysfsRoot: c.Sysfs, Logger: log})
	if err != nil {
		return fail(iscsierr.Unknown, "cannot reach the kernel's iSCSI transport: %v", err)
	}
	defer k.Close()
	code := iscsierr.Success
	for _, r := range recs {
		if err := initiator.ApplyBootDefaults(r, o.params); err != nil {
			warn("%v", err)
			code = iscsierr.Unknown
			continue
		}
		id := r.ID()
		fmt.Fprintf(stdout, "iscsistart: Logging into %s %s:%d,%d\n", id.Target, id.Address, id.Port, id.TPGT)
		s, err := boot.Login(ctx, k, r, o.settings.InitiatorName, scan.Sysfs{Root: c.Sysfs}, log)
		if s != nil {
			warn("Connection%d:0 to [target: %s, portal: %s,%d] through [iface: %s] is operational now",
				s.SID, id.Target, id.Address, id.Port, id.Iface)
		}
		if err != nil {
			warn("%v", err)
			code = iscsierr.Unknown
		}
	}
	return code
}

// setupNICs is -N: each boot target's NIC up with the table's address and a
// route to the target, as iscsistart's fw_setup_nics (its words on stdout).
func setupNICs(c *initiator.Client, stdout io.Writer, warn func(string, ...any)) iscsierr.Code {
	boots, err := c.FirmwareTargets(func(err error) { warn("%v", err) })
	if err != nil {
		fmt.Fprintln(stdout, "Could not setup fw entries.")
		return iscsierr.NoObjsFound
	}
	code := iscsierr.Success
	configured := map[string]bool{}
	for _, b := range boots {
		fmt.Fprintf(stdout, "Setting up software interface %s\n", b.Netdev)
		if err := ibft.ConfigureNIC(b, configured[b.Netdev]); err != nil {
			warn("%v", err)
			fmt.Fprintf(stdout, "Setting up software interface %s failed\n", b.Netdev)
			code = iscsierr.Unknown
			continue
		}
		configured[b.Netdev] = true
	}
	return code
}
