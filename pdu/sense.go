package pdu

import "fmt"

// SenseKey is the 4-bit SCSI sense key (SPC-4 §4.5.6).
type SenseKey uint8

// Sense keys.
const (
	NoSense        SenseKey = 0x0
	RecoveredError SenseKey = 0x1
	NotReady       SenseKey = 0x2
	MediumError    SenseKey = 0x3
	HardwareError  SenseKey = 0x4
	IllegalRequest SenseKey = 0x5
	UnitAttention  SenseKey = 0x6
	DataProtect    SenseKey = 0x7
	BlankCheck     SenseKey = 0x8
	VendorSpecific SenseKey = 0x9
	CopyAborted    SenseKey = 0xa
	AbortedCommand SenseKey = 0xb
	VolumeOverflow SenseKey = 0xd
	Miscompare     SenseKey = 0xe
)

var senseKeyNames = [16]string{
	"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
	"COPY ABORTED", "ABORTED COMMAND", "RESERVED (0xC)", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
}

func (k SenseKey) String() string { return senseKeyNames[k&0xf] }

// Sense is normalised SCSI sense data: fixed (0x70/0x71) and descriptor
// (0x72/0x73) formats reduce to the same key and additional sense code, as the
// kernel's scsi_normalize_sense does.
type Sense struct {
	ResponseCode uint8 // 0x70..0x73
	Key          SenseKey
	ASC          uint8
	ASCQ         uint8
}

// Descriptor reports whether the sense data used the descriptor format.
func (s Sense) Descriptor() bool { return s.ResponseCode&0x7e == 0x72 }

// Deferred reports whether the sense data reports a deferred error.
func (s Sense) Deferred() bool { return s.ResponseCode&1 == 1 }

// Is reports whether s carries the given additional sense code and qualifier.
func (s Sense) Is(asc, ascq uint8) bool { return s.ASC == asc && s.ASCQ == ascq }

// ReportedLUNsDataChanged reports ASC/ASCQ 3F/0E, the event that asks an initiator
// to look for added or removed LUNs.
func (s Sense) ReportedLUNsDataChanged() bool { return s.Is(0x3f, 0x0e) }

// String renders s as "UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED (3F/0E)".
func (s Sense) String() string {
	return fmt.Sprintf("%v: %s (%02X/%02X)", s.Key, ASCName(s.ASC, s.ASCQ), s.ASC, s.ASCQ)
}

// ParseSense normalises raw sense data. Fixed format needs 14 bytes for ASC/ASCQ
// and descriptor format 4; shorter fixed-format data that still covers the sense
// key is accepted with ASC/ASCQ zero, like the kernel does when the additional
// length does not reach them.
func ParseSense(b []byte) (Sense, error) {
	if len(b) == 0 {
		return Sense{}, errorf("parse sense", ErrSense, "empty")
	}
	code := b[0] & 0x7f
	s := Sense{ResponseCode: code}
	switch code {
	case 0x70, 0x71:
		if len(b) < 3 {
			return Sense{}, errorf("parse sense", ErrSense, "fixed format needs at least 3 bytes, got %d", len(b))
		}
		s.Key = SenseKey(b[2] & 0xf)
		// ASC/ASCQ count only when both the buffer and the additional sense
		// length (byte 7, bytes after byte 7) reach them.
		if len(b) >= 14 && int(b[7]) >= 6 {
			s.ASC, s.ASCQ = b[12], b[13]
		}
	case 0x72, 0x73:
		if len(b) < 4 {
			return Sense{}, errorf("parse sense", ErrSense, "descriptor format needs at least 4 bytes, got %d", len(b))
		}
		s.Key = SenseKey(b[1] & 0xf)
		s.ASC, s.ASCQ = b[2], b[3]
	default:
		return Sense{}, errorf("parse sense", ErrSense, "response code 0x%02x is not 0x70-0x73", code)
	}
	return s, nil
}

// AppendFixedSense appends 18 bytes of current fixed-format sense data.
func AppendFixedSense(dst []byte, key SenseKey, asc, ascq uint8) []byte {
	return append(dst, 0x70, 0, byte(key), 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0)
}

// AppendDescriptorSense appends 8 bytes of current descriptor-format sense data
// without descriptors.
func AppendDescriptorSense(dst []byte, key SenseKey, asc, ascq uint8) []byte {
	return append(dst, 0x72, byte(key), asc, ascq, 0, 0, 0, 0)
}

type ascKey struct{ asc, ascq uint8 }

// ascNames names the additional sense codes an initiator meets in events and
// Unit Attentions. The wildcard entries (ascq 0xff) name whole families.
var ascNames = map[ascKey]string{
	{0x00, 0x00}: "NO ADDITIONAL SENSE INFORMATION",
	{0x04, 0x00}: "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
	{0x04, 0x01}: "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
	{0x04, 0x02}: "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
	{0x04, 0x03}: "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
	{0x04, 0x0a}: "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
	{0x04, 0x0b}: "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
	{0x04, 0x0c}: "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE",
	{0x04, 0xff}: "LOGICAL UNIT NOT READY",
	{0x20, 0x00}: "INVALID COMMAND OPERATION CODE",
	{0x21, 0x00}: "LOGICAL BLOCK ADDRESS OUT OF RANGE",
	{0x24, 0x00}: "INVALID FIELD IN CDB",
	{0x25, 0x00}: "LOGICAL UNIT NOT SUPPORTED",
	{0x29, 0x00}: "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
	{0x29, 0x01}: "POWER ON OCCURRED",
	{0x29, 0x02}: "SCSI BUS RESET OCCURRED",
	{0x29, 0x03}: "BUS DEVICE RESET FUNCTION OCCURRED",
	{0x29, 0x04}: "DEVICE INTERNAL RESET",
	{0x29, 0x07}: "I_T NEXUS LOSS OCCURRED",
	{0x29, 0xff}: "POWER ON, RESET, OR BUS DEVICE RESET",
	{0x2a, 0x01}: "MODE PARAMETERS CHANGED",
	{0x2a, 0x06}: "ASYMMETRIC ACCESS STATE CHANGED",
	{0x2a, 0x09}: "CAPACITY DATA HAS CHANGED",
	{0x2a, 0xff}: "PARAMETERS CHANGED",
	{0x38, 0x07}: "THIN PROVISIONING SOFT THRESHOLD REACHED",
	{0x3f, 0x01}: "MICROCODE HAS BEEN CHANGED",
	{0x3f, 0x03}: "INQUIRY DATA HAS CHANGED",
	{0x3f, 0x0e}: "REPORTED LUNS DATA HAS CHANGED",
	{0x3f, 0xff}: "TARGET OPERATING CONDITIONS HAVE CHANGED",
}

// ASCName names an additional sense code and qualifier, falling back to the name
// of its family and then to "ASC 0xNN ASCQ 0xNN".
func ASCName(asc, ascq uint8) string {
	if n, ok := ascNames[ascKey{asc, ascq}]; ok {
		return n
	}
	if n, ok := ascNames[ascKey{asc, 0xff}]; ok {
		return n
	}
	return fmt.Sprintf("ASC 0x%02X ASCQ 0x%02X", asc, ascq)
}
