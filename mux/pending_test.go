package mux

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPendingTable(t *testing.T) {
	var tab pendingTable
	a, b := &Call{}, &Call{}
	xa, xb := tab.add(a), tab.add(b)
	assert.Equal(t, uint64(1)<<32|1, xa, "slot 1, first use")
	assert.Equal(t, uint64(1)<<32|2, xb, "slot 2, first use")
	assert.Same(t, a, tab.get(xa))
	assert.Same(t, b, tab.get(xb))

	assert.Same(t, a, tab.remove(xa))
	assert.Nil(t, tab.get(xa), "removed")
	assert.Nil(t, tab.remove(xa), "removed twice")

	// The freed slot is reused with a new use count: the old xid stays dead.
	c := &Call{}
	xc := tab.add(c)
	assert.Equal(t, uint64(2)<<32|1, xc)
	assert.Nil(t, tab.get(xa), "a late reply to the old xid finds nothing")
	assert.Same(t, c, tab.get(xc))

	for _, xid := range []uint64{0, 1 << 32, 3<<32 | 1, 1<<32 | 3, math.MaxUint64} {
		assert.Nil(t, tab.get(xid), "xid %#x", xid)
		assert.Nil(t, tab.remove(xid), "xid %#x", xid)
	}
	assert.Equal(t, 2, tab.n)
	assert.ElementsMatch(t, []*Call{b, c}, tab.takeAll())
	assert.Zero(t, tab.n)
	assert.Nil(t, tab.get(xb))
}

func TestPendingTableNeverRepeatsAnXID(t *testing.T) {
	var tab pendingTable
	seen := map[uint64]bool{}
	calls := make([]*Call, 0, 8)
	xids := make([]uint64, 0, 8)
	for round := range 1000 {
		for range 1 + round%7 {
			c := &Call{}
			x := tab.add(c)
			require.False(t, seen[x], "xid %#x handed out twice", x)
			require.NotZero(t, x)
			seen[x] = true
			calls, xids = append(calls, c), append(xids, x)
		}
		for i, x := range xids {
			require.Same(t, calls[i], tab.remove(x))
		}
		calls, xids = calls[:0], xids[:0]
	}
	assert.LessOrEqual(t, len(tab.slots), 7, "freed slots are reused")
}

func TestPendingTableRetiresWornOutSlots(t *testing.T) {
	var tab pendingTable
	x := tab.add(&Call{})
	tab.remove(x)
	tab.slots[0].uses = math.MaxUint32 // as if used 2^32 - 1 times
	y := tab.add(&Call{})
	assert.Equal(t, uint64(1)<<32|2, y, "slot 1 is skipped for good")
	tab.remove(y)
	z := tab.add(&Call{})
	assert.Equal(t, uint64(2)<<32|2, z)
	assert.Empty(t, tab.free)
}
