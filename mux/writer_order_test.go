package mux_test

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// TestUrgentCallOvertakesQueuedCallsOnTheWire checks the calling end of
// priorities: calls queued while the writer is busy leave urgent first,
// then in the order they were made, with the low one once 8 frames of
// higher priority have passed it (the starvation bound).
func TestUrgentCallOvertakesQueuedCallsOnTheWire(t *testing.T) {
	c, s := net.Pipe() // synchronous: the writer waits in its first write until the peer reads
	m := mux.New(c)
	t.Cleanup(func() {
		m.Close()
		s.Close()
	})
	ctx := context.Background()
	var calls []*mux.Call
	calls = append(calls, m.Go(mux.WithPriority(ctx, mux.PriorityLow), "low", nil, nil))
	for range 20 {
		calls = append(calls, m.Go(ctx, "normal", nil, nil))
	}
	calls = append(calls, m.Go(mux.WithPriority(ctx, mux.PriorityUrgent), "urgent", nil, nil))
	// Only now does the peer read: the writer, stuck on the preface so
	// far, finds all 22 requests queued.
	peer := rpctest.NewRaw(t, s)
	require.NoError(t, peer.R.ReadPreface())
	var order []string
	for range calls {
		f := peer.Read()
		order = append(order, f.Method)
		assert.Equal(t, frame.TypeRequest, f.Type)
	}
	want := []string{"urgent"}
	for range 7 {
		want = append(want, "normal")
	}
	want = append(want, "low")
	for range 13 {
		want = append(want, "normal")
	}
	assert.Equal(t, want, order)
}
