package boot

import (
	"strings"
	"testing"
)

func TestSettingsRecord(t *testing.T) {
	full := Settings{InitiatorName: "iqn.i", Target: "iqn.t", TPGT: 1, Address: "10.0.0.1", Username: "u", Password: "secret"}
	r, err := full.Record()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"node.name": "iqn.t", "node.tpgt": "1", "node.conn[0].address": "10.0.0.1", "node.conn[0].port": "3260",
		"iface.initiatorname": "iqn.i", "node.session.auth.authmethod": "CHAP", "node.session.auth.username": "u",
		"node.session.auth.password": "secret",
	} {
		if got := r.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, tc := range []struct {
		change func(*Settings)
		want   string
	}{
		{func(s *Settings) { s.InitiatorName = "" }, "InitiatorName not set"},
		{func(s *Settings) { s.TPGT = -1 }, "Portal Group not set"},
		{func(s *Settings) { s.Target = "" }, "TargetName not set"},
		{func(s *Settings) { s.Address = "" }, "IP Address not set"},
	} {
		s := full
		tc.change(&s)
		if _, err := s.Record(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Record of %+v: %v, want %q", s, err, tc.want)
		}
	}
}
