package pool_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// recvInts receives the stream's items until it ends, returning them and
// the error it ended with (nil for io.EOF).
func recvInts(t *testing.T, s *mux.Stream) ([]int, error) {
	t.Helper()
	var got []int
	for {
		var v int
		err := s.Recv(&v)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, v)
	}
}

// TestStreamOverThePool streams from servers chosen by the Pool: the
// items and the final result come from one server, and every stream
// leaves its connection free once it is over.
func TestStreamOverThePool(t *testing.T) {
	ss := startServers(t, "a", "b")
	p := dialPool(t, ss)
	eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
	names := map[string]int{}
	ctx := rpctest.Context(t)
	for range 20 {
		s, err := p.Stream(ctx, "count", 5)
		require.NoError(t, err)
		got, err := recvInts(t, s)
		require.NoError(t, err)
		assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
		var who string
		require.NoError(t, s.Reply(&who))
		names[who]++
		require.NoError(t, s.Close())
	}
	assert.Len(t, names, 2, "streams went to both servers: %v", names)
	s := p.Stats()
	assert.Zero(t, s.MaybeRan+s.NotRun+s.Retries, "no stream failed or was retried")
}

// TestStreamKeepsItsDrainingConnection starts a stream, then its server
// sends GOAWAY: the connection takes no new call, yet stays open until
// the stream is over, which gets its every item and its result.
func TestStreamKeepsItsDrainingConnection(t *testing.T) {
	gate := make(chan struct{})
	a := startServer(t, "a")
	a.setWork(blockUntil(gate, "a"))
	p := dialPool(t, []*server{a})
	s, err := p.Stream(rpctest.Context(t), "count", 3)
	require.NoError(t, err)
	defer s.Close()
	var first int
	require.NoError(t, s.Recv(&first), "the first item comes before the gate")

	shut := make(chan error, 1)
	go func() { shut <- a.srv.Shutdown(context.Background()) }()
	eventually(t, "the Pool kept the connection whose server sent GOAWAY", func() bool { return p.Stats().Conns == 0 })
	close(gate)
	rest, err := recvInts(t, s)
	require.NoError(t, err, "a stream in flight when its server sent GOAWAY goes on to its end")
	assert.Equal(t, []int{0, 1, 2}, append([]int{first}, rest...))
	var who string
	require.NoError(t, s.Reply(&who))
	assert.Equal(t, "a", who)
	assert.NoError(t, rpctest.Await(t, shut, "Shutdown did not return once the stream was over"))
}

// TestStreamAfterClose checks that Stream fails at once after Close, and
// that a stream in flight at Close ends with mux.ErrClosed.
func TestStreamAfterClose(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	a := startServer(t, "a")
	a.setWork(blockUntil(gate, "a"))
	p := dialPool(t, []*server{a})
	ctx := rpctest.Context(t)
	s, err := p.Stream(ctx, "count", 3)
	require.NoError(t, err)
	var first int
	require.NoError(t, s.Recv(&first))
	require.NoError(t, p.Close())
	_, err = recvInts(t, s)
	assert.ErrorIs(t, err, mux.ErrClosed, "the stream in flight ended with the Pool")
	rpctest.Await(t, s.Done(), "the stream was not over after Close")

	_, err = p.Stream(ctx, "count", 3)
	assert.ErrorIs(t, err, pool.ErrNotRun)
	assert.ErrorIs(t, err, mux.ErrClosed)
}
