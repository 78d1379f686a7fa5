package pdu

// This file holds the BHS structs of every opcode but Login (login.go).
// Offsets follow RFC 7143 §11; fields the RFC reserves are written as zero.

// NOPOut is a NOP-Out (opcode 0x00, §11.18): an initiator ping (TTT = ReservedTag)
// or the answer to a target ping (ITT = ReservedTag, TTT and LUN copied).
type NOPOut struct {
	Immediate bool
	LUN       LUN
	ITT       uint32
	TTT       uint32
	CmdSN     uint32
	ExpStatSN uint32
}

// Opcode returns OpNOPOut.
func (*NOPOut) Opcode() Opcode { return OpNOPOut }

// Encode writes m into b.
func (m *NOPOut) Encode(b *BHS) {
	start(b, OpNOPOut, m.Immediate, 0x80)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
}

// Decode reads m from b.
func (m *NOPOut) Decode(b *BHS) error {
	if err := check(b, OpNOPOut); err != nil {
		return err
	}
	*m = NOPOut{Immediate: b.Immediate(), ITT: u32(b, 16), TTT: u32(b, 20), CmdSN: u32(b, 24), ExpStatSN: u32(b, 28)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// NOPIn is a NOP-In (opcode 0x20, §11.19): the answer to an initiator ping, or a
// target ping that needs an answer when TTT is not ReservedTag.
type NOPIn struct {
	LUN      LUN
	ITT      uint32
	TTT      uint32
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

// Opcode returns OpNOPIn.
func (*NOPIn) Opcode() Opcode { return OpNOPIn }

// Encode writes m into b.
func (m *NOPIn) Encode(b *BHS) {
	start(b, OpNOPIn, false, 0x80)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
}

// Decode reads m from b.
func (m *NOPIn) Decode(b *BHS) error {
	if err := check(b, OpNOPIn); err != nil {
		return err
	}
	*m = NOPIn{ITT: u32(b, 16), TTT: u32(b, 20), StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// Task attributes of a SCSI Command (§11.3.1).
const (
	AttrUntagged    = 0
	AttrSimple      = 1
	AttrOrdered     = 2
	AttrHeadOfQueue = 3
	AttrACA         = 4
)

// SCSICommand is a SCSI Command (opcode 0x01, §11.3). CDBs longer than 16 bytes
// continue in an Extended CDB AHS.
type SCSICommand struct {
	Immediate                  bool
	Final                      bool
	Read, Write                bool
	Attr                       uint8 // task attribute, Attr*
	LUN                        LUN
	ITT                        uint32
	ExpectedDataTransferLength uint32
	CmdSN                      uint32
	ExpStatSN                  uint32
	CDB                        [16]byte
}

// Opcode returns OpSCSICommand.
func (*SCSICommand) Opcode() Opcode { return OpSCSICommand }

// Encode writes m into b.
func (m *SCSICommand) Encode(b *BHS) {
	start(b, OpSCSICommand, m.Immediate, flag(m.Final, 0x80)|flag(m.Read, 0x40)|flag(m.Write, 0x20)|m.Attr&7)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.ExpectedDataTransferLength)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
	copy(b[32:48], m.CDB[:])
}

// Decode reads m from b.
func (m *SCSICommand) Decode(b *BHS) error {
	if err := check(b, OpSCSICommand); err != nil {
		return err
	}
	*m = SCSICommand{
		Immediate: b.Immediate(), Final: b[1]&0x80 != 0, Read: b[1]&0x40 != 0, Write: b[1]&0x20 != 0, Attr: b[1] & 7,
		ITT: u32(b, 16), ExpectedDataTransferLength: u32(b, 20), CmdSN: u32(b, 24), ExpStatSN: u32(b, 28),
	}
	copy(m.LUN[:], b[8:16])
	copy(m.CDB[:], b[32:48])
	return nil
}

// SCSI Response "Response" field values (§11.4.3).
const (
	ResponseCompleted     = 0x00
	ResponseTargetFailure = 0x01
)

// SCSIResponse is a SCSI Response (opcode 0x21, §11.4). Sense data, when present,
// is in the data segment behind a 2-byte SenseLength ([ParseSenseSegment]).
type SCSIResponse struct {
	BidiOverflow  bool // o
	BidiUnderflow bool // u
	Overflow      bool // O
	Underflow     bool // U
	Response      uint8
	Status        uint8 // SCSI status, e.g. 0x02 CHECK CONDITION
	ITT           uint32
	SNACKTag      uint32
	StatSN        uint32
	ExpCmdSN      uint32
	MaxCmdSN      uint32
	ExpDataSN     uint32
	BidiResidual  uint32
	Residual      uint32
}

// Opcode returns OpSCSIResponse.
func (*SCSIResponse) Opcode() Opcode { return OpSCSIResponse }

// Encode writes m into b.
func (m *SCSIResponse) Encode(b *BHS) {
	start(b, OpSCSIResponse, false, 0x80|flag(m.BidiOverflow, 0x10)|flag(m.BidiUnderflow, 0x08)|flag(m.Overflow, 0x04)|flag(m.Underflow, 0x02))
	b[2], b[3] = m.Response, m.Status
	put32(b, 16, m.ITT)
	put32(b, 20, m.SNACKTag)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	put32(b, 36, m.ExpDataSN)
	put32(b, 40, m.BidiResidual)
	put32(b, 44, m.Residual)
}

// Decode reads m from b.
func (m *SCSIResponse) Decode(b *BHS) error {
	if err := check(b, OpSCSIResponse); err != nil {
		return err
	}
	*m = SCSIResponse{
		BidiOverflow: b[1]&0x10 != 0, BidiUnderflow: b[1]&0x08 != 0, Overflow: b[1]&0x04 != 0, Underflow: b[1]&0x02 != 0,
		Response: b[2], Status: b[3], ITT: u32(b, 16), SNACKTag: u32(b, 20), StatSN: u32(b, 24),
		ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32), ExpDataSN: u32(b, 36), BidiResidual: u32(b, 40), Residual: u32(b, 44),
	}
	return nil
}

// Task management functions (§11.5.1).
const (
	TMFAbortTask        = 1
	TMFAbortTaskSet     = 2
	TMFClearACA         = 3
	TMFClearTaskSet     = 4
	TMFLogicalUnitReset = 5
	TMFTargetWarmReset  = 6
	TMFTargetColdReset  = 7
	TMFTaskReassign     = 8
)

// TaskMgmtRequest is a Task Management Function Request (opcode 0x02, §11.5).
type TaskMgmtRequest struct {
	Immediate         bool
	Function          uint8 // TMF*
	LUN               LUN
	ITT               uint32
	ReferencedTaskTag uint32
	CmdSN             uint32
	ExpStatSN         uint32
	RefCmdSN          uint32
	ExpDataSN         uint32
}

// Opcode returns OpTaskMgmtRequest.
func (*TaskMgmtRequest) Opcode() Opcode { return OpTaskMgmtRequest }

// Encode writes m into b.
func (m *TaskMgmtRequest) Encode(b *BHS) {
	start(b, OpTaskMgmtRequest, m.Immediate, 0x80|m.Function&0x7f)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.ReferencedTaskTag)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
	put32(b, 32, m.RefCmdSN)
	put32(b, 36, m.ExpDataSN)
}

// Decode reads m from b.
func (m *TaskMgmtRequest) Decode(b *BHS) error {
	if err := check(b, OpTaskMgmtRequest); err != nil {
		return err
	}
	*m = TaskMgmtRequest{
		Immediate: b.Immediate(), Function: b[1] & 0x7f, ITT: u32(b, 16), ReferencedTaskTag: u32(b, 20),
		CmdSN: u32(b, 24), ExpStatSN: u32(b, 28), RefCmdSN: u32(b, 32), ExpDataSN: u32(b, 36),
	}
	copy(m.LUN[:], b[8:16])
	return nil
}

// Task management responses (§11.6.1).
const (
	TMFComplete             = 0
	TMFTaskDoesNotExist     = 1
	TMFLUNDoesNotExist      = 2
	TMFTaskStillAllegiant   = 3
	TMFReassignNotSupported = 4
	TMFNotSupported         = 5
	TMFAuthorizationFailed  = 6
	TMFRejected             = 255
)

// TaskMgmtResponse is a Task Management Function Response (opcode 0x22, §11.6).
type TaskMgmtResponse struct {
	Response uint8 // TMF* response code
	ITT      uint32
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

// Opcode returns OpTaskMgmtResponse.
func (*TaskMgmtResponse) Opcode() Opcode { return OpTaskMgmtResponse }

// Encode writes m into b.
func (m *TaskMgmtResponse) Encode(b *BHS) {
	start(b, OpTaskMgmtResponse, false, 0x80)
	b[2] = m.Response
	put32(b, 16, m.ITT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
}

// Decode reads m from b.
func (m *TaskMgmtResponse) Decode(b *BHS) error {
	if err := check(b, OpTaskMgmtResponse); err != nil {
		return err
	}
	*m = TaskMgmtResponse{Response: b[2], ITT: u32(b, 16), StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32)}
	return nil
}

// TextRequest is a Text Request (opcode 0x04, §11.10). TTT is ReservedTag to start
// an exchange and the target's TTT to continue one.
type TextRequest struct {
	Immediate bool
	Final     bool
	Continue  bool
	LUN       LUN
	ITT       uint32
	TTT       uint32
	CmdSN     uint32
	ExpStatSN uint32
}

// Opcode returns OpTextRequest.
func (*TextRequest) Opcode() Opcode { return OpTextRequest }

// Encode writes m into b.
func (m *TextRequest) Encode(b *BHS) {
	start(b, OpTextRequest, m.Immediate, flag(m.Final, 0x80)|flag(m.Continue, 0x40))
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
}

// Decode reads m from b.
func (m *TextRequest) Decode(b *BHS) error {
	if err := check(b, OpTextRequest); err != nil {
		return err
	}
	*m = TextRequest{Immediate: b.Immediate(), Final: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0,
		ITT: u32(b, 16), TTT: u32(b, 20), CmdSN: u32(b, 24), ExpStatSN: u32(b, 28)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// TextResponse is a Text Response (opcode 0x24, §11.11). Final=false with a TTT
// other than ReservedTag invites an empty continuation request.
type TextResponse struct {
	Final    bool
	Continue bool
	LUN      LUN
	ITT      uint32
	TTT      uint32
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

// Opcode returns OpTextResponse.
func (*TextResponse) Opcode() Opcode { return OpTextResponse }

// Encode writes m into b.
func (m *TextResponse) Encode(b *BHS) {
	start(b, OpTextResponse, false, flag(m.Final, 0x80)|flag(m.Continue, 0x40))
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
}

// Decode reads m from b.
func (m *TextResponse) Decode(b *BHS) error {
	if err := check(b, OpTextResponse); err != nil {
		return err
	}
	*m = TextResponse{Final: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0, ITT: u32(b, 16), TTT: u32(b, 20),
		StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// DataOut is a SCSI Data-Out (opcode 0x05, §11.7).
type DataOut struct {
	Final        bool
	LUN          LUN
	ITT          uint32
	TTT          uint32
	ExpStatSN    uint32
	DataSN       uint32
	BufferOffset uint32
}

// Opcode returns OpDataOut.
func (*DataOut) Opcode() Opcode { return OpDataOut }

// Encode writes m into b.
func (m *DataOut) Encode(b *BHS) {
	start(b, OpDataOut, false, flag(m.Final, 0x80))
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 28, m.ExpStatSN)
	put32(b, 36, m.DataSN)
	put32(b, 40, m.BufferOffset)
}

// Decode reads m from b.
func (m *DataOut) Decode(b *BHS) error {
	if err := check(b, OpDataOut); err != nil {
		return err
	}
	*m = DataOut{Final: b[1]&0x80 != 0, ITT: u32(b, 16), TTT: u32(b, 20), ExpStatSN: u32(b, 28),
		DataSN: u32(b, 36), BufferOffset: u32(b, 40)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// DataIn is a SCSI Data-In (opcode 0x25, §11.7). With HasStatus (the S bit) it also
// completes the command, carrying Status and the residual flags.
type DataIn struct {
	Final        bool
	Acknowledge  bool // A
	Overflow     bool // O
	Underflow    bool // U
	HasStatus    bool // S
	Status       uint8
	LUN          LUN
	ITT          uint32
	TTT          uint32
	StatSN       uint32
	ExpCmdSN     uint32
	MaxCmdSN     uint32
	DataSN       uint32
	BufferOffset uint32
	Residual     uint32
}

// Opcode returns OpDataIn.
func (*DataIn) Opcode() Opcode { return OpDataIn }

// Encode writes m into b.
func (m *DataIn) Encode(b *BHS) {
	start(b, OpDataIn, false, flag(m.Final, 0x80)|flag(m.Acknowledge, 0x40)|flag(m.Overflow, 0x04)|flag(m.Underflow, 0x02)|flag(m.HasStatus, 0x01))
	b[3] = m.Status
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	put32(b, 36, m.DataSN)
	put32(b, 40, m.BufferOffset)
	put32(b, 44, m.Residual)
}

// Decode reads m from b.
func (m *DataIn) Decode(b *BHS) error {
	if err := check(b, OpDataIn); err != nil {
		return err
	}
	*m = DataIn{
		Final: b[1]&0x80 != 0, Acknowledge: b[1]&0x40 != 0, Overflow: b[1]&0x04 != 0, Underflow: b[1]&0x02 != 0,
		HasStatus: b[1]&0x01 != 0, Status: b[3], ITT: u32(b, 16), TTT: u32(b, 20), StatSN: u32(b, 24),
		ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32), DataSN: u32(b, 36), BufferOffset: u32(b, 40), Residual: u32(b, 44),
	}
	copy(m.LUN[:], b[8:16])
	return nil
}

// Logout reason codes (§11.14.1).
const (
	LogoutCloseSession      = 0
	LogoutCloseConnection   = 1
	LogoutRemoveForRecovery = 2
)

// LogoutRequest is a Logout Request (opcode 0x06, §11.14).
type LogoutRequest struct {
	Immediate bool
	Reason    uint8 // Logout*
	ITT       uint32
	CID       uint16
	CmdSN     uint32
	ExpStatSN uint32
}

// Opcode returns OpLogoutRequest.
func (*LogoutRequest) Opcode() Opcode { return OpLogoutRequest }

// Encode writes m into b.
func (m *LogoutRequest) Encode(b *BHS) {
	start(b, OpLogoutRequest, m.Immediate, 0x80|m.Reason&0x7f)
	put32(b, 16, m.ITT)
	put16(b, 20, m.CID)
	put32(b, 24, m.CmdSN)
	put32(b, 28, m.ExpStatSN)
}

// Decode reads m from b.
func (m *LogoutRequest) Decode(b *BHS) error {
	if err := check(b, OpLogoutRequest); err != nil {
		return err
	}
	*m = LogoutRequest{Immediate: b.Immediate(), Reason: b[1] & 0x7f, ITT: u32(b, 16), CID: u16(b, 20),
		CmdSN: u32(b, 24), ExpStatSN: u32(b, 28)}
	return nil
}

// Logout response codes (§11.15.1).
const (
	LogoutClosed               = 0
	LogoutCIDNotFound          = 1
	LogoutRecoveryNotSupported = 2
	LogoutCleanupFailed        = 3
)

// LogoutResponse is a Logout Response (opcode 0x26, §11.15).
type LogoutResponse struct {
	Response    uint8 // Logout* response code
	ITT         uint32
	StatSN      uint32
	ExpCmdSN    uint32
	MaxCmdSN    uint32
	Time2Wait   uint16
	Time2Retain uint16
}

// Opcode returns OpLogoutResponse.
func (*LogoutResponse) Opcode() Opcode { return OpLogoutResponse }

// Encode writes m into b.
func (m *LogoutResponse) Encode(b *BHS) {
	start(b, OpLogoutResponse, false, 0x80)
	b[2] = m.Response
	put32(b, 16, m.ITT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	put16(b, 40, m.Time2Wait)
	put16(b, 42, m.Time2Retain)
}

// Decode reads m from b.
func (m *LogoutResponse) Decode(b *BHS) error {
	if err := check(b, OpLogoutResponse); err != nil {
		return err
	}
	*m = LogoutResponse{Response: b[2], ITT: u32(b, 16), StatSN: u32(b, 24), ExpCmdSN: u32(b, 28),
		MaxCmdSN: u32(b, 32), Time2Wait: u16(b, 40), Time2Retain: u16(b, 42)}
	return nil
}

// SNACK types (§11.16.1).
const (
	SNACKDataR2T  = 0
	SNACKStatus   = 1
	SNACKDataACK  = 2
	SNACKRDataACK = 3
)

// SNACKRequest is a SNACK Request (opcode 0x10, §11.16).
type SNACKRequest struct {
	Type      uint8 // SNACK*
	LUN       LUN
	ITT       uint32
	TTT       uint32 // the SNACK Tag for R-Data SNACKs
	ExpStatSN uint32
	BegRun    uint32
	RunLength uint32
}

// Opcode returns OpSNACKRequest.
func (*SNACKRequest) Opcode() Opcode { return OpSNACKRequest }

// Encode writes m into b.
func (m *SNACKRequest) Encode(b *BHS) {
	start(b, OpSNACKRequest, false, 0x80|m.Type&0x0f)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 28, m.ExpStatSN)
	put32(b, 40, m.BegRun)
	put32(b, 44, m.RunLength)
}

// Decode reads m from b.
func (m *SNACKRequest) Decode(b *BHS) error {
	if err := check(b, OpSNACKRequest); err != nil {
		return err
	}
	*m = SNACKRequest{Type: b[1] & 0x0f, ITT: u32(b, 16), TTT: u32(b, 20), ExpStatSN: u32(b, 28),
		BegRun: u32(b, 40), RunLength: u32(b, 44)}
	copy(m.LUN[:], b[8:16])
	return nil
}

// Reject reasons (§11.17.1).
const (
	RejectDataDigest          = 0x02
	RejectSNACK               = 0x03
	RejectProtocolError       = 0x04
	RejectCommandNotSupported = 0x05
	RejectImmediateCommand    = 0x06
	RejectTaskInProgress      = 0x07
	RejectInvalidDataACK      = 0x08
	RejectInvalidPDUField     = 0x09
	RejectLongOperation       = 0x0a
	RejectWaitingForLogout    = 0x0c
)

// Reject is a Reject (opcode 0x3f, §11.17). Its data segment is the header of the
// rejected PDU.
type Reject struct {
	Reason   uint8 // Reject*
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
	DataSN   uint32 // DataSN or R2TSN of the rejected PDU
}

// Opcode returns OpReject.
func (*Reject) Opcode() Opcode { return OpReject }

// Encode writes m into b; the ITT is always ReservedTag.
func (m *Reject) Encode(b *BHS) {
	start(b, OpReject, false, 0x80)
	b[2] = m.Reason
	put32(b, 16, ReservedTag)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	put32(b, 36, m.DataSN)
}

// Decode reads m from b.
func (m *Reject) Decode(b *BHS) error {
	if err := check(b, OpReject); err != nil {
		return err
	}
	*m = Reject{Reason: b[2], StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32), DataSN: u32(b, 36)}
	return nil
}

// R2T is a Ready To Transfer (opcode 0x31, §11.8).
type R2T struct {
	LUN                       LUN
	ITT                       uint32
	TTT                       uint32
	StatSN                    uint32
	ExpCmdSN                  uint32
	MaxCmdSN                  uint32
	R2TSN                     uint32
	BufferOffset              uint32
	DesiredDataTransferLength uint32
}

// Opcode returns OpR2T.
func (*R2T) Opcode() Opcode { return OpR2T }

// Encode writes m into b.
func (m *R2T) Encode(b *BHS) {
	start(b, OpR2T, false, 0x80)
	copy(b[8:16], m.LUN[:])
	put32(b, 16, m.ITT)
	put32(b, 20, m.TTT)
	put32(b, 24, m.StatSN)
	put32(b, 28, m.ExpCmdSN)
	put32(b, 32, m.MaxCmdSN)
	put32(b, 36, m.R2TSN)
	put32(b, 40, m.BufferOffset)
	put32(b, 44, m.DesiredDataTransferLength)
}

// Decode reads m from b.
func (m *R2T) Decode(b *BHS) error {
	if err := check(b, OpR2T); err != nil {
		return err
	}
	*m = R2T{ITT: u32(b, 16), TTT: u32(b, 20), StatSN: u32(b, 24), ExpCmdSN: u32(b, 28), MaxCmdSN: u32(b, 32),
		R2TSN: u32(b, 36), BufferOffset: u32(b, 40), DesiredDataTransferLength: u32(b, 44)}
	copy(m.LUN[:], b[8:16])
	return nil
}
