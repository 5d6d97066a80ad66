package demux

// requestQueue is a first-in first-out ring of requests waiting for a
// runner. It grows as needed (its length is bounded by MaxInFlight) and
// lets go of a grown ring once it empties. The zero requestQueue is empty
// and ready; it is not safe for concurrent use.
type requestQueue struct {
	ring []*request // len(ring) is zero or a power of two
	head int        // index of the oldest request
	n    int        // requests in the ring
}

// maxKeptRing is the largest ring kept once the queue has emptied.
const maxKeptRing = 256

func (q *requestQueue) len() int { return q.n }

// push adds r at the tail.
func (q *requestQueue) push(r *request) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = r
	q.n++
}

// pop removes and returns the oldest request, or nil if there is none.
func (q *requestQueue) pop() *request {
	if q.n == 0 {
		return nil
	}
	r := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > maxKeptRing {
			q.ring = nil // let a burst's ring go
		}
	}
	return r
}

func (q *requestQueue) grow() {
	ring := make([]*request, max(16, 2*len(q.ring)))
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)&(len(q.ring)-1)]
	}
	q.ring, q.head = ring, 0
}
