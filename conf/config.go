package conf

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Config is iscsid.conf: open-iscsi's "key = value" lines with "#" comments
// (not TOML). The node.* and discovery.* keys are defaults for new records;
// iscsid.* keys configure the daemon.
type Config struct {
	keys []string
	vals map[string]string
	// Warnings name, with file and line, each key neither open-iscsi nor
	// goiscsi knows (a typo stock would ignore silently); goiscsid logs them.
	Warnings []string
}

// knownKey reports whether open-iscsi or goiscsi has a key of that name.
// goiscsi's own iscsid.conf keys are goiscsid's health thresholds
// (goiscsi.health.*, whose names and values package health checks: an
// unknown one there stops goiscsid) and its metrics endpoint
// (goiscsi.metrics.listen); stock iscsid ignores them. isns.address and
// isns.port named the iSNS server for iscsid until open-iscsi 2.0-872
// (commit 22610b4, "no longer used"); no 2.0.873 or 2.1.x release reads
// them and stock ignores them silently, so an old iscsid.conf that still has
// them gets no warning, and they set nothing: the server is -p's or a
// discovery record's.
func knownKey(k string) bool {
	if _, ok := lookupKey(k); ok {
		return true
	}
	return strings.HasPrefix(k, "iscsid.") || strings.HasPrefix(k, "discovery.isns.") ||
		k == "isns.address" || k == "isns.port" ||
		strings.HasPrefix(k, "goiscsi.health.") || k == "goiscsi.metrics.listen" ||
		strings.HasPrefix(k, "node.conn[0].tcp.") || k == "node.session.sess_reopen_log_freq" ||
		k == "node.session.conn_reopen_log_freq"
}

// ParseConfig reads iscsid.conf text; name is used in messages. A line that is
// not key = value, or a value that does not suit its key (a word for a number, a
// choice not in the list), is an error naming the file, line and key: a typo in
// a timeout must not silently become the default. An unknown key is only a
// warning (later releases add keys); later lines win.
func ParseConfig(r io.Reader, name string) (*Config, error) {
	c := &Config{vals: map[string]string{}}
	err := eachKeyValue(r, name, func(n int, k, v string) error {
		v, err := canonical(k, v)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if !knownKey(k) {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: unknown key %s (ignored)", name, n, k))
		}
		if _, seen := c.vals[k]; !seen {
			c.keys = append(c.keys, k)
		}
		c.vals[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads the iscsid.conf at path. A missing file is an empty Config,
// as for stock (built-in defaults apply).
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{vals: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseConfig(f, path)
}

// Get returns key's value and whether the file set it.
func (c *Config) Get(key string) (string, bool) {
	v, ok := c.vals[key]
	return v, ok
}

// Keys returns the keys the file set, in file order.
func (c *Config) Keys() []string { return append([]string(nil), c.keys...) }

// ReadInitiatorName reads /etc/iscsi/initiatorname.iscsi: InitiatorName= and
// the optional InitiatorAlias=, with "#" comments.
func ReadInitiatorName(path string) (name, alias string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		switch strings.TrimSpace(k) {
		case "InitiatorName":
			name = strings.TrimSpace(v)
		case "InitiatorAlias":
			alias = strings.TrimSpace(v)
		}
	}
	if name == "" {
		return "", "", fmt.Errorf("%s: %w", path, ErrNoInitiatorName)
	}
	return name, alias, nil
}

// ErrNoInitiatorName is ReadInitiatorName's error for a file without a
// usable InitiatorName= line, such as one holding only GenerateName=yes (how
// older Debian open-iscsi asked its first start to make the name).
var ErrNoInitiatorName = errors.New("no InitiatorName= line")

// NewInitiatorName returns an initiator name in iscsi-iname's shape:
// iqn.2004-10.com.goiscsi:<12 hex digits>. With hostID "" the digits are
// random, as iscsi-iname's are. A non-empty hostID (such as /etc/machine-id)
// makes them a hash of it instead, so reinstalling on the same machine gives
// the same name and the targets' ACLs keep matching; the hash, not the ID,
// goes on the wire. A machine cloned with its ID would share the name, so
// image builders should pass "".
func NewInitiatorName(hostID string) string {
	b := make([]byte, 6)
	if hostID == "" {
		rand.Read(b)
	} else {
		sum := sha256.Sum256([]byte("goiscsi initiator name\x00" + hostID))
		copy(b, sum[:])
	}
	return "iqn.2004-10.com.goiscsi:" + hex.EncodeToString(b)
}
