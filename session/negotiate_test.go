package session

import (
	"errors"
	"reflect"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

// The target side of the negotiator answers an initiator's proposals with the
// result functions of RFC 7143 §13.
func TestNegotiatorResponder(t *testing.T) {
	target := map[string]string{
		"HeaderDigest": "CRC32C,None", "DataDigest": "None", "MaxBurstLength": "262144",
		"FirstBurstLength": "65536", "DefaultTime2Wait": "2", "DefaultTime2Retain": "20",
		"InitialR2T": "Yes", "ImmediateData": "Yes", "MaxOutstandingR2T": "1", "ErrorRecoveryLevel": "0",
		"MaxConnections": "1", "DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes",
	}
	tests := []struct {
		name      string
		discovery bool
		in        pdu.KeyValue
		want      *pdu.KeyValue
		result    string
	}{
		{"list picks first acceptable", false, kv("HeaderDigest", "None,CRC32C"), kvp("HeaderDigest", "None"), "None"},
		{"list none acceptable", false, kv("DataDigest", "CRC32C"), kvp("DataDigest", "Reject"), "None"},
		{"minimum", false, kv("MaxBurstLength", "16776192"), kvp("MaxBurstLength", "262144"), "262144"},
		{"minimum in hex", false, kv("FirstBurstLength", "0x1000"), kvp("FirstBurstLength", "4096"), "4096"},
		{"maximum", false, kv("DefaultTime2Wait", "0"), kvp("DefaultTime2Wait", "2"), "2"},
		{"OR with Yes needs no answer", false, kv("InitialR2T", "Yes"), nil, "Yes"},
		{"OR with No", false, kv("InitialR2T", "No"), kvp("InitialR2T", "Yes"), "Yes"},
		{"AND with No needs no answer", false, kv("ImmediateData", "No"), nil, "No"},
		{"AND with Yes", false, kv("ImmediateData", "Yes"), kvp("ImmediateData", "Yes"), "Yes"},
		{"obsolete marker", false, kv("IFMarker", "Yes"), kvp("IFMarker", "No"), "No"},
		{"unknown key", false, kv("X-com.example.Foo", "1"), kvp("X-com.example.Foo", "NotUnderstood"), ""},
		{"unknown key not understood either", false, kv("X-com.example.Foo", "NotUnderstood"), nil, ""},
		{"irrelevant in discovery", true, kv("MaxBurstLength", "1024"), kvp("MaxBurstLength", "Irrelevant"), "262144"},
		{"declaration", false, kv("MaxRecvDataSegmentLength", "65536"), nil, "8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNegotiator(TargetRole, tt.discovery, target)
			answers, err := n.Handle([]pdu.KeyValue{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			var got *pdu.KeyValue
			if len(answers) > 0 {
				got = &answers[0]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer %v, want %v", got, tt.want)
			}
			if tt.result != "" && n.Result(tt.in.Key) != tt.result && !tt.discovery {
				t.Errorf("result %q, want %q", n.Result(tt.in.Key), tt.result)
			}
		})
	}
}

func TestNegotiatorResponderErrors(t *testing.T) {
	for _, pair := range []pdu.KeyValue{
		kv("MaxBurstLength", "100"),         // below 512
		kv("DefaultTime2Wait", "3601"),      // above 3600
		kv("ErrorRecoveryLevel", "x"),       // not a number
		kv("InitialR2T", "Maybe"),           // not boolean
		kv("TargetPortalGroupTag", "70000"), // above 65535
	} {
		n := NewNegotiator(InitiatorRole, false, nil)
		var ne *NegotiationError
		if _, err := n.Handle([]pdu.KeyValue{pair}); !errors.As(err, &ne) {
			t.Errorf("%v: got %v", pair, err)
		}
	}
	// A proposal this side must refuse, when refusing leaves a default it
	// cannot accept either, ends the negotiation: an initiator that requires
	// digests never runs without them because the target proposed so.
	for _, pair := range []pdu.KeyValue{kv("HeaderDigest", "None"), kv("DataDigest", "Bogus")} {
		n := NewNegotiator(InitiatorRole, false, map[string]string{"HeaderDigest": "CRC32C", "DataDigest": "CRC32C"})
		var ne *NegotiationError
		if _, err := n.Handle([]pdu.KeyValue{pair}); !errors.As(err, &ne) || ne.Key != pair.Key {
			t.Errorf("%v proposed to an initiator requiring CRC32C: %v", pair, err)
		}
	}
	n := NewNegotiator(TargetRole, false, map[string]string{"MaxBurstLength": "1024"})
	if _, err := n.Handle([]pdu.KeyValue{kv("MaxBurstLength", "2048")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Handle([]pdu.KeyValue{kv("MaxBurstLength", "2048")}); err == nil {
		t.Error("renegotiation accepted")
	}
}

func TestParamsXmitLimit(t *testing.T) {
	o := DefaultOperational()
	n := NewNegotiator(InitiatorRole, false, o.wishes())
	n.Propose(operationalKeys...)
	if _, err := n.Handle([]pdu.KeyValue{kv("MaxRecvDataSegmentLength", "1048576")}); err != nil {
		t.Fatal(err)
	}
	if got := params(n, o).MaxXmitDataSegmentLength; got != 1048576 {
		t.Errorf("xmit %d, want the target's 1048576", got)
	}
	o.MaxXmitDataSegmentLength = 65536
	if got := params(n, o).MaxXmitDataSegmentLength; got != 65536 {
		t.Errorf("xmit %d, want the configured cap 65536", got)
	}
	// FirstBurstLength is never proposed above MaxBurstLength.
	o.FirstBurstLength, o.MaxBurstLength = 1<<20, 1<<16
	if got := o.wishes()["FirstBurstLength"]; got != "65536" {
		t.Errorf("FirstBurstLength proposal %s", got)
	}
}
