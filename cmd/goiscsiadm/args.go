package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/scan"
)

// This file turns an iscsiadm command line into a Command the way stock
// open-iscsi 2.1.8 does (usr/iscsiadm.c main, verify_mode_params and the
// exec_*_op functions up to the point where they touch the node database,
// sysfs or the daemon): the same options, the same per-mode checks in the same
// order, the same messages and exit codes.

// compatVersion is the open-iscsi release whose command line, output and exit
// codes goiscsiadm reproduces. iscsiadm -V prints it, so scripts that gate on
// the version see the behaviour they get.
const compatVersion = "2.1.8"

// Mode is iscsiadm's -m.
type Mode int

// The modes. The zero Mode is none: -k needs no mode.
const (
	ModeDiscovery Mode = iota + 1
	ModeDiscoveryDB
	ModeNode
	ModeSession
	ModeHost
	ModeIface
	ModeFW
)

// Op is the set of -o values; -o may repeat and the values are OR-ed, as in
// stock. Stock compares the set for equality in most places, so "-o new -o
// show" is neither new nor show.
type Op uint16

// The -o values.
const (
	OpNew           Op = 1 << iota // new
	OpDelete                       // delete
	OpUpdate                       // update
	OpShow                         // show
	OpNonPersistent                // nonpersistent: discovery does not store what it finds
	OpApply                        // apply (iface network settings, offload only)
	OpApplyAll                     // applyall (offload only)
	OpLogin                        // login (flashnode only)
	OpLogout                       // logout (flashnode only)
)

// Action is what a Command asks for once parsing and stock's checks are done.
// Selectors (Target, Portal, Ifaces, SID) say which objects it applies to.
type Action int

// The actions.
const (
	// ActKillDaemon stops the daemon (-k 0).
	ActKillDaemon Action = iota + 1

	// ActListSessions lists every session (-m session [-P 0-3]); see
	// SessionsText.
	ActListSessions
	// ActShowSession prints the tree of session SID (-m session -r SID -P
	// 1-3); see SessionsText.
	ActShowSession
	// ActNewSession logs in one more session to the target and portal of
	// session SID (-m session -r SID -o new).
	ActNewSession

	// ActListNodes lists the node records (-m node [-P 0|1]); see NodesText.
	ActListNodes
	// ActShowNodes prints the matching node records as key = value
	// (-o show, or selectors without an operation); -S shows secrets.
	ActShowNodes
	// ActNewNode adds a node record (-o new).
	ActNewNode
	// ActUpdateNodes sets Params on the matching node records (-o update).
	ActUpdateNodes
	// ActDeleteNodes deletes the matching node records (-o delete).
	ActDeleteNodes
	// ActLogin logs in to the matching node records (-l); NoWait is -W.
	ActLogin
	// ActLogout logs out of the matching sessions: by node selectors, by
	// SID, or all sessions (-u).
	ActLogout
	// ActLoginAll logs in to the records whose startup matches StartupMode
	// (-L).
	ActLoginAll
	// ActLogoutAll logs out of the sessions whose record's startup matches
	// StartupMode (-U).
	ActLogoutAll
	// ActRescan rescans the matching sessions (-R).
	ActRescan
	// ActStats prints the statistics of the matching sessions (-s).
	ActStats

	// ActDiscover runs SendTargets discovery to Portal with iscsid.conf's
	// discovery settings, stores the discovery record unless Op has
	// OpNonPersistent, applies Op to the node records (0 means new, delete
	// stale and update), prints what it found (see DiscoveredText) and logs
	// in to it when Login is set (-m discovery -t st -p P [-l]). With ISNS
	// it asks the iSNS server Portal instead and stores no discovery
	// record (-m discovery -t isns -p P [-l]).
	ActDiscover
	// ActDiscoverFromRecord is ActDiscover with the settings of the stored
	// discovery record of Portal, which must exist: stock says "Discovery
	// record [a,p] not found!" and exits 7 otherwise (-m discovery -p P -D|-l).
	ActDiscoverFromRecord
	// ActDiscoverDB is ActDiscover with the stored record's settings if
	// there is one, else iscsid.conf's, storing a new record unless Op has
	// OpNonPersistent (-m discoverydb -t st -p P -D [-l]).
	ActDiscoverDB
	// ActListDiscovery lists the discovery records (-m discovery,
	// -m discoverydb [-o show]); see DiscoveryDBText.
	ActListDiscovery
	// ActShowDiscovery prints the discovery record of Portal as key = value.
	ActShowDiscovery
	// ActNewDiscovery adds a discovery record for Portal (-m discoverydb -t
	// st -p P -o new).
	ActNewDiscovery
	// ActUpdateDiscovery sets Params on the discovery record of Portal.
	ActUpdateDiscovery
	// ActDeleteDiscovery deletes the discovery record of Portal.
	ActDeleteDiscovery

	// ActListIfaces lists the iface records (-m iface); see IfacesText.
	ActListIfaces
	// ActIfaceTree lists each iface with its node records (-m iface -P 1),
	// or only Ifaces[0], which must exist, when given; see IfaceTreeText.
	ActIfaceTree
	// ActShowIface prints the iface record Ifaces[0] as key = value.
	ActShowIface
	// ActNewIface creates the iface record Ifaces[0], then applies Params.
	ActNewIface
	// ActUpdateIface sets Params on the iface record Ifaces[0].
	ActUpdateIface
	// ActDeleteIface deletes the iface record Ifaces[0] and its node records.
	ActDeleteIface

	// ActScanLUN adds exactly LUN ScanLUN of session SID (--scan-lun).
	ActScanLUN
	// ActRemoveLUN removes LUN RemoveLUN from session SID (session mode) or
	// from every session to Target (node mode), with the multipath map
	// above it (--remove-lun).
	ActRemoveLUN
	// ActHealth judges the path of session SID, or of every session
	// (--health): OK or what is wrong; see health.go.
	ActHealth

	// ActFirmware is -m fw: the iSCSI boot targets the firmware (iBFT)
	// describes, shown or (Login) logged in to with Params on top.
	ActFirmware
	// ActDiscoverFirmware stores a node record of each boot target with
	// node.discovery_type fw, prints them as discovery does and logs in to
	// them when Login is set (-m discovery -t fw, -m discoverydb -t fw -D).
	ActDiscoverFirmware

	// ActListHosts lists the iSCSI hosts (-m host [-P 0-4] [-H host]); see
	// HostsText.
	ActListHosts
)

// Portal is -p ip[:port][,tpgt], split the way stock splits it.
type Portal struct {
	// Address is the host part, without IPv6 brackets.
	Address string
	// Port is the port; modes that have a default have filled it in, else
	// -1 when none was given.
	Port int
	// TPGT is the target portal group tag, -1 when none was given.
	TPGT int
}

// Param is one -n name -v value pair.
type Param struct {
	Name, Value string
}

// Command is a parsed iscsiadm command line.
type Command struct {
	Mode   Mode   // -m; 0 for -k
	Action Action // what to do; 0 when Reject is set
	// Reject is set, and Action is 0, when stock refuses this command line
	// only after looking up what it names: in node mode the iface record of
	// Ifaces[0] (when given), in session mode session SID, in the discovery
	// modes Portal's discovery record. A failed lookup has its own message
	// and code, which win; so the caller does that lookup, then stops with
	// Reject.
	Reject *Exit

	Op     Op
	Target string  // -T
	Portal *Portal // -p; nil when not given
	// ISNS is -t isns in the discovery modes: Portal is an iSNS server
	// and the discovery actions work on its iSNS discovery record.
	ISNS   bool
	Ifaces []string // -I, in order; node and iface mode use the first
	// Params are the -n/-v pairs in the order stock pairs them: a pair is
	// complete as soon as both a name and a value have been seen, in either
	// order, and a name or value without a partner is dropped. In node mode
	// node.transport_name is already renamed iface.transport_name, as stock
	// does; stock then refuses iface.transport_name while a session uses the
	// record (exit 15), which needs the caller's knowledge of sessions.
	Params []Param

	PrintLevel int // -P; -1 when not given
	SID        int // -r as a positive number; -1 when not given
	// SessionPath is a -r that is not a positive number: a sysfs path (a
	// session's directory or one below it) for the caller to resolve to a
	// SID. Stock resolves it while parsing: a path that does not exist ends
	// it with "<path> is an invalid session ID or path", one that is neither
	// a directory nor a symlink with "<path> is not a directory", both exit
	// 1; one with no session in it with "Unable to find sid in path <path>"
	// and "invalid sid '<path>'", exit 7.
	SessionPath string

	ShowSecrets bool   // -S: print CHAP passwords
	NoWait      bool   // -W: do not wait for logins to finish
	Login       bool   // discovery actions: -l, log in to what is found
	StartupMode string // -L / -U value: all, manual, automatic or onboot
	DebugLevel  int    // -d
	JSON        bool   // --json: print the listing as JSON (see json.go)
	ScanLUN     uint64 // --scan-lun N
	RemoveLUN   uint64 // --remove-lun N
	Force       bool   // --force: remove a LUN that is in use
	RemoveTries int    // --remove-tries N; 0 means the default

	// Warnings are stderr lines stock prints while parsing and then goes
	// on: getopt diagnostics that did not stop it, and "only accepts one
	// interface" when -I repeats in node or iface mode.
	Warnings string
}

// optJSON is the getopt value of --json, the one option stock does not have.
// It is above every byte so that no short option can collide with it.
const optJSON = 0x100

// optScanLUN is the getopt value of --scan-lun N (session mode with -r SID):
// goiscsi's narrow scan of exactly one LUN, for attach tools.
const optScanLUN = 0x101

// The getopt values of goiscsi's safe detach: --remove-lun N (session mode
// with -r SID, node mode with -T), --force and --remove-tries N with it. They
// make the abbreviations --r and --re, which stock reads as --rescan,
// ambiguous; the consumers we know spell --rescan out or use -R.
const (
	optRemoveLUN   = 0x102
	optForce       = 0x103
	optRemoveTries = 0x104
)

// optHealth is the getopt value of --health (session mode, with or without
// -r SID): goiscsid's verdict on each path. It makes --he, which stock reads
// as --help, ambiguous; --hel and --help still mean help.
const optHealth = 0x105

// shortOptions and longOptions are stock's option table.
const shortOptions = "RlDVhm:a:b:c:C:p:P:T:H:i:I:U:k:L:d:r:n:v:o:sSt:ux:A:W"

var longOptions = []longOption{
	{"mode", requiredArgument, 'm'},
	{"portal", requiredArgument, 'p'},
	{"targetname", requiredArgument, 'T'},
	{"interface", requiredArgument, 'I'},
	{"op", requiredArgument, 'o'},
	{"type", requiredArgument, 't'},
	{"name", requiredArgument, 'n'},
	{"value", requiredArgument, 'v'},
	{"host", requiredArgument, 'H'},
	{"sid", requiredArgument, 'r'},
	{"rescan", noArgument, 'R'},
	{"print", requiredArgument, 'P'},
	{"discover", noArgument, 'D'},
	{"login", noArgument, 'l'},
	{"loginall", requiredArgument, 'L'},
	{"logout", noArgument, 'u'},
	{"logoutall", requiredArgument, 'U'},
	{"stats", noArgument, 's'},
	{"killiscsid", requiredArgument, 'k'},
	{"debug", requiredArgument, 'd'},
	{"show", noArgument, 'S'},
	{"version", noArgument, 'V'},
	{"help", noArgument, 'h'},
	{"submode", requiredArgument, 'C'},
	{"ip", requiredArgument, 'a'},
	{"packetsize", requiredArgument, 'b'},
	{"count", requiredArgument, 'c'},
	{"interval", requiredArgument, 'i'},
	{"index", requiredArgument, 'x'},
	{"portal_type", optionalArgument, 'A'},
	{"no_wait", noArgument, 'W'},
	{"json", noArgument, optJSON},
	{"scan-lun", requiredArgument, optScanLUN},
	{"remove-lun", requiredArgument, optRemoveLUN},
	{"force", noArgument, optForce},
	{"remove-tries", requiredArgument, optRemoveTries},
	{"health", noArgument, optHealth},
}

// modeRule is one row of stock's mode_paras: the mode's name in messages,
// the option letters it allows, and whether -m itself is let through without
// being listed (session mode's quirk). json says whether --json is allowed.
type modeRule struct {
	name    string
	allowed string
	skipM   bool
	json    bool
}

var modeRules = [...]modeRule{
	ModeDiscovery:   {"discovery", "DSIPdmntplov", false, true},
	ModeDiscoveryDB: {"discovery", "DSIPdmntplov", false, true},
	ModeNode:        {"node", "RsPIdmlSonvupTULW", false, true},
	ModeSession:     {"session", "PiRdrmusonuSv", true, true},
	ModeHost:        {"host", "CHdmPotnvxA", false, false},
	ModeIface:       {"iface", "HIdnvmPoCabci", false, false},
	ModeFW:          {"fw", "dmlWnv", false, false},
}

// Stock's values for "not given" and defaults.
const (
	iscsiPort    = 3260      // ISCSI_LISTEN_PORT
	isnsPort     = 3205      // ISNS_DEFAULT_PORT
	maxHostNo    = 1<<32 - 1 // MAX_HOST_NO
	maxIfaceName = 65 - 1    // ISCSI_MAX_IFACE_LEN less the NUL
	erangeText   = "Numerical result out of range"
)

// discoveryType is -t.
type discoveryType int

const (
	discoveryUnknown discoveryType = iota // not given, or not a type stock knows
	discoverySendTargets
	discoverySLP
	discoveryISNS
	discoveryFW
)

// subMode is -C.
type subMode int

const (
	subNone subMode = iota // not given, or not a sub-mode stock knows
	subPing
	subCHAP
	subFlashnode
	subStats
)

// parser holds main()'s locals while the command line is read.
type parser struct {
	g      *getopt
	stderr strings.Builder
	stdout strings.Builder

	mode                  Mode
	ip                    string
	hasIP                 bool
	port, tpgt            int
	name, value           string
	hasName, hasValue     bool
	op                    Op
	typ                   discoveryType
	sub                   subMode
	target                string
	ifaces                []string
	params                []Param
	printLevel            int
	sid                   int
	sessionPath           string
	kill                  int
	startupMode           string
	loginAll, logoutAll   bool
	login, logout         bool
	discover, rescan      bool
	stats, show, noWait   bool
	json                  bool
	scanLUN               string
	hasScanLUN            bool
	removeLUN             string
	hasRemoveLUN          bool
	force                 bool
	removeTries           string
	health                bool
	debug                 int
	packetSize, pingCount int
	pingInterval          int
}

// Parse reads an iscsiadm command line; argv[0] is the program name, which
// getopt's diagnostics start with, as glibc's do. It returns the Command to
// run, or the Exit that ends the program without running anything: -V, -h,
// a bad option or value, a combination stock refuses, or something goiscsiadm
// does not support (offload HBAs), which exits 27.
func Parse(argv []string) (*Command, *Exit) {
	if len(argv) == 0 {
		argv = []string{"iscsiadm"}
	}
	p := &parser{
		port: -1, tpgt: -1, printLevel: -1, sid: -1, kill: -1,
		packetSize: 32, pingCount: 1,
	}
	p.g = &getopt{
		argv:      append([]string(nil), argv...),
		shortOpts: shortOptions,
		longOpts:  longOptions,
		stderr:    &p.stderr,
	}
	if e := p.readOptions(); e != nil {
		return nil, e
	}
	if p.g.optopt != 0 {
		return nil, p.fail(iscsierr.Inval, "unrecognized character '%c'", p.g.optopt)
	}
	if p.kill >= 0 {
		if p.kill != 0 {
			// Stock complains and still exits 0.
			return nil, p.fail(iscsierr.Success, "Invalid iscsid priority %d. Priority must be 0.", p.kill)
		}
		return p.command(ActKillDaemon), nil
	}
	if p.mode == 0 {
		return nil, p.usageError()
	}
	var c *Command
	var e *Exit
	switch p.mode {
	case ModeDiscovery:
		c, e = p.discovery()
	case ModeDiscoveryDB:
		c, e = p.discoveryDB()
	case ModeNode:
		c, e = p.node()
	case ModeSession:
		c, e = p.session()
	case ModeHost:
		c, e = p.hostMode()
	case ModeIface:
		c, e = p.iface()
	default:
		c = p.command(ActFirmware)
		c.Login = p.login
	}
	if e == nil && c.JSON && !jsonListing[c.Action] {
		return nil, p.fail(iscsierr.Inval, "--json applies only to listing sessions and nodes, to discovery, -s, --scan-lun, --remove-lun and --health")
	}
	if e == nil && (p.force || p.removeTries != "") && c.Action != ActRemoveLUN {
		return nil, p.fail(iscsierr.Inval, "--force and --remove-tries apply only to --remove-lun")
	}
	return c, e
}

// jsonListing are the actions --json applies to.
var jsonListing = map[Action]bool{
	ActListSessions: true, ActShowSession: true, ActListNodes: true,
	ActDiscover: true, ActDiscoverFromRecord: true, ActDiscoverDB: true,
	ActScanLUN: true, ActRemoveLUN: true, ActStats: true, ActHealth: true,
}

// readOptions is stock main()'s getopt loop. Most values are taken as they
// come; a few are checked on the spot and end parsing, exactly where stock
// checks them.
func (p *parser) readOptions() *Exit {
	for {
		c := p.g.next()
		if c == getoptEnd {
			return nil
		}
		arg := p.g.optarg
		switch c {
		case 'k':
			p.kill = cAtoi(arg)
			if p.kill < 0 {
				return p.fail(iscsierr.Inval, "Invalid killiscsid priority %d Priority must be greater than or equal to zero.", p.kill)
			}
		case 't':
			p.typ = parseDiscoveryType(arg)
		case 'o':
			p.op |= parseOp(arg)
			if p.op == 0 {
				return p.fail(iscsierr.Inval, "can not recognize operation: '%s'", arg)
			}
		case 'n':
			p.name, p.hasName = arg, true
		case 'v':
			p.value, p.hasValue = arg, true
		case 'H':
			if e := p.checkHost(arg); e != nil {
				return e
			}
		case 'r':
			if sid, rest, _ := cStrtol(arg); int32(sid) > 0 && arg != "" && rest == "" {
				p.sid, p.sessionPath = int(int32(sid)), ""
			} else {
				p.sid, p.sessionPath = -1, arg
			}
		case 'R':
			p.rescan = true
		case 'P':
			p.printLevel = cAtoi(arg)
		case 'D':
			p.discover = true
		case 'l':
			p.login = true
		case 'u':
			p.logout = true
		case 'U':
			p.logoutAll, p.startupMode = true, arg
		case 'L':
			p.loginAll, p.startupMode = true, arg
		case 's':
			p.stats = true
		case 'S':
			p.show = true
		case 'd':
			p.debug = cAtoi(arg)
		case 'm':
			p.mode = parseMode(arg)
			if e := p.verifyMode(); e != nil {
				return e
			}
		case 'C':
			p.sub = parseSubMode(arg)
		case 'T':
			p.target = arg
		case 'p':
			p.ip, p.hasIP = parsePortal(arg, &p.port, &p.tpgt)
		case 'a':
			p.ip, p.hasIP = arg, true
		case 'b':
			p.packetSize = cAtoi(arg)
		case 'c':
			p.pingCount = cAtoi(arg)
		case 'i':
			p.pingInterval = cAtoi(arg)
		case 'I':
			if arg == "" || len(arg) > maxIfaceName {
				// Stock prints this one on stdout.
				fmt.Fprintf(&p.stdout, "Invalid iface name %s. Must be from 1 to %d characters.\n", arg, maxIfaceName)
				return p.exit(iscsierr.Inval)
			}
			p.ifaces = append(p.ifaces, arg)
		case 'V':
			p.stdout.WriteString("iscsiadm version " + compatVersion + "\n")
			return p.exit(iscsierr.Success)
		case 'x':
			if _, _, erange := cStrtoul(arg); erange {
				return p.fail(iscsierr.Inval, "Invalid index %s. %s.", arg, erangeText)
			}
		case 'A':
			// Stock reads the portal type only for flash nodes, which
			// goiscsiadm does not support; it crashes on a bare
			// --portal_type, which takes its value as optional.
		case 'W':
			p.noWait = true
		case 'h':
			p.stdout.WriteString(usageText)
			return p.exit(iscsierr.Success)
		case optJSON:
			p.json = true
		case optScanLUN:
			p.scanLUN, p.hasScanLUN = arg, true
		case optRemoveLUN:
			p.removeLUN, p.hasRemoveLUN = arg, true
		case optForce:
			p.force = true
		case optRemoveTries:
			p.removeTries = arg
		case optHealth:
			p.health = true
		}
		if p.hasName && p.hasValue {
			p.params = append(p.params, Param{p.name, p.value})
			p.hasName, p.hasValue = false, false
		}
	}
}

// verifyMode is stock's verify_mode_params: on every -m it rescans the whole
// command line from the start and refuses the first option the mode does not
// allow. getopt's diagnostics are written again during the rescan, and any
// mistake getopt found counts as the disallowed option '?'. The rescan
// permutes argv and leaves glibc's state behind; only optind is put back, as
// stock does, which is why operands before -m can hide later options.
func (p *parser) verifyMode() *Exit {
	if p.mode == 0 {
		// Stock prints str_to_mode's -1.
		return p.fail(iscsierr.Inval, "mode -1 is not yet supported")
	}
	rule := modeRules[p.mode]
	saved := p.g.optind
	defer func() { p.g.optind = saved }()
	p.g.optind = 0
	for {
		c := p.g.next()
		switch {
		case c == getoptEnd:
			return nil
		case c == optScanLUN:
			if p.mode != ModeSession {
				return p.fail(iscsierr.Inval, "%s mode: option '--scan-lun' is not allowed/supported", rule.name)
			}
		case c == optRemoveLUN || c == optForce || c == optRemoveTries:
			if p.mode != ModeSession && p.mode != ModeNode {
				return p.fail(iscsierr.Inval, "%s mode: option '--%s' is not allowed/supported", rule.name, removalOption(c))
			}
		case c == optHealth:
			if p.mode != ModeSession {
				return p.fail(iscsierr.Inval, "%s mode: option '--health' is not allowed/supported", rule.name)
			}
		case c == optJSON:
			if !rule.json {
				return p.fail(iscsierr.Inval, "%s mode: option '--json' is not allowed/supported", rule.name)
			}
		case strings.IndexByte(rule.allowed, byte(c)) >= 0:
		case c == 'm' && rule.skipM:
		default:
			return p.fail(iscsierr.Inval, "%s mode: option '-%c' is not allowed/supported", rule.name, c)
		}
	}
}

// removalOption names a removal option in messages.
func removalOption(c int) string {
	switch c {
	case optRemoveLUN:
		return "remove-lun"
	case optForce:
		return "force"
	}
	return "remove-tries"
}

// removal is the command of --remove-lun, with --force and --remove-tries
// checked; the caller fills in what selects the sessions.
func (p *parser) removal() (*Command, *Exit) {
	lun, err := strconv.ParseUint(p.removeLUN, 10, 64)
	if err != nil || lun >= 1<<16 {
		return nil, p.fail(iscsierr.Inval, "--remove-lun %q: not a LUN number (0-65535)", p.removeLUN)
	}
	c := p.command(ActRemoveLUN)
	c.RemoveLUN, c.Force = lun, p.force
	if p.removeTries != "" {
		n, err := strconv.Atoi(p.removeTries)
		if err != nil || n < 1 || n > scan.MaxTries {
			return nil, p.fail(iscsierr.Inval, "--remove-tries %q: not a number of tries (1-%d)", p.removeTries, scan.MaxTries)
		}
		c.RemoveTries = n
	}
	return c, nil
}

// checkHost is the check of stock's parse_host_info for -H, a host number or
// a MAC address (anything with a colon). Only offload features, which
// goiscsiadm leaves out, use the host (stock's host listing ignores -H), so
// the value is checked and dropped, and a MAC is not matched to a host.
func (p *parser) checkHost(arg string) *Exit {
	if strings.Contains(arg, ":") {
		return nil
	}
	if n, _, erange := cStrtoul(arg); erange || n > maxHostNo {
		return p.fail(iscsierr.Inval, "Invalid host no %s. %s.", arg, erangeText)
	}
	return nil
}

// discovery is exec_disc_op: -m discovery.
func (p *parser) discovery() (*Command, *Exit) {
	switch p.typ {
	case discoverySendTargets:
		if !p.hasIP {
			return nil, p.fail(iscsierr.Inval, "Please specify portal as <ipaddr>[:<ipport>]")
		}
		c := p.command(ActDiscover)
		c.Portal, c.Login = p.discoveryPortal(), p.login
		return c, nil
	case discoverySLP:
		return nil, p.fail(iscsierr.Inval, "SLP discovery is not fully implemented yet.")
	case discoveryISNS:
		if !p.hasIP {
			return nil, p.fail(iscsierr.Inval, "Please specify portal as <ipaddr>:[<ipport>]")
		}
		// Whatever -o says, stock queries the server (exec_disc_op).
		c := p.command(ActDiscover)
		c.ISNS = true
		c.Portal, c.Login = p.isnsPortal(), p.login
		return c, nil
	case discoveryFW:
		c := p.command(ActDiscoverFirmware)
		c.Login = p.login
		return c, nil
	}
	if !p.hasIP {
		if p.op != 0 && p.op != OpShow {
			return nil, p.fail(iscsierr.Inval, "Invalid operation.")
		}
		return p.command(ActListDiscovery), nil
	}
	// The discovery record of the portal is read before anything else.
	var c *Command
	switch {
	case p.discover || p.login:
		c = p.command(ActDiscoverFromRecord)
		c.Login = p.login
	case p.op == 0 || p.op == OpShow:
		c = p.command(ActShowDiscovery)
	case p.op == OpDelete:
		c = p.command(ActDeleteDiscovery)
	case p.op == OpUpdate || p.op == OpNew:
		c = p.command(0)
		c.Reject = Errorf(iscsierr.Inval, "Operations new and update for discovery mode is not supported. Use discoverydb mode.")
	default:
		c = p.command(0)
		c.Reject = Errorf(iscsierr.Inval, "Invalid operation.")
	}
	c.Portal = p.discoveryPortal()
	return c, nil
}

// discoveryDB is exec_disc2_op: -m discoverydb.
func (p *parser) discoveryDB() (*Command, *Exit) {
	switch p.typ {
	case discoverySendTargets, discoveryISNS:
		// exec_discover: the same operations on either kind of record.
		if !p.hasIP {
			return nil, p.fail(iscsierr.Inval, "Please specify portal as <ipaddr>[:<ipport>]")
		}
		var c *Command
		switch {
		case p.op&OpNew != 0 && !p.discover:
			c = p.command(ActNewDiscovery)
		case p.discover:
			c = p.command(ActDiscoverDB)
			c.Login = p.login
		case p.op == 0 || p.op == OpShow:
			c = p.command(ActShowDiscovery)
		case p.op == OpDelete:
			c = p.command(ActDeleteDiscovery)
		case p.op == OpUpdate && len(p.params) > 0:
			c = p.command(ActUpdateDiscovery)
		case p.op == OpUpdate:
			c = p.command(0)
			c.Reject = Errorf(iscsierr.Inval, "Update requires name and value.")
		default:
			c = p.command(0)
			c.Reject = Errorf(iscsierr.Inval, "Operation is not supported.")
		}
		c.Portal = p.discoveryPortal()
		if p.typ == discoveryISNS {
			c.ISNS = true
			c.Portal = p.isnsPortal()
		}
		return c, nil
	case discoverySLP:
		return nil, p.fail(iscsierr.Inval, "SLP discovery is not fully implemented yet.")
	case discoveryFW:
		if !p.discover {
			return nil, p.fail(iscsierr.Inval, "Invalid command. Possibly missing --discover argument.")
		}
		c := p.command(ActDiscoverFirmware)
		c.Login = p.login
		return c, nil
	}
	switch {
	case !p.hasIP && (p.op == 0 || p.op == OpShow):
		return p.command(ActListDiscovery), nil
	case !p.hasIP:
		return nil, p.fail(iscsierr.Inval, "Invalid operation. Operation not supported.")
	case p.op != 0:
		return nil, p.fail(iscsierr.Inval, "Invalid command. Possibly missing discovery --type.")
	default:
		return nil, p.fail(iscsierr.Inval, "Invalid command. Portal not needed or Possibly missing discovery --type.")
	}
}

// discoveryPortal is the portal with the discovery modes' default port,
// which stock applies to any port below zero.
func (p *parser) discoveryPortal() *Portal {
	pt := &Portal{Address: p.ip, Port: p.port, TPGT: p.tpgt}
	if pt.Port < 0 {
		pt.Port = iscsiPort
	}
	return pt
}

// isnsPortal is the portal with the iSNS port (3205) as default, which stock
// applies to any port below zero.
func (p *parser) isnsPortal() *Portal {
	pt := &Portal{Address: p.ip, Port: p.port, TPGT: p.tpgt}
	if pt.Port < 0 {
		pt.Port = isnsPort
	}
	return pt
}

// node is the node-mode half of stock's main() and exec_node_op.
func (p *parser) node() (*Command, *Exit) {
	if p.hasRemoveLUN {
		if p.target == "" {
			return nil, p.fail(iscsierr.Inval, "--remove-lun in node mode needs a target: -T targetname")
		}
		c, e := p.removal()
		if e != nil {
			return nil, e
		}
		if p.hasIP {
			c.Portal = &Portal{Address: p.ip, Port: p.port, TPGT: p.tpgt}
			if c.Portal.Port == -1 {
				c.Portal.Port = iscsiPort
			}
		}
		return c, nil
	}
	if p.loginAll || p.logoutAll {
		return p.startupGroup()
	}
	if len(p.ifaces) > 1 {
		// Stock names the transport, hwaddress and ipaddress of an iface
		// record it has not read yet, so all three are empty.
		p.stderr.WriteString(logLine("NODE mode only accepts one interface. Using the first one driver  hwaddress  ipaddress ."))
	}
	c := p.command(0)
	if p.hasIP {
		c.Portal = &Portal{Address: p.ip, Port: p.port, TPGT: p.tpgt}
		if c.Portal.Port == -1 {
			c.Portal.Port = iscsiPort
		}
	}
	hasSelector := p.target != "" || (p.hasIP && p.ip != "") || len(p.ifaces) > 0
	c.Action, c.Reject = p.nodeOp(p.op, p.login, true, hasSelector)
	c.Params = renameTransport(c.Params)
	return c, nil
}

// startupGroup is -L and -U (login_by_startup, logout_by_startup): -L wins
// when both are given, and the value is the last one given to either.
func (p *parser) startupGroup() (*Command, *Exit) {
	valid := map[string]bool{"all": true, "manual": true, "automatic": true}
	what, act := "logoutall", ActLogoutAll
	if p.loginAll {
		valid["onboot"] = true
		what, act = "loginall", ActLoginAll
	}
	if !valid[p.startupMode] {
		e := p.fail(iscsierr.Inval, "Invalid %s option %s.", what, p.startupMode)
		e.Stderr += usageHint
		return nil, e
	}
	c := p.command(act)
	c.StartupMode = p.startupMode
	return c, nil
}

// nodeOp is exec_node_op's decision for node mode and for session mode: what
// to do with op and the -l/-u/-R/-s flags. hasRecord is false for session
// mode without -r, where stock passes no record; hasSelector says whether the
// record names a target, a portal or an iface. An error comes back as a
// Reject, since stock reaches it only after resolving the record.
func (p *parser) nodeOp(op Op, login, hasRecord, hasSelector bool) (Action, *Exit) {
	switch {
	case op == OpNew:
		return ActNewNode, nil
	case p.rescan:
		return ActRescan, nil
	case p.stats:
		return ActStats, nil
	case login && p.logout:
		return 0, Errorf(iscsierr.Inval, "Invalid parameters. Both login and logout passed in")
	case (login || p.logout) && op != 0:
		return 0, Errorf(iscsierr.Inval, "Invalid parameters. Login/logout and op passed in")
	case !login && !p.logout && op == 0 && (!hasRecord || !hasSelector):
		return ActListNodes, nil
	case login:
		return ActLogin, nil
	case p.logout:
		return ActLogout, nil
	case op == 0 || op == OpShow:
		return ActShowNodes, nil
	case op == OpUpdate:
		if e := verifyNodeParams(p.params); e != nil {
			return 0, e
		}
		return ActUpdateNodes, nil
	case op == OpDelete:
		return ActDeleteNodes, nil
	default:
		return 0, Errorf(iscsierr.Inval, "operation is not supported.")
	}
}

// verifyNodeParams is the part of stock's verify_node_params that needs no
// knowledge of sessions.
func verifyNodeParams(params []Param) *Exit {
	if len(params) == 0 {
		return Errorf(iscsierr.Inval, "update requires name and value")
	}
	for _, pr := range params {
		if strings.HasPrefix(pr.Name, "iface.") && pr.Name != "iface.transport_name" {
			return Errorf(iscsierr.Inval, "Cannot modify %s. Use iface mode to update this value.", pr.Name)
		}
	}
	return nil
}

// renameTransport applies stock's compatibility rename of
// node.transport_name to iface.transport_name.
func renameTransport(params []Param) []Param {
	for i := range params {
		if params[i].Name == "node.transport_name" {
			params[i].Name = "iface.transport_name"
		}
	}
	return params
}

// session is the session-mode half of stock's main().
func (p *parser) session() (*Command, *Exit) {
	if p.health {
		if p.hasScanLUN || p.hasRemoveLUN || p.logout || p.rescan || p.stats || p.op != 0 || p.printLevel >= 0 {
			return nil, p.fail(iscsierr.Inval, "--health takes only -r sessionid and --json")
		}
		return p.command(ActHealth), nil
	}
	if p.hasScanLUN {
		if p.sid <= 0 && p.sessionPath == "" {
			return nil, p.fail(iscsierr.Inval, "--scan-lun needs a session: -r SID")
		}
		lun, err := strconv.ParseUint(p.scanLUN, 10, 64)
		if err != nil || lun >= 1<<16 {
			return nil, p.fail(iscsierr.Inval, "--scan-lun %q: not a LUN number (0-65535)", p.scanLUN)
		}
		c := p.command(ActScanLUN)
		c.ScanLUN = lun
		return c, nil
	}
	if p.hasRemoveLUN {
		if p.sid <= 0 && p.sessionPath == "" {
			return nil, p.fail(iscsierr.Inval, "--remove-lun in session mode needs a session: -r SID")
		}
		return p.removal()
	}
	if p.sid > 0 || p.sessionPath != "" {
		// Session info is read from sysfs first; only then does stock
		// look at the operation.
		if !p.logout && !p.rescan && !p.stats && p.op == 0 && p.printLevel > 0 {
			return p.command(ActShowSession), nil
		}
		op, login := p.op, false
		if op == OpNew {
			op, login = 0, true
		}
		c := p.command(0)
		c.Action, c.Reject = p.nodeOp(op, login, true, true)
		if c.Action == ActLogin {
			c.Action = ActNewSession
		}
		c.Params = renameTransport(c.Params)
		return c, nil
	}
	if p.op == OpNew {
		return nil, p.fail(iscsierr.Inval, "session mode: Operation 'new' only allowed with specific session IDs")
	}
	if p.logout || p.rescan || p.stats {
		act, reject := p.nodeOp(p.op, false, false, false)
		if reject != nil {
			return nil, p.failWith(reject)
		}
		return p.command(act), nil
	}
	return p.command(ActListSessions), nil
}

// hostMode is stock's host mode.
func (p *parser) hostMode() (*Command, *Exit) {
	switch p.sub {
	case subCHAP:
		// Stock also means to require -H here and in the other sub-modes,
		// but its "no host" value wraps around to host 0, so it never does.
		if p.op == 0 {
			return nil, p.fail(iscsierr.Inval, "CHAP mode requires host no and valid operation")
		}
		return nil, p.unsupported("host CHAP tables (offload HBAs)")
	case subFlashnode:
		return nil, p.unsupported("flash nodes (offload HBAs)")
	case subStats:
		return nil, p.unsupported("host statistics (offload HBAs)")
	case subPing:
		// Stock logs this and exits 0.
		return nil, p.fail(iscsierr.Success, "Invalid Sub Mode")
	}
	return p.command(ActListHosts), nil
}

// iface is stock's iface mode (exec_iface_op, exec_ping_op's checks).
func (p *parser) iface() (*Command, *Exit) {
	if len(p.ifaces) > 1 {
		p.stderr.WriteString(logLine("iface mode only accepts one interface. Using the first one %s.", p.ifaces[0]))
	}
	hasIface := len(p.ifaces) > 0
	if p.sub == subPing {
		switch {
		case !hasIface:
			return nil, p.fail(iscsierr.Inval, "Ping requires iface.")
		case !p.hasIP:
			return nil, p.fail(iscsierr.Inval, "Ping requires destination ipaddress.")
		case p.packetSize <= 0:
			return nil, p.fail(iscsierr.Inval, "Invalid packet size: %d.", p.packetSize)
		case p.pingCount <= 0:
			return nil, p.fail(iscsierr.Inval, "Invalid number of packets to transmit: %d.", p.pingCount)
		case p.pingInterval < 0:
			return nil, p.fail(iscsierr.Inval, "Invalid timing interval: %d.", p.pingInterval)
		}
		return nil, p.unsupported("iface ping (offload HBAs)")
	}
	var act Action
	switch p.op {
	case OpNew:
		if !hasIface {
			// Stock returns errno EINVAL here, not ISCSI_ERR_INVAL.
			return nil, p.fail(iscsierr.SysfsLookup, "Could not add interface. No interface passed in.")
		}
		act = ActNewIface
	case OpDelete:
		if !hasIface {
			return nil, p.fail(iscsierr.Inval, "Could not delete interface. No interface passed in.")
		}
		act = ActDeleteIface
	case OpUpdate:
		if !hasIface || len(p.params) == 0 {
			return nil, p.fail(iscsierr.Inval, "Update requires name, value, and iface.")
		}
		act = ActUpdateIface
	case OpApply:
		if !hasIface {
			return nil, p.fail(iscsierr.Inval, "Apply requires iface.")
		}
		return nil, p.unsupported("applying iface network settings (offload HBAs)")
	case OpApplyAll:
		return nil, p.unsupported("applying iface network settings (offload HBAs)")
	case 0, OpShow:
		switch {
		case p.printLevel == 1:
			act = ActIfaceTree
		case p.printLevel != 0 && p.printLevel != -1:
			return nil, p.fail(iscsierr.Inval, "Invalid info level %d. Try 0 - 1.", p.printLevel)
		case hasIface:
			act = ActShowIface
		default:
			act = ActListIfaces
		}
	default:
		// Stock fails other operations without a word.
		return nil, p.exit(iscsierr.Inval)
	}
	return p.command(act), nil
}

// command is a Command carrying what was parsed.
func (p *parser) command(act Action) *Command {
	c := &Command{
		Action:      act,
		Op:          p.op,
		Target:      p.target,
		Ifaces:      p.ifaces,
		Params:      p.params,
		PrintLevel:  p.printLevel,
		SID:         p.sid,
		SessionPath: p.sessionPath,
		ShowSecrets: p.show,
		NoWait:      p.noWait,
		StartupMode: p.startupMode,
		DebugLevel:  p.debug,
		JSON:        p.json,
		Warnings:    p.stderr.String(),
	}
	c.Mode = p.mode
	return c
}

// exit ends parsing with what has been written so far.
func (p *parser) exit(code iscsierr.Code) *Exit {
	return &Exit{Code: code, Stdout: p.stdout.String(), Stderr: p.stderr.String()}
}

// fail ends parsing with one more stock-style error line.
func (p *parser) fail(code iscsierr.Code, format string, args ...any) *Exit {
	p.stderr.WriteString(logLine(format, args...))
	return p.exit(code)
}

// failWith ends parsing with e's message and code after what has been
// written so far.
func (p *parser) failWith(e *Exit) *Exit {
	p.stderr.WriteString(e.Stderr)
	return p.exit(e.Code)
}

// unsupported ends parsing for what goiscsiadm deliberately leaves out.
func (p *parser) unsupported(what string) *Exit {
	return p.fail(iscsierr.OpNotSupp, "%s is not supported by goiscsiadm", what)
}

// usageError is stock's usage(ISCSI_ERR_INVAL).
func (p *parser) usageError() *Exit {
	p.stderr.WriteString(usageHint)
	return p.exit(iscsierr.Inval)
}

const usageHint = "Try `iscsiadm --help' for more information.\n"

// usageText is what -h prints, byte for byte as stock (two lines end in a
// space).
const usageText = "" +
	"iscsiadm -m discoverydb [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... [-Dl]] | [[-p ip:port -t type] [-o operation] [-n name] [-v value] [-lD]] \n" +
	"iscsiadm -m discovery [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... [-l]] | [[-p ip:port] [-l | -D]] [-W]\n" +
	"iscsiadm -m node [-hV] [-d debug_level] [-P printlevel] [-L all,manual,automatic,onboot] [-W] [-U all,manual,automatic,onboot] [-S] [[-T targetname -p ip:port -I ifaceN] [-l | -u | -R | -s]] [[-o operation ] [-n name] [-v value]]\n" +
	"iscsiadm -m session [-hV] [-d debug_level] [-P printlevel] [-r sessionid | sysfsdir [-R | -u | -s] [-o operation] [-n name] [-v value]]\n" +
	"iscsiadm -m iface [-hV] [-d debug_level] [-P printlevel] [-I ifacename | -H hostno|MAC] [[-o operation ] [-n name] [-v value]] [-C ping [-a ip] [-b packetsize] [-c count] [-i interval]]\n" +
	"iscsiadm -m fw [-d debug_level] [-l] [-W] [[-n name] [-v value]]\n" +
	"iscsiadm -m host [-P printlevel] [-H hostno|MAC] [[-C chap [-x chap_tbl_idx]] | [-C flashnode [-A portal_type] [-x flashnode_idx]] | [-C stats]] [[-o operation] [-n name] [-v value]] \n" +
	"iscsiadm -k priority\n" +
	goiscsiUsage

// goiscsiUsage follows stock's usage lines (which stay byte for byte as
// stock's, above it) with the two options only goiscsi has.
const goiscsiUsage = "" +
	"goiscsi additions:\n" +
	"iscsiadm -m session -r sessionid --scan-lun lun   scan exactly LUN lun of the session (nothing else), print its disk\n" +
	"                                                  and, when multipathd runs, the multipath map it gets\n" +
	"iscsiadm -m session -r sessionid --remove-lun lun [--force] [--remove-tries n]\n" +
	"iscsiadm -m node -T targetname [-p ip:port] --remove-lun lun [--force] [--remove-tries n]\n" +
	"                                                  remove LUN lun safely from the session, or from every session\n" +
	"                                                  to the target: flush and remove its multipath map (retrying\n" +
	"                                                  while it is held open), then delete each path; --force\n" +
	"                                                  removes it also while in use\n" +
	"iscsiadm -m session [-r sessionid] --health       goiscsid's verdict on each session's path: OK, or what is\n" +
	"                                                  wrong (retransmissions, recoveries, RTT...); exit 4 when\n" +
	"                                                  a path is unhealthy\n" +
	"iscsiadm -m session|node|discovery ... --json     print the listing, scan, removal, -s or --health as JSON\n"

func parseMode(s string) Mode {
	switch s {
	case "discovery":
		return ModeDiscovery
	case "discoverydb":
		return ModeDiscoveryDB
	case "node":
		return ModeNode
	case "session":
		return ModeSession
	case "iface":
		return ModeIface
	case "fw":
		return ModeFW
	case "host":
		return ModeHost
	}
	return 0
}

func parseOp(s string) Op {
	switch s {
	case "new":
		return OpNew
	case "delete":
		return OpDelete
	case "update":
		return OpUpdate
	case "show":
		return OpShow
	case "nonpersistent":
		return OpNonPersistent
	case "apply":
		return OpApply
	case "applyall":
		return OpApplyAll
	case "login":
		return OpLogin
	case "logout":
		return OpLogout
	}
	return 0
}

func parseDiscoveryType(s string) discoveryType {
	switch s {
	case "sendtargets", "st":
		return discoverySendTargets
	case "slp":
		return discoverySLP
	case "isns":
		return discoveryISNS
	case "fw":
		return discoveryFW
	}
	return discoveryUnknown
}

func parseSubMode(s string) subMode {
	switch s {
	case "ping":
		return subPing
	case "chap":
		return subCHAP
	case "flashnode":
		return subFlashnode
	case "stats":
		return subStats
	}
	return subNone
}

// parsePortal is stock's str_to_ipport, which works on a C string it cuts
// with NULs; it is simulated on a byte buffer so that every odd input splits
// as in stock. It sets port only when the text has one (so an earlier -p's
// port survives a later -p without one) and always sets tpgt. It returns
// false, changing nothing, for "[" without "]".
func parsePortal(s string, port, tpgt *int) (string, bool) {
	buf := append([]byte(s), 0)
	cstr := func(at int) string { return string(buf[at : at+bytes.IndexByte(buf[at:], 0)]) }
	strchr := func(at int, c byte) int {
		if i := bytes.IndexByte(buf[at:at+bytes.IndexByte(buf[at:], 0)], c); i >= 0 {
			return at + i
		}
		return -1
	}
	ip, str, sport := 0, 0, 0 // sport < 0 is C's NULL
	if strchr(ip, '.') < 0 {
		if buf[ip] == '[' {
			if sport = strchr(ip, ']'); sport < 0 {
				return "", false
			}
			buf[sport] = 0
			sport++
			ip++
			str = sport
		} else if sport = strchr(ip, ':'); sport >= 0 {
			if strchr(sport+1, ':') >= 0 {
				sport = -1 // IPv6 without brackets: no port
			} else {
				str = sport // host:port
			}
		}
	}
	if sport >= 0 {
		if sport = strchr(str, ':'); sport >= 0 {
			buf[sport] = 0
			sport++
			n, _, _ := cStrtoul(cstr(sport))
			*port = int(int32(n))
			str = sport
		}
	}
	if t := strchr(str, ','); t >= 0 {
		buf[t] = 0
		n, _, _ := cStrtoul(cstr(t + 1))
		*tpgt = int(int32(n))
	} else {
		*tpgt = -1
	}
	return cstr(ip), true
}

// cSpace is C's isspace in the C locale.
func cSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// cDigits reads what strtol and strtoul read in base 10: blanks, a sign,
// digits. It returns the magnitude (saturated at 1<<64-1), whether it
// overflowed, whether it was negative and the unread rest; with no digits
// the rest is all of s, as C's endptr.
func cDigits(s string) (mag uint64, overflow, neg bool, rest string) {
	i := 0
	for i < len(s) && cSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if mag > (1<<64-1-d)/10 {
			overflow = true
		}
		mag = mag*10 + d
		i++
	}
	if i == start {
		return 0, false, false, s
	}
	if overflow {
		mag = 1<<64 - 1
	}
	return mag, overflow, neg, s[i:]
}

// cStrtol is C's strtol(s, &end, 10) on a 64-bit system: the value clamps to
// the int64 range on overflow, which it reports.
func cStrtol(s string) (n int64, rest string, erange bool) {
	mag, overflow, neg, rest := cDigits(s)
	switch {
	case !neg && (overflow || mag > 1<<63-1):
		return 1<<63 - 1, rest, true
	case neg && (overflow || mag > 1<<63):
		return -1 << 63, rest, true
	case neg:
		return -int64(mag), rest, false
	}
	return int64(mag), rest, false
}

// cStrtoul is C's strtoul(s, &end, 10) on a 64-bit system: a minus sign
// negates in unsigned arithmetic, and overflow gives the maximum, which it
// reports.
func cStrtoul(s string) (n uint64, rest string, erange bool) {
	mag, overflow, neg, rest := cDigits(s)
	if overflow {
		return 1<<64 - 1, rest, true
	}
	if neg {
		return -mag, rest, false
	}
	return mag, rest, false
}

// cAtoi is C's atoi on a system with 32-bit int: strtol, then truncation.
func cAtoi(s string) int {
	n, _, _ := cStrtol(s)
	return int(int32(n))
}
