package demux

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/mux"
)

// parkedRunners returns how many runners are parked right now.
func (d *DeMux) parkedRunners() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.parked
}

// runnerGoroutines counts the runners.
func runnerGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "demux.(*DeMux).runner(")
}

// waitFor yields until cond holds. Runners park and exit just after the
// events a test can see (a reply arriving, a nil handed to them).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("gave up waiting until %s", what)
		}
		runtime.Gosched()
	}
}

func TestRunnersAreReusedThenReaped(t *testing.T) {
	client, server, err := channel.Pipe()
	require.NoError(t, err)
	var handled atomic.Int32
	d := New(server, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		handled.Add(1)
		return "ok", nil
	}))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	defer func() {
		require.NoError(t, d.Close())
		require.NoError(t, <-served)
		m.Close()
		assert.Zero(t, runnerGoroutines(), "runners left after Serve returned")
	}()
	parked := func(n int) func() bool { return func() bool { return d.parkedRunners() == n } }

	// One call at a time: the runner parked after the first serves them all.
	var reply string
	for range 10 {
		require.NoError(t, m.Call(t.Context(), "echo", nil, &reply))
		waitFor(t, "one runner is parked", parked(1))
	}
	assert.Equal(t, int32(10), handled.Load())
	assert.Equal(t, 1, runnerGoroutines(), "a runner was started although one was parked")

	// A runner parked across one whole reaper period exits at the second tick.
	d.reapParked()
	assert.Equal(t, 1, d.parkedRunners(), "parked for less than a period: kept")
	d.reapParked()
	assert.Equal(t, 0, d.parkedRunners(), "parked across a whole period: told to exit")
	waitFor(t, "the reaped runner has exited", func() bool { return runnerGoroutines() == 0 })

	// The next request starts a fresh runner.
	require.NoError(t, m.Call(t.Context(), "after", nil, &reply))
	assert.Equal(t, "ok", reply)
	waitFor(t, "the new runner is parked", parked(1))
	assert.Equal(t, 1, runnerGoroutines())
}
