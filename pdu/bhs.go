package pdu

import (
	"encoding/binary"
	"fmt"
)

// BHSLength is the size of the Basic Header Segment.
const BHSLength = 48

// ReservedTag is the Initiator/Target Task Tag value that means "no task"
// (RFC 7143 §11.2.1.8): target-originated NOP-In pings, Async Messages and Rejects
// carry it, and a NOP-Out answering a target ping does too.
const ReservedTag uint32 = 0xffffffff

// MaxDataSegmentLength is the largest DataSegmentLength the 24-bit field can carry.
const MaxDataSegmentLength = 1<<24 - 1

// BHS is a Basic Header Segment as it is on the wire (big-endian fields).
// The accessors read the fields every opcode shares; the opcode structs
// ([LoginRequest], [SCSIResponse], …) encode and decode the rest.
type BHS [BHSLength]byte

// Opcode returns the operation code (byte 0, bits 5–0).
func (b *BHS) Opcode() Opcode { return Opcode(b[0] & 0x3f) }

// Immediate reports the I bit (byte 0, bit 6): deliver without CmdSN ordering.
func (b *BHS) Immediate() bool { return b[0]&0x40 != 0 }

// Final reports the F bit (byte 1, bit 7).
func (b *BHS) Final() bool { return b[1]&0x80 != 0 }

// TotalAHSLength returns the length of the Additional Header Segments in bytes.
func (b *BHS) TotalAHSLength() int { return int(b[4]) * 4 }

// DataSegmentLength returns the data segment length in bytes, without padding.
func (b *BHS) DataSegmentLength() int {
	return int(b[5])<<16 | int(b[6])<<8 | int(b[7])
}

// SetLengths stores TotalAHSLength (ahs must be a multiple of 4 and at most
// 1020) and the 24-bit DataSegmentLength.
func (b *BHS) SetLengths(ahs, data int) error {
	if ahs%4 != 0 || ahs > 255*4 || ahs < 0 {
		return errorf("encode BHS", ErrBadAHS, "AHS length %d is not a multiple of 4 up to 1020", ahs)
	}
	if data < 0 || data > MaxDataSegmentLength {
		return errorf("encode BHS", ErrTooLong, "data segment %d bytes, limit %d", data, MaxDataSegmentLength)
	}
	b[4] = byte(ahs / 4)
	b[5], b[6], b[7] = byte(data>>16), byte(data>>8), byte(data)
	return nil
}

// ITT returns the Initiator Task Tag (bytes 16–19).
func (b *BHS) ITT() uint32 { return binary.BigEndian.Uint32(b[16:]) }

// String summarises the header for logs: opcode, flags, ITT and lengths.
func (b *BHS) String() string {
	return fmt.Sprintf("%v flags=0x%02x itt=0x%08x ahs=%d data=%d",
		b.Opcode(), b[1], b.ITT(), b.TotalAHSLength(), b.DataSegmentLength())
}

// Message is implemented by every opcode struct: it encodes into and decodes from a
// BHS, symmetrically. Encode does not touch TotalAHSLength or DataSegmentLength,
// which describe the segments around the header ([Writer] sets them); Decode fails
// with ErrOpcode when the header belongs to another opcode.
type Message interface {
	Opcode() Opcode
	Encode(b *BHS)
	Decode(b *BHS) error
}

// start clears b and writes byte 0 (opcode, I bit) and byte 1.
func start(b *BHS, op Opcode, immediate bool, flags byte) {
	lengths := [4]byte{b[4], b[5], b[6], b[7]}
	*b = BHS{}
	b[0] = byte(op)
	if immediate {
		b[0] |= 0x40
	}
	b[1] = flags
	copy(b[4:8], lengths[:])
}

func check(b *BHS, op Opcode) error {
	if got := b.Opcode(); got != op {
		return errorf("decode "+op.String(), ErrOpcode, "got %v", got)
	}
	return nil
}

func u32(b *BHS, off int) uint32      { return binary.BigEndian.Uint32(b[off:]) }
func u16(b *BHS, off int) uint16      { return binary.BigEndian.Uint16(b[off:]) }
func put32(b *BHS, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func put16(b *BHS, off int, v uint16) { binary.BigEndian.PutUint16(b[off:], v) }
func flag(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

// LUN is the 8-byte SAM logical unit number as carried in PDUs.
type LUN [8]byte

// NewLUN encodes a Linux LUN number as the 8-byte SAM structure, the way the kernel
// does (int_to_scsilun): each 16-bit level of n, lowest first, goes big-endian into
// the next two bytes. Numbers below 256 come out as peripheral device addressing,
// which is also what LIO puts in REPORT LUNS.
func NewLUN(n uint64) LUN {
	var l LUN
	for i := 0; i < 8; i += 2 {
		l[i] = byte(n >> 8)
		l[i+1] = byte(n)
		n >>= 16
	}
	return l
}

// Number returns the Linux LUN number of l (scsilun_to_int), the L of H:C:T:L and
// what the sysfs scan file takes. A flat-space LUN 256 (0x41 0x00) is 16640 there.
func (l LUN) Number() uint64 {
	var n uint64
	for i := 0; i < 8; i += 2 {
		n |= (uint64(l[i])<<8 | uint64(l[i+1])) << (uint(i) * 8)
	}
	return n
}

func (l LUN) String() string { return fmt.Sprintf("%d", l.Number()) }
