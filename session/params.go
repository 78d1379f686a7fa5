package session

import (
	"strconv"
)

// Operational is what the initiator asks for in LoginOperationalNegotiation, taken
// from the node record (node.session.iscsi.* and node.conn[0].iscsi.*).
type Operational struct {
	HeaderDigest             string // None, CRC32C, "CRC32C,None" or "None,CRC32C"
	DataDigest               string
	MaxRecvDataSegmentLength uint32
	// MaxXmitDataSegmentLength caps what this side sends; 0 means the
	// target's MaxRecvDataSegmentLength alone decides.
	MaxXmitDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	InitialR2T               bool
	ImmediateData            bool
	MaxOutstandingR2T        uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
}

// DefaultOperational returns the values of the iscsid.conf open-iscsi ships, which
// node records inherit unless changed.
func DefaultOperational() Operational {
	return Operational{
		HeaderDigest:             "None",
		DataDigest:               "None",
		MaxRecvDataSegmentLength: 262144,
		MaxBurstLength:           16776192,
		FirstBurstLength:         262144,
		InitialR2T:               false,
		ImmediateData:            true,
		MaxOutstandingR2T:        1,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       0,
	}
}

// operationalKeys is the order in which the initiator proposes operational keys.
var operationalKeys = []string{
	"HeaderDigest", "DataDigest", "DefaultTime2Wait", "DefaultTime2Retain",
	"ErrorRecoveryLevel", "InitialR2T", "ImmediateData", "MaxBurstLength",
	"FirstBurstLength", "MaxOutstandingR2T", "MaxConnections", "DataPDUInOrder",
	"DataSequenceInOrder", "MaxRecvDataSegmentLength",
}

// discoveryKeys are the operational keys that apply to a Discovery session.
var discoveryKeys = []string{
	"HeaderDigest", "DataDigest", "DefaultTime2Wait", "DefaultTime2Retain",
	"ErrorRecoveryLevel", "MaxRecvDataSegmentLength",
}

// wishes turns o into negotiator values. The kernel's iscsi_tcp supports only
// error recovery level 0 and one connection per session, so those are fixed.
func (o Operational) wishes() map[string]string {
	yesNo := func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	first := min(o.FirstBurstLength, o.MaxBurstLength) // FirstBurstLength must not exceed MaxBurstLength
	return map[string]string{
		"HeaderDigest":             digestList(o.HeaderDigest),
		"DataDigest":               digestList(o.DataDigest),
		"DefaultTime2Wait":         u(o.DefaultTime2Wait),
		"DefaultTime2Retain":       u(o.DefaultTime2Retain),
		"ErrorRecoveryLevel":       "0",
		"InitialR2T":               yesNo(o.InitialR2T),
		"ImmediateData":            yesNo(o.ImmediateData),
		"MaxBurstLength":           u(o.MaxBurstLength),
		"FirstBurstLength":         u(first),
		"MaxOutstandingR2T":        u(o.MaxOutstandingR2T),
		"MaxConnections":           "1",
		"DataPDUInOrder":           "Yes",
		"DataSequenceInOrder":      "Yes",
		"MaxRecvDataSegmentLength": u(o.MaxRecvDataSegmentLength),
	}
}

func digestList(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

// Params are the outcome of a login: what the kernel is told with SET_PARAM and
// what `iscsiadm -m session -P 2` shows as negotiated.
type Params struct {
	HeaderDigest             bool // CRC32C header digests
	DataDigest               bool // CRC32C data digests
	MaxRecvDataSegmentLength uint32
	MaxXmitDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	InitialR2T               bool
	ImmediateData            bool
	MaxOutstandingR2T        uint32
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	ErrorRecoveryLevel       uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
	MaxConnections           uint32
	// TargetPortalGroupTag is -1 when the target did not declare one
	// (Discovery sessions).
	TargetPortalGroupTag int
	TargetAlias          string
}

// params collects the outcome of n for a session that asked for o.
func params(n *Negotiator, o Operational) Params {
	num := func(key string) uint32 {
		v, _ := strconv.ParseUint(n.Result(key), 10, 32)
		return uint32(v)
	}
	p := Params{
		HeaderDigest:             n.Result("HeaderDigest") == "CRC32C",
		DataDigest:               n.Result("DataDigest") == "CRC32C",
		MaxRecvDataSegmentLength: o.MaxRecvDataSegmentLength,
		MaxBurstLength:           num("MaxBurstLength"),
		FirstBurstLength:         num("FirstBurstLength"),
		InitialR2T:               n.Result("InitialR2T") == "Yes",
		ImmediateData:            n.Result("ImmediateData") == "Yes",
		MaxOutstandingR2T:        num("MaxOutstandingR2T"),
		DataPDUInOrder:           n.Result("DataPDUInOrder") == "Yes",
		DataSequenceInOrder:      n.Result("DataSequenceInOrder") == "Yes",
		ErrorRecoveryLevel:       num("ErrorRecoveryLevel"),
		DefaultTime2Wait:         num("DefaultTime2Wait"),
		DefaultTime2Retain:       num("DefaultTime2Retain"),
		MaxConnections:           num("MaxConnections"),
		TargetPortalGroupTag:     -1,
	}
	// The target's MaxRecvDataSegmentLength bounds what we send; without a
	// declaration the RFC default of 8192 applies.
	xmit := uint32(8192)
	if v, ok := n.Peer("MaxRecvDataSegmentLength"); ok {
		x, _ := strconv.ParseUint(v, 10, 32)
		xmit = uint32(x)
	}
	if o.MaxXmitDataSegmentLength != 0 {
		xmit = min(xmit, o.MaxXmitDataSegmentLength)
	}
	p.MaxXmitDataSegmentLength = xmit
	if v, ok := n.Peer("TargetPortalGroupTag"); ok {
		t, _ := strconv.Atoi(v)
		p.TargetPortalGroupTag = t
	}
	p.TargetAlias, _ = n.Peer("TargetAlias")
	return p
}
