package scan

import "testing"

func TestParseHCTL(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Device
		ok   bool
	}{
		{"2:0:0:1", Device{Host: 2, Target: 0, LUN: 1}, true},
		{"12:3:4:16684", Device{Host: 12, Channel: 3, Target: 4, LUN: 16684}, true},
		{"0:0:0:18446744073709551615", Device{LUN: 18446744073709551615}, true},
		{"2:0:0", Device{}, false},
		{"2:0:0:1:5", Device{}, false},
		{"2:0:0:1x", Device{}, false},
		{"2:0:-1:1", Device{}, false},
		{"host2", Device{}, false},
		{"", Device{}, false},
		{"2::0:1", Device{}, false},
	} {
		got, ok := parseHCTL(tc.name)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseHCTL(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
		if ok && got.HCTL() != tc.name {
			t.Errorf("HCTL() of %q = %q", tc.name, got.HCTL())
		}
	}
}
