//go:build vm

package vm

import (
	"testing"
)

// TestVMStorm runs the storm scenario: 32 targets that answer, 16 portals that
// refuse connections and 40 that never answer, logged in with one -L all, stock
// and goiscsi in one boot. The 32 good sessions must come about as fast as
// with no dead records (the dead arrays delay nobody), the dead ones fail
// after their own login timeout with stock's exit status and one "Could not
// login" each, as stock's do.
func TestVMStorm(t *testing.T) {
	res := boot(t, "storm", nil)
	runs := map[string]map[string]Record{"stock": {}, "goiscsi": {}}
	for _, r := range res.Find("storm") {
		runs[r["who"]][r["good_only"]] = r
	}
	for who, rr := range runs {
		alone, mixed := rr["yes"], rr["no"]
		if alone == nil || mixed == nil {
			t.Fatalf("%s: runs %v", who, rr)
		}
		if alone["rc"] != "0" || alone["logged_in"] != alone["good"] || mixed["logged_in"] != mixed["good"] || mixed["failed"] != mixed["dead"] {
			t.Errorf("%s: good alone exit %s with %s logins; with the dead: %s logins, %s failed (%s)", who,
				alone["rc"], alone["logged_in"], mixed["logged_in"], mixed["failed"], mixed["last_err"])
		}
		ratio := mixed.Float("good_ms") / alone.Float("good_ms")
		t.Logf("%s: %s good sessions after %s ms alone, %s ms beside %s dead records (%.2f×); -L all ended after %s ms, exit %s",
			who, alone["good"], alone["good_ms"], mixed["good_ms"], mixed["dead"], ratio, mixed["all_ms"], mixed["rc"])
		if who == "goiscsi" && mixed.Float("good_ms") > 2*alone.Float("good_ms")+2000 {
			t.Errorf("goiscsi: the dead records delayed the good logins: %s ms against %s ms alone", mixed["good_ms"], alone["good_ms"])
		}
	}
	if s, g := runs["stock"]["no"], runs["goiscsi"]["no"]; s["rc"] != g["rc"] {
		t.Errorf("-L all with dead records: stock exit %s, goiscsi %s", s["rc"], g["rc"])
	}
}
