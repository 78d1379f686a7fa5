package health

// ring is a bounded FIFO: pushing onto a full ring drops the oldest entry, so
// a Tracker's memory stays fixed however long the path lives.
type ring[T any] struct {
	buf   []T
	start int // index of the oldest entry
	n     int
}

func newRing[T any](capacity int) ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	return ring[T]{buf: make([]T, capacity)}
}

func (r *ring[T]) push(v T) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
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
