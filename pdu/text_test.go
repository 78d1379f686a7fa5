package pdu

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []KeyValue
		err  bool
	}{
		{"empty", "", nil, false},
		{"two pairs", "HeaderDigest=None\x00MaxConnections=1\x00", []KeyValue{{"HeaderDigest", "None"}, {"MaxConnections", "1"}}, false},
		{"empty value", "SendTargets=\x00", []KeyValue{{"SendTargets", ""}}, false},
		{"value with =", "X-com.example=a=b\x00", []KeyValue{{"X-com.example", "a=b"}}, false},
		{"duplicates kept (SendTargets)", "TargetName=a\x00TargetAddress=1.2.3.4:3260,1\x00TargetName=b\x00",
			[]KeyValue{{"TargetName", "a"}, {"TargetAddress", "1.2.3.4:3260,1"}, {"TargetName", "b"}}, false},
		{"stray NUL padding", "A=1\x00\x00\x00", []KeyValue{{"A", "1"}}, false},
		{"no NUL at end", "A=1\x00B=2", nil, true},
		{"no equals", "AuthMethod\x00", nil, true},
		{"empty key", "=x\x00", nil, true},
		{"key too long", strings.Repeat("k", 64) + "=1\x00", nil, true},
		{"key at limit", strings.Repeat("k", 63) + "=1\x00", []KeyValue{{strings.Repeat("k", 63), "1"}}, false},
		{"value too long", "TargetAlias=" + strings.Repeat("v", 256) + "\x00", nil, true},
		{"CHAP_C may be long", "CHAP_C=0x" + strings.Repeat("ab", 1024) + "\x00",
			[]KeyValue{{"CHAP_C", "0x" + strings.Repeat("ab", 1024)}}, false},
		{"CHAP_C beyond 8192", "CHAP_C=0x" + strings.Repeat("ab", 4096) + "\x00", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseText([]byte(tt.in))
			if tt.err {
				if !errors.Is(err, ErrText) {
					t.Fatalf("got %v, want ErrText", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.want != nil && !strings.Contains(tt.name, "padding") {
				if back := string(AppendText(nil, got...)); back != tt.in {
					t.Errorf("AppendText = %q, want %q", back, tt.in)
				}
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"0", 0, false},
		{"8192", 8192, false},
		{"16777215", 16777215, false},
		{"0x05", 5, false},
		{"0X1f", 31, false},
		{"0x123", 0x123, false},
		{"0bAQA=", 256, false},
		{"0B/w==", 255, false},
		{"0x0000000000000000ff", 255, false},
		{"", 0, true},
		{"007", 0, true},
		{"-1", 0, true},
		{"12a", 0, true},
		{"0x", 0, true},
		{"0xzz", 0, true},
		{"0b!!", 0, true},
		{"0x010000000000000000", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseNumber(tt.in)
		if tt.err != (err != nil) || got != tt.want {
			t.Errorf("ParseNumber(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestParseBinary(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"0x0102", []byte{1, 2}},
		{"0x102", []byte{1, 2}},
		{"0bAQI=", []byte{1, 2}},
	}
	for _, tt := range tests {
		got, err := ParseBinary(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseBinary(%q) = %x, %v", tt.in, got, err)
		}
	}
	for _, bad := range []string{"", "12", "0q12", "0x", "0xgg"} {
		if _, err := ParseBinary(bad); !errors.Is(err, ErrText) {
			t.Errorf("ParseBinary(%q): %v, want ErrText", bad, err)
		}
	}
	if got := FormatBinary([]byte{0xde, 0xad}); got != "0xdead" {
		t.Errorf("FormatBinary = %s", got)
	}
}
