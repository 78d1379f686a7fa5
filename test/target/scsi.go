package target

import (
	"encoding/binary"

	"github.com/goiscsi/goiscsi/pdu"
)

// SCSI status codes (SAM-5).
const (
	statusGood           = 0x00
	statusCheckCondition = 0x02
)

// SCSI operation codes the target emulates.
const (
	opTestUnitReady   = 0x00
	opRequestSense    = 0x03
	opRead6           = 0x08
	opWrite6          = 0x0a
	opInquiry         = 0x12
	opModeSense6      = 0x1a
	opReadCapacity10  = 0x25
	opRead10          = 0x28
	opWrite10         = 0x2a
	opSyncCache10     = 0x35
	opModeSense10     = 0x5a
	opRead16          = 0x88
	opWrite16         = 0x8a
	opSyncCache16     = 0x91
	opServiceActionIn = 0x9e // READ CAPACITY (16) is service action 0x10
	opReportLUNs      = 0xa0
	opRead12          = 0xa8
	opWrite12         = 0xaa
)

const saReadCapacity16 = 0x10

// maxTransferBytes bounds one READ or WRITE; the Block Limits VPD page
// announces it, so Linux's sd splits larger requests, and it bounds the buffer
// one read allocates.
const maxTransferBytes = 8 << 20

// scsiRequest is one SCSI command as the emulation sees it.
type scsiRequest struct {
	cdb []byte
	// lu is the addressed logical unit, nil when the LUN does not exist.
	lu *logicalUnit
	// luns lists the target's LUN numbers in ascending order (REPORT LUNS).
	luns []uint64
	// takeSense returns and clears the pending Unit Attention of the LUN for
	// REQUEST SENSE, or nil.
	takeSense func() *SenseCode
	// relativePort is the relative target port identifier (the portal group
	// tag + 1, since 0 is reserved).
	relativePort uint16
}

// scsiResult is the outcome of a command.
type scsiResult struct {
	status uint8
	sense  []byte // fixed-format sense data with CHECK CONDITION
	data   []byte // Data-In
	// write is set for a command that takes data: the status comes once the
	// data has been received and written.
	write *writePlan
}

// writePlan is where the data of a WRITE goes.
type writePlan struct {
	lu     *logicalUnit
	offset int64 // byte offset of the first block
	length int64 // bytes the CDB transfers
}

// SenseCode is a sense key with its additional sense code and qualifier.
type SenseCode struct {
	Key  pdu.SenseKey `json:"key"`
	ASC  uint8        `json:"asc"`
	ASCQ uint8        `json:"ascq"`
}

func (s SenseCode) String() string {
	return pdu.Sense{ResponseCode: 0x70, Key: s.Key, ASC: s.ASC, ASCQ: s.ASCQ}.String()
}

// Sense codes the emulation reports.
var (
	senseInvalidOpcode   = SenseCode{pdu.IllegalRequest, 0x20, 0x00}
	senseLBAOutOfRange   = SenseCode{pdu.IllegalRequest, 0x21, 0x00}
	senseInvalidField    = SenseCode{pdu.IllegalRequest, 0x24, 0x00}
	senseLUNNotSupported = SenseCode{pdu.IllegalRequest, 0x25, 0x00}
	senseSavingNotSupp   = SenseCode{pdu.IllegalRequest, 0x39, 0x00}
	senseWriteProtected  = SenseCode{pdu.DataProtect, 0x27, 0x00}
	senseReadError       = SenseCode{pdu.MediumError, 0x11, 0x00}
	senseWriteError      = SenseCode{pdu.MediumError, 0x0c, 0x00}
	senseLUNsChanged     = SenseCode{pdu.UnitAttention, 0x3f, 0x0e}
	senseBusDeviceReset  = SenseCode{pdu.UnitAttention, 0x29, 0x03}
	senseNoSense         = SenseCode{pdu.NoSense, 0x00, 0x00}
)

func checkCondition(s SenseCode) scsiResult {
	return scsiResult{status: statusCheckCondition, sense: pdu.AppendFixedSense(nil, s.Key, s.ASC, s.ASCQ)}
}

func good(data []byte) scsiResult { return scsiResult{status: statusGood, data: data} }

// reportsUnitAttention reports whether a command with this opcode reports a
// pending Unit Attention instead of running: all but INQUIRY, REPORT LUNS and
// REQUEST SENSE (SAM-5 §5.14).
func reportsUnitAttention(op byte) bool {
	return op != opInquiry && op != opReportLUNs && op != opRequestSense
}

// cdbLength returns the CDB length of an opcode by its group code (SPC-4
// §4.2.5.1), 0 for the vendor-specific and reserved groups.
func cdbLength(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

// emulate runs one command.
func emulate(r *scsiRequest) scsiResult {
	op := r.cdb[0]
	if n := cdbLength(op); n == 0 || len(r.cdb) < n {
		return checkCondition(senseInvalidOpcode)
	}
	switch op {
	case opInquiry:
		return inquiry(r)
	case opReportLUNs:
		return reportLUNs(r)
	case opRequestSense:
		return requestSense(r)
	}
	if r.lu == nil {
		return checkCondition(senseLUNNotSupported)
	}
	switch op {
	case opTestUnitReady:
		return good(nil)
	case opReadCapacity10:
		return readCapacity10(r.lu)
	case opServiceActionIn:
		if r.cdb[1]&0x1f != saReadCapacity16 {
			return checkCondition(senseInvalidField)
		}
		return readCapacity16(r.lu, r.cdb)
	case opRead6, opRead10, opRead12, opRead16:
		return read(r.lu, r.cdb)
	case opWrite6, opWrite10, opWrite12, opWrite16:
		return write(r.lu, r.cdb)
	case opModeSense6, opModeSense10:
		return modeSense(r.lu, r.cdb)
	case opSyncCache10, opSyncCache16:
		return syncCache(r.lu, r.cdb)
	}
	return checkCondition(senseInvalidOpcode)
}

// truncate cuts data to the allocation length.
func truncate(data []byte, alloc int) []byte {
	if len(data) > alloc {
		return data[:alloc]
	}
	return data
}

// Standard INQUIRY strings (SPC-4 §6.6.2): ASCII, space padded.
const (
	inquiryVendor   = "GOISCSI "
	inquiryProduct  = "test target     "
	inquiryRevision = "0001"
)

// Peripheral qualifier 3 with device type 0x1f: no logical unit can be
// addressed here, what real targets return for an unmapped LUN so that a
// wildcard scan adds nothing.
const peripheralNotCapable = 0x7f

func inquiry(r *scsiRequest) scsiResult {
	alloc := int(binary.BigEndian.Uint16(r.cdb[3:5]))
	evpd, page := r.cdb[1]&0x01 != 0, r.cdb[2]
	if !evpd {
		if page != 0 {
			return checkCondition(senseInvalidField)
		}
		return good(truncate(standardInquiry(r.lu), alloc))
	}
	if r.lu == nil {
		return checkCondition(senseLUNNotSupported)
	}
	var body []byte
	switch page {
	case 0x00:
		body = []byte{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}
	case 0x80:
		body = []byte(r.lu.serial)
	case 0x83:
		body = deviceIdentification(r.lu, r.relativePort)
	case 0xb0:
		body = blockLimits(r.lu)
	case 0xb1:
		body = make([]byte, 0x3c)
		body[1] = 0x01 // medium rotation rate 1: non-rotating
	case 0xb2:
		body = make([]byte, 4) // fully provisioned, no unmap
	default:
		return checkCondition(senseInvalidField)
	}
	out := make([]byte, 4, 4+len(body))
	out[1] = page
	binary.BigEndian.PutUint16(out[2:4], uint16(len(body)))
	return good(truncate(append(out, body...), alloc))
}

func standardInquiry(lu *logicalUnit) []byte {
	b := make([]byte, 96)
	if lu == nil {
		b[0] = peripheralNotCapable
	}
	b[2] = 0x06        // SPC-4
	b[3] = 0x10 | 0x02 // HISUP, response data format 2
	b[4] = byte(len(b) - 5)
	b[7] = 0x02 // CMDQUE
	copy(b[8:16], inquiryVendor)
	copy(b[16:32], inquiryProduct)
	copy(b[32:36], inquiryRevision)
	for i := 36; i < 56; i++ {
		b[i] = ' '
	}
	// Version descriptors: SAM-5, iSCSI (no version claimed), SPC-4, SBC-3.
	for i, v := range []uint16{0x00a0, 0x0960, 0x0460, 0x04c0} {
		binary.BigEndian.PutUint16(b[58+2*i:], v)
	}
	return b
}

// deviceIdentification builds the designators of VPD page 0x83: the LUN's
// NAA identifier (what udev and multipath key devices on), a T10 vendor
// identifier, and the relative target port.
func deviceIdentification(lu *logicalUnit, relPort uint16) []byte {
	var b []byte
	// Code set 1 (binary), association 0 (logical unit), type 3 (NAA).
	b = append(b, 0x01, 0x03, 0x00, byte(len(lu.naa)))
	b = append(b, lu.naa[:]...)
	// Code set 2 (ASCII), association 0, type 1 (T10 vendor ID).
	t10 := inquiryVendor + lu.serial
	b = append(b, 0x02, 0x01, 0x00, byte(len(t10)))
	b = append(b, t10...)
	// Protocol 5 (iSCSI) with PIV, code set 1, association 1 (target port),
	// type 4 (relative target port).
	b = append(b, 0x51, 0x94, 0x00, 0x04, 0x00, 0x00, byte(relPort>>8), byte(relPort))
	return b
}

func blockLimits(lu *logicalUnit) []byte {
	b := make([]byte, 0x3c)
	maxBlocks := uint32(maxTransferBytes / lu.blockSize)
	binary.BigEndian.PutUint16(b[2:4], 1)         // optimal transfer length granularity
	binary.BigEndian.PutUint32(b[4:8], maxBlocks) // maximum transfer length
	binary.BigEndian.PutUint32(b[8:12], maxBlocks)
	return b
}

func reportLUNs(r *scsiRequest) scsiResult {
	alloc := int(binary.BigEndian.Uint32(r.cdb[6:10]))
	if alloc < 16 {
		return checkCondition(senseInvalidField)
	}
	var luns []uint64
	switch r.cdb[2] {
	case 0x00, 0x02:
		luns = r.luns
	case 0x01:
		// Well-known logical units only: this target has none.
	default:
		return checkCondition(senseInvalidField)
	}
	out := make([]byte, 8, 8+8*len(luns))
	binary.BigEndian.PutUint32(out[0:4], uint32(8*len(luns)))
	for _, n := range luns {
		l := pdu.NewLUN(n)
		out = append(out, l[:]...)
	}
	return good(truncate(out, alloc))
}

func requestSense(r *scsiRequest) scsiResult {
	alloc := int(r.cdb[4])
	desc := r.cdb[1]&0x01 != 0
	s := senseNoSense
	switch {
	case r.lu == nil:
		s = senseLUNNotSupported
	case r.takeSense != nil:
		if ua := r.takeSense(); ua != nil {
			s = *ua
		}
	}
	var data []byte
	if desc {
		data = pdu.AppendDescriptorSense(nil, s.Key, s.ASC, s.ASCQ)
	} else {
		data = pdu.AppendFixedSense(nil, s.Key, s.ASC, s.ASCQ)
	}
	return good(truncate(data, alloc))
}

func readCapacity10(lu *logicalUnit) scsiResult {
	b := make([]byte, 8)
	last := lu.blocks - 1
	if last > 0xfffffffe {
		last = 0xffffffff // too large: READ CAPACITY (16) tells
	}
	binary.BigEndian.PutUint32(b[0:4], uint32(last))
	binary.BigEndian.PutUint32(b[4:8], uint32(lu.blockSize))
	return good(b)
}

func readCapacity16(lu *logicalUnit, cdb []byte) scsiResult {
	alloc := int(binary.BigEndian.Uint32(cdb[10:14]))
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b[0:8], lu.blocks-1)
	binary.BigEndian.PutUint32(b[8:12], uint32(lu.blockSize))
	return good(truncate(b, alloc))
}

// blockRange decodes the LBA and transfer length of a READ or WRITE CDB and
// whether a protection field is set.
func blockRange(cdb []byte) (lba uint64, blocks uint32, protect bool) {
	switch cdb[0] {
	case opRead6, opWrite6:
		lba = uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		blocks = uint32(cdb[4])
		if blocks == 0 {
			blocks = 256 // a 6-byte CDB's 0 means 256 blocks
		}
		return lba, blocks, false
	case opRead10, opWrite10:
		return uint64(binary.BigEndian.Uint32(cdb[2:6])), uint32(binary.BigEndian.Uint16(cdb[7:9])), cdb[1]&0xe0 != 0
	case opRead12, opWrite12:
		return uint64(binary.BigEndian.Uint32(cdb[2:6])), binary.BigEndian.Uint32(cdb[6:10]), cdb[1]&0xe0 != 0
	default: // 16-byte
		return binary.BigEndian.Uint64(cdb[2:10]), binary.BigEndian.Uint32(cdb[10:14]), cdb[1]&0xe0 != 0
	}
}

// checkRange validates a block range against the LU and the transfer limit.
func checkRange(lu *logicalUnit, lba uint64, blocks uint32, protect bool) *SenseCode {
	switch {
	case protect:
		// No protection information: RDPROTECT/WRPROTECT must be 0 (SBC-3).
		return &senseInvalidField
	case lba > lu.blocks || uint64(blocks) > lu.blocks-lba:
		return &senseLBAOutOfRange
	case int64(blocks)*int64(lu.blockSize) > maxTransferBytes:
		return &senseInvalidField
	}
	return nil
}

func read(lu *logicalUnit, cdb []byte) scsiResult {
	lba, blocks, protect := blockRange(cdb)
	if s := checkRange(lu, lba, blocks, protect); s != nil {
		return checkCondition(*s)
	}
	data := make([]byte, int(blocks)*lu.blockSize)
	if err := lu.readAt(data, int64(lba)*int64(lu.blockSize)); err != nil {
		return checkCondition(senseReadError)
	}
	return good(data)
}

func write(lu *logicalUnit, cdb []byte) scsiResult {
	lba, blocks, protect := blockRange(cdb)
	if s := checkRange(lu, lba, blocks, protect); s != nil {
		return checkCondition(*s)
	}
	if lu.readOnly {
		return checkCondition(senseWriteProtected)
	}
	if blocks == 0 {
		return good(nil)
	}
	return scsiResult{status: statusGood, write: &writePlan{
		lu: lu, offset: int64(lba) * int64(lu.blockSize), length: int64(blocks) * int64(lu.blockSize),
	}}
}

func syncCache(lu *logicalUnit, cdb []byte) scsiResult {
	var lba uint64
	var blocks uint32
	if cdb[0] == opSyncCache10 {
		lba, blocks = uint64(binary.BigEndian.Uint32(cdb[2:6])), uint32(binary.BigEndian.Uint16(cdb[7:9]))
	} else {
		lba, blocks = binary.BigEndian.Uint64(cdb[2:10]), binary.BigEndian.Uint32(cdb[10:14])
	}
	if lba > lu.blocks || uint64(blocks) > lu.blocks-lba {
		return checkCondition(senseLBAOutOfRange)
	}
	if err := lu.sync(); err != nil {
		return checkCondition(senseWriteError)
	}
	return good(nil)
}

// Mode pages (SBC-3 §6.5): caching and control, plus the all-pages code.
const (
	modePageCaching = 0x08
	modePageControl = 0x0a
	modePageAll     = 0x3f
)

// modePage returns a page's current values, or its changeable-values mask
// (all zero: nothing can be changed).
func modePage(code byte, changeable bool) []byte {
	var b []byte
	switch code {
	case modePageCaching:
		b = make([]byte, 20)
		b[0], b[1] = modePageCaching, 18
		if !changeable {
			b[2] = 0x04 // WCE: writes are cached until SYNCHRONIZE CACHE
		}
	case modePageControl:
		b = make([]byte, 12)
		b[0], b[1] = modePageControl, 10
		if !changeable {
			b[3] = 0x10 // queue algorithm modifier 1: unrestricted reordering
		}
	}
	return b
}

func modeSense(lu *logicalUnit, cdb []byte) scsiResult {
	ten := cdb[0] == opModeSense10
	dbd := cdb[1]&0x08 != 0
	llbaa := ten && cdb[1]&0x10 != 0
	pc, page, subpage := cdb[2]>>6, cdb[2]&0x3f, cdb[3]
	alloc := int(cdb[4])
	if ten {
		alloc = int(binary.BigEndian.Uint16(cdb[7:9]))
	}
	if pc == 3 {
		return checkCondition(senseSavingNotSupp)
	}
	var pages []byte
	switch {
	case page == modePageAll && (subpage == 0 || subpage == 0xff):
		pages = append(modePage(modePageCaching, pc == 1), modePage(modePageControl, pc == 1)...)
	case (page == modePageCaching || page == modePageControl) && subpage == 0:
		pages = modePage(page, pc == 1)
	default:
		return checkCondition(senseInvalidField)
	}
	var desc []byte
	if !dbd {
		if llbaa {
			desc = make([]byte, 16)
			binary.BigEndian.PutUint64(desc[0:8], lu.blocks)
			binary.BigEndian.PutUint32(desc[12:16], uint32(lu.blockSize))
		} else {
			desc = make([]byte, 8)
			n := lu.blocks
			if n > 0xffffffff {
				n = 0xffffffff
			}
			binary.BigEndian.PutUint32(desc[0:4], uint32(n))
			binary.BigEndian.PutUint32(desc[4:8], uint32(lu.blockSize)) // byte 4 is reserved and stays 0
		}
	}
	var deviceSpecific byte = 0x10 // DPOFUA
	if lu.readOnly {
		deviceSpecific |= 0x80 // WP
	}
	var out []byte
	if ten {
		out = make([]byte, 8)
		out[3] = deviceSpecific
		if llbaa && !dbd {
			out[4] = 0x01 // LONGLBA
		}
		binary.BigEndian.PutUint16(out[6:8], uint16(len(desc)))
		out = append(append(out, desc...), pages...)
		binary.BigEndian.PutUint16(out[0:2], uint16(len(out)-2))
	} else {
		out = make([]byte, 4)
		out[2], out[3] = deviceSpecific, byte(len(desc))
		out = append(append(out, desc...), pages...)
		out[0] = byte(len(out) - 1)
	}
	return good(truncate(out, alloc))
}
