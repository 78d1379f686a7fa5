package pdu

import (
	"encoding/binary"
	"hash/crc32"
)

// castagnoli is the CRC32C table (generator 0x1EDC6F41) of iSCSI digests (§13.1).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the iSCSI digest of the concatenated segments. Data-segment
// padding is part of what a data digest covers, so callers include it.
func CRC32C(segments ...[]byte) uint32 {
	var c uint32
	for _, s := range segments {
		c = crc32.Update(c, castagnoli, s)
	}
	return c
}

// AppendDigest appends d as it goes on the wire: least-significant byte first,
// as Linux and libiscsi send it.
func AppendDigest(dst []byte, d uint32) []byte { return binary.LittleEndian.AppendUint32(dst, d) }

// digestFrom reads a wire digest.
func digestFrom(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
