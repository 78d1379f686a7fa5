package pdu

import (
	"errors"
	"testing"
)

func TestParseSense(t *testing.T) {
	fixed := AppendFixedSense(nil, UnitAttention, 0x3f, 0x0e)
	tests := []struct {
		name string
		in   []byte
		want Sense
		err  bool
	}{
		{"fixed 3F/0E", fixed, Sense{0x70, UnitAttention, 0x3f, 0x0e}, false},
		{"fixed deferred with valid bit", append([]byte{0xf1}, fixed[1:]...), Sense{0x71, UnitAttention, 0x3f, 0x0e}, false},
		{"descriptor 2A/09", AppendDescriptorSense(nil, UnitAttention, 0x2a, 0x09), Sense{0x72, UnitAttention, 0x2a, 0x09}, false},
		{"descriptor deferred", []byte{0x73, 0x02, 0x04, 0x01}, Sense{0x73, NotReady, 0x04, 0x01}, false},
		{"fixed too short for ASC", fixed[:8], Sense{0x70, UnitAttention, 0, 0}, false},
		{"fixed additional length too small", func() []byte { b := append([]byte(nil), fixed...); b[7] = 4; return b }(), Sense{0x70, UnitAttention, 0, 0}, false},
		{"empty", nil, Sense{}, true},
		{"fixed 2 bytes", []byte{0x70, 0}, Sense{}, true},
		{"descriptor 3 bytes", []byte{0x72, 6, 0x3f}, Sense{}, true},
		{"bad response code", []byte{0x12, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3f, 0x0e}, Sense{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSense(tt.in)
			if tt.err {
				if !errors.Is(err, ErrSense) {
					t.Fatalf("got %v, want ErrSense", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSenseNames(t *testing.T) {
	s := Sense{ResponseCode: 0x70, Key: UnitAttention, ASC: 0x3f, ASCQ: 0x0e}
	if got, want := s.String(), "UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED (3F/0E)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if !s.ReportedLUNsDataChanged() || s.Descriptor() || s.Deferred() {
		t.Error("predicates wrong for fixed current 3F/0E")
	}
	for _, tt := range []struct {
		asc, ascq uint8
		want      string
	}{
		{0x2a, 0x09, "CAPACITY DATA HAS CHANGED"},
		{0x3f, 0x03, "INQUIRY DATA HAS CHANGED"},
		{0x29, 0x00, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"},
		{0x29, 0x05, "POWER ON, RESET, OR BUS DEVICE RESET"},
		{0x04, 0x07, "LOGICAL UNIT NOT READY"},
		{0x3f, 0x55, "TARGET OPERATING CONDITIONS HAVE CHANGED"},
		{0x99, 0x01, "ASC 0x99 ASCQ 0x01"},
	} {
		if got := ASCName(tt.asc, tt.ascq); got != tt.want {
			t.Errorf("ASCName(%02x,%02x) = %q, want %q", tt.asc, tt.ascq, got, tt.want)
		}
	}
}

func TestAsyncSCSIEvent(t *testing.T) {
	data := AppendSenseSegment(nil, AppendFixedSense(nil, UnitAttention, 0x3f, 0x0e))
	data = append(data, 0xde, 0xad) // iSCSI event data, ignored
	s, err := ParseAsyncSCSIEvent(data)
	if err != nil || !s.ReportedLUNsDataChanged() {
		t.Fatalf("got %v, %v", s, err)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 20, 0x70}, {0, 1, 0x12}} {
		if _, err := ParseAsyncSCSIEvent(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
	if got := AsyncEvent(7).String(); got != "reserved async event 7" {
		t.Errorf("%q", got)
	}
}
