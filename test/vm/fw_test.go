//go:build vm

package vm

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The boot table of TestVMFirmware: the NIC is the virtio-net PCI function at
// 00:03.0 (the table's pci_bdf), the target listens on the NIC's own address.
const (
	fwTarget = "iqn.2003-01.org.example:fwboot"
	fwAddr   = "10.0.2.15"
	fwMAC    = "52:54:00:12:34:56"
)

// fwTable is TestVMFirmware's boot table.
func fwTable() ibftSpec {
	mac, _ := net.ParseMAC(fwMAC)
	return ibftSpec{
		initiator: "iqn.1993-08.org.debian:01:fwboot", mac: mac, pciBDF: 3 << 3,
		ip: netip.MustParseAddr(fwAddr), gateway: netip.MustParseAddr("10.0.2.2"), prefix: 24,
		target: fwTarget, targetIP: netip.MustParseAddr(fwAddr), port: 3260,
	}
}

// firmwareConfig is a boot of scenario with an iBFT and (withNIC) the NIC it
// names: the table built by ibftSpec, the virtio-net function at 00:03.0
// (romfile= skips iPXE), and the modules the scenario loads with kmod_load.
func firmwareConfig(t *testing.T, scenario string, env map[string]string, spec ibftSpec, withNIC bool) Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a, err := Prepare(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	table := spec.bytes()
	tablePath := filepath.Join(dir, "ibft.bin")
	if err := os.WriteFile(tablePath, table, 0o644); err != nil {
		t.Fatal(err)
	}
	files := extraModules(ctx, t, a, dir, "virtio_pci", "virtio_net", "iscsi_ibft")
	files["/sbin/iscsistart"] = filepath.Join(a.Root, "sbin", "iscsistart")
	env["FW_TARGET"], env["FW_ADDR"] = fwTarget, fwAddr
	args := []string{"-acpitable", "file=" + tablePath}
	if withNIC {
		args = append(args, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac="+fwMAC+",addr=0x3,romfile=")
	}
	return Config{Scenario: scenario, Env: env, Files: files, QemuArgs: args}
}

// extraModules returns the Files entries of modules the base initramfs does not
// carry, with their dependencies and the NAME.deps lists kmod_load reads.
func extraModules(ctx context.Context, t *testing.T, a *Assets, dir string, names ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, m := range names {
		out, err := exec.CommandContext(ctx, "modprobe", "-d", a.Root, "-S", a.KVer, "--show-depends", m).CombinedOutput()
		if err != nil {
			t.Fatalf("modprobe --show-depends %s: %v: %s", m, err, out)
		}
		var deps []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue
			}
			ko, err := decompressModule(ctx, f[1], dir)
			if err != nil {
				t.Fatal(err)
			}
			files["/lib/modules/goiscsi/"+ko] = filepath.Join(dir, ko)
			deps = append(deps, ko)
		}
		list := filepath.Join(dir, m+".deps")
		if err := os.WriteFile(list, []byte(strings.Join(deps, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files["/lib/modules/goiscsi/"+m+".deps"] = list
	}
	return files
}

// sessionNumbers are what differs between two logins of one target in one
// boot: the SID (and the connection number that follows it).
var sessionNumbers = regexp.MustCompile(`tcp: \[\d+\]|sid: \d+|Connection\d+:0|session\d+`)

// TestVMFirmware proves firmware mode against stock 2.1.8 in the same boot: a
// guest whose firmware has an iBFT naming a virtio-net NIC and a LIO target.
// -m fw prints the same record, -m discovery -t fw makes the same node record
// (node.discovery_type fw; startup onboot once it exists), -m fw -l logs in
// the same way, -U all leaves the boot session alone; the data stock wrote to
// the fw session's LUN reads back identical through goiscsi's.
func TestVMFirmware(t *testing.T) {
	res := bootConfig(t, firmwareConfig(t, "fw", map[string]string{}, fwTable(), true))
	byPhase := map[string][]Record{}
	for _, r := range res.Find("fwgolden") {
		byPhase[r["phase"]] = append(byPhase[r["phase"]], r)
	}
	stock, ours := byPhase["stock"], byPhase["goiscsi"]
	if len(stock) < 10 || len(stock) != len(ours) {
		t.Fatalf("%d stock and %d goiscsi cases, want the same number (at least 10)", len(stock), len(ours))
	}
	excused := map[string]int{}
	for i := range stock {
		w, g := goldenText(stock[i:i+1]), goldenText(ours[i:i+1])
		w, g = sessionNumbers.ReplaceAllString(w, "SID"), sessionNumbers.ReplaceAllString(g, "SID")
		g, w = goldenDeliberate("== iscsiadm "+stock[i]["line"], g, w, excused)
		if w != g {
			t.Errorf("case %s: goiscsi\n%s\nstock 2.1.8\n%s", stock[i]["line"], g, w)
		}
	}
	t.Logf("deliberate differences: %v", excused)
	// The cases that prove something even when both agree on nothing.
	for _, c := range []struct {
		n    int
		want string
	}{
		{0, "node.name = " + fwTarget},
		{0, "iface.net_ifacename = "},
		{2, fwAddr + ":3260,1 " + fwTarget},
		{3, "node.discovery_type = fw"},
		{7, "Login to [iface: default, target: " + fwTarget},
	} {
		if out := string(ours[c.n].Bytes("stdout")); !strings.Contains(out, c.want) {
			t.Errorf("goiscsi %q printed\n%s\nwant a line with %q", ours[c.n]["line"], out, c.want)
		}
	}
	checkFirmwareStart(t, res)
	if *update {
		writeFirmwareTestdata(t, res, stock)
	}
	data := res.Find("fwdata")
	if len(data) != 3 || data[0]["sha"] == "" || data[0]["sha"] != data[1]["sha"] {
		t.Errorf("fw LUN data: %v; want what stock wrote read back identical through goiscsi", data)
	}
}

// writeFirmwareTestdata keeps what this boot measured for the unit tests: the
// iBFT as the kernel showed it in sysfs (ibft/testdata/qemu, with the NIC's
// interface where sysfs has it) and stock's output of the fw cases
// (cmd/goiscsiadm/testdata/golden/stock-fw.txt).
func writeFirmwareTestdata(t *testing.T, res *Result, stock []Record) {
	t.Helper()
	tree := filepath.Join("..", "..", "ibft", "testdata", "qemu")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range res.Find("ibftfile") {
		write(filepath.Join(tree, strings.TrimPrefix(r["path"], "/sys")), r["value"]+"\n")
	}
	for _, r := range res.Find("ibftlink") {
		link := filepath.Join(tree, strings.TrimPrefix(r["path"], "/sys"))
		if err := os.Symlink(r["target"], link); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(filepath.Dir(link), r["target"]), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range res.Find("ibftnetdev") {
		dev := filepath.Join(tree, strings.TrimPrefix(r["device"], "/sys"))
		write(filepath.Join(dev, "address"), r["address"]+"\n")
		classNet := filepath.Join(tree, "class", "net")
		rel, err := filepath.Rel(classNet, dev)
		if err == nil {
			err = os.MkdirAll(classNet, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rel, filepath.Join(tree, "class", "net", r["name"])); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("..", "..", "cmd", "goiscsiadm", "testdata", "golden", "stock-fw.txt")
	write(golden, goldenText(stock))
	t.Logf("wrote %s and %s", tree, golden)
}

// checkFirmwareStart checks the iscsistart steps of TestVMFirmware's boot: -N
// left the NIC as stock's does, with the same words; -b printed what stock's
// prints, exited with the session up, its LUN 0 already there and no daemon
// left; goiscsid took the session over with the same SID and no login, -U all
// left it alone, and the data goiscsi wrote before reads back through it.
func checkFirmwareStart(t *testing.T, res *Result) {
	t.Helper()
	nics := res.Find("fwnic")
	if len(nics) != 2 {
		t.Fatalf("%d fwnic records, want stock's and goiscsi's", len(nics))
	}
	for _, k := range []string{"rc", "addr", "up", "route", "stdout_b64"} {
		if nics[0][k] != nics[1][k] {
			t.Errorf("-N: %s is %q with goiscsistart, %q with stock's iscsistart", k, nics[1][k], nics[0][k])
		}
	}
	if n := nics[1]; n["rc"] != "0" || n["up"] != "1" || n["addr"] != fwAddr+"/24" || n["route"] == "" {
		t.Errorf("goiscsistart -N: exit %s, IFF_UP %q, address %q, route %q; want 0, 1, %s/24 and a route to the target (stderr %q)",
			n["rc"], n["up"], n["addr"], n["route"], fwAddr, n.Bytes("stderr"))
	}
	starts := res.Find("fwstart")
	if len(starts) != 2 {
		t.Fatalf("%d fwstart records, want stock's and goiscsi's", len(starts))
	}
	st, gs := starts[0], starts[1]
	if gs["rc"] != st["rc"] || string(gs.Bytes("stdout")) != string(st.Bytes("stdout")) {
		t.Errorf("-b: goiscsistart exit %s, stdout %q; stock's iscsistart exit %s, stdout %q",
			gs["rc"], gs.Bytes("stdout"), st["rc"], st.Bytes("stdout"))
	}
	data := res.Find("fwdata")
	written := ""
	if len(data) == 3 {
		written = data[2]["sha"]
	}
	if gs["rc"] != "0" || gs["disk"] == "" || gs["daemons"] != "" || gs["sha"] != written ||
		!strings.Contains(string(gs.Bytes("stderr")), "is operational now") {
		t.Errorf("goiscsistart -b: exit %s, LUN 0 at exit %q, daemons left %q, data %s (wrote %s), stderr %q",
			gs["rc"], gs["disk"], gs["daemons"], gs["sha"], written, gs.Bytes("stderr"))
	}
	a := res.First("fwadopt")
	if a == nil {
		t.Fatal("no fwadopt record")
	}
	if a["sid_after"] != a["sid"] || a["took_over"] != "1" || a["relogins"] != "0" || a["sha"] != written {
		t.Errorf("goiscsid after goiscsistart: SID %s -> %s, took over %s, logins %s, data %s (wrote %s); want the same SID taken over with no login",
			a["sid"], a["sid_after"], a["took_over"], a["relogins"], a["sha"], written)
	}
	if a["uall_rc"] != "21" || !strings.Contains(a["session"], fwTarget) {
		t.Errorf("-U all with the boot session: exit %s (%s), sessions after %q; want 21 and the session kept", a["uall_rc"], a["uall_err"], a["session"])
	}
}

// TestVMFirmwareUnknownNIC boots a table whose NIC the guest does not have
// (no PCI function at its bus:device.function, no interface with its MAC):
// -m fw, -m discovery -t fw and iscsistart -f print what stock's print (the
// record without iface.net_ifacename), goiscsi adding a line that names the
// NIC it could not find; -N fails as stock's does, with goiscsi's words
// naming the NIC; goiscsistart -b fails within its retry budget, naming the
// target, and leaves no session.
func TestVMFirmwareUnknownNIC(t *testing.T) {
	spec := fwTable()
	spec.pciBDF = 5 << 8 // bus 5: no such bus on the q35 guest
	spec.mac, _ = net.ParseMAC("52:54:00:99:99:99")
	res := bootConfig(t, firmwareConfig(t, "fwbroken", map[string]string{}, spec, false))
	byPhase := map[string][]Record{}
	for _, r := range res.Find("fwbroken") {
		byPhase[r["phase"]] = append(byPhase[r["phase"]], r)
	}
	stock, ours := byPhase["stock"], byPhase["goiscsi"]
	if len(stock) != 4 || len(ours) != 4 {
		t.Fatalf("%d stock and %d goiscsi cases, want 4 each", len(stock), len(ours))
	}
	const named = "ethernet0: no network interface has its PCI function or its MAC address 52:54:00:99:99:99"
	for i := range stock {
		s, g := stock[i], ours[i]
		if g["rc"] != s["rc"] {
			t.Errorf("%s: goiscsi exit %s, stock %s (goiscsi stderr %q, stock %q)", s["line"], g["rc"], s["rc"], g.Bytes("stderr"), s.Bytes("stderr"))
		}
		if !strings.Contains(string(g.Bytes("stderr")), named) {
			t.Errorf("%s: goiscsi's stderr %q does not name the NIC it could not find", s["line"], g.Bytes("stderr"))
		}
		if i < 3 {
			if string(g.Bytes("stdout")) != string(s.Bytes("stdout")) {
				t.Errorf("%s: goiscsi printed\n%s\nstock 2.1.8\n%s", s["line"], g.Bytes("stdout"), s.Bytes("stdout"))
			}
			if strings.Contains(string(g.Bytes("stdout")), "net_ifacename") {
				t.Errorf("%s: a NIC no interface has got an iface.net_ifacename", s["line"])
			}
		}
	}
	b := res.First("fwbrokenstart")
	if b == nil || b["rc"] == "0" || b["rc"] == "124" || b["sessions"] != "0" ||
		!strings.Contains(string(b.Bytes("stderr")), "boot: login to "+fwTarget) {
		t.Errorf("goiscsistart -b with no NIC: %v (stderr %q); want a prompt failure naming the target and no session", b, b.Bytes("stderr"))
	}
}
