package session

import (
	"context"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

// answerTransport answers each request with the next of its Text Responses
// and records the target transfer tags the requests carried.
type answerTransport struct {
	answers []*pdu.PDU
	ttts    []uint32
}

func (a *answerTransport) Send(_ context.Context, p *pdu.PDU) error {
	var req pdu.TextRequest
	if err := req.Decode(&p.Header); err != nil {
		return err
	}
	a.ttts = append(a.ttts, req.TTT)
	return nil
}

func (a *answerTransport) Receive(context.Context) (*pdu.PDU, error) {
	p := a.answers[0]
	a.answers = a.answers[1:]
	return p, nil
}

func textResponse(final bool, ttt uint32, text string) *pdu.PDU {
	p := &pdu.PDU{Data: []byte(text)}
	(&pdu.TextResponse{Final: final, Continue: !final, ITT: 1, TTT: ttt}).Encode(&p.Header)
	return p
}

// A SendTargets answer in several PDUs ends at the Final bit or at a PDU
// without a target transfer tag, as open-iscsi reads it: LIO ends a long
// answer with Final set and its tag still there.
func TestSendTargetsContinuation(t *testing.T) {
	const a, b = "TargetName=iqn.x:a\x00TargetAddress=10.0.0.1:3260,1\x00", "TargetName=iqn.x:b\x00TargetAddress=10.0.0.1:3260,1\x00"
	for _, tc := range []struct {
		name    string
		answers []*pdu.PDU
		ttts    []uint32
	}{
		{"one PDU", []*pdu.PDU{textResponse(true, pdu.ReservedTag, a+b)}, []uint32{pdu.ReservedTag}},
		{"continued, final without a tag", []*pdu.PDU{textResponse(false, 7, a), textResponse(true, pdu.ReservedTag, b)}, []uint32{pdu.ReservedTag, 7}},
		{"continued, final with its tag (LIO)", []*pdu.PDU{textResponse(false, 7, a), textResponse(true, 7, b)}, []uint32{pdu.ReservedTag, 7}},
		{"continued, no tag and no Final bit", []*pdu.PDU{textResponse(false, 7, a), textResponse(false, pdu.ReservedTag, b)}, []uint32{pdu.ReservedTag, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &answerTransport{answers: tc.answers}
			got, err := SendTargets(context.Background(), tr, &LoginResult{}, 1, 1, Portal{Address: "10.0.0.1", Port: 3260})
			if err != nil || len(got) != 2 || got[0].Name != "iqn.x:a" || got[1].Name != "iqn.x:b" {
				t.Fatalf("SendTargets = %+v, %v", got, err)
			}
			if len(tr.ttts) != len(tc.ttts) {
				t.Fatalf("requests carried tags %x, want %x", tr.ttts, tc.ttts)
			}
			for i := range tc.ttts {
				if tr.ttts[i] != tc.ttts[i] {
					t.Errorf("request %d carried tag %x, want %x", i, tr.ttts[i], tc.ttts[i])
				}
			}
		})
	}
}
