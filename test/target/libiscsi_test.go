package target

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// libiscsiGroups are the iscsi-test-cu groups for what the target implements.
// Others are out: COMPARE AND WRITE, EXTENDED COPY, GET LBA STATUS, UNMAP,
// WRITE SAME, PERSISTENT RESERVE, SANITIZE, ORWRITE, VERIFY, PREFETCH and the
// multipath and iSER groups test commands and features the test target does not
// have; the kernel initiator does not need them to attach a LUN.
var libiscsiGroups = []string{
	"SCSI.Inquiry", "SCSI.Read10", "SCSI.Read12", "SCSI.Read16", "SCSI.Write10", "SCSI.Write12", "SCSI.Write16",
	"SCSI.ReadCapacity10", "SCSI.ReadCapacity16", "SCSI.TestUnitReady", "SCSI.ModeSense6",
	"SCSI.ReportSupportedOpcodes", "ALL.iSCSIcmdsn", "ALL.iSCSIdatasn", "ALL.iSCSIResiduals",
}

// TestLibiscsiConformance runs libiscsi's tools, which nobody here wrote, against
// the test target: iscsi-ls, iscsi-inq, iscsi-readcapacity16 and the
// iscsi-test-cu groups above. Needs root only to install libiscsi-bin.
func TestLibiscsiConformance(t *testing.T) {
	for _, tool := range []string{"iscsi-test-cu", "iscsi-inq", "iscsi-readcapacity16", "iscsi-ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Geteuid() != 0 {
				t.Skipf("%s missing; run as root to install libiscsi-bin", tool)
			}
			if out, err := exec.Command("apt-get", "install", "-y", "-qq", "libiscsi-bin").CombinedOutput(); err != nil {
				t.Fatalf("installing libiscsi-bin: %v\n%s", err, out)
			}
		}
	}
	cfg := testConfig()
	cfg.Targets[0].LUNs = []LUNConfig{{Number: 0, Size: 16 << 20}}
	s := startServer(t, cfg)
	ps, err := s.Portals(testIQN)
	if err != nil {
		t.Fatal(err)
	}
	portal := fmt.Sprintf("127.0.0.1:%d", ps[0].Port)
	url := "iscsi://" + portal + "/" + testIQN + "/0"
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("iscsi-ls", "-i", testIniName, "iscsi://"+portal); !strings.Contains(out, testIQN) {
		t.Errorf("iscsi-ls does not list %s:\n%s", testIQN, out)
	}
	if out := run("iscsi-inq", "-i", testIniName, url); !strings.Contains(out, "DIRECT_ACCESS") {
		t.Errorf("iscsi-inq:\n%s", out)
	}
	if out := run("iscsi-readcapacity16", "-i", testIniName, url); !strings.Contains(out, "RETURNED LOGICAL BLOCK ADDRESS:32767") {
		t.Errorf("iscsi-readcapacity16 (16 MiB of 512-byte blocks):\n%s", out)
	}
	summary := regexp.MustCompile(`tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)
	for _, g := range libiscsiGroups {
		out, _ := exec.Command("iscsi-test-cu", "-i", testIniName, "-t", g, url).CombinedOutput()
		m := summary.FindStringSubmatch(string(out))
		if m == nil || m[4] != "0" || m[2] == "0" {
			t.Errorf("iscsi-test-cu %s: %v\n%s", g, m, out)
			continue
		}
		t.Logf("iscsi-test-cu %s: %s tests run, %s passed", g, m[2], m[3])
	}
}
