package isns

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// HeaderLen is the size of the iSNSP PDU header (RFC 4171 §5.1).
const HeaderLen = 12

// Version is the only iSNSP version RFC 4171 defines.
const Version = 1

// DefaultPort is the IANA-assigned iSNS TCP and UDP port.
const DefaultPort = 3205

// MaxPDUPayload is the largest PDU payload the 16-bit PDU Length field can
// describe while keeping the payload a multiple of 4 bytes.
const MaxPDUPayload = 65532

// Function is the iSNSP Function ID (RFC 4171 §5.1.3). A response carries the
// request's function with the high bit (0x8000) set.
type Function uint16

// Function IDs of RFC 4171 §5.1.3 (requests; responses are f | 0x8000).
const (
	DevAttrReg Function = 0x0001 // Device Attribute Registration
	DevAttrQry Function = 0x0002 // Device Attribute Query
	DevGetNext Function = 0x0003 // Device Get Next
	DevDereg   Function = 0x0004 // Device Deregistration
	SCNReg     Function = 0x0005 // State Change Notification Registration
	SCNDereg   Function = 0x0006 // SCN Deregistration
	SCNEvent   Function = 0x0007 // SCN Event (from a client)
	SCN        Function = 0x0008 // State Change Notification (from the server)
	DDReg      Function = 0x0009 // Discovery Domain Registration
	DDDereg    Function = 0x000A // Discovery Domain Deregistration
	DDSReg     Function = 0x000B // DD Set Registration
	DDSDereg   Function = 0x000C // DD Set Deregistration
	ESI        Function = 0x000D // Entity Status Inquiry (from the server)
	Heartbeat  Function = 0x000E // Name Service Heartbeat
	RqstDomID  Function = 0x0011 // Request FC_DOMAIN_ID
	RlseDomID  Function = 0x0012 // Release FC_DOMAIN_ID
	GetDomID   Function = 0x0013 // Get FC_DOMAIN_IDs

	// ResponseBit marks a response function ID.
	ResponseBit Function = 0x8000
)

var functionNames = map[Function]string{
	DevAttrReg: "DevAttrReg", DevAttrQry: "DevAttrQry", DevGetNext: "DevGetNext",
	DevDereg: "DevDereg", SCNReg: "SCNReg", SCNDereg: "SCNDereg", SCNEvent: "SCNEvent",
	SCN: "SCN", DDReg: "DDReg", DDDereg: "DDDereg", DDSReg: "DDSReg", DDSDereg: "DDSDereg",
	ESI: "ESI", Heartbeat: "Heartbeat", RqstDomID: "RqstDomId", RlseDomID: "RlseDomId",
	GetDomID: "GetDomId",
}

// IsResponse reports whether f is a response function ID.
func (f Function) IsResponse() bool { return f&ResponseBit != 0 }

// Response returns the response function ID for request f.
func (f Function) Response() Function { return f | ResponseBit }

// Request returns the request function ID f answers (f itself for a request).
func (f Function) Request() Function { return f &^ ResponseBit }

// String returns the RFC's name, e.g. "DevAttrQry" or "DevAttrQryRsp".
func (f Function) String() string {
	n, ok := functionNames[f.Request()]
	if !ok {
		n = fmt.Sprintf("function 0x%04x", uint16(f.Request()))
	}
	if f.IsResponse() {
		return n + "Rsp"
	}
	return n
}

// Flags is the iSNSP header's flags field (RFC 4171 §5.1.4).
type Flags uint16

// Header flags.
const (
	FlagClient   Flags = 0x8000 // sender is the iSNS client
	FlagServer   Flags = 0x4000 // sender is the iSNS server
	FlagAuth     Flags = 0x2000 // an authentication block follows the payload
	FlagReplace  Flags = 0x1000 // DevAttrReg: replace the registered objects
	FlagLastPDU  Flags = 0x0800 // last PDU of the message
	FlagFirstPDU Flags = 0x0400 // first PDU of the message
)

// String lists the set flags, e.g. "client|first|last".
func (f Flags) String() string {
	var parts []string
	for _, x := range []struct {
		f Flags
		n string
	}{{FlagClient, "client"}, {FlagServer, "server"}, {FlagAuth, "auth"}, {FlagReplace, "replace"}, {FlagFirstPDU, "first"}, {FlagLastPDU, "last"}} {
		if f&x.f != 0 {
			parts = append(parts, x.n)
		}
	}
	if rest := f &^ (FlagClient | FlagServer | FlagAuth | FlagReplace | FlagFirstPDU | FlagLastPDU); rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%04x", uint16(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Header is the 12-byte iSNSP PDU header. Length is the PDU payload length in
// bytes (the header not included).
type Header struct {
	Version  uint16
	Function Function
	Length   uint16
	Flags    Flags
	XID      uint16 // transaction ID: a response carries its request's
	Seq      uint16 // sequence ID: 0 for a message's first PDU, then +1 per PDU
}

// DecodeHeader decodes the header at the start of b. It checks the version
// and that the PDU is not an authenticated one (this package does not
// implement iSNS authentication blocks, and skipping one safely needs its
// length, so such PDUs are refused).
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errorf("decode header", ErrTruncated, "%d bytes, need %d", len(b), HeaderLen)
	}
	h := Header{
		Version:  binary.BigEndian.Uint16(b[0:]),
		Function: Function(binary.BigEndian.Uint16(b[2:])),
		Length:   binary.BigEndian.Uint16(b[4:]),
		Flags:    Flags(binary.BigEndian.Uint16(b[6:])),
		XID:      binary.BigEndian.Uint16(b[8:]),
		Seq:      binary.BigEndian.Uint16(b[10:]),
	}
	if h.Version != Version {
		return h, errorf("decode header", ErrVersion, "version %d (function 0x%04x, length %d)", h.Version, uint16(h.Function), h.Length)
	}
	if h.Flags&FlagAuth != 0 {
		return h, errorf("decode header", ErrField, "%v xid %d carries an authentication block, which is not supported", h.Function, h.XID)
	}
	return h, nil
}

// Append appends the encoded header to b.
func (h Header) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(h.Function))
	b = binary.BigEndian.AppendUint16(b, h.Length)
	b = binary.BigEndian.AppendUint16(b, uint16(h.Flags))
	b = binary.BigEndian.AppendUint16(b, h.XID)
	return binary.BigEndian.AppendUint16(b, h.Seq)
}

func (h Header) String() string {
	return fmt.Sprintf("%v xid=%d seq=%d len=%d flags=%v", h.Function, h.XID, h.Seq, h.Length, h.Flags)
}
