package demux

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

// startPair serves h with opts over a pipe and returns a Mux calling it;
// the test's cleanup closes both and checks that Serve returned cleanly.
func startPair(t *testing.T, h Handler, opts ...Option) (*DeMux, *mux.Mux) {
	t.Helper()
	client, server, err := channel.Pipe()
	require.NoError(t, err)
	d := New(server, h, opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	t.Cleanup(func() {
		assert.NoError(t, d.Close())
		select {
		case err := <-served:
			assert.NoError(t, err)
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return within %v of Close", waitLimit)
		}
		m.Close()
	})
	return d, m
}

// receive takes one value from ch, failing the test with what did not
// happen if none comes within waitLimit.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("waited %v, and still not: %s", waitLimit, what)
		panic("unreachable")
	}
}

// boundedContext returns a context that ends after waitLimit or with the
// test, for the calls a test makes: one that hangs then fails instead of
// holding the test until go test's timeout.
func boundedContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// queued reports whether n requests are ready in d's run queue.
func queued(d *DeMux, n int) func() bool {
	return func() bool {
		d.s.mu.Lock()
		defer d.s.mu.Unlock()
		return d.s.queue.len() == n
	}
}

// popOrder pushes requests of the given priorities into a fresh runQueue,
// in order, and returns the priorities in the order pop gives them.
func popOrder(in []frame.Priority) []frame.Priority {
	var q runQueue
	for _, p := range in {
		q.push(&request{Request: Request{Priority: p}})
	}
	var out []frame.Priority
	for r := q.pop(); r != nil; r = q.pop() {
		out = append(out, r.Priority)
	}
	return out
}

func TestRunQueueOrder(t *testing.T) {
	const (
		L = frame.PriorityLow
		N = frame.PriorityNormal
		H = frame.PriorityHigh
		U = frame.PriorityUrgent
	)
	rep := func(p frame.Priority, n int) []frame.Priority {
		var ps []frame.Priority
		for range n {
			ps = append(ps, p)
		}
		return ps
	}
	cat := func(parts ...[]frame.Priority) []frame.Priority {
		var ps []frame.Priority
		for _, p := range parts {
			ps = append(ps, p...)
		}
		return ps
	}
	// Higher first; a level empty at no point is never passed over.
	assert.Equal(t, []frame.Priority{U, H, N, L}, popOrder([]frame.Priority{L, N, H, U}))
	// Out-of-range priorities count as the nearest.
	assert.Equal(t, []frame.Priority{U, 7, L, -5}, popOrder([]frame.Priority{L, -5, U, 7}))
	// A low request passed over starveLimit times goes next.
	assert.Equal(t,
		cat(rep(U, starveLimit), []frame.Priority{L}, rep(U, starveLimit), []frame.Priority{L}, rep(U, 4)),
		popOrder(cat(rep(L, 2), rep(U, 2*starveLimit+4))))
	// Several starved levels: the highest of them first, then the next,
	// so the lowest waits at most starveLimit+3 requests of other levels.
	assert.Equal(t,
		cat(rep(U, starveLimit), []frame.Priority{H, N, L}, rep(U, 2)),
		popOrder(cat([]frame.Priority{L, N, H}, rep(U, starveLimit+2))))
}

func TestRunQueueStarvationBound(t *testing.T) {
	// However the levels are filled, no request at the head of its level
	// waits for more than starveLimit+3 pops of other levels.
	var q runQueue
	waited := map[*request]int{}
	seq := 0
	for round := range 2000 {
		// Keep the urgent level full and add others now and then, from a
		// fixed pattern so that the test is deterministic.
		for p := frame.PriorityLow; p <= frame.PriorityUrgent; p++ {
			if p == frame.PriorityUrgent || (round+int(p))%5 == 0 {
				r := &request{Request: Request{Priority: p, XID: uint64(seq)}}
				seq++
				q.push(r)
			}
		}
		r := q.pop()
		for i := range q.level {
			if q.level[i].len() == 0 {
				continue
			}
			head := q.level[i].ring[q.level[i].head]
			waited[head]++
			require.LessOrEqual(t, waited[head], starveLimit+3,
				"a %v request waited at the head of its level for more pops than the bound", head.Priority)
		}
		delete(waited, r)
	}
}

// orderHandler records the order of the requests it runs by method, and
// blocks "block" until gate is closed.
type orderHandler struct {
	started chan string
	gate    chan struct{}
}

func (h *orderHandler) ServeRPC(ctx context.Context, req *Request) (any, error) {
	if req.Method == "block" {
		h.started <- "block"
		select {
		case <-h.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	}
	h.started <- req.Method
	return req.Priority.String(), nil
}

// queueBehindBlock starts "block" on a single worker, then sends calls in
// order and waits until all of them wait in the run queue; then it lets
// "block" return. It returns the calls and their replies.
func queueBehindBlock(t *testing.T, d *DeMux, m *mux.Mux, h *orderHandler, calls []call) ([]*mux.Call, []*string) {
	t.Helper()
	block := m.Go(t.Context(), "block", nil, nil)
	require.Equal(t, "block", receive(t, h.started, "the blocking request started"))
	var cs []*mux.Call
	var replies []*string
	for _, c := range calls {
		reply := new(string)
		cs = append(cs, m.Go(mux.WithPriority(t.Context(), c.priority), c.method, nil, reply))
		replies = append(replies, reply)
	}
	waitFor(t, fmt.Sprintf("%d requests queued behind the blocked worker", len(calls)), queued(d, len(calls)))
	close(h.gate)
	receive(t, block.Done(), "the blocking request returned")
	require.NoError(t, block.Err())
	return cs, replies
}

// call is a request for queueBehindBlock to send.
type call struct {
	method   string
	priority frame.Priority
}

func TestUrgentRequestOvertakesQueuedOnes(t *testing.T) {
	h := &orderHandler{started: make(chan string, 64), gate: make(chan struct{})}
	d, m := startPair(t, h, Workers(1))
	var calls []call
	for i := range 20 {
		calls = append(calls, call{fmt.Sprintf("normal%d", i), frame.PriorityNormal})
	}
	calls = append(calls, call{"urgent", frame.PriorityUrgent})
	cs, replies := queueBehindBlock(t, d, m, h, calls)
	assert.Equal(t, "urgent", receive(t, h.started, "the first queued request started"),
		"the urgent request arrived last and must start first")
	for i := range 20 {
		assert.Equal(t, fmt.Sprintf("normal%d", i), receive(t, h.started, "a normal request started"),
			"normal requests start in arrival order")
	}
	for i, c := range cs {
		receive(t, c.Done(), "a queued call finished")
		require.NoError(t, c.Err())
		assert.Equal(t, calls[i].priority.String(), *replies[i], "the handler saw the call's priority")
	}
}

func TestLowPriorityStillRunsWhileUrgentKeepsComing(t *testing.T) {
	// Four low requests queued ahead of 40 urgent ones: each low one
	// starts after starveLimit urgent ones, not after all of them.
	h := &orderHandler{started: make(chan string, 64), gate: make(chan struct{})}
	d, m := startPair(t, h, Workers(1))
	var calls []call
	for i := range 4 {
		calls = append(calls, call{fmt.Sprintf("low%d", i), frame.PriorityLow})
	}
	for i := range 40 {
		calls = append(calls, call{fmt.Sprintf("urgent%d", i), frame.PriorityUrgent})
	}
	cs, _ := queueBehindBlock(t, d, m, h, calls)
	var want, got []string
	low, urgent := 0, 0
	for range calls {
		if urgent%starveLimit == 0 && urgent > 0 && low < urgent/starveLimit && low < 4 {
			want = append(want, fmt.Sprintf("low%d", low))
			low++
		} else {
			want = append(want, fmt.Sprintf("urgent%d", urgent))
			urgent++
		}
		got = append(got, receive(t, h.started, "a queued request started"))
	}
	assert.Equal(t, want, got)
	for _, c := range cs {
		receive(t, c.Done(), "a queued call finished")
		require.NoError(t, c.Err())
	}
}
