package session

import "strconv"

// iSER (RFC 7145) changes what a Normal session's login negotiates: the
// initiator asks for RDMAExtensions=Yes and declares
// InitiatorRecvDataSegmentLength (what it receives in one control-type PDU)
// and TargetRecvDataSegmentLength (what it will let the target receive)
// instead of MaxRecvDataSegmentLength, which is irrelevant once the data
// moves by RDMA; it offers no digests (iSER has none; ib_iser refuses them).
// That is what open-iscsi 2.1.8 sends for its iser transport, whose
// TargetRecvDataSegmentLength is node.conn[0].iscsi.MaxXmitDataSegmentLength,
// 8192 when that is 0. A Discovery session over iSER negotiates as over TCP
// (RFC 7145 §5.1.2: RDMAExtensions is for Normal sessions).

// rdmaKeys are the operational keys of a Normal session over iSER, in the
// order the initiator proposes them.
var rdmaKeys = []string{
	"DefaultTime2Wait", "DefaultTime2Retain", "ErrorRecoveryLevel", "InitialR2T",
	"ImmediateData", "MaxBurstLength", "FirstBurstLength", "MaxOutstandingR2T",
	"MaxConnections", "DataPDUInOrder", "DataSequenceInOrder",
	"InitiatorRecvDataSegmentLength", "TargetRecvDataSegmentLength", "RDMAExtensions",
}

func init() {
	for _, k := range []keyDef{
		{name: "RDMAExtensions", result: and, def: "No", notInDiscovery: true},
		{name: "InitiatorRecvDataSegmentLength", result: declarative, numeric: true, def: "8192", min: 512, max: maxDataSegment, notInDiscovery: true},
		{name: "TargetRecvDataSegmentLength", result: declarative, numeric: true, def: "8192", min: 512, max: maxDataSegment, notInDiscovery: true},
	} {
		keyDefs[k.name] = &k
	}
}

// rdmaXmit is the TargetRecvDataSegmentLength an iSER initiator declares.
func (o Operational) rdmaXmit() uint32 {
	if o.MaxXmitDataSegmentLength == 0 {
		return 8192
	}
	return o.MaxXmitDataSegmentLength
}

// rdmaWishes adds the iSER keys to the negotiator's values.
func (o Operational) rdmaWishes(w map[string]string) {
	w["RDMAExtensions"] = "Yes"
	w["InitiatorRecvDataSegmentLength"] = strconv.FormatUint(uint64(o.MaxRecvDataSegmentLength), 10)
	w["TargetRecvDataSegmentLength"] = strconv.FormatUint(uint64(o.rdmaXmit()), 10)
}

// rdmaParams sets the data segment lengths of an iSER login's outcome: each
// side's declaration bounded by the other's, and checks that the target
// agreed to iSER.
func rdmaParams(n *Negotiator, o Operational, p *Params) error {
	if n.Result("RDMAExtensions") != "Yes" {
		return &ProtocolError{Reason: "login negotiation failed: the target must support RDMAExtensions"}
	}
	peer := func(key string, v uint32) uint32 {
		if s, ok := n.Peer(key); ok {
			x, _ := strconv.ParseUint(s, 10, 32)
			return min(v, uint32(x))
		}
		return v
	}
	p.MaxRecvDataSegmentLength = peer("InitiatorRecvDataSegmentLength", o.MaxRecvDataSegmentLength)
	p.MaxXmitDataSegmentLength = peer("TargetRecvDataSegmentLength", o.rdmaXmit())
	p.HeaderDigest, p.DataDigest = false, false
	return nil
}
