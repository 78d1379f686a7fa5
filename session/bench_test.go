package session

import (
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

// BenchmarkNegotiateOperational is the operational stage of a login as both ends
// compute it: the initiator's proposals, the target's answers, the initiator's
// check of them, and the parameters that result.
func BenchmarkNegotiateOperational(b *testing.B) {
	o := DefaultOperational()
	wishes := o.wishes()
	b.ReportAllocs()
	for b.Loop() {
		ini := NewNegotiator(InitiatorRole, false, wishes)
		tgt := NewNegotiator(TargetRole, false, nil)
		answers, err := tgt.Handle(ini.Propose(operationalKeys...))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ini.Handle(answers); err != nil {
			b.Fatal(err)
		}
		_ = params(ini, o)
	}
}

// BenchmarkNegotiateText is the same stage through the wire format: the
// proposals encoded as a Login Request's text and parsed by the target, the
// answers encoded and parsed by the initiator.
func BenchmarkNegotiateText(b *testing.B) {
	o := DefaultOperational()
	wishes := o.wishes()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		ini := NewNegotiator(InitiatorRole, false, wishes)
		tgt := NewNegotiator(TargetRole, false, nil)
		buf = pdu.AppendText(buf[:0], ini.Propose(operationalKeys...)...)
		kvs, err := pdu.ParseText(buf)
		if err != nil {
			b.Fatal(err)
		}
		answers, err := tgt.Handle(kvs)
		if err != nil {
			b.Fatal(err)
		}
		buf = pdu.AppendText(buf[:0], answers...)
		if kvs, err = pdu.ParseText(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := ini.Handle(kvs); err != nil {
			b.Fatal(err)
		}
	}
}
