package demux

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

func TestPastMaxHeldRequestsAreRefusedAsOverloaded(t *testing.T) {
	// MaxInFlight(1): the first request runs and blocks, the second is
	// held, and the third would take the held requests past maxHeld, so
	// it is refused at once with CodeOverloaded; the reader never waits.
	client, server, err := channel.Pipe()
	require.NoError(t, err)
	gate := make(chan struct{})
	d := New(server, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		<-gate
		return req.Bytes()
	}), MaxInFlight(1))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	defer func() {
		m.Close()
		d.Close()
		receive(t, served, "Serve returned after Close")
	}()
	big := bytes.Repeat([]byte{7}, maxHeld*3/5)
	first := m.Go(t.Context(), "first", []byte("x"), new([]byte))
	held := m.Go(t.Context(), "held", big, new([]byte))
	waitFor(t, "one request running and one held", func() bool {
		d.s.mu.Lock()
		defer d.s.mu.Unlock()
		return d.s.running == 1 && d.s.held.len() == 1
	})
	err = m.Call(boundedContext(t), "refused", big, new([]byte))
	var re *frame.RemoteError
	require.True(t, errors.As(err, &re), "want a RemoteError, got %v", err)
	assert.Equal(t, frame.CodeOverloaded, re.Code)
	assert.Contains(t, re.Message, "overloaded")

	close(gate)
	for _, c := range []*mux.Call{first, held} {
		receive(t, c.Done(), "a call finished once the gate opened")
		require.NoError(t, c.Err())
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	assert.Zero(t, d.s.held.len())
	assert.Zero(t, d.s.heldSize)
}
