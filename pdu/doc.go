// Package pdu encodes and decodes iSCSI Protocol Data Units (RFC 7143 §11).
//
// A PDU is a 48-byte Basic Header Segment ([BHS]), optional Additional Header
// Segments, an optional header digest, a data segment padded to 4 bytes and an
// optional data digest. Each opcode has a struct ([LoginRequest], [AsyncMessage], …)
// that encodes into and decodes from a [BHS]; [Reader] and [Writer] move whole PDUs
// over a byte stream with limits and CRC32C digests.
//
// The package also holds the data-segment formats that ride in PDUs: text
// key=value segments ([ParseText]), SCSI sense data ([ParseSense]) and the Async
// Message SCSI-event payload ([ParseAsyncSCSIEvent]).
//
// Nothing here panics on outside bytes: malformed input returns an [*Error] whose
// Err is one of the Err* sentinels, so callers can test with errors.Is.
package pdu
