package mux

import "math"

// pendingTable holds the calls waiting for a reply, by xid, in a slice of
// slots rather than a map: an xid is a slot number (low 32 bits, from 1)
// and that slot's use count (high 32 bits, from 1), so a lookup is an
// index and a check, and freed slots are reused last-in first-out, which
// keeps the slots in use few and warm in the cache however many calls are
// parked. A slot whose use count would wrap is never used again, so no xid
// repeats on a stream. The zero pendingTable is empty and ready; it is not
// safe for concurrent use.
type pendingTable struct {
	slots []slot
	free  []uint32 // indexes of empty slots, the most recently emptied last
	n     int      // calls in the table

	narrow *narrowTable // set for a dialect with 32-bit ids: see narrowTable
}

type slot struct {
	call *Call
	uses uint32 // how many calls this slot has held, the current one included
}

// add puts c in a free slot and returns its xid.
func (t *pendingTable) add(c *Call) uint64 {
	if t.narrow != nil {
		return t.narrow.add(c)
	}
	var i uint32
	for {
		if n := len(t.free); n > 0 {
			i = t.free[n-1]
			t.free = t.free[:n-1]
		} else {
			i = uint32(len(t.slots)) // 2^32 calls in flight exhaust memory first
			t.slots = append(t.slots, slot{})
		}
		if t.slots[i].uses < math.MaxUint32 {
			break
		}
		// Worn out: dropped from the free list for good.
	}
	s := &t.slots[i]
	s.uses++
	s.call = c
	t.n++
	return uint64(s.uses)<<32 | uint64(i+1)
}

// slot returns the slot that holds the call with this xid, or nil.
func (t *pendingTable) slot(xid uint64) *slot {
	i := uint64(uint32(xid)) - 1 // wraps for a low half of 0: out of range
	if i >= uint64(len(t.slots)) {
		return nil
	}
	s := &t.slots[i]
	if s.call == nil || uint64(s.uses) != xid>>32 {
		return nil
	}
	return s
}

// get returns the call with this xid, or nil.
func (t *pendingTable) get(xid uint64) *Call {
	if t.narrow != nil {
		return t.narrow.calls[xid]
	}
	if s := t.slot(xid); s != nil {
		return s.call
	}
	return nil
}

// remove takes the call with this xid out of the table and returns it, or
// returns nil if there is none.
func (t *pendingTable) remove(xid uint64) *Call {
	if t.narrow != nil {
		return t.narrow.remove(xid)
	}
	s := t.slot(xid)
	if s == nil {
		return nil
	}
	c := s.call
	s.call = nil
	t.free = append(t.free, uint32(xid)-1)
	t.n--
	return c
}

// takeAll empties the table and returns the calls it held.
func (t *pendingTable) takeAll() []*Call {
	if t.narrow != nil {
		return t.narrow.takeAll()
	}
	calls := make([]*Call, 0, t.n)
	for _, s := range t.slots {
		if s.call != nil {
			calls = append(calls, s.call)
		}
	}
	*t = pendingTable{}
	return calls
}
