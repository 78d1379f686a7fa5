package target

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/session"
)

// Config is the whole target configuration: what LoadConfig reads from a JSON
// file (format in README.md) and what New takes.
type Config struct {
	// Targets are the iSCSI targets served.
	Targets []TargetConfig `json:"targets"`
	// DiscoveryAuth is the authentication a Discovery session needs; the zero
	// value means none.
	DiscoveryAuth AuthConfig `json:"discovery_auth,omitempty"`
	// ControlSocket is the unix socket path the command serves control
	// requests on; empty means no control socket (in-process tests use the Go
	// API instead).
	ControlSocket string `json:"control_socket,omitempty"`
	// TextSegmentLimit caps the data segment of each Text Response below the
	// initiator's MaxRecvDataSegmentLength, so tests can force long SendTargets
	// answers to continue over several PDUs; 0 means no extra cap.
	TextSegmentLimit int `json:"text_segment_limit,omitempty"`
	// NOPInInterval makes the target ping every connection that long after
	// its last PDU from the initiator; 0 means no target pings.
	NOPInInterval Duration `json:"nop_in_interval,omitempty"`
	// NOPInTimeout drops a connection whose initiator has not answered a
	// target ping within it; 0 means NOPInInterval.
	NOPInTimeout Duration `json:"nop_in_timeout,omitempty"`
}

// TargetConfig is one iSCSI target.
type TargetConfig struct {
	// Name is the iSCSI name (iqn., eui. or naa.).
	Name string `json:"name"`
	// Alias is sent as TargetAlias when not empty.
	Alias string `json:"alias,omitempty"`
	// PortalGroups are where the target listens, each with its tag.
	PortalGroups []PortalGroupConfig `json:"portal_groups"`
	// Auth is the authentication a Normal session to this target needs.
	Auth AuthConfig `json:"auth,omitempty"`
	// LUNs are the logical units at start.
	LUNs []LUNConfig `json:"luns,omitempty"`
	// LUNChangeUA makes adding or removing a LUN set the Unit Attention
	// REPORTED LUNS DATA HAS CHANGED (3F/0E) on the other LUNs of every session,
	// as LIO does. A nil value means true.
	LUNChangeUA *bool `json:"lun_change_ua,omitempty"`
	// Params are the target's wishes for the login keys (RFC 7143 §13), e.g.
	// "HeaderDigest": "CRC32C,None" (what it accepts), "MaxBurstLength":
	// "262144". Keys left out take the defaults in DefaultParams.
	Params map[string]string `json:"params,omitempty"`
	// CmdWindow is how many commands the initiator may have queued: MaxCmdSN =
	// ExpCmdSN + CmdWindow - 1; 0 means 64.
	CmdWindow int `json:"cmd_window,omitempty"`
	// SplitStatus sends the status of a read in a SCSI Response after the last
	// Data-In instead of in the last Data-In (phase collapse).
	SplitStatus bool `json:"split_status,omitempty"`
}

// PortalGroupConfig is a target portal group: a tag and its listen addresses.
type PortalGroupConfig struct {
	// Tag is the TargetPortalGroupTag (0..65535).
	Tag int `json:"tag"`
	// Portals are "host:port" listen addresses on loopback, e.g.
	// "127.0.0.1:3260" or "[::1]:3260"; port 0 picks a free port.
	Portals []string `json:"portals"`
}

// AuthConfig is the authentication one kind of session needs.
type AuthConfig struct {
	// Method is "None" (or empty) or "CHAP".
	Method string `json:"method,omitempty"`
	// Username and Secret are what the initiator must prove (CHAP_N and the
	// secret behind CHAP_R).
	Username string `json:"username,omitempty"`
	Secret   string `json:"secret,omitempty"`
	// MutualUsername and MutualSecret are what the target answers with when
	// the initiator asks it to authenticate itself (mutual CHAP).
	MutualUsername string `json:"mutual_username,omitempty"`
	MutualSecret   string `json:"mutual_secret,omitempty"`
	// Algorithms are the CHAP_A values accepted, by name ("MD5", "SHA1",
	// "SHA256", "SHA3-256"); empty means all four.
	Algorithms []string `json:"algorithms,omitempty"`
}

// LUNConfig is one logical unit.
type LUNConfig struct {
	// Number is the Linux LUN number (the L of H:C:T:L); any value below 2^16
	// works, sparse and above 255 included.
	Number uint64 `json:"number"`
	// Size is the capacity: a byte count or a string with a unit ("64MiB").
	// A file-backed LUN of size 0 takes the file's size.
	Size ByteSize `json:"size,omitempty"`
	// File backs the LUN with a file (created and extended to Size when
	// needed); empty means memory.
	File string `json:"file,omitempty"`
	// BlockSize is the logical block length; 0 means 512.
	BlockSize int `json:"block_size,omitempty"`
	// ReadOnly makes writes fail with DATA PROTECT.
	ReadOnly bool `json:"read_only,omitempty"`
	// Serial is the unit serial number (VPD 0x80); empty derives one from the
	// target name and LUN number.
	Serial string `json:"serial,omitempty"`
}

// DefaultParams are the target's negotiation wishes when its configuration
// names none: both digests accepted, immediate and unsolicited data allowed,
// and the RFC's burst defaults.
func DefaultParams() map[string]string {
	return map[string]string{
		"HeaderDigest":             "None,CRC32C",
		"DataDigest":               "None,CRC32C",
		"MaxRecvDataSegmentLength": "262144",
		"MaxBurstLength":           "262144",
		"FirstBurstLength":         "65536",
		"InitialR2T":               "No",
		"ImmediateData":            "Yes",
		"MaxOutstandingR2T":        "1",
		"MaxConnections":           "1",
		"ErrorRecoveryLevel":       "0",
		"DefaultTime2Wait":         "2",
		"DefaultTime2Retain":       "20",
		"DataPDUInOrder":           "Yes",
		"DataSequenceInOrder":      "Yes",
		"TaskReporting":            "RFC3720",
		"iSCSIProtocolLevel":       "1",
	}
}

// LoadConfig reads a JSON configuration file and checks it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Validate checks what can be checked without opening files or sockets.
func (c *Config) Validate() error {
	names := map[string]bool{}
	if err := c.DiscoveryAuth.validate(); err != nil {
		return fmt.Errorf("discovery_auth: %w", err)
	}
	for i, t := range c.Targets {
		if t.Name == "" {
			return fmt.Errorf("target %d: no name", i)
		}
		if names[t.Name] {
			return fmt.Errorf("target %s: configured twice", t.Name)
		}
		names[t.Name] = true
		if len(t.PortalGroups) == 0 {
			return fmt.Errorf("target %s: no portal group", t.Name)
		}
		for _, g := range t.PortalGroups {
			if g.Tag < 0 || g.Tag > 65535 {
				return fmt.Errorf("target %s: portal group tag %d outside 0..65535", t.Name, g.Tag)
			}
			if len(g.Portals) == 0 {
				return fmt.Errorf("target %s: portal group %d has no portal", t.Name, g.Tag)
			}
		}
		if err := t.Auth.validate(); err != nil {
			return fmt.Errorf("target %s auth: %w", t.Name, err)
		}
		luns := map[uint64]bool{}
		for _, l := range t.LUNs {
			if luns[l.Number] {
				return fmt.Errorf("target %s: LUN %d configured twice", t.Name, l.Number)
			}
			luns[l.Number] = true
			if err := l.validate(); err != nil {
				return fmt.Errorf("target %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

func (a AuthConfig) validate() error {
	switch a.Method {
	case "", "None":
		return nil
	case "CHAP":
	default:
		return fmt.Errorf("method %q: want None or CHAP", a.Method)
	}
	if a.Username == "" || a.Secret == "" {
		return fmt.Errorf("CHAP needs username and secret")
	}
	if (a.MutualUsername == "") != (a.MutualSecret == "") {
		return fmt.Errorf("mutual CHAP needs both mutual_username and mutual_secret")
	}
	if a.MutualSecret != "" && a.MutualSecret == a.Secret {
		return fmt.Errorf("the mutual secret equals the initiator secret, which RFC 7143 forbids")
	}
	_, err := a.algorithms()
	return err
}

// algorithms returns the accepted CHAP algorithms.
func (a AuthConfig) algorithms() ([]session.CHAPAlgorithm, error) {
	if len(a.Algorithms) == 0 {
		return session.DefaultCHAPAlgorithms, nil
	}
	return session.ParseCHAPAlgorithms(strings.Join(a.Algorithms, ","))
}

func (a AuthConfig) chap() bool { return a.Method == "CHAP" }

// maxLUNNumber bounds LUN numbers to one addressing level: NewLUN encodes
// larger numbers into second-level bytes that no test needs.
const maxLUNNumber = 1<<16 - 1

func (l LUNConfig) validate() error {
	if l.Number > maxLUNNumber {
		return fmt.Errorf("LUN %d: numbers go up to %d", l.Number, maxLUNNumber)
	}
	bs := l.blockSize()
	if bs < 512 || bs > 65536 || bs&(bs-1) != 0 {
		return fmt.Errorf("LUN %d: block size %d is not a power of two in 512..65536", l.Number, bs)
	}
	if l.File == "" && l.Size == 0 {
		return fmt.Errorf("LUN %d: a memory LUN needs a size", l.Number)
	}
	if int64(l.Size)%int64(bs) != 0 {
		return fmt.Errorf("LUN %d: size %d is not a multiple of the block size %d", l.Number, l.Size, bs)
	}
	if l.File == "" && l.Size > maxMemoryLUN {
		return fmt.Errorf("LUN %d: memory LUNs go up to %d bytes", l.Number, int64(maxMemoryLUN))
	}
	return nil
}

// maxMemoryLUN bounds a memory-backed LUN, so that a typo in a size cannot
// eat the test machine's memory.
const maxMemoryLUN ByteSize = 4 << 30

func (l LUNConfig) blockSize() int {
	if l.BlockSize == 0 {
		return 512
	}
	return l.BlockSize
}

// ByteSize is a size in bytes; in JSON a number or a string with a binary or
// decimal unit ("512", "64MiB", "1G").
type ByteSize int64

// UnmarshalJSON accepts a number or a string with a unit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = ByteSize(n)
		return b.check()
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("size %s: want a number or a string such as \"64MiB\"", data)
	}
	v, err := ParseByteSize(s)
	*b = v
	return err
}

func (b ByteSize) check() error {
	if b < 0 {
		return fmt.Errorf("size %d is negative", b)
	}
	return nil
}

// ParseByteSize parses "4096", "64MiB", "1GiB", "10M" (powers of 1024 for
// KiB/MiB/GiB and K/M/G, of 1000 for kB/MB/GB).
func ParseByteSize(s string) (ByteSize, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1000}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a non-negative number with an optional unit (KiB, MiB, GiB)", s)
	}
	return ByteSize(n * mult), nil
}

// Duration is a time.Duration that reads from JSON as a string ("5s").
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"5s\"", data)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a non-negative Go duration such as \"5s\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
