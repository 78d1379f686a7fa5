package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
)

// FuzzParse feeds arbitrary command lines (arguments separated by NUL bytes)
// to Parse. It must never panic, must decide exactly one thing (a Command to
// run or an Exit), must decide the same thing every time, and what it prints
// must look like stock's: lines ending in newlines, exit codes in stock's
// range, errors prefixed.
func FuzzParse(f *testing.F) {
	for _, tc := range stockErrors {
		f.Add(strings.Join(tc.args, "\x00"))
	}
	f.Add("-m\x00node\x00-T\x00iqn.2003-01.org.x:t1\x00-p\x00[fe80::1]:3260,1\x00--op=update\x00--name\x00node.startup\x00--value=manual")
	f.Add("-m\x00session\x00-P\x003\x00-S\x00--json")
	f.Fuzz(func(t *testing.T, line string) {
		argv := append([]string{"iscsiadm"}, strings.Split(line, "\x00")...)
		c, e := Parse(argv)
		c2, e2 := Parse(argv)
		if !reflect.DeepEqual(c, c2) || !reflect.DeepEqual(e, e2) {
			t.Fatalf("two parses differ: %+v %+v / %+v %+v", c, e, c2, e2)
		}
		if (c == nil) == (e == nil) {
			t.Fatalf("Command %+v and Exit %+v", c, e)
		}
		if e != nil {
			checkExit(t, e)
			return
		}
		if (c.Action == 0) == (c.Reject == nil) {
			t.Fatalf("Action %d with Reject %+v", c.Action, c.Reject)
		}
		if c.Reject != nil {
			checkExit(t, c.Reject)
			if c.Reject.Code == iscsierr.Success || c.Reject.Stdout != "" {
				t.Fatalf("Reject %+v", c.Reject)
			}
		}
		if c.Action != ActKillDaemon && (c.Mode < ModeDiscovery || c.Mode > ModeFW) {
			t.Fatalf("mode %d", c.Mode)
		}
		if c.JSON && c.Reject == nil && !jsonListing[c.Action] {
			t.Fatalf("--json with action %d", c.Action)
		}
		if c.Portal != nil && strings.IndexByte(c.Portal.Address, 0) >= 0 {
			t.Fatalf("NUL in address %q", c.Portal.Address)
		}
		checkLines(t, c.Warnings)
	})
}

// checkExit checks an Exit's shape.
func checkExit(t *testing.T, e *Exit) {
	t.Helper()
	if e.Code < iscsierr.Success || e.Code > iscsierr.ReqTimedOut {
		t.Fatalf("exit code %d", e.Code)
	}
	checkLines(t, e.Stderr)
	switch {
	case e.Stdout == "", e.Stdout == usageText, e.Stdout == "iscsiadm version "+compatVersion+"\n":
	case strings.HasPrefix(e.Stdout, "Invalid iface name ") && strings.HasSuffix(e.Stdout, ". Must be from 1 to 64 characters.\n"):
	default:
		t.Fatalf("stdout %q", e.Stdout)
	}
}

// checkLines checks that stderr text is whole lines starting the way
// getopt's (argv[0] is iscsiadm here) and stock's own lines start. (A line
// can hold a newline of the command line, as in stock.)
func checkLines(t *testing.T, s string) {
	t.Helper()
	if s == "" {
		return
	}
	if !strings.HasSuffix(s, "\n") || !strings.HasPrefix(s, logPrefix) && !strings.HasPrefix(s, usageHint) {
		t.Fatalf("stderr %q", s)
	}
}
