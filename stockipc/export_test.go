package stockipc

import (
	"net"
	"sync/atomic"
	"time"
)

// FakePeerUID makes s see every peer as the uid in the returned value
// (initially 0), which a test may change while s serves. Call it before
// Serve.
func (s *Server) FakePeerUID() *atomic.Uint32 {
	uid := new(atomic.Uint32)
	s.peerUID = func(net.Conn) (uint32, error) { return uid.Load(), nil }
	return uid
}

// SetTap makes s pass each request's bytes to f.
func (s *Server) SetTap(f func([]byte)) { s.tap = f }

// ForgetSize makes the package know no layout of n bytes until restore is
// called, so that a real client of that size plays one of an unknown release.
func ForgetSize(n int) (restore func()) {
	var kept []*layout
	for _, l := range allLayouts {
		if l.reqSize != n {
			kept = append(kept, l)
		}
	}
	known.Store(&kept)
	return func() { known.Store(&allLayouts) }
}

// SetSettle shortens how long s waits for the rest of a request.
func (s *Server) SetSettle(d time.Duration) { s.settle = d }
