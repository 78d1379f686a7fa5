package conf

import (
	"bufio"
	"crypto/rand"
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
	// Warnings name each line that was skipped and why (not key = value, a
	// bad value for a known key). Stock skips such lines silently; goiscsid
	// logs these.
	Warnings []string
}

// ParseConfig reads iscsid.conf text; name is used in warnings. Like stock it
// accepts any key (later lines win) and skips lines it cannot read, listing them
// in Warnings rather than failing: a daemon that refused an iscsid.conf stock
// accepts would not be a drop-in replacement.
func ParseConfig(r io.Reader, name string) (*Config, error) {
	c := &Config{vals: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine+2)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %q is not key = value; line ignored", name, n, line))
			continue
		}
		if err := validate(k, v); err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %v; line ignored", name, n, err))
			continue
		}
		if _, seen := c.vals[k]; !seen {
			c.keys = append(c.keys, k)
		}
		c.vals[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
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
		return "", "", fmt.Errorf("%s: no InitiatorName= line", path)
	}
	return name, alias, nil
}

// NewInitiatorName returns a fresh initiator name, unique like iscsi-iname's:
// iqn.2004-10.com.goiscsi:<12 random hex digits>.
func NewInitiatorName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "iqn.2004-10.com.goiscsi:" + hex.EncodeToString(b)
}
