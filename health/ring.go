package health

// ring is a bounded FIFO: pushing onto a full ring drops the oldest entry, so
// a Tracker's memory stays fixed however long the path lives. Its buffer
// grows to its capacity as entries come: most paths never see 256 connection
// errors or recoveries, and preallocated event lists made a new Tracker 94 KB
// (6 MB for 64 sessions, measured).
type ring[T any] struct {
	buf   []T
	max   int // capacity
	start int // index of the oldest entry
	n     int
}

func newRing[T any](capacity int) ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	return ring[T]{max: capacity}
}

func (r *ring[T]) push(v T) {
	if len(r.buf) < r.max {
		// Not full yet, so nothing was dropped and start is 0.
		if len(r.buf) == cap(r.buf) {
			grown := make([]T, len(r.buf), min(r.max, max(8, 2*len(r.buf))))
			copy(grown, r.buf)
			r.buf = grown
		}
		r.buf = append(r.buf, v)
		r.n++
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

// at returns the i-th entry, oldest first.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.start+i)%len(r.buf)] }

// last returns the newest entry, or nil when the ring is empty.
func (r *ring[T]) last() *T {
	if r.n == 0 {
		return nil
	}
	return r.at(r.n - 1)
}

// each calls f on every entry, oldest first.
func (r *ring[T]) each(f func(*T)) {
	for i := 0; i < r.n; i++ {
		f(r.at(i))
	}
}
