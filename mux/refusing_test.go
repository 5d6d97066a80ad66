package mux_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

func TestRefusingAfterGoAway(t *testing.T) {
	// The server shuts down while a call is in flight: Refusing closes as
	// the GOAWAY arrives, before the call in flight is answered, and new
	// calls then fail as not sent, with the server's reason.
	b := rpctest.NewBlocker(1)
	p := rpctest.Start(t, transport.TCP, b, nil)
	select {
	case <-p.Mux.Refusing():
		t.Fatal("Refusing is closed on a fresh Mux")
	default:
	}
	inFlight := p.Mux.Go(context.Background(), "parked", nil, nil)
	rpctest.Await(t, b.Started, "the handler did not start")
	shut := make(chan error, 1)
	go func() { shut <- p.DeMux.Shutdown(context.Background()) }()
	rpctest.Await(t, p.Mux.Refusing(), "Refusing was not closed after the peer's GOAWAY")
	select {
	case <-inFlight.Done():
		t.Fatal("the call in flight finished before its handler was released")
	default:
	}
	err := p.Mux.Call(rpctest.Context(t), "late", nil, nil)
	require.ErrorIs(t, err, mux.ErrNotSent)
	var re *frame.RemoteError
	require.True(t, errors.As(err, &re), "the error %v does not carry the GOAWAY's reason", err)
	assert.Equal(t, frame.CodeShutdown, re.Code)
	b.Release()
	rpctest.Await(t, inFlight.Done(), "the call in flight did not finish after its handler was released")
	assert.NoError(t, inFlight.Err())
	select {
	case err := <-shut:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return within 10s of the last handler's return")
	}
}

func TestRefusingAfterClose(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, rpctest.NewBlocker(1), nil)
	require.NoError(t, p.Mux.Close())
	rpctest.Await(t, p.Mux.Refusing(), "Refusing was not closed by Close")
	assert.ErrorIs(t, p.Mux.Call(rpctest.Context(t), "m", nil, nil), mux.ErrNotSent)
}
