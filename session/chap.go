package session

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/goiscsi/goiscsi/pdu"
)

// Secret is a CHAP secret. It prints as ******** in logs, errors and %v so that it
// cannot leak by accident; use string(s) where the value itself is needed.
type Secret string

func (Secret) String() string   { return "********" }
func (Secret) GoString() string { return `"********"` }

// LogValue keeps the secret out of slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("********") }

// CHAPAlgorithm is a CHAP digest algorithm by its IANA PPP authentication number
// (the CHAP_A value).
type CHAPAlgorithm int

// CHAP algorithms (RFC 7143 §12.1.3 and the IANA registry).
const (
	CHAPMD5     CHAPAlgorithm = 5
	CHAPSHA1    CHAPAlgorithm = 6
	CHAPSHA256  CHAPAlgorithm = 7
	CHAPSHA3256 CHAPAlgorithm = 8
)

// DefaultCHAPAlgorithms is the offer when none is configured: strongest first, so
// FIPS systems without MD5 still log in; targets that only take MD5 get a retry
// offering MD5 alone.
var DefaultCHAPAlgorithms = []CHAPAlgorithm{CHAPSHA3256, CHAPSHA256, CHAPSHA1, CHAPMD5}

// String returns the name open-iscsi's node.session.auth.chap_algs uses.
func (a CHAPAlgorithm) String() string {
	switch a {
	case CHAPMD5:
		return "MD5"
	case CHAPSHA1:
		return "SHA1"
	case CHAPSHA256:
		return "SHA256"
	case CHAPSHA3256:
		return "SHA3-256"
	}
	return fmt.Sprintf("CHAP algorithm %d", int(a))
}

func (a CHAPAlgorithm) newHash() hash.Hash {
	switch a {
	case CHAPMD5:
		return md5.New()
	case CHAPSHA1:
		return sha1.New()
	case CHAPSHA256:
		return sha256.New()
	case CHAPSHA3256:
		return sha3.New256()
	}
	return nil
}

// ParseCHAPAlgorithms parses a node.session.auth.chap_algs value such as
// "SHA3-256,SHA256,SHA1,MD5" (commas or spaces between names).
func ParseCHAPAlgorithms(s string) ([]CHAPAlgorithm, error) {
	var algs []CHAPAlgorithm
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		var a CHAPAlgorithm
		switch strings.ToUpper(name) {
		case "MD5":
			a = CHAPMD5
		case "SHA1":
			a = CHAPSHA1
		case "SHA256":
			a = CHAPSHA256
		case "SHA3-256":
			a = CHAPSHA3256
		default:
			return nil, fmt.Errorf("unknown CHAP algorithm %q (want MD5, SHA1, SHA256 or SHA3-256)", name)
		}
		algs = append(algs, a)
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("no CHAP algorithm in %q", s)
	}
	return algs, nil
}

// CHAPResponse computes a CHAP response: the digest of the one-octet identifier,
// the secret and the challenge (RFC 1994 §4.1; the same construction for every
// algorithm).
func CHAPResponse(a CHAPAlgorithm, id byte, secret Secret, challenge []byte) []byte {
	h := a.newHash()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// NewCHAPChallenge returns a random challenge as long as a's digest (at least 16
// bytes), remembered so that a peer reflecting it back is caught.
func NewCHAPChallenge(a CHAPAlgorithm) []byte {
	n := max(a.newHash().Size(), 16)
	c := make([]byte, n)
	rand.Read(c)
	issued.remember(c)
	return c
}

// IssuedCHAPChallenge reports whether c is a challenge this process issued
// recently: a peer that sends one back as its own is attempting a reflection
// attack (RFC 7143 §9.2.1).
func IssuedCHAPChallenge(c []byte) bool { return issued.contains(c) }

// issued remembers the last challenges this process sent.
var issued = &challengeRing{}

type challengeRing struct {
	mu   sync.Mutex
	ring [64][]byte
	next int
}

func (r *challengeRing) remember(c []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = c
	r.next = (r.next + 1) % len(r.ring)
}

func (r *challengeRing) contains(c []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.ring {
		if x != nil && bytes.Equal(x, c) {
			return true
		}
	}
	return false
}

// chapInitiator is the initiator's half of a CHAP exchange.
type chapInitiator struct {
	auth Auth
	alg  CHAPAlgorithm
	// Mutual CHAP: the identifier and challenge sent to the target.
	id        byte
	challenge []byte
}

// offer returns the CHAP_A list.
func (c *chapInitiator) offer() string {
	algs := c.auth.Algorithms
	if len(algs) == 0 {
		algs = DefaultCHAPAlgorithms
	}
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = strconv.Itoa(int(a))
	}
	return strings.Join(names, ",")
}

// answer takes the target's CHAP_A, CHAP_I and CHAP_C and returns CHAP_N and
// CHAP_R, plus CHAP_I and CHAP_C when the target must authenticate too.
func (c *chapInitiator) answer(algStr, idStr, challengeStr string) ([][2]string, error) {
	if algStr == valueReject {
		return nil, ErrCHAPAlgorithms
	}
	a, err := strconv.Atoi(algStr)
	offered := false
	for _, x := range strings.Split(c.offer(), ",") {
		offered = offered || x == algStr
	}
	if err != nil || !offered {
		return nil, &ProtocolError{Reason: fmt.Sprintf("target chose CHAP_A=%q, which was not offered (%s)", algStr, c.offer())}
	}
	c.alg = CHAPAlgorithm(a)
	id, err := strconv.Atoi(idStr)
	if err != nil {
		n, perr := pdu.ParseNumber(idStr)
		id, err = int(n), perr
	}
	if err != nil || id < 0 || id > 255 {
		return nil, &ProtocolError{Reason: fmt.Sprintf("target sent CHAP_I=%q, not a number 0-255", idStr)}
	}
	challenge, err := pdu.ParseBinary(challengeStr)
	if err != nil {
		return nil, &ProtocolError{Reason: "target sent a malformed CHAP_C: " + err.Error()}
	}
	if len(challenge) == 0 || len(challenge) > 1024 {
		return nil, &ProtocolError{Reason: fmt.Sprintf("target sent a %d-byte CHAP_C (want 1..1024)", len(challenge))}
	}
	if IssuedCHAPChallenge(challenge) {
		return nil, &AuthError{Reason: "target sent back a challenge this initiator issued (reflection attack)"}
	}
	out := [][2]string{
		{"CHAP_N", c.auth.Username},
		{"CHAP_R", pdu.FormatBinary(CHAPResponse(c.alg, byte(id), c.auth.Password, challenge))},
	}
	if c.auth.mutual() {
		var idb [1]byte
		rand.Read(idb[:])
		c.id = idb[0]
		c.challenge = NewCHAPChallenge(c.alg)
		for bytes.Equal(c.challenge, challenge) {
			c.challenge = NewCHAPChallenge(c.alg)
		}
		out = append(out, [2]string{"CHAP_I", strconv.Itoa(int(c.id))}, [2]string{"CHAP_C", pdu.FormatBinary(c.challenge)})
	}
	return out, nil
}

// verify checks the target's CHAP_N and CHAP_R in mutual CHAP.
func (c *chapInitiator) verify(name, response string) error {
	if name == "" || response == "" {
		return &AuthError{Reason: "target did not authenticate itself (no CHAP_N/CHAP_R) although mutual CHAP was requested"}
	}
	if name != c.auth.UsernameIn {
		return &AuthError{Reason: fmt.Sprintf("target authenticated as %q, expected %q", name, c.auth.UsernameIn)}
	}
	got, err := pdu.ParseBinary(response)
	if err != nil {
		return &AuthError{Reason: "target sent a malformed CHAP_R"}
	}
	want := CHAPResponse(c.alg, c.id, c.auth.PasswordIn, c.challenge)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return &AuthError{Reason: "target's CHAP response is wrong (mutual CHAP secret mismatch)"}
	}
	return nil
}
