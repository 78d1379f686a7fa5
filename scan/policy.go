// Package scan decides when and what goiscsid scans for SCSI devices, and does it
// through sysfs: the scan policy that is the reason goiscsi exists. It also takes
// a LUN away again safely, multipath map included (Remover).
//
// open-iscsi scans the whole target after every login, at daemon start and after
// every "REPORTED LUNS DATA HAS CHANGED" event, so a LUN a host has just detached
// (still exported for a moment by the array) comes back as a stale device. Here
// each session has a Policy, and Decide says what each Trigger does under it.
package scan

import (
	"fmt"
	"strings"
)

// Policy is a session's effective scan policy.
type Policy int

// Policies, from node.session.scan and node.session.autoscan_en (see PolicyFor).
const (
	// Auto scans the whole target at login and on LUN-change events, as
	// open-iscsi does (and finds new LUNs on events, which 2.1.10–2.1.13 miss).
	Auto Policy = iota
	// LUN0 scans LUN 0 only at login and nothing afterwards: attach tools add
	// the one LUN they want.
	LUN0
	// Manual scans nothing at all.
	Manual
)

// String returns the name users see in listings: auto, lun0 or manual.
func (p Policy) String() string {
	switch p {
	case Auto:
		return "auto"
	case LUN0:
		return "lun0"
	case Manual:
		return "manual"
	}
	return fmt.Sprintf("policy(%d)", int(p))
}

// PolicyFor combines node.session.scan (auto|manual, empty: auto) and
// node.session.autoscan_en (Yes|No, empty: Yes): manual wins over everything,
// else autoscan_en = No gives LUN0, else Auto. Under this precedence no pair is
// contradictory. Values are case-insensitive, as open-iscsi reads them.
func PolicyFor(scanValue, autoscanEn string) (Policy, error) {
	var p Policy
	switch strings.ToLower(strings.TrimSpace(scanValue)) {
	case "", "auto":
		p = Auto
	case "manual":
		p = Manual
	default:
		return 0, fmt.Errorf("node.session.scan = %q: must be auto or manual", scanValue)
	}
	switch strings.ToLower(strings.TrimSpace(autoscanEn)) {
	case "", "yes":
	case "no":
		if p == Auto {
			p = LUN0
		}
	default:
		return 0, fmt.Errorf("node.session.autoscan_en = %q: must be Yes or No", autoscanEn)
	}
	return p, nil
}

// Trigger is why a scan is considered.
type Trigger int

// Triggers.
const (
	// Login is a session's first login.
	Login Trigger = iota
	// AEN is an Async Message with REPORTED LUNS DATA HAS CHANGED (3F/0E).
	AEN
	// UA is the kernel's uevent for a unit attention 3F/0E (SDEV_UA).
	UA
	// Start is the daemon taking over a running session at start.
	Start
	// Relogin is a login after a connection error.
	Relogin
	// Request is an explicit scan a user asked for.
	Request
)

// String names the trigger in logs.
func (t Trigger) String() string {
	switch t {
	case Login:
		return "login"
	case AEN:
		return "async-event"
	case UA:
		return "unit-attention"
	case Start:
		return "daemon-start"
	case Relogin:
		return "relogin"
	case Request:
		return "request"
	}
	return fmt.Sprintf("trigger(%d)", int(t))
}

// ActionKind is what a scan does.
type ActionKind int

// Action kinds.
const (
	// None scans nothing.
	None ActionKind = iota
	// LUNZero adds LUN 0 alone ("- - 0").
	LUNZero
	// Full scans the whole target ("- - -").
	Full
	// NewAndRescan scans the whole target for new LUNs and rescans the
	// existing devices (capacity changes).
	NewAndRescan
	// OneLUN adds exactly Action.LUN.
	OneLUN
)

// Action is what to write for one scan decision.
type Action struct {
	Kind ActionKind
	LUN  uint64 // for OneLUN
}

// String describes the action in logs.
func (a Action) String() string {
	switch a.Kind {
	case None:
		return "no scan"
	case LUNZero:
		return "scan LUN 0"
	case Full:
		return "scan all LUNs"
	case NewAndRescan:
		return "scan for new LUNs and rescan existing devices"
	case OneLUN:
		return fmt.Sprintf("scan LUN %d", a.LUN)
	}
	return fmt.Sprintf("action(%d)", int(a.Kind))
}

// Decide is the scan policy table (doc/architecture.md and iscsid.conf.example):
//
//	policy  login   AEN/UA          start  relogin  request (-R)
//	auto    full    new + rescan    full   none     new + rescan
//	lun0    LUN 0   none            none   none     new + rescan
//	manual  none    none            none   none     new + rescan
//
// A relogin never scans (open-iscsi: "one-time deal"); an explicit request
// (iscsiadm -R) is the user's own choice, ignores the policy, and does what
// stock's -R does: rescan the existing devices, then scan the target.
func Decide(p Policy, t Trigger) Action {
	if t == Request {
		return Action{Kind: NewAndRescan}
	}
	switch p {
	case Auto:
		switch t {
		case Login, Start:
			return Action{Kind: Full}
		case AEN, UA:
			return Action{Kind: NewAndRescan}
		}
	case LUN0:
		if t == Login {
			return Action{Kind: LUNZero}
		}
	}
	return Action{Kind: None}
}
