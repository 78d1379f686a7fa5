package pdu

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// Text limits (RFC 7143 §6.1).
const (
	// MaxKeyLength is the longest key name.
	MaxKeyLength = 63
	// MaxValueLength is the longest simple value.
	MaxValueLength = 255
	// MaxLargeValueLength is the longest value of keys that allow more than
	// MaxValueLength, such as the encoded CHAP_C and CHAP_R binary values.
	MaxLargeValueLength = 8192
)

// KeyValue is one key=value pair of a text segment.
type KeyValue struct {
	Key   string
	Value string
}

func (kv KeyValue) String() string { return kv.Key + "=" + kv.Value }

// largeValueKeys may carry values up to MaxLargeValueLength.
var largeValueKeys = map[string]bool{
	"CHAP_C": true, "CHAP_R": true, "TargetAddress": true, "SendTargets": true,
}

// ParseText splits a text data segment (already joined across C-bit continuation
// PDUs) into its key=value pairs, in order, duplicates kept: SendTargets
// responses repeat TargetName and TargetAddress, and it is the negotiation that
// decides whether a repeat is an error. Every pair must end with a NUL; a segment
// ending without one was cut off.
func ParseText(data []byte) ([]KeyValue, error) {
	var kvs []KeyValue
	for len(data) > 0 {
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			return nil, errorf("parse text", ErrText, "last pair %q is not NUL-terminated", clip(data))
		}
		pair := data[:end]
		data = data[end+1:]
		if len(pair) == 0 {
			// Stray NUL padding between pairs: tolerated, as other
			// implementations do.
			continue
		}
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 {
			return nil, errorf("parse text", ErrText, "pair %q has no '='", clip(pair))
		}
		key, value := string(pair[:eq]), string(pair[eq+1:])
		if err := checkPair(key, value); err != nil {
			return nil, err
		}
		kvs = append(kvs, KeyValue{key, value})
	}
	return kvs, nil
}

func checkPair(key, value string) error {
	if key == "" {
		return errorf("parse text", ErrText, "empty key before value %q", clip([]byte(value)))
	}
	if len(key) > MaxKeyLength {
		return errorf("parse text", ErrText, "key %q is %d bytes, limit %d", clip([]byte(key)), len(key), MaxKeyLength)
	}
	limit := MaxValueLength
	if largeValueKeys[key] || strings.HasPrefix(key, "X-") || strings.HasPrefix(key, "X#") {
		limit = MaxLargeValueLength
	}
	if len(value) > limit {
		return errorf("parse text", ErrText, "value of %s is %d bytes, limit %d", key, len(value), limit)
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// AppendText appends each pair as key=value followed by a NUL.
func AppendText(dst []byte, kvs ...KeyValue) []byte {
	for _, kv := range kvs {
		dst = append(dst, kv.Key...)
		dst = append(dst, '=')
		dst = append(dst, kv.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// ParseNumber parses a numerical value in any of the RFC's encodings: decimal,
// hexadecimal with 0x/0X, or base64 with 0b/0B (big-endian bytes) (§6.1).
// Targets may send numbers such as CHAP_I in hex.
func ParseNumber(s string) (uint64, error) {
	if len(s) > 2 && s[0] == '0' && strings.ContainsRune("xXbB", rune(s[1])) {
		b, err := ParseBinary(s)
		if err != nil {
			return 0, err
		}
		b = bytes.TrimLeft(b, "\x00")
		if len(b) > 8 {
			return 0, errorf("parse number", ErrText, "%q does not fit in 64 bits", clip([]byte(s)))
		}
		var n uint64
		for _, c := range b {
			n = n<<8 | uint64(c)
		}
		return n, nil
	}
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errorf("parse number", ErrText, "%q is not a decimal number (no leading zeros allowed)", clip([]byte(s)))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errorf("parse number", ErrText, "%q is not a number", clip([]byte(s)))
	}
	return n, nil
}

// ParseBinary decodes a binary value: 0x/0X hex (an odd digit count has an
// implied leading zero) or 0b/0B base64 (§6.1).
func ParseBinary(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != '0' {
		return nil, errorf("parse binary", ErrText, "%q lacks a 0x or 0b prefix and a value", clip([]byte(s)))
	}
	body := s[2:]
	switch s[1] {
	case 'x', 'X':
		if len(body)%2 == 1 {
			body = "0" + body
		}
		b, err := hex.DecodeString(body)
		if err != nil {
			return nil, errorf("parse binary", ErrText, "bad hex in %q", clip([]byte(s)))
		}
		return b, nil
	case 'b', 'B':
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, errorf("parse binary", ErrText, "bad base64 in %q", clip([]byte(s)))
		}
		return b, nil
	}
	return nil, errorf("parse binary", ErrText, "%q lacks a 0x or 0b prefix", clip([]byte(s)))
}

// FormatBinary encodes b as 0x-prefixed lowercase hex, the form CHAP values are
// sent in.
func FormatBinary(b []byte) string { return "0x" + hex.EncodeToString(b) }
