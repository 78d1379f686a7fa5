package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// env is where a command runs: the initiator package's Client over the node
// database, sysfs and goiscsid, and the output, written as it goes (as stock
// writes its lines), so that a caller that kills a long -L all on a timeout
// still has the lines printed so far. The GOISCSI_ROOT, GOISCSI_SYSFS,
// GOISCSI_PROC, GOISCSI_RUN and GOISCSI_SOCKET variables move the client's
// places for tests.
type env struct {
	ctx    context.Context
	c      *initiator.Client
	stdout io.Writer
	stderr io.Writer
	// noWait is -W: logins are handed to the daemon, their results not
	// waited for.
	noWait bool
}

func newEnv(stdout, stderr io.Writer) *env {
	e := &env{ctx: context.Background(), stdout: stdout, stderr: stderr, c: &initiator.Client{
		Root: os.Getenv("GOISCSI_ROOT"), Sysfs: os.Getenv("GOISCSI_SYSFS"), Proc: os.Getenv("GOISCSI_PROC"),
		Run: os.Getenv("GOISCSI_RUN"), Socket: os.Getenv("GOISCSI_SOCKET")}}
	// Stock warns about what it skips in the node database and goes on.
	e.c.Warn = func(err error) { e.errorf("%v", err) }
	return e
}

func (e *env) sysfs() string { return or(os.Getenv("GOISCSI_SYSFS"), "/sys") }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (e *env) errorf(format string, args ...any) { io.WriteString(e.stderr, logLine(format, args...)) }

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// fail ends the command with one more error line.
func (e *env) fail(code iscsierr.Code, format string, args ...any) iscsierr.Code {
	e.errorf(format, args...)
	return code
}

// failWith ends the command with err's message and code (Unknown for an
// error without one).
func (e *env) failWith(err error) iscsierr.Code {
	var ie *iscsierr.Error
	if errors.As(err, &ie) {
		return e.fail(ie.Code, "%s", ie.Message)
	}
	return e.fail(iscsierr.Unknown, "%v", err)
}

// finish prints a formatter's text and ends with its outcome.
func (e *env) finish(text string, x *Exit) iscsierr.Code {
	io.WriteString(e.stdout, text)
	if x == nil {
		return iscsierr.Success
	}
	io.WriteString(e.stdout, x.Stdout)
	io.WriteString(e.stderr, x.Stderr)
	return x.Code
}

// run carries out a parsed command, printing as it goes, and returns the exit
// status.
func run(c *Command, stdout, stderr io.Writer) iscsierr.Code {
	e := newEnv(stdout, stderr)
	e.noWait = c.NoWait
	io.WriteString(e.stderr, c.Warnings)
	if c.SessionPath != "" {
		sid, code := e.sidFromPath(c.SessionPath)
		if code != iscsierr.Success {
			return code
		}
		c.SID = sid
	}
	// Stock looks up what a command names before it refuses the command
	// (Command.Reject): session SID, the discovery record, the iface.
	if c.Mode == ModeSession && c.SID > 0 {
		s, code := e.session(c.SID)
		if code != iscsierr.Success {
			return code
		}
		switch c.Action {
		case ActShowNodes, ActUpdateNodes, ActDeleteNodes, ActNewSession:
			scopeToSession(c, s)
		}
	}
	if c.Reject != nil && (c.Mode == ModeDiscovery || c.Mode == ModeDiscoveryDB) && c.Portal != nil &&
		e.discoveryRecord(c) == nil {
		return e.discoveryNotFound(c)
	}
	if c.Mode == ModeNode && len(c.Ifaces) > 0 {
		if _, err := e.c.Iface(c.Ifaces[0]); err != nil {
			return e.failWith(err)
		}
	}
	if c.Reject != nil {
		return e.finish("", c.Reject)
	}
	switch c.Action {
	case ActNewDiscovery, ActShowDiscovery, ActUpdateDiscovery, ActDeleteDiscovery:
		return e.discoveryRecords(c)
	case ActShowIface, ActNewIface, ActUpdateIface, ActDeleteIface:
		return e.ifaceRecords(c)
	case ActIfaceTree:
		return e.ifaceTree(c)
	case ActListIfaces:
		return e.listIfaces()
	case ActDiscover, ActDiscoverDB, ActDiscoverFromRecord:
		return e.discover(c)
	case ActListDiscovery:
		return e.listDiscovery(c)
	case ActListNodes:
		return e.listNodes(c)
	case ActShowNodes, ActNewNode, ActUpdateNodes, ActDeleteNodes:
		return e.nodeRecords(c)
	case ActLogin, ActLoginAll:
		return e.login(c)
	case ActLogout, ActLogoutAll:
		return e.logout(c)
	case ActListSessions, ActShowSession:
		return e.listSessions(c)
	case ActRescan:
		return e.rescan(c)
	case ActScanLUN:
		return e.scanLUN(c)
	case ActRemoveLUN:
		return e.removeLUN(c)
	case ActStats:
		return e.stats(c)
	case ActHealth:
		return e.health(c)
	case ActListHosts:
		return e.listHosts(c)
	case ActFirmware:
		return e.firmware(c)
	case ActDiscoverFirmware:
		return e.discoverFirmware(c)
	case ActKillDaemon:
		// Stock reports a daemon it cannot stop and still exits 0.
		if err := e.c.StopDaemon(e.ctx); err != nil {
			var ie *iscsierr.Error
			if errors.As(err, &ie) {
				e.errorf("%s", ie.Message)
			}
			e.errorf("Could not stop iscsid. Trying sending iscsid SIGTERM or SIGKILL signals manually\n")
		}
		return iscsierr.Success
	case ActNewSession:
		return e.newSession(c)
	}
	return e.fail(iscsierr.OpNotSupp, "this operation is not supported by goiscsiadm yet")
}

// sidFromPath resolves -r given as a sysfs path, as stock's
// iscsi_sysfs_get_sid_from_path: the path must exist and be a directory or
// a link, lie in sysfs, and have a sessionN on the way up.
func (e *env) sidFromPath(p string) (int, iscsierr.Code) {
	st, err := os.Lstat(p)
	if err != nil {
		return 0, e.fail(iscsierr.Unknown, "%s is an invalid session ID or path", p)
	}
	if !st.IsDir() && st.Mode()&os.ModeSymlink == 0 {
		return 0, e.fail(iscsierr.Unknown, "%s is not a directory", p)
	}
	sysfs := filepath.Clean(e.sysfs())
	devpath := p
	if rest, ok := strings.CutPrefix(p, sysfs); ok && (rest == "" || rest[0] == '/') {
		devpath = rest
	}
	// Only what resolves to a device (under devices/) is one to stock.
	real, err := filepath.EvalSymlinks(filepath.Join(sysfs, devpath))
	if realSys, _ := filepath.EvalSymlinks(sysfs); err != nil || !strings.HasPrefix(real, filepath.Join(realSys, "devices")+"/") {
		e.errorf("Could not get dev for %s. Possible sysfs incompatibility.", devpath)
		return 0, e.fail(iscsierr.Inval, "invalid sid '%s'", p)
	}
	for dir := real; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if n, ok := strings.CutPrefix(filepath.Base(dir), "session"); ok {
			if sid, err := strconv.Atoi(n); err == nil && sid > 0 {
				return sid, iscsierr.Success
			}
		}
	}
	e.errorf("Unable to find sid in path %s", p)
	return 0, e.fail(iscsierr.Inval, "invalid sid '%s'", p)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
