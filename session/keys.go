package session

// resultFunc is how a negotiated key's outcome is computed (RFC 7143 §6.2).
type resultFunc int

const (
	declarative resultFunc = iota // each side declares; nothing to agree on
	listChoice                    // responder picks the first acceptable value of the originator's list
	minimum                       // numerical: the smaller value
	maximum                       // numerical: the larger value
	and                           // boolean: Yes only if both say Yes
	or                            // boolean: Yes if either says Yes
)

// keyDef describes one text key of RFC 7143 §13.
type keyDef struct {
	name     string
	result   resultFunc
	numeric  bool   // value is a number (declaratives too, e.g. MaxRecvDataSegmentLength)
	def      string // default value, "" if none
	min, max uint64 // admissible range of numeric values
	// notInDiscovery: session-wide keys that are Irrelevant in a Discovery
	// session; a responder answers Irrelevant to them there.
	notInDiscovery bool
	// obsolete: RFC 3720 keys that RFC 7143 obsoletes (markers); never offered,
	// answered with the value that disables them.
	obsolete bool
}

// maxDataSegment is the upper bound of data segment and burst lengths (2^24-1).
const maxDataSegment = 1<<24 - 1

var keyDefs = map[string]*keyDef{}

func init() {
	for _, k := range []keyDef{
		{name: "HeaderDigest", result: listChoice, def: "None"},
		{name: "DataDigest", result: listChoice, def: "None"},
		{name: "MaxConnections", result: minimum, numeric: true, def: "1", min: 1, max: 65535, notInDiscovery: true},
		{name: "TargetName", result: declarative},
		{name: "InitiatorName", result: declarative},
		{name: "TargetAlias", result: declarative},
		{name: "InitiatorAlias", result: declarative},
		{name: "TargetAddress", result: declarative},
		{name: "TargetPortalGroupTag", result: declarative, numeric: true, min: 0, max: 65535},
		{name: "InitialR2T", result: or, def: "Yes", notInDiscovery: true},
		{name: "ImmediateData", result: and, def: "Yes", notInDiscovery: true},
		{name: "MaxRecvDataSegmentLength", result: declarative, numeric: true, def: "8192", min: 512, max: maxDataSegment},
		{name: "MaxBurstLength", result: minimum, numeric: true, def: "262144", min: 512, max: maxDataSegment, notInDiscovery: true},
		{name: "FirstBurstLength", result: minimum, numeric: true, def: "65536", min: 512, max: maxDataSegment, notInDiscovery: true},
		{name: "DefaultTime2Wait", result: maximum, numeric: true, def: "2", min: 0, max: 3600},
		{name: "DefaultTime2Retain", result: minimum, numeric: true, def: "20", min: 0, max: 3600},
		{name: "MaxOutstandingR2T", result: minimum, numeric: true, def: "1", min: 1, max: 65535, notInDiscovery: true},
		{name: "DataPDUInOrder", result: or, def: "Yes", notInDiscovery: true},
		{name: "DataSequenceInOrder", result: or, def: "Yes", notInDiscovery: true},
		{name: "ErrorRecoveryLevel", result: minimum, numeric: true, def: "0", min: 0, max: 2},
		{name: "SessionType", result: declarative, def: "Normal"},
		{name: "TaskReporting", result: listChoice, def: "RFC3720"},
		{name: "iSCSIProtocolLevel", result: minimum, numeric: true, def: "0", min: 0, max: 31},
		{name: "IFMarker", result: and, def: "No", obsolete: true},
		{name: "OFMarker", result: and, def: "No", obsolete: true},
		{name: "AuthMethod", result: listChoice, def: "None"},
	} {
		keyDefs[k.name] = &k
	}
}

// KeyRange returns the admissible values of a numerical key of RFC 7143 §13
// (MaxBurstLength: 512..16777215); ok is false for other keys.
func KeyRange(key string) (lo, hi uint64, ok bool) {
	def := keyDefs[key]
	if def == nil || !def.numeric {
		return 0, 0, false
	}
	return def.min, def.max, true
}

// Reserved values with a meaning of their own (RFC 7143 §6.2).
const (
	valueReject        = "Reject"
	valueIrrelevant    = "Irrelevant"
	valueNotUnderstood = "NotUnderstood"
)
