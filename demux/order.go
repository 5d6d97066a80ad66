package demux

import "github.com/muxrpc/muxrpc/frame"

// The serving order. A request that is ready to run waits in the
// runQueue, in the first-in first-out queue of its priority, and runners
// take the oldest request of the highest priority that has one, with one
// exception that bounds starvation: a priority passed over starveLimit
// times while it had requests waiting (runners took requests of other
// priorities) goes next with its oldest request, ahead of higher ones. If
// several have been passed over that often, the highest of them goes
// first. So the oldest request of a priority starts after at most
// starveLimit+3 requests of other priorities (its own starveLimit passes,
// then at most one request of each of the three others that reached the
// limit too), however many requests of higher priority keep coming.
//
// A request with an ordering key is ready only while no other request of
// its key is ready or running: the later ones wait in their key's queue,
// in arrival order, holding no runner, and the next is made ready (it
// joins the runQueue behind the requests of its priority already there)
// when the one before it is retired. So within one key arrival order wins
// over priority, and a request's priority orders it against other
// requests only from when it becomes its key's next.

// starveLimit is how many times in a row a priority with requests waiting
// may be passed over before its oldest request goes next.
const starveLimit = 8

// levels is the number of priorities.
const levels = int(frame.PriorityUrgent-frame.PriorityLow) + 1

// runQueue holds the requests ready to run, one first-in first-out queue
// per priority. The zero runQueue is empty and ready; it is not safe for
// concurrent use.
type runQueue struct {
	level  [levels]requestQueue // by priority, lowest first
	passed [levels]uint8        // requests taken from other levels since this one last gave one, while it had some
	n      int                  // requests in all levels
}

// level returns the index in runQueue.level of priority p.
func level(p frame.Priority) int {
	return int(min(max(p, frame.PriorityLow), frame.PriorityUrgent) - frame.PriorityLow)
}

func (q *runQueue) len() int { return q.n }

// push adds r at the tail of its priority's queue.
func (q *runQueue) push(r *request) {
	q.level[level(r.Priority)].push(r)
	q.n++
}

// pop removes and returns the next request to run (see the serving order
// above), or nil if there is none.
func (q *runQueue) pop() *request {
	if q.n == 0 {
		return nil
	}
	next := -1
	for i := levels - 1; i >= 0; i-- {
		if q.level[i].len() == 0 {
			continue
		}
		if q.passed[i] >= starveLimit {
			next = i // the highest starved level
			break
		}
		if next < 0 {
			next = i // the highest level, unless a lower one is starved
		}
	}
	for i := range q.level {
		switch {
		case i == next || q.level[i].len() == 0:
			q.passed[i] = 0
		case q.passed[i] < starveLimit:
			q.passed[i]++
		}
	}
	q.n--
	return q.level[next].pop()
}

// enqueue puts r, accepted and counted in running, where it waits: in the
// run queue, or in its key's queue while another request of its key is
// ready or running. It reports whether r went to the run queue. s.mu is
// held.
func (s *serving) enqueue(r *request) bool {
	if r.Key != "" {
		if waiting, busy := s.keys[r.Key]; busy {
			if waiting == nil {
				waiting = new(requestQueue)
				s.keys[r.Key] = waiting
			}
			waiting.push(r)
			return false
		}
		s.keys[r.Key] = nil // busy, none waiting
	}
	s.queue.push(r)
	return true
}

// nextOfKey makes the next request of key, if any, ready to run, now that
// the one before it is retired; when none waits, the key is forgotten, so
// that s.keys holds only keys with a request queued or running. s.mu is
// held, and the caller is a runner that looks at the run queue before it
// lets go of the lock, so no searcher is needed for it.
func (s *serving) nextOfKey(key string) {
	waiting := s.keys[key]
	if waiting == nil || waiting.len() == 0 {
		delete(s.keys, key)
		return
	}
	s.queue.push(waiting.pop())
}
