package pdu

import "fmt"

// Opcode is the 6-bit operation code in byte 0 of every BHS (RFC 7143 §11.2.1.2).
type Opcode uint8

// Initiator opcodes.
const (
	OpNOPOut          Opcode = 0x00
	OpSCSICommand     Opcode = 0x01
	OpTaskMgmtRequest Opcode = 0x02
	OpLoginRequest    Opcode = 0x03
	OpTextRequest     Opcode = 0x04
	OpDataOut         Opcode = 0x05
	OpLogoutRequest   Opcode = 0x06
	OpSNACKRequest    Opcode = 0x10
)

// Target opcodes.
const (
	OpNOPIn            Opcode = 0x20
	OpSCSIResponse     Opcode = 0x21
	OpTaskMgmtResponse Opcode = 0x22
	OpLoginResponse    Opcode = 0x23
	OpTextResponse     Opcode = 0x24
	OpDataIn           Opcode = 0x25
	OpLogoutResponse   Opcode = 0x26
	OpR2T              Opcode = 0x31
	OpAsyncMessage     Opcode = 0x32
	OpReject           Opcode = 0x3f
)

var opcodeNames = map[Opcode]string{
	OpNOPOut:           "NOP-Out",
	OpSCSICommand:      "SCSI Command",
	OpTaskMgmtRequest:  "Task Management Request",
	OpLoginRequest:     "Login Request",
	OpTextRequest:      "Text Request",
	OpDataOut:          "SCSI Data-Out",
	OpLogoutRequest:    "Logout Request",
	OpSNACKRequest:     "SNACK Request",
	OpNOPIn:            "NOP-In",
	OpSCSIResponse:     "SCSI Response",
	OpTaskMgmtResponse: "Task Management Response",
	OpLoginResponse:    "Login Response",
	OpTextResponse:     "Text Response",
	OpDataIn:           "SCSI Data-In",
	OpLogoutResponse:   "Logout Response",
	OpR2T:              "R2T",
	OpAsyncMessage:     "Asynchronous Message",
	OpReject:           "Reject",
}

// String returns the RFC name of the opcode, or its hex value when it has none.
func (o Opcode) String() string {
	if s, ok := opcodeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("opcode 0x%02x", uint8(o))
}

// Known reports whether o is an opcode RFC 7143 defines.
func (o Opcode) Known() bool {
	_, ok := opcodeNames[o]
	return ok
}

// FromTarget reports whether PDUs with this opcode travel from target to initiator.
func (o Opcode) FromTarget() bool { return o&0x20 != 0 }
