package ksession

import (
	"testing"
	"time"
)

func TestReloginDelay(t *testing.T) {
	const s = time.Second
	for _, tt := range []struct {
		prev, since, replacement, want time.Duration
	}{
		// Within replacement_timeout: every second, whatever came before.
		{2 * s, 2 * s, 120 * s, s},
		{8 * s, 119 * s, 120 * s, s},
		// Never failing I/O (negative timeout): always every second.
		{s, time.Hour, -s, s},
		// Past it: doubling up to 8 s.
		{s, 121 * s, 120 * s, 2 * s},
		{4 * s, 10 * s, 6 * s, 8 * s},
		{8 * s, 60 * s, 6 * s, 8 * s},
		// replacement_timeout 0 fails I/O at once: back off from the start.
		{0, 0, 0, s},
		{2 * s, s, 0, 4 * s},
	} {
		if got := reloginDelay(tt.prev, tt.since, tt.replacement); got != tt.want {
			t.Errorf("reloginDelay(%v, %v, %v) = %v, want %v", tt.prev, tt.since, tt.replacement, got, tt.want)
		}
	}
}
