package mux

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
)

func TestNarrowTableOnlyForNarrowCodecs(t *testing.T) {
	assert.Nil(t, newNarrowTable(frame.Native))
	require.NotNil(t, newNarrowTable(frame.MsgpackRPC))
	assert.Equal(t, uint64(math.MaxUint32), newNarrowTable(frame.MsgpackRPC).max)
}

// TestNarrowTableWraps checks that ids count from 1, wrap after 2^32-1
// without ever giving 0, and skip the ids of calls still waiting.
func TestNarrowTableWraps(t *testing.T) {
	tab := pendingTable{narrow: newNarrowTable(frame.MsgpackRPC)}
	calls := make([]*Call, 6)
	for i := range calls {
		calls[i] = &Call{}
	}
	assert.Equal(t, uint64(1), tab.add(calls[0]))
	assert.Equal(t, uint64(2), tab.add(calls[1]))
	assert.Same(t, calls[0], tab.remove(1))
	assert.Nil(t, tab.remove(1), "a second reply for the same id finds nothing")
	assert.Nil(t, tab.get(1))

	tab.narrow.last = math.MaxUint32 - 1 // as after 2^32-2 calls
	assert.Equal(t, uint64(math.MaxUint32), tab.add(calls[2]))
	assert.Equal(t, uint64(1), tab.add(calls[3]), "wraps to 1, not 0")
	assert.Equal(t, uint64(3), tab.add(calls[4]), "skips 2, still in flight")
	assert.Same(t, calls[1], tab.get(2))

	all := tab.takeAll()
	assert.ElementsMatch(t, []*Call{calls[1], calls[2], calls[3], calls[4]}, all)
	assert.Nil(t, tab.get(2))
	assert.Equal(t, uint64(4), tab.add(calls[5]), "the table goes on after takeAll")
}
