package demux_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
)

func TestRepliesCarryTheirRequestsPriority(t *testing.T) {
	peer, _, _ := serve(t, transport.Pipe, echo())
	peer.Preface()
	require.NoError(t, peer.R.ReadPreface())
	want := map[uint64]frame.Priority{}
	xid := uint64(1)
	for _, p := range []frame.Priority{frame.PriorityLow, frame.PriorityNormal, frame.PriorityHigh, frame.PriorityUrgent} {
		ok := rpctest.Request(xid, "echo", "hi")
		ok.Flags = ok.Flags.WithPriority(p)
		bad := rpctest.Request(xid+1, "echo", 12) // bad args: an ERROR
		bad.Flags = bad.Flags.WithPriority(p) | frame.FlagKey
		bad.Key = "k"
		peer.Send(ok)
		peer.Send(bad)
		want[xid], want[xid+1] = p, p
		xid += 2
	}
	for n := len(want); n > 0; n-- {
		f := peer.Read()
		p, ok := want[f.XID]
		require.True(t, ok, "unexpected %v", &f)
		assert.Equal(t, p, f.Flags.Priority(), "priority of the reply %v", &f)
		assert.Zero(t, f.Flags&frame.FlagKey, "a reply carries no key: %v", &f)
		delete(want, f.XID)
		f.Release()
	}
	assert.Empty(t, want)
}
