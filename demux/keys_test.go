package demux

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

// keysLeft returns how many ordering keys the scheduler still tracks.
func (d *DeMux) keysLeft() int {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return len(d.s.keys)
}

// keyWaiting returns how many requests wait behind the running or ready
// request of key.
func (d *DeMux) keyWaiting(key string) int {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.keyWaitingLocked(key)
}

// keyWaitingLocked is keyWaiting with d.s.mu held.
func (d *DeMux) keyWaitingLocked(key string) int {
	if q := d.s.keys[key]; q != nil {
		return q.len()
	}
	return 0
}

func TestKeyedRequestsRunOneAtATimeInArrivalOrder(t *testing.T) {
	const keys, perKey = 10, 100
	for _, workers := range []int{0, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			var (
				mu      sync.Mutex
				next    = map[string]int{} // the seq each key expects next; guarded by mu
				running = map[string]int{} // handlers running per key; guarded by mu
				overlap atomic.Int32       // handlers running per key at most, above 1
				most    atomic.Int32       // handlers running at once, over all keys
				now     atomic.Int32
			)
			done := make(chan struct{}, keys*perKey)
			d, m := startPair(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
				var seq int
				if err := req.Decode(&seq); err != nil {
					return nil, err
				}
				key := req.Key
				mu.Lock()
				running[key]++
				if running[key] > 1 {
					overlap.Add(1)
				}
				if seq != next[key] {
					t.Errorf("key %s: request %d ran when %d was due", key, seq, next[key])
				}
				next[key] = seq + 1
				mu.Unlock()
				if n := now.Add(1); n > most.Load() {
					most.Store(n)
				}
				runtime.Gosched() // give a second request of the key a chance to overlap
				now.Add(-1)
				mu.Lock()
				running[key]--
				mu.Unlock()
				done <- struct{}{}
				return nil, nil
			}), Workers(workers))
			var wg sync.WaitGroup
			for k := range keys {
				wg.Add(1)
				go func() { // one sender per key: its requests arrive in seq order
					defer wg.Done()
					ctx := mux.WithKey(context.Background(), fmt.Sprintf("key%d", k))
					for seq := range perKey {
						if err := m.Notify(ctx, "seq", seq); err != nil {
							t.Errorf("key%d notify %d: %v", k, seq, err)
							return
						}
					}
				}()
			}
			sent := make(chan struct{})
			go func() { wg.Wait(); close(sent) }()
			receive(t, sent, "every key's requests were sent")
			for i := range keys * perKey {
				receive(t, done, fmt.Sprintf("request %d of %d ran", i+1, keys*perKey))
			}
			assert.Zero(t, overlap.Load(), "two requests of one key ran at once")
			for k := range keys {
				assert.Equal(t, perKey, next[fmt.Sprintf("key%d", k)], "key%d: not every request ran", k)
			}
			waitFor(t, "every key forgotten once its requests are done", func() bool { return d.keysLeft() == 0 })
			t.Logf("at most %d handlers ran at once", most.Load())
		})
	}
}

func TestDifferentKeysRunInParallel(t *testing.T) {
	// Each of the two handlers waits for the other to have started: they
	// finish only if the keys run at the same time.
	started := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	other := map[string]string{"a": "b", "b": "a"}
	_, m := startPair(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		close(started[req.Key])
		select {
		case <-started[other[req.Key]]:
			return nil, nil
		case <-time.After(waitLimit):
			return nil, fmt.Errorf("key %s ran alone for %v: key %s did not start meanwhile", req.Key, waitLimit, other[req.Key])
		}
	}), Workers(2))
	a := m.Go(mux.WithKey(t.Context(), "a"), "m", nil, nil)
	b := m.Go(mux.WithKey(t.Context(), "b"), "m", nil, nil)
	for _, c := range []*mux.Call{a, b} {
		receive(t, c.Done(), "a keyed call finished")
		require.NoError(t, c.Err())
	}
}

func TestRequestWaitingForItsKeyHoldsNoRunner(t *testing.T) {
	// Workers(2): a1 blocks, a2 waits behind it for key a; an unkeyed
	// request and one of key b still run, on the second worker.
	gate := make(chan struct{})
	started := make(chan string, 8)
	d, m := startPair(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		started <- req.Method
		if req.Method == "a1" {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, nil
	}), Workers(2))
	ka := mux.WithKey(t.Context(), "a")
	a1 := m.Go(ka, "a1", nil, nil)
	require.Equal(t, "a1", receive(t, started, "a1 started"))
	a2 := m.Go(ka, "a2", nil, nil)
	free := m.Go(t.Context(), "free", nil, nil)
	require.Equal(t, "free", receive(t, started, "the unkeyed request started while a2 waited for key a"))
	receive(t, free.Done(), "the unkeyed request finished")
	b := m.Go(mux.WithKey(t.Context(), "b"), "b", nil, nil)
	require.Equal(t, "b", receive(t, started, "key b's request started while a2 waited for key a"))
	receive(t, b.Done(), "key b's request finished")
	select {
	case <-a2.Done():
		t.Fatal("a2 finished while a1, ahead of it on key a, was still running")
	default:
	}
	close(gate)
	require.Equal(t, "a2", receive(t, started, "a2 started once a1 was done"))
	for _, c := range []*mux.Call{a1, a2} {
		receive(t, c.Done(), "a call of key a finished")
		require.NoError(t, c.Err())
	}
	waitFor(t, "key a forgotten", func() bool { return d.keysLeft() == 0 })
}

func TestWithinAKeyArrivalOrderWinsOverPriority(t *testing.T) {
	h := &orderHandler{started: make(chan string, 8), gate: make(chan struct{})}
	d, m := startPair(t, h, Workers(1))
	k := mux.WithKey(t.Context(), "k")
	block := m.Go(k, "block", nil, nil)
	require.Equal(t, "block", receive(t, h.started, "the blocking request started"))
	low := m.Go(mux.WithPriority(k, frame.PriorityLow), "low", nil, nil)
	// Sent together, the urgent request would leave first (the writer
	// sends higher priorities first): let the low one arrive first.
	waitFor(t, "the low request waiting behind key k", func() bool { return d.keyWaiting("k") == 1 })
	urgent := m.Go(mux.WithPriority(k, frame.PriorityUrgent), "urgent", nil, nil)
	waitFor(t, "two requests waiting behind key k", func() bool { return d.keyWaiting("k") == 2 })
	close(h.gate)
	assert.Equal(t, "low", receive(t, h.started, "the next request of key k started"))
	assert.Equal(t, "urgent", receive(t, h.started, "the last request of key k started"))
	for _, c := range []*mux.Call{block, low, urgent} {
		receive(t, c.Done(), "a call of key k finished")
		require.NoError(t, c.Err())
	}
}

func TestCanceledRequestWaitingForItsKey(t *testing.T) {
	// A request canceled while it waits behind its key is answered, when
	// its turn comes, without running its handler, and the key goes on.
	h := &orderHandler{started: make(chan string, 8), gate: make(chan struct{})}
	d, m := startPair(t, h, Workers(2))
	k := mux.WithKey(t.Context(), "k")
	block := m.Go(k, "block", nil, nil)
	require.Equal(t, "block", receive(t, h.started, "the blocking request started"))
	ctx, cancel := context.WithCancel(k)
	gone := m.Go(ctx, "gone", nil, nil)
	cancel()
	receive(t, gone.Done(), "the canceled call finished")
	assert.True(t, errors.Is(gone.Err(), context.Canceled), "err: %v", gone.Err())
	after := m.Go(k, "after", nil, nil)
	// The reader has handled gone's CANCEL once it has queued after.
	waitFor(t, "gone and after waiting behind key k", func() bool { return d.keyWaiting("k") == 2 })
	close(h.gate)
	assert.Equal(t, "after", receive(t, h.started, "the request after the canceled one started"))
	receive(t, after.Done(), "the last call of key k finished")
	require.NoError(t, after.Err())
	receive(t, block.Done(), "the blocking call finished")
	waitFor(t, "key k forgotten", func() bool { return d.keysLeft() == 0 })
}

func TestKeyedRequestsHeldPastMaxInFlightKeepTheirOrder(t *testing.T) {
	// MaxInFlight(3): most requests are held first, then queued as others
	// retire, and go behind their key from there. Requests waiting for
	// their key count in MaxInFlight, which bounds the memory they hold.
	const perKey = 50
	var mu sync.Mutex
	got := map[string][]int{} // guarded by mu
	done := make(chan struct{}, 2*perKey)
	gate := make(chan struct{})
	d, m := startPair(t, HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		var seq int
		if err := req.Decode(&seq); err != nil {
			return nil, err
		}
		if req.Key == "a" && seq == 0 {
			select { // until the rest are held
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		mu.Lock()
		got[req.Key] = append(got[req.Key], seq)
		mu.Unlock()
		done <- struct{}{}
		return nil, nil
	}), MaxInFlight(3))
	a, b := mux.WithKey(t.Context(), "a"), mux.WithKey(t.Context(), "b")
	for seq := range perKey {
		require.NoError(t, m.Notify(a, "seq", seq))
		require.NoError(t, m.Notify(b, "seq", seq))
	}
	// Requests waiting for their key count as in flight: a0 runs, a1 and
	// a2 wait behind it, b0 and b1 have run, and the rest are held.
	waitFor(t, "95 requests held past MaxInFlight behind a0, a1 and a2", func() bool {
		d.s.mu.Lock()
		defer d.s.mu.Unlock()
		return d.s.held.len() == 2*perKey-5 && d.keyWaitingLocked("a") == 2
	})
	close(gate)
	for i := range 2 * perKey {
		receive(t, done, fmt.Sprintf("request %d of %d ran", i+1, 2*perKey))
	}
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	mu.Lock()
	assert.Equal(t, want, got["a"], "key a")
	assert.Equal(t, want, got["b"], "key b")
	mu.Unlock()
	waitFor(t, "every key forgotten", func() bool { return d.keysLeft() == 0 })
}
