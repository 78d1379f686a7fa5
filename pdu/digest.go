package pdu

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// castagnoli returns the CRC32C table (generator 0x1EDC6F41) of iSCSI digests
// (§13.1). Made on first use, not at package init: building it took 10 ms of
// every goiscsiadm command's start under qemu TCG, and most never digest.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// CRC32C returns the iSCSI digest of the concatenated segments. Data-segment
// padding is part of what a data digest covers, so callers include it.
func CRC32C(segments ...[]byte) uint32 {
	var c uint32
	for _, s := range segments {
		c = crc32.Update(c, castagnoli(), s)
	}
	return c
}

// AppendDigest appends d as it goes on the wire: least-significant byte first,
// as Linux and libiscsi send it.
func AppendDigest(dst []byte, d uint32) []byte { return binary.LittleEndian.AppendUint32(dst, d) }

// digestFrom reads a wire digest.
func digestFrom(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
