package demux

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/mux"
)

func TestReaderWaitsOncePastMaxInFlightHoldsMaxHeld(t *testing.T) {
	// MaxInFlight(1): the first request runs and blocks, the second is
	// held, and the third would take the held requests past maxHeld, so
	// the reader waits for room (d.space is made) instead of reading on.
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
		<-served
	}()
	big := bytes.Repeat([]byte{7}, maxHeld*3/5)
	calls := []*mux.Call{
		m.Go(t.Context(), "first", []byte("x"), new([]byte)),
		m.Go(t.Context(), "held", big, new([]byte)),
		m.Go(t.Context(), "waits", big, new([]byte)),
	}
	waitFor(t, "one request held and the reader waiting for room", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.running == 1 && d.held.len() == 1 && d.space != nil
	})
	close(gate)
	for _, c := range calls {
		<-c.Done()
		require.NoError(t, c.Err())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.Zero(t, d.held.len())
	assert.Zero(t, d.heldSize)
}
