package demux

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/mux"
)

// parkedRunners returns how many runners are parked right now.
func (d *DeMux) parkedRunners() int {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.parked
}

// runnerGoroutines counts the runners.
func runnerGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "demux.(*serving).runner(")
}

// waitFor yields until cond holds, and fails the test if it does not
// within waitLimit. Runners park and exit just after the events a test can
// see (a reply arriving, a nil handed to them), so there is no event to
// wait on instead.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v, and still not: %s", waitLimit, what)
		}
		runtime.Gosched()
	}
}

// waitLimit bounds every wait of these tests.
const waitLimit = 10 * time.Second

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
		require.NoError(t, receive(t, served, "Serve returned after Close"))
		m.Close()
		assert.Zero(t, runnerGoroutines(), "runners left after Serve returned")
	}()
	parked := func(n int) func() bool { return func() bool { return d.parkedRunners() == n } }

	// One call at a time: the runner parked after the first serves them all.
	var reply string
	for range 10 {
		require.NoError(t, m.Call(boundedContext(t), "echo", nil, &reply))
		waitFor(t, "one runner is parked", parked(1))
	}
	assert.Equal(t, int32(10), handled.Load())
	assert.Equal(t, 1, runnerGoroutines(), "a runner was started although one was parked")

	// A runner parked across one whole reaper period exits at the second tick.
	d.s.reapParked()
	assert.Equal(t, 1, d.parkedRunners(), "parked for less than a period: kept")
	d.s.reapParked()
	assert.Equal(t, 0, d.parkedRunners(), "parked across a whole period: told to exit")
	waitFor(t, "the reaped runner has exited", func() bool { return runnerGoroutines() == 0 })

	// The next request starts a fresh runner.
	require.NoError(t, m.Call(boundedContext(t), "after", nil, &reply))
	assert.Equal(t, "ok", reply)
	waitFor(t, "the new runner is parked", parked(1))
	assert.Equal(t, 1, runnerGoroutines())
}

func TestWorkersAreAPolicyOfTheOneQueue(t *testing.T) {
	// Workers(2): at most two runners however many requests wait, kept
	// when idle (never reaped), and the requests start in arrival order.
	client, server, err := channel.Pipe()
	require.NoError(t, err)
	gate := make(chan struct{})
	order := make(chan int, 8)
	d := New(server, Func(func(ctx context.Context, n int) (int, error) {
		order <- n
		<-gate
		return n, nil
	}), Workers(2))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	defer func() {
		require.NoError(t, d.Close())
		require.NoError(t, receive(t, served, "Serve returned after Close"))
		m.Close()
	}()
	calls := make([]*mux.Call, 6)
	for i := range calls {
		calls[i] = m.Go(t.Context(), "n", i, new(int))
		if i < 2 {
			select { // the first two run at once, in order
			case n := <-order:
				require.Equal(t, i, n)
			case <-time.After(waitLimit):
				t.Fatalf("request %d did not start on a free worker", i)
			}
		}
	}
	waitFor(t, "four requests queued behind two busy workers", func() bool {
		d.s.mu.Lock()
		defer d.s.mu.Unlock()
		return d.s.queue.len() == 4
	})
	assert.Equal(t, 2, runnerGoroutines(), "Workers(2) started a third runner")
	close(gate)
	for _, c := range calls {
		receive(t, c.Done(), "a call finished once the gate opened")
		require.NoError(t, c.Err())
	}
	var rest []int
	for range 4 {
		rest = append(rest, receive(t, order, "a queued request started"))
	}
	assert.ElementsMatch(t, []int{2, 3, 4, 5}, rest, "every queued request ran once")
	waitFor(t, "both workers parked", func() bool { return d.parkedRunners() == 2 })
	d.s.reapParked()
	d.s.reapParked()
	assert.Equal(t, 2, d.parkedRunners(), "workers are kept, not reaped")
}
