package scan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Session is what sysfs shows of one iSCSI session
// (/sys/class/iscsi_session/sessionN and its connection N:0).
type Session struct {
	SID, Host         int
	TargetName        string
	TPGT              int
	Iface             string
	InitiatorName     string
	RecoveryTmo       string
	State             string // LOGGED_IN, FAILED, FREE
	PersistentAddress string
	PersistentPort    int
	Address           string
	Port              int
	// Flash is a session an offload HBA made from its flash (creator -1),
	// not the daemon.
	Flash bool
}

var hostOfSession = regexp.MustCompile(`/host(\d+)/session\d+$`)

// Sessions reads every iSCSI session the kernel has, ordered by SID. Attributes
// the kernel leaves out (or shows as "(null)") are empty.
func (s Sysfs) Sessions() ([]Session, error) {
	dir := filepath.Join(s.root(), "class", "iscsi_session")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Session
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "session")
		sid, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		sdir := filepath.Join(dir, e.Name())
		cdir := filepath.Join(s.root(), "class", "iscsi_connection", fmt.Sprintf("connection%d:0", sid))
		num := func(p string) int { v, _ := strconv.Atoi(readAttr(p)); return v }
		ss := Session{SID: sid, Host: -1,
			TargetName: readAttr(filepath.Join(sdir, "targetname")), TPGT: num(filepath.Join(sdir, "tpgt")),
			Iface: readAttr(filepath.Join(sdir, "ifacename")), InitiatorName: readAttr(filepath.Join(sdir, "initiatorname")),
			RecoveryTmo: readAttr(filepath.Join(sdir, "recovery_tmo")), State: readAttr(filepath.Join(sdir, "state")),
			PersistentAddress: readAttr(filepath.Join(cdir, "persistent_address")), PersistentPort: num(filepath.Join(cdir, "persistent_port")),
			Address: readAttr(filepath.Join(cdir, "address")), Port: num(filepath.Join(cdir, "port")),
			Flash: readAttr(filepath.Join(sdir, "creator")) == "-1",
		}
		if dev, err := filepath.EvalSymlinks(filepath.Join(sdir, "device")); err == nil {
			if m := hostOfSession.FindStringSubmatch(dev); m != nil {
				ss.Host, _ = strconv.Atoi(m[1])
			}
		}
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SID < out[j].SID })
	return out, nil
}

// readAttr reads a sysfs attribute, trimmed; "(null)" and a missing file are "".
func readAttr(p string) string {
	b, _ := os.ReadFile(p)
	v := strings.TrimSpace(string(b))
	if v == "(null)" {
		return ""
	}
	return v
}
