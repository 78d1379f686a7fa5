package nlink

import (
	"context"
	"net"
	"testing"
)

// answering is a Transport that answers every request with one canned reply
// and has no events: the cost measured is Conn's own.
type answering struct {
	reply  []byte
	closed chan struct{}
}

func (a *answering) Request(ctx context.Context, msgs [][]byte, replyExpected bool) ([][]byte, error) {
	out := make([][]byte, len(msgs))
	for i := range msgs {
		out[i] = a.reply
	}
	return out, nil
}

func (a *answering) ReceiveEvent(ctx context.Context) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.closed:
		return nil, net.ErrClosed
	}
}

func (a *answering) LinkState(sid, cid uint32) (string, error) { return "up", nil }

func (a *answering) Close() error {
	close(a.closed)
	return nil
}

// BenchmarkSetParams is one login's identity parameters (17 SET_PARAMs) in one
// exchange: encoding the requests, waiting for the turn, decoding the replies.
func BenchmarkSetParams(b *testing.B) {
	reply, err := (&Reply{Type: SetParam}).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	c := New(&answering{reply: reply, closed: make(chan struct{})}, 1, nil)
	defer c.Close()
	params := make([]ParamValue, 17)
	for i := range params {
		params[i] = ParamValue{Param: ParamTargetName, Value: "iqn.2003-01.org.linux-iscsi.target:sn.0123456789"}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.SetParams(ctx, 1, 0, params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestsContended is 32 goroutines sending requests at once, as
// in a login storm: the queue's hand-over from caller to serve and back.
func BenchmarkRequestsContended(b *testing.B) {
	reply, err := (&Reply{Type: UnbindSession}).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	c := New(&answering{reply: reply, closed: make(chan struct{})}, 1, nil)
	defer c.Close()
	b.ReportAllocs()
	b.SetParallelism(16) // 32 with the 2 CPUs of the CI machine
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.UnbindSession(context.Background(), 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
