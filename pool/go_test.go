package pool_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/pool"
)

// TestGoNeedsNoGoroutineWhileAConnectionIsReady starts many calls with Go
// over ready connections: each is answered, and none took a goroutine.
func TestGoNeedsNoGoroutineWhileAConnectionIsReady(t *testing.T) {
	ss := startServers(t, "a", "b")
	p := dialPool(t, ss)
	eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
	const n = 500
	calls := make([]*pool.Call, n)
	who := make([]string, n)
	for i := range calls {
		calls[i] = p.Go(context.Background(), "who", struct{}{}, &who[i])
	}
	seen := map[string]int{}
	for i, c := range calls {
		rpctest.Await(t, c.Done(), "a call started with Go did not finish")
		require.NoError(t, c.Err())
		seen[who[i]]++
	}
	assert.Len(t, seen, 2, "calls went to both servers: %v", seen)
	assert.Zero(t, pool.GoWaits(p), "calls over a ready connection took a goroutine")
}

// TestGoRetriesElsewhere has one of two servers shed load: the calls of
// Go it refuses are retried on the other, on a goroutine, and answered.
func TestGoRetriesElsewhere(t *testing.T) {
	ss := startServers(t, "a", "b")
	a, b := ss[0], ss[1]
	a.setWork(overloaded)
	p := dialPool(t, ss)
	eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
	// Each refusal takes a token of the retry budget (100, retrying while
	// more than half are left): 40 calls cannot use it up.
	const n = 40
	calls := make([]*pool.Call, n)
	who := make([]string, n)
	for i := range calls {
		calls[i] = p.Go(context.Background(), "work", 1, &who[i])
	}
	for i, c := range calls {
		rpctest.Await(t, c.Done(), "a call started with Go did not finish")
		require.NoError(t, c.Err(), "call %d", i)
		assert.Equal(t, b.name, who[i])
	}
	retries := p.Stats().Retries
	assert.Positive(t, retries, "no call went to the server that sheds load")
	assert.Equal(t, retries, pool.GoWaits(p), "each retry took a goroutine")
	assert.Positive(t, a.calls.Load())
}
