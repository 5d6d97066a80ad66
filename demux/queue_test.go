package demux

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestQueueIsFIFOAcrossGrowthAndWrap(t *testing.T) {
	var q requestQueue
	assert.Nil(t, q.pop(), "an empty queue pops nil")
	reqs := make([]*request, 1000)
	for i := range reqs {
		reqs[i] = &request{Request: Request{XID: uint64(i + 1)}}
	}
	// Interleave pushes and pops so that the ring wraps before it grows.
	next, want := 0, 0
	for next < len(reqs) {
		for range 3 {
			if next < len(reqs) {
				q.push(reqs[next])
				next++
			}
		}
		got := q.pop()
		require.NotNil(t, got)
		assert.Equal(t, reqs[want].XID, got.XID, "out of order")
		want++
		assert.Equal(t, next-want, q.len())
	}
	for want < len(reqs) {
		got := q.pop()
		require.NotNil(t, got)
		assert.Equal(t, reqs[want].XID, got.XID, "out of order")
		want++
	}
	assert.Zero(t, q.len())
	assert.Nil(t, q.pop())
	assert.Nil(t, q.ring, "a ring grown past maxKeptRing is let go once empty")
}

func TestRequestQueueKeepsASmallRing(t *testing.T) {
	var q requestQueue
	r := &request{}
	q.push(r)
	assert.Same(t, r, q.pop())
	assert.Len(t, q.ring, 16, "a small ring is kept for the next burst")
	for _, x := range q.ring {
		assert.Nil(t, x, "popped slots hold no request")
	}
}
