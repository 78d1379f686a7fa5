package conf

import (
	"strings"
	"testing"
)

// goiscsid's own iscsid.conf keys are known (no warning); a misspelling of
// the metrics key is warned about as any unknown key is. (Misspellings
// under goiscsi.health. are package health's to refuse.)
func TestGoiscsiConfigKeys(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("goiscsi.health.retrans_percent = 2\ngoiscsi.metrics.listen = 9410\ngoiscsi.metrics.lisen = 9410\n"), "iscsid.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "iscsid.conf:3: unknown key goiscsi.metrics.lisen") {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	if v, _ := cfg.Get("goiscsi.metrics.listen"); v != "9410" {
		t.Errorf("goiscsi.metrics.listen = %q", v)
	}
}
