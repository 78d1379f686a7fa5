package pdu

import "fmt"

// Stage is a login stage: the CSG and NSG fields of Login PDUs (RFC 7143 §11.12.3).
type Stage uint8

// Login stages. Stage 2 is reserved.
const (
	SecurityNegotiation         Stage = 0
	LoginOperationalNegotiation Stage = 1
	FullFeaturePhase            Stage = 3
)

func (s Stage) String() string {
	switch s {
	case SecurityNegotiation:
		return "SecurityNegotiation"
	case LoginOperationalNegotiation:
		return "LoginOperationalNegotiation"
	case FullFeaturePhase:
		return "FullFeaturePhase"
	}
	return fmt.Sprintf("reserved stage %d", uint8(s))
}

// ISID is the initiator part of the session identifier (RFC 7143 §11.12.5).
type ISID [6]byte

func (i ISID) String() string { return fmt.Sprintf("%012x", i[:]) }

// LoginRequest is the BHS of a Login Request (opcode 0x03, §11.12). The I bit is
// always set on the wire, as the RFC requires.
type LoginRequest struct {
	Transit    bool  // T: ready to move to NSG
	Continue   bool  // C: the text continues in the next PDU
	CSG, NSG   Stage // current and next stage
	VersionMax uint8
	VersionMin uint8
	ISID       ISID
	TSIH       uint16
	ITT        uint32
	CID        uint16
	CmdSN      uint32
	ExpStatSN  uint32
}

// Opcode returns OpLoginRequest.
func (*LoginRequest) Opcode() Opcode { return OpLoginRequest }

// Encode writes m into b.
func (m *LoginRequest) Encode(b *BHS) {
	start(b, OpLoginRequest, true, flag(m.Transit, 0x80)|flag(m.Continue, 0x40)|byte(m.CSG&3)<<2|byte(m.NSG&3))
	b[2], b[3] = m.VersionMax, m.VersionMin
	copy(b[8:14], m.ISID[:])
	put16(b, 14, m.TSIH)
	put32(b, 16, m.ITT)
	put16(b, 20, m.CID)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
}

// Decode reads m from b.
func (m *LoginRequest) Decode(b *BHS) error {
	if err := check(b, OpLoginRequest); err != nil {
		return err
	}
	*m = LoginRequest{
		Transit: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0,
		CSG: Stage(b[1] >> 2 & 3), NSG: Stage(b[1] & 3),
		VersionMax: b[2], VersionMin: b[3],
		TSIH: u16(b, 14), ITT: u32(b, 16), CID: u16(b, 20),
		CmdSN: u32(b, 24), ExpStatSN: u32(b, 28),
	}
	copy(m.ISID[:], b[8:14])
	return nil
}

// LoginResponse is the BHS of a Login Response (opcode 0x23, §11.13).
type LoginResponse struct {
	Transit       bool
	Continue      bool
	CSG, NSG      Stage
	VersionMax    uint8
	VersionActive uint8
	ISID          ISID
	TSIH          uint16
	ITT           uint32
	StatSN        uint32
	ExpCmdSN      uint32
	MaxCmdSN      uint32
	Status        LoginStatus
}

// Opcode returns OpLoginResponse.
func (*LoginResponse) Opcode() Opcode { return OpLoginResponse }

// Encode writes m into b.
func (m *LoginResponse) Encode(b *BHS) {
	start(b, OpLoginResponse, false, flag(m.Transit, 0x80)|flag(m.Continue, 0x40)|byte(m.CSG&3)<<2|byte(m.NSG&3))
	b[2], b[3] = m.VersionMax, m.VersionActive
	copy(b[8:14], m.ISID[:])
	put16(b, 14, m.TSIH)
	put32(b, 16, m.ITT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	b[36], b[37] = m.Status.Class, m.Status.Detail
}

// Decode reads m from b.
func (m *LoginResponse) Decode(b *BHS) error {
	if err := check(b, OpLoginResponse); err != nil {
		return err
	}
	*m = LoginResponse{
		Transit: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0,
		CSG: Stage(b[1] >> 2 & 3), NSG: Stage(b[1] & 3),
		VersionMax: b[2], VersionActive: b[3],
		TSIH: u16(b, 14), ITT: u32(b, 16),
		StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32),
		Status: LoginStatus{Class: b[36], Detail: b[37]},
	}
	copy(m.ISID[:], b[8:14])
	return nil
}

// LoginStatus is the Status-Class and Status-Detail of a Login Response (§11.13.5).
type LoginStatus struct {
	Class  uint8
	Detail uint8
}

// Login status classes.
const (
	StatusSuccess        = 0
	StatusRedirection    = 1
	StatusInitiatorError = 2
	StatusTargetError    = 3
)

// Common login statuses.
var (
	LoginSuccess              = LoginStatus{0, 0}
	LoginTargetMovedTemp      = LoginStatus{1, 1}
	LoginTargetMovedPerm      = LoginStatus{1, 2}
	LoginInitiatorError       = LoginStatus{2, 0}
	LoginAuthFailure          = LoginStatus{2, 1}
	LoginAuthorizationFailure = LoginStatus{2, 2}
	LoginNotFound             = LoginStatus{2, 3}
	LoginTargetRemoved        = LoginStatus{2, 4}
	LoginUnsupportedVersion   = LoginStatus{2, 5}
	LoginTooManyConnections   = LoginStatus{2, 6}
	LoginMissingParameter     = LoginStatus{2, 7}
	LoginCantIncludeInSession = LoginStatus{2, 8}
	LoginSessionTypeNotSupp   = LoginStatus{2, 9}
	LoginSessionDoesNotExist  = LoginStatus{2, 10}
	LoginInvalidDuringLogin   = LoginStatus{2, 11}
	LoginTargetError          = LoginStatus{3, 0}
	LoginServiceUnavailable   = LoginStatus{3, 1}
	LoginOutOfResources       = LoginStatus{3, 2}
)

var loginStatusText = map[LoginStatus]string{
	LoginSuccess:              "success",
	LoginTargetMovedTemp:      "target moved temporarily",
	LoginTargetMovedPerm:      "target moved permanently",
	LoginInitiatorError:       "initiator error",
	LoginAuthFailure:          "authentication failure",
	LoginAuthorizationFailure: "authorization failure",
	LoginNotFound:             "target not found",
	LoginTargetRemoved:        "target removed",
	LoginUnsupportedVersion:   "unsupported version",
	LoginTooManyConnections:   "too many connections",
	LoginMissingParameter:     "missing parameter",
	LoginCantIncludeInSession: "can't include in session",
	LoginSessionTypeNotSupp:   "session type not supported",
	LoginSessionDoesNotExist:  "session does not exist",
	LoginInvalidDuringLogin:   "invalid request during login",
	LoginTargetError:          "target error",
	LoginServiceUnavailable:   "service unavailable",
	LoginOutOfResources:       "out of resources",
}

// String returns the RFC meaning with the numeric codes, e.g.
// "authentication failure (0x0201)".
func (s LoginStatus) String() string {
	text, ok := loginStatusText[s]
	if !ok {
		switch s.Class {
		case StatusRedirection:
			text = "redirection"
		case StatusInitiatorError:
			text = "initiator error"
		case StatusTargetError:
			text = "target error"
		default:
			text = "unknown status"
		}
	}
	return fmt.Sprintf("%s (0x%02x%02x)", text, s.Class, s.Detail)
}
