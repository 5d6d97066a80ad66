package mux

import "github.com/muxrpc/muxrpc/frame"

// narrowTable holds the calls waiting for a reply on a dialect whose ids
// are narrower than the native 64-bit xids (frame.Limits), such as
// msgpack-rpc's 32-bit msgid. Ids count up from 1 and wrap after the
// largest the wire carries, skipping 0 and the ids of calls still waiting,
// so an id is reused only after every other id has been given out since.
// A call abandoned by its caller leaves the table at once (the dialect
// may have no CANCEL); its late reply, if one comes, finds no call and is
// dropped. It is not safe for concurrent use.
type narrowTable struct {
	calls map[uint64]*Call
	last  uint64 // the id given out last
	max   uint64 // the largest id the wire carries
}

// newNarrowTable returns a table for codec's ids, or nil if its xids are
// the native 64 bits.
func newNarrowTable(codec frame.Codec) *narrowTable {
	l, ok := codec.(frame.Limits)
	if !ok || l.XIDBits() >= 64 || l.XIDBits() <= 0 {
		return nil
	}
	return &narrowTable{calls: make(map[uint64]*Call), max: 1<<l.XIDBits() - 1}
}

// add puts c under the next free id and returns it. A table full of
// waiting calls (2^32 of them for msgpack-rpc) exhausts memory first.
func (t *narrowTable) add(c *Call) uint64 {
	for {
		t.last++
		if t.last > t.max {
			t.last = 1
		}
		if _, busy := t.calls[t.last]; !busy {
			t.calls[t.last] = c
			return t.last
		}
	}
}

// remove takes the call with this id out of the table and returns it, or
// nil if there is none.
func (t *narrowTable) remove(xid uint64) *Call {
	c, ok := t.calls[xid]
	if ok {
		delete(t.calls, xid)
	}
	return c
}

// takeAll empties the table and returns the calls it held.
func (t *narrowTable) takeAll() []*Call {
	calls := make([]*Call, 0, len(t.calls))
	for _, c := range t.calls {
		calls = append(calls, c)
	}
	clear(t.calls)
	return calls
}
