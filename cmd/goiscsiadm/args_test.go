package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/iscsierr"
)

// stockErrors are command lines stock open-iscsi 2.1.8 (Debian bookworm's
// package, glibc 2.36) refuses, with what it printed and its exit status,
// captured by running it with an empty node database. reject marks the ones
// stock refuses only after looking up what the command names (Command.Reject).
var stockErrors = []struct {
	args           []string
	stdout, stderr string
	code           iscsierr.Code
	reject         bool
}{
	{[]string{"-V"}, "iscsiadm version 2.1.8\n", "", 0, false},
	{[]string{"-h"}, "iscsiadm -m discoverydb [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... [-Dl]] | [[-p ip:port -t type] [-o operation] [-n name] [-v value] [-lD]] \niscsiadm -m discovery [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... [-l]] | [[-p ip:port] [-l | -D]] [-W]\niscsiadm -m node [-hV] [-d debug_level] [-P printlevel] [-L all,manual,automatic,onboot] [-W] [-U all,manual,automatic,onboot] [-S] [[-T targetname -p ip:port -I ifaceN] [-l | -u | -R | -s]] [[-o operation ] [-n name] [-v value]]\niscsiadm -m session [-hV] [-d debug_level] [-P printlevel] [-r sessionid | sysfsdir [-R | -u | -s] [-o operation] [-n name] [-v value]]\niscsiadm -m iface [-hV] [-d debug_level] [-P printlevel] [-I ifacename | -H hostno|MAC] [[-o operation ] [-n name] [-v value]] [-C ping [-a ip] [-b packetsize] [-c count] [-i interval]]\niscsiadm -m fw [-d debug_level] [-l] [-W] [[-n name] [-v value]]\niscsiadm -m host [-P printlevel] [-H hostno|MAC] [[-C chap [-x chap_tbl_idx]] | [-C flashnode [-A portal_type] [-x flashnode_idx]] | [-C stats]] [[-o operation] [-n name] [-v value]] \niscsiadm -k priority\n" + goiscsiUsage, "", 0, false},
	{[]string{}, "", "Try `iscsiadm --help' for more information.\n", 7, false},
	{[]string{"-m"}, "", "iscsiadm: option requires an argument -- 'm'\niscsiadm: unrecognized character 'm'\n", 7, false},
	{[]string{"-m", "foo"}, "", "iscsiadm: mode -1 is not yet supported\n", 7, false},
	{[]string{"-z"}, "", "iscsiadm: invalid option -- 'z'\niscsiadm: unrecognized character 'z'\n", 7, false},
	{[]string{"--foo"}, "", "iscsiadm: unrecognized option '--foo'\nTry `iscsiadm --help' for more information.\n", 7, false},
	{[]string{"--log"}, "", "iscsiadm: option '--log' is ambiguous; possibilities: '--login' '--loginall' '--logout' '--logoutall'\nTry `iscsiadm --help' for more information.\n", 7, false},
	{[]string{"--por=x", "-m", "node"}, "", "iscsiadm: option '--por=x' is ambiguous; possibilities: '--portal' '--portal_type'\niscsiadm: option '--por=x' is ambiguous; possibilities: '--portal' '--portal_type'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"--login=1"}, "", "iscsiadm: option '--login' doesn't allow an argument\niscsiadm: unrecognized character 'l'\n", 7, false},
	{[]string{"--print"}, "", "iscsiadm: option '--print' requires an argument\niscsiadm: unrecognized character 'P'\n", 7, false},
	{[]string{"-:", "-m", "node"}, "", "iscsiadm: invalid option -- ':'\niscsiadm: invalid option -- ':'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-z", "-m", "session"}, "", "iscsiadm: invalid option -- 'z'\niscsiadm: invalid option -- 'z'\niscsiadm: session mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-m", "session", "-z"}, "", "iscsiadm: invalid option -- 'z'\niscsiadm: session mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "-P"}, "", "iscsiadm: option requires an argument -- 'P'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-m", "session", "-l"}, "", "iscsiadm: session mode: option '-l' is not allowed/supported\n", 7, false},
	{[]string{"-m", "session", "-T", "iqn.x:t"}, "", "iscsiadm: session mode: option '-T' is not allowed/supported\n", 7, false},
	{[]string{"--login", "-m", "session"}, "", "iscsiadm: session mode: option '-l' is not allowed/supported\n", 7, false},
	{[]string{"-m", "discoverydb", "-T", "iqn.x:t"}, "", "iscsiadm: discovery mode: option '-T' is not allowed/supported\n", 7, false},
	{[]string{"-m", "discovery", "-u"}, "", "iscsiadm: discovery mode: option '-u' is not allowed/supported\n", 7, false},
	{[]string{"-m", "host", "-l"}, "", "iscsiadm: host mode: option '-l' is not allowed/supported\n", 7, false},
	{[]string{"-m", "iface", "-p", "10.0.0.1"}, "", "iscsiadm: iface mode: option '-p' is not allowed/supported\n", 7, false},
	{[]string{"-m", "fw", "-o", "show"}, "", "iscsiadm: fw mode: option '-o' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "-V"}, "", "iscsiadm: node mode: option '-V' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "-h"}, "", "iscsiadm: node mode: option '-h' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "-k", "0"}, "", "iscsiadm: node mode: option '-k' is not allowed/supported\n", 7, false},
	{[]string{"-k", "1"}, "", "iscsiadm: Invalid iscsid priority 1. Priority must be 0.\n", 0, false},
	{[]string{"-k", "-1"}, "", "iscsiadm: Invalid killiscsid priority -1 Priority must be greater than or equal to zero.\n", 7, false},
	{[]string{"-o", "bogus", "-m", "node"}, "", "iscsiadm: can not recognize operation: 'bogus'\n", 7, false},
	{[]string{"-m", "node", "-o", "bogus"}, "", "iscsiadm: can not recognize operation: 'bogus'\n", 7, false},
	{[]string{"-m", "node", "-o", ""}, "", "iscsiadm: can not recognize operation: ''\n", 7, false},
	{[]string{"-I", ""}, "Invalid iface name . Must be from 1 to 64 characters.\n", "", 7, false},
	{[]string{"-I", "01234567890123456789012345678901234567890123456789012345678901234"}, "Invalid iface name 01234567890123456789012345678901234567890123456789012345678901234. Must be from 1 to 64 characters.\n", "", 7, false},
	{[]string{"-H", "-1", "-m", "host"}, "", "iscsiadm: Invalid host no -1. Numerical result out of range.\n", 7, false},
	{[]string{"-H", "4294967296", "-m", "host"}, "", "iscsiadm: Invalid host no 4294967296. Numerical result out of range.\n", 7, false},
	{[]string{"-x", "99999999999999999999999", "-m", "host"}, "", "iscsiadm: Invalid index 99999999999999999999999. Numerical result out of range.\n", 7, false},
	{[]string{"-m", "node", "-L", "foo"}, "", "iscsiadm: Invalid loginall option foo.\nTry `iscsiadm --help' for more information.\n", 7, false},
	{[]string{"-m", "node", "-U", "onboot"}, "", "iscsiadm: Invalid logoutall option onboot.\nTry `iscsiadm --help' for more information.\n", 7, false},
	{[]string{"-m", "node", "-L"}, "", "iscsiadm: option requires an argument -- 'L'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "-l", "-u"}, "", "iscsiadm: Invalid parameters. Both login and logout passed in\n", 7, true},
	{[]string{"-m", "node", "-T", "iqn.x:t", "-p", "10.0.0.1", "-l", "-o", "update"}, "", "iscsiadm: Invalid parameters. Login/logout and op passed in\n", 7, true},
	{[]string{"-m", "node", "-T", "iqn.x:t", "-p", "10.0.0.1", "-o", "update"}, "", "iscsiadm: update requires name and value\n", 7, true},
	{[]string{"-m", "node", "-T", "iqn.x:t", "-p", "10.0.0.1", "-o", "update", "-n", "iface.net_ifacename", "-v", "eth0"}, "", "iscsiadm: Cannot modify iface.net_ifacename. Use iface mode to update this value.\n", 7, true},
	{[]string{"-m", "node", "-T", "iqn.x:t", "-o", "new", "-o", "show"}, "", "iscsiadm: operation is not supported.\n", 7, true},
	{[]string{"-m", "session", "-o", "new"}, "", "iscsiadm: session mode: Operation 'new' only allowed with specific session IDs\n", 7, false},
	{[]string{"-m", "session", "-u", "-o", "show"}, "", "iscsiadm: Invalid parameters. Login/logout and op passed in\n", 7, false},
	{[]string{"-m", "host", "-C", "ping"}, "", "iscsiadm: Invalid Sub Mode\n", 0, false},
	{[]string{"-m", "host", "-C", "chap"}, "", "iscsiadm: CHAP mode requires host no and valid operation\n", 7, false},
	{[]string{"-m", "iface", "-C", "ping", "-I", "default"}, "", "iscsiadm: Ping requires destination ipaddress.\n", 7, false},
	{[]string{"-m", "iface", "-C", "ping"}, "", "iscsiadm: Ping requires iface.\n", 7, false},
	{[]string{"-m", "iface", "-C", "ping", "-I", "default", "-a", "10.0.0.1", "-b", "0"}, "", "iscsiadm: Invalid packet size: 0.\n", 7, false},
	{[]string{"-m", "iface", "-C", "ping", "-I", "default", "-a", "10.0.0.1", "-c", "0"}, "", "iscsiadm: Invalid number of packets to transmit: 0.\n", 7, false},
	{[]string{"-m", "iface", "-C", "ping", "-I", "default", "-a", "10.0.0.1", "-i", "-1"}, "", "iscsiadm: Invalid timing interval: -1.\n", 7, false},
	{[]string{"-m", "iface", "-o", "new"}, "", "iscsiadm: Could not add interface. No interface passed in.\n", 22, false},
	{[]string{"-m", "iface", "-o", "delete"}, "", "iscsiadm: Could not delete interface. No interface passed in.\n", 7, false},
	{[]string{"-m", "iface", "-o", "update", "-I", "default"}, "", "iscsiadm: Update requires name, value, and iface.\n", 7, false},
	{[]string{"-m", "iface", "-o", "apply"}, "", "iscsiadm: Apply requires iface.\n", 7, false},
	{[]string{"-m", "iface", "-o", "nonpersistent"}, "", "", 7, false},
	{[]string{"-m", "iface", "-P", "2"}, "", "iscsiadm: Invalid info level 2. Try 0 - 1.\n", 7, false},
	{[]string{"-m", "discovery", "-t", "st"}, "", "iscsiadm: Please specify portal as <ipaddr>[:<ipport>]\n", 7, false},
	{[]string{"-m", "discovery", "-t", "isns"}, "", "iscsiadm: Please specify portal as <ipaddr>:[<ipport>]\n", 7, false},
	{[]string{"-m", "discovery", "-t", "slp"}, "", "iscsiadm: SLP discovery is not fully implemented yet.\n", 7, false},
	{[]string{"-m", "discovery", "-o", "delete"}, "", "iscsiadm: Invalid operation.\n", 7, false},
	{[]string{"-m", "discoverydb", "-t", "st", "-o", "update"}, "", "iscsiadm: Please specify portal as <ipaddr>[:<ipport>]\n", 7, false},
	{[]string{"-m", "discoverydb", "-t", "isns"}, "", "iscsiadm: Please specify portal as <ipaddr>[:<ipport>]\n", 7, false},
	{[]string{"-m", "discoverydb", "-t", "slp", "-p", "10.0.0.1"}, "", "iscsiadm: SLP discovery is not fully implemented yet.\n", 7, false},
	{[]string{"-m", "discoverydb", "-t", "fw"}, "", "iscsiadm: Invalid command. Possibly missing --discover argument.\n", 7, false},
	{[]string{"-m", "discoverydb", "-p", "10.0.0.1"}, "", "iscsiadm: Invalid command. Portal not needed or Possibly missing discovery --type.\n", 7, false},
	{[]string{"-m", "discoverydb", "-p", "10.0.0.1", "-o", "show"}, "", "iscsiadm: Invalid command. Possibly missing discovery --type.\n", 7, false},
	{[]string{"-m", "discoverydb", "-o", "delete"}, "", "iscsiadm: Invalid operation. Operation not supported.\n", 7, false},
	{[]string{"-lm", "node", "-u"}, "", "iscsiadm: Invalid parameters. Both login and logout passed in\n", 7, true},
	{[]string{"-m", "node", "-lu"}, "", "iscsiadm: Invalid parameters. Both login and logout passed in\n", 7, true},
	{[]string{"--mode=node", "--login", "--logout"}, "", "iscsiadm: Invalid parameters. Both login and logout passed in\n", 7, true},
	{[]string{"--mode", "node", "--targ=iqn.x:t", "--port", "10.0.0.1", "--log"}, "", "iscsiadm: option '--port' is ambiguous; possibilities: '--portal' '--portal_type'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
	{[]string{"-m", "node", "--in=default", "-P", "5"}, "", "iscsiadm: option '--in=default' is ambiguous; possibilities: '--interface' '--interval' '--index'\niscsiadm: node mode: option '-?' is not allowed/supported\n", 7, false},
}

func TestParseStockErrors(t *testing.T) {
	for _, tc := range stockErrors {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, e := Parse(append([]string{"iscsiadm"}, tc.args...))
			if tc.reject {
				if e != nil || c.Reject == nil {
					t.Fatalf("want a Command with Reject, got %+v, %+v", c, e)
				}
				if c.Action != 0 {
					t.Errorf("Action = %d with a Reject", c.Action)
				}
				e = &Exit{Code: c.Reject.Code, Stderr: c.Warnings + c.Reject.Stderr}
			}
			if e == nil {
				t.Fatalf("want an Exit, got %+v", c)
			}
			if e.Stdout != tc.stdout || e.Stderr != tc.stderr || e.Code != tc.code {
				t.Errorf("got (%q, %q, %d), stock (%q, %q, %d)", e.Stdout, e.Stderr, e.Code, tc.stdout, tc.stderr, tc.code)
			}
		})
	}
}

// TestParseRemovalErrors: what --remove-lun and its options refuse, exit 7.
func TestParseRemovalErrors(t *testing.T) {
	for _, tc := range []struct{ args, stderr string }{
		{"-m session --remove-lun 1", "iscsiadm: --remove-lun in session mode needs a session: -r SID\n"},
		{"-m node --remove-lun 1", "iscsiadm: --remove-lun in node mode needs a target: -T targetname\n"},
		{"-m node -T iqn.x:t --remove-lun one", "iscsiadm: --remove-lun \"one\": not a LUN number (0-65535)\n"},
		{"-m node -T iqn.x:t --remove-lun 65536", "iscsiadm: --remove-lun \"65536\": not a LUN number (0-65535)\n"},
		{"-m node -T iqn.x:t --remove-lun 1 --remove-tries 0", "iscsiadm: --remove-tries \"0\": not a number of tries (1-10)\n"},
		{"-m session -r 1 -u --force", "iscsiadm: --force and --remove-tries apply only to --remove-lun\n"},
		{"-m discovery --remove-lun 1", "iscsiadm: discovery mode: option '--remove-lun' is not allowed/supported\n"},
		{"-m host --force", "iscsiadm: host mode: option '--force' is not allowed/supported\n"},
	} {
		c, e := Parse(append([]string{"iscsiadm"}, strings.Fields(tc.args)...))
		if e == nil || e.Code != iscsierr.Inval || e.Stderr != tc.stderr {
			t.Errorf("%s: %+v %+v; want 7 and %q", tc.args, c, e, tc.stderr)
		}
	}
}

// cmd is the Command Parse makes of nothing but -m mode, changed by set.
func cmd(mode Mode, act Action, set func(*Command)) *Command {
	c := &Command{Mode: mode, Action: act, PrintLevel: -1, SID: -1}
	if set != nil {
		set(c)
	}
	return c
}

// portal sets the Portal.
func portal(addr string, port, tpgt int) func(*Command) {
	return func(c *Command) { c.Portal = &Portal{addr, port, tpgt} }
}

// TestParseConsumers parses the command lines that os-brick, csi-lib-iscsi,
// Kubernetes, Longhorn, Dell's goiscsi, NetApp Trident, HPE's
// common-host-libs and OpenEBS run (doc: shared research, go-peers §3).
func TestParseConsumers(t *testing.T) {
	const iqn = "iqn.2003-01.org.linux-iscsi.x:t1"
	chapNode := []Param{
		{"node.session.auth.authmethod", "CHAP"},
		{"node.session.auth.username", "user"},
		{"node.session.auth.password", "secret"},
	}
	chapDisc := []Param{
		{"discovery.sendtargets.auth.authmethod", "CHAP"},
		{"discovery.sendtargets.auth.username", "user"},
		{"discovery.sendtargets.auth.password", "secret"},
	}
	tgt := func(c *Command) { c.Target = iqn }
	op := func(o Op) func(*Command) { return func(c *Command) { c.Op = o } }
	ifaces := func(names ...string) func(*Command) { return func(c *Command) { c.Ifaces = names } }

	tests := []struct {
		args string
		want *Command
	}{
		// csi-lib-iscsi
		{"-m iface -o show", cmd(ModeIface, ActListIfaces, op(OpShow))},
		{"-m iface -o show -I tcp-iface", cmd(ModeIface, ActShowIface, with(op(OpShow), ifaces("tcp-iface")))},
		{"-m iface -I tcp-iface -o delete", cmd(ModeIface, ActDeleteIface, with(op(OpDelete), ifaces("tcp-iface")))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 -I default -o new",
			cmd(ModeNode, ActNewNode, with(tgt, portal("10.0.0.1", 3260, -1), ifaces("default"), op(OpNew)))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 -o update -n node.session.auth.authmethod -v CHAP -n node.session.auth.username -v user -n node.session.auth.password -v secret",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(chapNode...)))},
		{"-m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default -o new",
			cmd(ModeDiscoveryDB, ActNewDiscovery, with(portal("10.0.0.1", 3260, -1), ifaces("default"), op(OpNew)))},
		{"-m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default -o update -n discovery.sendtargets.auth.authmethod -v CHAP -n discovery.sendtargets.auth.username -v user -n discovery.sendtargets.auth.password -v secret",
			cmd(ModeDiscoveryDB, ActUpdateDiscovery, with(portal("10.0.0.1", 3260, -1), ifaces("default"), op(OpUpdate), paramsOf(chapDisc...)))},
		{"-m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default --discover",
			cmd(ModeDiscoveryDB, ActDiscoverDB, with(portal("10.0.0.1", 3260, -1), ifaces("default")))},
		{"-m discoverydb -t sendtargets -p 10.0.0.1:3260 -I default -o delete",
			cmd(ModeDiscoveryDB, ActDeleteDiscovery, with(portal("10.0.0.1", 3260, -1), ifaces("default"), op(OpDelete)))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 -l", cmd(ModeNode, ActLogin, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 -u", cmd(ModeNode, ActLogout, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " -o delete", cmd(ModeNode, ActDeleteNodes, with(tgt, op(OpDelete)))},
		{"-m node -T " + iqn + " -p 10.0.0.1 -R", cmd(ModeNode, ActRescan, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m session", cmd(ModeSession, ActListSessions, nil)},

		// Longhorn
		{"-m discovery -t sendtargets -p 10.0.0.1", cmd(ModeDiscovery, ActDiscover, portal("10.0.0.1", 3260, -1))},
		{"-m node -T " + iqn + " -p 10.0.0.1", cmd(ModeNode, ActShowNodes, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node -o delete -T " + iqn + " -p 10.0.0.1", cmd(ModeNode, ActDeleteNodes, with(tgt, op(OpDelete), portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " -o update -n node.session.err_timeo.abort_timeout -v 15",
			cmd(ModeNode, ActUpdateNodes, with(tgt, op(OpUpdate), paramsOf(Param{"node.session.err_timeo.abort_timeout", "15"})))},
		{"-m node -T " + iqn + " -p 10.0.0.1 --login", cmd(ModeNode, ActLogin, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " -p 10.0.0.1 -o show", cmd(ModeNode, ActShowNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpShow)))},
		{"-m node -T " + iqn + " -p 10.0.0.1 --rescan", cmd(ModeNode, ActRescan, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " --logout", cmd(ModeNode, ActLogout, tgt)},
		{"-m session -P 3", cmd(ModeSession, ActListSessions, func(c *Command) { c.PrintLevel = 3 })},

		// Dell goiscsi
		{"-m discovery -t st --portal 10.0.0.1 -I iface1", cmd(ModeDiscovery, ActDiscover, with(portal("10.0.0.1", 3260, -1), ifaces("iface1")))},
		{"-m node -T " + iqn + " --portal 10.0.0.1:3260 -l", cmd(ModeNode, ActLogin, with(tgt, portal("10.0.0.1", 3260, -1)))},
		{"-m node --rescan", cmd(ModeNode, ActRescan, nil)},
		{"-m session -P 2 -S", cmd(ModeSession, ActListSessions, func(c *Command) { c.PrintLevel, c.ShowSecrets = 2, true })},
		{"-m iface", cmd(ModeIface, ActListIfaces, nil)},
		{"-m node -o show", cmd(ModeNode, ActShowNodes, op(OpShow))},
		{"-m node -p 10.0.0.1 -T " + iqn, cmd(ModeNode, ActShowNodes, with(tgt, portal("10.0.0.1", 3260, -1)))},

		// Trident: --opt=value and --opt value mixed.
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 -o update -n node.session.scan -v manual",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(Param{"node.session.scan", "manual"})))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 --op=update --name node.conn[0].timeo.login_timeout --value=10",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(Param{"node.conn[0].timeo.login_timeout", "10"})))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 --op=update --name node.session.initial_login_retry_max --value=1",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(Param{"node.session.initial_login_retry_max", "1"})))},
		{"-m discoverydb -t st -p 10.0.0.1:3260 -I default -D", cmd(ModeDiscoveryDB, ActDiscoverDB, with(portal("10.0.0.1", 3260, -1), ifaces("default")))},
		{"-m node", cmd(ModeNode, ActListNodes, nil)},

		// Kubernetes in-tree
		{"-m iface -I k8s-iface -o new", cmd(ModeIface, ActNewIface, with(ifaces("k8s-iface"), op(OpNew)))},
		{"-m iface -I k8s-iface -o update -n iface.initiatorname -v iqn.1994-05.com.redhat:x",
			cmd(ModeIface, ActUpdateIface, with(ifaces("k8s-iface"), op(OpUpdate), paramsOf(Param{"iface.initiatorname", "iqn.1994-05.com.redhat:x"})))},
		{"-m node -p 10.0.0.1:3260 -T " + iqn + " -I k8s-iface -o update -n node.session.scan -v manual",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), ifaces("k8s-iface"), op(OpUpdate), paramsOf(Param{"node.session.scan", "manual"})))},

		// HPE common-host-libs
		{"--mode node --targetname " + iqn + " --portal 10.0.0.1 --op update -n node.startup -v automatic",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(Param{"node.startup", "automatic"})))},
		{"-m discovery -t st -p 10.0.0.1 -o new", cmd(ModeDiscovery, ActDiscover, with(portal("10.0.0.1", 3260, -1), op(OpNew)))},
		{"-m iface -I iface_eth0 --op new", cmd(ModeIface, ActNewIface, with(ifaces("iface_eth0"), op(OpNew)))},
		{"-m iface -I iface_eth0 --op=update -n iface.net_ifacename -v eth0",
			cmd(ModeIface, ActUpdateIface, with(ifaces("iface_eth0"), op(OpUpdate), paramsOf(Param{"iface.net_ifacename", "eth0"})))},

		// os-brick
		{"-m iface -I default", cmd(ModeIface, ActShowIface, ifaces("default"))},
		{"-m discoverydb -o show -P 1", cmd(ModeDiscoveryDB, ActListDiscovery, with(op(OpShow), func(c *Command) { c.PrintLevel = 1 }))},
		{"-m discoverydb -t sendtargets -I default -p 10.0.0.1:3260 --op update -n discovery.sendtargets.auth.authmethod -v CHAP -n discovery.sendtargets.auth.username -v user -n discovery.sendtargets.auth.password -v secret",
			cmd(ModeDiscoveryDB, ActUpdateDiscovery, with(ifaces("default"), portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(chapDisc...)))},
		{"-m discovery -t sendtargets -I default -p [fd00::1]:3260", cmd(ModeDiscovery, ActDiscover, with(ifaces("default"), portal("fd00::1", 3260, -1)))},
		{"-m node --op show -p 10.0.0.1:3260", cmd(ModeNode, ActShowNodes, with(op(OpShow), portal("10.0.0.1", 3260, -1)))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 --interface default --op new",
			cmd(ModeNode, ActNewNode, with(tgt, portal("10.0.0.1", 3260, -1), ifaces("default"), op(OpNew)))},
		{"-m node -T " + iqn + " -p 10.0.0.1:3260 --op update -n node.startup -v automatic",
			cmd(ModeNode, ActUpdateNodes, with(tgt, portal("10.0.0.1", 3260, -1), op(OpUpdate), paramsOf(Param{"node.startup", "automatic"})))},

		// OpenEBS
		{"-m node -l", cmd(ModeNode, ActLogin, nil)},
		{"-m node -p 10.0.0.1 -l", cmd(ModeNode, ActLogin, portal("10.0.0.1", 3260, -1))},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			c, e := Parse(append([]string{"iscsiadm"}, strings.Fields(tc.args)...))
			if e != nil {
				t.Fatalf("Exit %d: %q %q", e.Code, e.Stdout, e.Stderr)
			}
			if !reflect.DeepEqual(c, tc.want) {
				t.Errorf("got  %+v\nwant %+v", c, tc.want)
				if c.Portal != nil && tc.want.Portal != nil {
					t.Errorf("portal %+v, want %+v", *c.Portal, *tc.want.Portal)
				}
			}
		})
	}
}

// TestParseGrammar covers getopt_long's forms and stock's handling of values.
func TestParseGrammar(t *testing.T) {
	tests := []struct {
		args string
		want *Command
	}{
		// Attached and separate values, short and long.
		{"-m session -P1", cmd(ModeSession, ActListSessions, func(c *Command) { c.PrintLevel = 1 })},
		{"--mode=session --print=2", cmd(ModeSession, ActListSessions, func(c *Command) { c.PrintLevel = 2 })},
		{"-msession --print 3 -d8", cmd(ModeSession, ActListSessions, func(c *Command) { c.PrintLevel, c.DebugLevel = 3, 8 })},
		// Unambiguous abbreviations of long names.
		{"--mo node --ta iqn.x:t --portal 10.0.0.1 --login --no", nil},
		// Bundled flags, the last one taking a value.
		{"-m discovery -p 10.0.0.1 -lD", cmd(ModeDiscovery, ActDiscoverFromRecord, with(portal("10.0.0.1", 3260, -1), func(c *Command) { c.Login = true }))},
		{"-Sm session", cmd(ModeSession, ActListSessions, func(c *Command) { c.ShowSecrets = true })},
		// Options and operands in any order; operands after -m are ignored.
		{"-m node extra -T iqn.x:t -l more", cmd(ModeNode, ActLogin, func(c *Command) { c.Target = "iqn.x:t" })},
		// "--" ends the options.
		{"-m node -- -l", cmd(ModeNode, ActListNodes, nil)},
		// Stock's rescan on -m moves operands before -m past the options
		// and hides as many options after it as there were operands.
		{"foo -m node -P 2", cmd(ModeNode, ActListNodes, nil)},
		{"-P 2 foo -m node", cmd(ModeNode, ActListNodes, func(c *Command) { c.PrintLevel = 2 })},
		// -n and -v pair in argv order, whichever comes first; a name or
		// value without a partner is replaced or dropped.
		{"-m node -o update -v x -n a", cmd(ModeNode, ActUpdateNodes, with(func(c *Command) { c.Op = OpUpdate }, paramsOf(Param{"a", "x"})))},
		{"-m node -o update -n a -n b -v c -n d", cmd(ModeNode, ActUpdateNodes, with(func(c *Command) { c.Op = OpUpdate }, paramsOf(Param{"b", "c"})))},
		{"-m node -o update -n a -v 1 -v 2 -n b", cmd(ModeNode, ActUpdateNodes, with(func(c *Command) { c.Op = OpUpdate }, paramsOf(Param{"a", "1"}, Param{"b", "2"})))},
		// node.transport_name is the old name of iface.transport_name.
		{"-m node -o update -n node.transport_name -v iser", cmd(ModeNode, ActUpdateNodes, with(func(c *Command) { c.Op = OpUpdate }, paramsOf(Param{"iface.transport_name", "iser"})))},
		// -o repeats and ORs; a bad value after a good one is ignored.
		{"-m discovery -t st -p 10.0.0.1 -o new -o nonpersistent", cmd(ModeDiscovery, ActDiscover, with(portal("10.0.0.1", 3260, -1), func(c *Command) { c.Op = OpNew | OpNonPersistent }))},
		{"-m node -o show -o bogus", cmd(ModeNode, ActShowNodes, func(c *Command) { c.Op = OpShow })},
		// -I repeats into a list; discovery uses them all.
		{"-m discovery -t st -p 10.0.0.1 -I a -I b", cmd(ModeDiscovery, ActDiscover, with(portal("10.0.0.1", 3260, -1), func(c *Command) { c.Ifaces = []string{"a", "b"} }))},
		// -L and -U: -L wins, the value is the last one given.
		{"-m node -L all", cmd(ModeNode, ActLoginAll, func(c *Command) { c.StartupMode = "all" })},
		{"-m node -U automatic -W", cmd(ModeNode, ActLogoutAll, func(c *Command) { c.StartupMode, c.NoWait = "automatic", true })},
		{"-m node -L all -U manual", cmd(ModeNode, ActLoginAll, func(c *Command) { c.StartupMode = "manual" })},
		{"-m node -L onboot -T iqn.x:t -l", cmd(ModeNode, ActLoginAll, func(c *Command) { c.StartupMode, c.Target = "onboot", "iqn.x:t" })},
		// Session mode with -r.
		{"-m session -r 3 -u", cmd(ModeSession, ActLogout, func(c *Command) { c.SID = 3 })},
		{"-m session -r 3 -P 1", cmd(ModeSession, ActShowSession, func(c *Command) { c.SID, c.PrintLevel = 3, 1 })},
		{"-m session -r 3", cmd(ModeSession, ActShowNodes, func(c *Command) { c.SID = 3 })},
		{"-m session -r 3 -P 0 -S", cmd(ModeSession, ActShowNodes, func(c *Command) { c.SID, c.PrintLevel, c.ShowSecrets = 3, 0, true })},
		{"-m session -r 3 -o new", cmd(ModeSession, ActNewSession, func(c *Command) { c.SID, c.Op = 3, OpNew })},
		{"-m session -r /sys/class/iscsi_session/session3 -R", cmd(ModeSession, ActRescan, func(c *Command) { c.SessionPath = "/sys/class/iscsi_session/session3" })},
		{"-m session -r 0 -s", cmd(ModeSession, ActStats, func(c *Command) { c.SessionPath = "0" })},
		{"-m session -u", cmd(ModeSession, ActLogout, nil)},
		{"-m session -R -u", cmd(ModeSession, ActRescan, nil)},
		{"-m session -o delete", cmd(ModeSession, ActListSessions, func(c *Command) { c.Op = OpDelete })},
		// Other modes' actions.
		{"-m discovery", cmd(ModeDiscovery, ActListDiscovery, nil)},
		{"-m discovery -p 10.0.0.1:3261 -o delete", cmd(ModeDiscovery, ActDeleteDiscovery, with(portal("10.0.0.1", 3261, -1), func(c *Command) { c.Op = OpDelete }))},
		{"-m discovery -p 10.0.0.1", cmd(ModeDiscovery, ActShowDiscovery, portal("10.0.0.1", 3260, -1))},
		{"-m discoverydb -t st -p 10.0.0.1", cmd(ModeDiscoveryDB, ActShowDiscovery, portal("10.0.0.1", 3260, -1))},
		{"-m discoverydb -t st -p 10.0.0.1 -o new -D", cmd(ModeDiscoveryDB, ActDiscoverDB, with(portal("10.0.0.1", 3260, -1), func(c *Command) { c.Op = OpNew }))},
		{"-m iface -P 1", cmd(ModeIface, ActIfaceTree, func(c *Command) { c.PrintLevel = 1 })},
		{"-m host -P 4 -H 2", cmd(ModeHost, ActListHosts, func(c *Command) { c.PrintLevel = 4 })},
		{"-m host -C foo", cmd(ModeHost, ActListHosts, nil)},
		{"-m session --json", cmd(ModeSession, ActListSessions, func(c *Command) { c.JSON = true })},
		// goiscsi's LUN removal: one session, or every session to a target.
		{"-m session -r 3 --remove-lun 1", cmd(ModeSession, ActRemoveLUN, func(c *Command) { c.SID, c.RemoveLUN = 3, 1 })},
		{"-m node -T iqn.x:t -p 10.0.0.1 --remove-lun 2 --force --remove-tries 3 --json", cmd(ModeNode, ActRemoveLUN, with(portal("10.0.0.1", 3260, -1),
			func(c *Command) { c.Target, c.RemoveLUN, c.Force, c.RemoveTries, c.JSON = "iqn.x:t", 2, true, 3, true }))},
		{"-m node --targetname iqn.x:t --remove-lun=0", cmd(ModeNode, ActRemoveLUN, func(c *Command) { c.Target = "iqn.x:t" })},
		{"-m session -r 3 --scan-lun 2 --json", cmd(ModeSession, ActScanLUN, func(c *Command) { c.SID, c.ScanLUN, c.JSON = 3, 2, true })},
		{"-m node --json -P 1", cmd(ModeNode, ActListNodes, func(c *Command) { c.JSON, c.PrintLevel = true, 1 })},
		{"-k 0", &Command{Action: ActKillDaemon, PrintLevel: -1, SID: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			c, e := Parse(append([]string{"iscsiadm"}, strings.Fields(tc.args)...))
			if e != nil {
				t.Fatalf("Exit %d: %q %q", e.Code, e.Stdout, e.Stderr)
			}
			want := tc.want
			if want == nil {
				want = cmd(ModeNode, ActLogin, with(portal("10.0.0.1", 3260, -1), func(c *Command) { c.Target, c.NoWait = "iqn.x:t", true }))
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}

// with applies several changes to a Command.
func with(fs ...func(*Command)) func(*Command) {
	return func(c *Command) {
		for _, f := range fs {
			f(c)
		}
	}
}

// paramsOf sets the Params.
func paramsOf(ps ...Param) func(*Command) { return func(c *Command) { c.Params = ps } }

// TestParsePortal checks the splitting of -p against stock's str_to_ipport,
// including its oddities: a later -p without a port keeps the earlier port,
// brackets are only removed when the text has no dot, IPv6 without brackets
// has no port, and the port and tpgt are C's strtoul cut to an int.
func TestParsePortal(t *testing.T) {
	tests := []struct {
		in         string
		startPort  int
		addr       string
		ok         bool
		port, tpgt int
	}{
		{"10.0.0.1", -1, "10.0.0.1", true, -1, -1},
		{"10.0.0.1:3261", -1, "10.0.0.1", true, 3261, -1},
		{"10.0.0.1:3261,7", -1, "10.0.0.1", true, 3261, 7},
		{"10.0.0.1,7", 3262, "10.0.0.1", true, 3262, 7},
		{"[fe80::1]:3260,1", -1, "fe80::1", true, 3260, 1},
		{"[fe80::1]", -1, "fe80::1", true, -1, -1},
		{"[fe80::1],2", -1, "fe80::1", true, -1, 2},
		{"fe80::1", -1, "fe80::1", true, -1, -1},
		{"fe80::1,3", -1, "fe80::1", true, -1, 3},
		{"[::ffff:10.0.0.1]:3260", -1, "[", true, 0, -1},
		{"target.example.com:3261", -1, "target.example.com", true, 3261, -1},
		{"target:3261", -1, "target", true, 3261, -1},
		{"target", -1, "target", true, -1, -1},
		{"[fe80::1", 5, "", false, 5, 9},
		{"", -1, "", true, -1, -1},
		{"10.0.0.1:", -1, "10.0.0.1", true, 0, -1},
		{"10.0.0.1:abc", -1, "10.0.0.1", true, 0, -1},
		{"10.0.0.1:-5", -1, "10.0.0.1", true, -5, -1},
		{"10.0.0.1:4294967297", -1, "10.0.0.1", true, 1, -1},
		{"10.0.0.1,1:3260", -1, "10.0.0.1,1", true, 3260, -1},
	}
	for _, tc := range tests {
		port, tpgt := tc.startPort, 9
		addr, ok := parsePortal(tc.in, &port, &tpgt)
		if addr != tc.addr || ok != tc.ok || port != tc.port || (ok && tpgt != tc.tpgt) || (!ok && tpgt != 9) {
			t.Errorf("parsePortal(%q) = %q, %v, port %d, tpgt %d; want %q, %v, %d, %d", tc.in, addr, ok, port, tpgt, tc.addr, tc.ok, tc.port, tc.tpgt)
		}
	}
}

func TestCNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		atoi int
		ul   uint64
		rng  bool
	}{
		{"12", 12, 12, false},
		{"  +7x", 7, 7, false},
		{"-1", -1, 1<<64 - 1, false},
		{"abc", 0, 0, false},
		{"", 0, 0, false},
		{"4294967297", 1, 4294967297, false},
		{"99999999999999999999", -1, 1<<64 - 1, true},
		{"-99999999999999999999", 0, 1<<64 - 1, true},
	} {
		if got := cAtoi(tc.in); got != tc.atoi {
			t.Errorf("cAtoi(%q) = %d, want %d", tc.in, got, tc.atoi)
		}
		if got, _, rng := cStrtoul(tc.in); got != tc.ul || rng != tc.rng {
			t.Errorf("cStrtoul(%q) = %d, %v, want %d, %v", tc.in, got, rng, tc.ul, tc.rng)
		}
	}
	if n, rest, _ := cStrtol(" 42abc"); n != 42 || rest != "abc" {
		t.Errorf("cStrtol rest: %d %q", n, rest)
	}
	if _, rest, _ := cStrtol("x"); rest != "x" {
		t.Errorf("cStrtol without digits leaves %q, want all", rest)
	}
}

// TestGetoptDiagnostics checks glibc's diagnostics and that they name
// argv[0], as glibc does, while stock's own messages say iscsiadm.
func TestGetoptDiagnostics(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"-m node --targ", "/usr/sbin/goiscsiadm: option '--targetname' requires an argument\n" +
			"iscsiadm: node mode: option '-?' is not allowed/supported\n"},
		// Before -m, getopt's complaint is printed again by the rescan.
		{"--bogus -m node", "/usr/sbin/goiscsiadm: unrecognized option '--bogus'\n" +
			"/usr/sbin/goiscsiadm: unrecognized option '--bogus'\n" +
			"iscsiadm: node mode: option '-?' is not allowed/supported\n"},
	} {
		_, e := Parse(append([]string{"/usr/sbin/goiscsiadm"}, strings.Fields(tc.args)...))
		if e == nil || e.Stderr != tc.want || e.Code != iscsierr.Inval {
			t.Errorf("%s: got %+v, want stderr %q", tc.args, e, tc.want)
		}
	}
	// A mistake getopt only warns about goes on when nothing refuses it.
	c, e := Parse([]string{"iscsiadm", "--bogus=1", "-k", "0"})
	if e != nil || c.Action != ActKillDaemon || c.Warnings != "iscsiadm: unrecognized option '--bogus=1'\n" {
		t.Errorf("got %+v, %+v", c, e)
	}
	// Parse leaves its argument alone although getopt permutes argv.
	argv := []string{"iscsiadm", "x", "-m", "node", "y", "-l"}
	Parse(argv)
	if strings.Join(argv, " ") != "iscsiadm x -m node y -l" {
		t.Errorf("argv changed to %q", argv)
	}
}
