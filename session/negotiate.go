package session

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/pdu"
)

// Role is which end of a login a Negotiator speaks for.
type Role int

// Roles.
const (
	InitiatorRole Role = iota
	TargetRole
)

// Negotiator runs the text negotiation of one login (RFC 7143 §6.2) for either
// end: it proposes keys as originator, answers the peer's proposals as
// responder, checks every answer against the rules of the key, and collects the
// outcome. The test target uses it as responder, the initiator as originator.
type Negotiator struct {
	role      Role
	discovery bool
	local     map[string]string // this side's wishes: a value, or a list for list keys
	sent      map[string]string // proposals sent, awaiting an answer
	done      map[string]bool   // keys whose negotiation is complete
	result    map[string]string // outcome of each completed key
	peer      map[string]string // the peer's declarations (e.g. its MaxRecvDataSegmentLength)
}

// NewNegotiator returns a Negotiator for one login. local holds this side's
// wishes per key; keys it does not hold fall back to the RFC default when this
// side must answer. discovery marks a Discovery session, where session keys are
// Irrelevant.
func NewNegotiator(role Role, discovery bool, local map[string]string) *Negotiator {
	n := &Negotiator{
		role: role, discovery: discovery, local: map[string]string{},
		sent: map[string]string{}, done: map[string]bool{}, result: map[string]string{}, peer: map[string]string{},
	}
	for k, v := range local {
		n.local[k] = v
	}
	return n
}

// NegotiationError is a text negotiation that broke the rules: the peer answered
// outside the admissible range, picked a value that was not offered, renegotiated
// a key, or refused a value this side cannot do without.
type NegotiationError struct {
	Key    string
	Value  string
	Reason string
}

func (e *NegotiationError) Error() string {
	return fmt.Sprintf("negotiation of %s=%q: %s", e.Key, e.Value, e.Reason)
}

func negErr(key, value, format string, args ...any) error {
	return &NegotiationError{Key: key, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// Propose returns key=value proposals for the given keys, skipping keys already
// negotiated or already sent. The values come from this side's wishes.
func (n *Negotiator) Propose(keys ...string) []pdu.KeyValue {
	var out []pdu.KeyValue
	for _, k := range keys {
		v, ok := n.local[k]
		if !ok || n.done[k] {
			continue
		}
		if _, pending := n.sent[k]; pending {
			continue
		}
		def := keyDefs[k]
		if def != nil && def.result == declarative {
			n.done[k] = true
			n.result[k] = v
		} else {
			n.sent[k] = v
		}
		out = append(out, pdu.KeyValue{Key: k, Value: v})
	}
	return out
}

// Pending reports whether proposals are still waiting for the peer's answer.
func (n *Negotiator) Pending() bool { return len(n.sent) > 0 }

// PendingKeys lists the proposals still waiting for an answer.
func (n *Negotiator) PendingKeys() []string {
	var keys []string
	for k := range n.sent {
		keys = append(keys, k)
	}
	return keys
}

// Handle processes the pairs the peer sent: answers to this side's proposals and
// the peer's own proposals and declarations. It returns the answers this side
// must send. Keys it does not know are answered NotUnderstood.
func (n *Negotiator) Handle(kvs []pdu.KeyValue) ([]pdu.KeyValue, error) {
	var answers []pdu.KeyValue
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, negErr(kv.Key, kv.Value, "key sent twice in one PDU sequence")
		}
		seen[kv.Key] = true
		if ours, pending := n.sent[kv.Key]; pending {
			if err := n.accept(kv.Key, ours, kv.Value); err != nil {
				return nil, err
			}
			delete(n.sent, kv.Key)
			continue
		}
		answer, err := n.respond(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		if answer != nil {
			answers = append(answers, *answer)
		}
	}
	return answers, nil
}

// accept checks the peer's answer to a proposal of ours and records the outcome.
func (n *Negotiator) accept(key, ours, theirs string) error {
	def := keyDefs[key]
	n.done[key] = true
	switch theirs {
	case valueReject, valueIrrelevant, valueNotUnderstood:
		// The key keeps its default; fail only if the default is something we
		// cannot accept (e.g. a digest we require).
		if def != nil && def.result == listChoice && !inList(ours, def.def) {
			return negErr(key, theirs, "peer refused %s and the default %s was not offered", ours, def.def)
		}
		if def != nil {
			n.result[key] = def.def
		}
		return nil
	}
	if def == nil {
		n.result[key] = theirs
		return nil
	}
	switch def.result {
	case listChoice:
		if !inList(ours, theirs) {
			return negErr(key, theirs, "peer chose a value that was not offered (%s)", ours)
		}
	case minimum, maximum:
		v, err := n.number(def, key, theirs)
		if err != nil {
			return err
		}
		o, _ := strconv.ParseUint(ours, 10, 64)
		if def.result == minimum && v > o {
			return negErr(key, theirs, "answer exceeds the proposed %s (result function is minimum)", ours)
		}
		if def.result == maximum && v < o {
			return negErr(key, theirs, "answer is below the proposed %s (result function is maximum)", ours)
		}
		theirs = strconv.FormatUint(v, 10)
	case and, or:
		if theirs != "Yes" && theirs != "No" {
			return negErr(key, theirs, "not Yes or No")
		}
		// An AND key proposed No (an OR key proposed Yes) is decided already,
		// whatever the answer says.
		if def.result == and && ours == "No" {
			theirs = "No"
		}
		if def.result == or && ours == "Yes" {
			theirs = "Yes"
		}
	}
	n.result[key] = theirs
	return nil
}

// respond computes this side's answer to a key the peer originated; nil means
// no answer is due (declarations, and boolean results the proposal already fixed).
func (n *Negotiator) respond(key, theirs string) (*pdu.KeyValue, error) {
	def := keyDefs[key]
	if def == nil {
		if theirs == valueNotUnderstood || theirs == valueIrrelevant || theirs == valueReject {
			// An answer to nothing this side proposed (a late reply to its
			// own NotUnderstood, say): answering it would never end.
			return nil, nil
		}
		return &pdu.KeyValue{Key: key, Value: valueNotUnderstood}, nil
	}
	if n.done[key] && def.result != declarative {
		return nil, negErr(key, theirs, "key renegotiated within one login")
	}
	n.done[key] = true
	if theirs == valueNotUnderstood || theirs == valueIrrelevant || theirs == valueReject {
		n.result[key] = def.def
		return nil, nil
	}
	if n.discovery && def.notInDiscovery {
		return &pdu.KeyValue{Key: key, Value: valueIrrelevant}, nil
	}
	ours, haveOurs := n.local[key]
	switch def.result {
	case declarative:
		if _, seen := n.peer[key]; seen {
			return nil, negErr(key, theirs, "declared twice")
		}
		if def.numeric {
			v, err := n.number(def, key, theirs)
			if err != nil {
				return nil, err
			}
			theirs = strconv.FormatUint(v, 10)
		}
		n.peer[key] = theirs
		return nil, nil
	case listChoice:
		supported := ours
		if !haveOurs {
			supported = def.def
		}
		choice := valueReject
		for _, v := range strings.Split(theirs, ",") {
			if inList(supported, v) {
				choice = v
				break
			}
		}
		if choice == valueReject && !inList(supported, def.def) && key != "AuthMethod" {
			// Refusing leaves the default, which this side cannot accept
			// either (a digest it requires): RFC 7143 §6.2.1 lets it end the
			// login instead. (An AuthMethod left at None is the security
			// stage's to judge: it is an authentication failure.)
			return nil, negErr(key, theirs, "none of it is acceptable (%s) and the default %s is not either", supported, def.def)
		}
		if choice != valueReject {
			n.result[key] = choice
		} else {
			n.result[key] = def.def
		}
		return &pdu.KeyValue{Key: key, Value: choice}, nil
	case minimum, maximum:
		v, err := n.number(def, key, theirs)
		if err != nil {
			return nil, err
		}
		res := v
		if haveOurs {
			o, err := strconv.ParseUint(ours, 10, 64)
			if err != nil {
				return nil, negErr(key, ours, "local value is not a number")
			}
			if def.result == minimum {
				res = min(o, v)
			} else {
				res = max(o, v)
			}
		}
		n.result[key] = strconv.FormatUint(res, 10)
		return &pdu.KeyValue{Key: key, Value: n.result[key]}, nil
	case and, or:
		if theirs != "Yes" && theirs != "No" {
			return nil, negErr(key, theirs, "not Yes or No")
		}
		if def.obsolete {
			ours, haveOurs = "No", true
		}
		res := theirs
		if haveOurs {
			if def.result == and && (ours == "No" || theirs == "No") {
				res = "No"
			} else if def.result == or && (ours == "Yes" || theirs == "Yes") {
				res = "Yes"
			} else {
				res = ours
			}
		}
		n.result[key] = res
		// The answer is optional when the proposal already fixed the result.
		if (def.result == and && theirs == "No") || (def.result == or && theirs == "Yes") {
			return nil, nil
		}
		return &pdu.KeyValue{Key: key, Value: res}, nil
	}
	return nil, nil
}

func (n *Negotiator) number(def *keyDef, key, s string) (uint64, error) {
	v, err := pdu.ParseNumber(s)
	if err != nil {
		return 0, negErr(key, s, "not a number")
	}
	if v < def.min || v > def.max {
		return 0, negErr(key, s, "outside %d..%d", def.min, def.max)
	}
	return v, nil
}

func inList(list, v string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == v {
			return true
		}
	}
	return false
}

// Result returns the outcome of key: the negotiated value, else the RFC default.
func (n *Negotiator) Result(key string) string {
	if v, ok := n.result[key]; ok {
		return v
	}
	if def := keyDefs[key]; def != nil {
		return def.def
	}
	return ""
}

// Peer returns what the peer declared for key, and whether it declared it.
func (n *Negotiator) Peer(key string) (string, bool) {
	v, ok := n.peer[key]
	return v, ok
}
