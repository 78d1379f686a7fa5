package stockipc

import (
	"net"
	"time"
)

// SetPeerUID makes s see every peer as uid (the tests are not run by uid 1000).
func (s *Server) SetPeerUID(uid uint32) {
	s.peerUID = func(*net.UnixConn) (uint32, error) { return uid, nil }
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
