package scan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/conf"
)

// NodeKey names the node a session logs in to: the memory of held-back LUNs
// belongs to it, so a logout and login, a relogin or a daemon restart keep it,
// and another target or portal never shares it.
type NodeKey struct {
	Target  string
	Address string
	Port    int
	Iface   string
}

// String is the key as logs show it: "target,address:port,iface".
func (k NodeKey) String() string {
	return k.Target + "," + k.Address + ":" + strconv.Itoa(k.Port) + "," + k.Iface
}

// file is where the key's memory is kept: a hash, because target names may
// hold any character and be 223 bytes long.
func (k NodeKey) file() string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:12]) + ".json"
}

// HeldLUN is a LUN that the host removed while the target still reported it:
// no broad scan adds it back.
type HeldLUN struct {
	LUN uint64 `json:"lun"`
	// Reason says how the host removed it.
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Holds is goiscsid's memory, per node, of the LUNs the host removed (held
// back from broad scans) and of the LUNs that have a device on the host
// (attached, so that a removal made while nobody listened is still found).
// Each change is written at once to a file of the node's under Dir, which
// lives under /run: a reboot forgets it all, as it should (every device is
// gone then), and a goiscsid restart does not.
//
// A node whose file cannot be read fails closed: Held returns an error naming
// the file, and the daemon adds no LUN to its sessions by broad scans until
// the file is removed or fixed.
type Holds struct {
	// Dir holds the files; empty keeps the memory in this process only.
	Dir string

	mu     sync.Mutex
	loaded bool
	nodes  map[string]*heldNode // by NodeKey.file()
	broken map[string]error
}

type heldNode struct {
	Node     string    `json:"node"`
	Held     []HeldLUN `json:"held,omitempty"`
	Attached []uint64  `json:"attached,omitempty"`
}

// load reads Dir once; l.mu is held.
func (h *Holds) load() {
	if h.loaded {
		return
	}
	h.loaded = true
	h.nodes, h.broken = map[string]*heldNode{}, map[string]error{}
	if h.Dir == "" {
		return
	}
	ents, err := os.ReadDir(h.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			h.broken["*"] = fmt.Errorf("held-back LUNs: %w", err)
		}
		return
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(h.Dir, e.Name())
		b, err := os.ReadFile(p)
		var n heldNode
		if err == nil {
			err = json.Unmarshal(b, &n)
		}
		if err != nil {
			h.broken[e.Name()] = fmt.Errorf("held-back LUNs in %s cannot be read (remove the file to forget them): %w", p, err)
			continue
		}
		h.nodes[e.Name()] = &n
	}
}

// node returns k's memory, creating it when asked; l.mu is held.
func (h *Holds) node(k NodeKey, create bool) (*heldNode, error) {
	h.load()
	if err := h.broken["*"]; err != nil {
		return nil, err
	}
	f := k.file()
	if err := h.broken[f]; err != nil {
		return nil, err
	}
	n := h.nodes[f]
	if n == nil && create {
		n = &heldNode{Node: k.String()}
		h.nodes[f] = n
	}
	return n, nil
}

// save writes k's memory (or removes its file when there is nothing left to
// remember); l.mu is held.
func (h *Holds) save(k NodeKey, n *heldNode) error {
	if h.Dir == "" {
		return nil
	}
	p := filepath.Join(h.Dir, k.file())
	if len(n.Held) == 0 && len(n.Attached) == 0 {
		delete(h.nodes, k.file())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("held-back LUNs: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := conf.WriteFileAtomic(p, b); err != nil {
		return fmt.Errorf("held-back LUNs: %w", err)
	}
	return nil
}

// Held returns the LUNs held back for k, in ascending order.
func (h *Holds) Held(k NodeKey) ([]HeldLUN, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, false)
	if err != nil || n == nil {
		return nil, err
	}
	return slices.Clone(n.Held), nil
}

// Hold holds lun back for k (the host removed it). It reports whether the
// LUN was not held before. The memory changes even when writing the file
// fails, which the error reports.
func (h *Holds) Hold(k NodeKey, lun uint64, reason string, now time.Time) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, true)
	if err != nil {
		return false, err
	}
	n.Attached = remove(n.Attached, lun)
	if slices.ContainsFunc(n.Held, func(l HeldLUN) bool { return l.LUN == lun }) {
		return false, h.save(k, n)
	}
	n.Held = append(n.Held, HeldLUN{LUN: lun, Reason: reason, Since: now.UTC()})
	slices.SortFunc(n.Held, func(a, b HeldLUN) int { return cmp.Compare(a.LUN, b.LUN) })
	return true, h.save(k, n)
}

// Attach records that lun has a device on the host now; it releases the LUN
// when it was held back (someone scanned it on purpose) and reports so.
func (h *Holds) Attach(k NodeKey, lun uint64) (released bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, true)
	if err != nil {
		return false, err
	}
	before := len(n.Held)
	n.Held = slices.DeleteFunc(n.Held, func(l HeldLUN) bool { return l.LUN == lun })
	released = len(n.Held) < before
	if !slices.Contains(n.Attached, lun) {
		n.Attached = append(n.Attached, lun)
		slices.Sort(n.Attached)
	} else if !released {
		return false, nil
	}
	return released, h.save(k, n)
}

// Release stops holding lun back for k (an explicit scan of that one LUN);
// it reports whether it was held.
func (h *Holds) Release(k NodeKey, lun uint64) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, false)
	if err != nil || n == nil {
		return false, err
	}
	before := len(n.Held)
	n.Held = slices.DeleteFunc(n.Held, func(l HeldLUN) bool { return l.LUN == lun })
	if len(n.Held) == before {
		return false, nil
	}
	return true, h.save(k, n)
}

// Forget releases the held LUNs of k that the target no longer reports: the
// next volume the array exports at that number is a new one.
func (h *Holds) Forget(k NodeKey, reported []uint64) ([]HeldLUN, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, false)
	if err != nil || n == nil {
		return nil, err
	}
	var gone []HeldLUN
	n.Held = slices.DeleteFunc(n.Held, func(l HeldLUN) bool {
		if slices.Contains(reported, l.LUN) {
			return false
		}
		gone = append(gone, l)
		return true
	})
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, h.save(k, n)
}

// Reconcile compares the LUNs attached to k as last recorded with those that
// have a device now (current): each one gone since is held back with reason
// (goiscsid did not see it go: it was not running, or the kernel's events were
// lost). The attached set becomes current. It returns the LUNs it held.
func (h *Holds) Reconcile(k NodeKey, current []uint64, reason string, now time.Time) ([]uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, true)
	if err != nil {
		return nil, err
	}
	var held []uint64
	for _, l := range n.Attached {
		if slices.Contains(current, l) || slices.ContainsFunc(n.Held, func(x HeldLUN) bool { return x.LUN == l }) {
			continue
		}
		n.Held = append(n.Held, HeldLUN{LUN: l, Reason: reason, Since: now.UTC()})
		held = append(held, l)
	}
	slices.SortFunc(n.Held, func(a, b HeldLUN) int { return cmp.Compare(a.LUN, b.LUN) })
	n.Attached = slices.Sorted(slices.Values(current))
	return held, h.save(k, n)
}

// Detached forgets k's attached LUNs: its session logged out, and the kernel
// removed their devices with it, which holds nothing back.
func (h *Holds) Detached(k NodeKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.node(k, false)
	if err != nil || n == nil || len(n.Attached) == 0 {
		return err
	}
	n.Attached = nil
	return h.save(k, n)
}

func remove(s []uint64, v uint64) []uint64 {
	return slices.DeleteFunc(s, func(x uint64) bool { return x == v })
}
