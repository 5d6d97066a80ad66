package pool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

func TestCallsSpreadOverEndpoints(t *testing.T) {
	servers := []*server{startServer(t, "a"), startServer(t, "b"), startServer(t, "c")}
	p := dialPool(t, servers, pool.ConnsPerEndpoint(2))
	eventually(t, "the Pool did not connect 6 times", func() bool { return p.Stats().Conns == 6 })
	const callers, each = 16, 30
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				var who string
				if err := p.Call(context.Background(), "who", struct{}{}, &who); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	awaitGroup(t, &wg, "the callers did not all finish their calls")
	for _, s := range servers {
		got := s.calls.Load()
		t.Logf("server %s: %d calls", s.name, got)
		assert.Greater(t, got, int64(callers*each/3/2), "server %s got too few calls", s.name)
	}
	st := p.Stats()
	assert.Equal(t, 3, st.Endpoints)
	assert.Zero(t, st.Retries)
}

func TestGoNotifyCloseDoneErr(t *testing.T) {
	s := startServer(t, "a")
	got := make(chan int, 1)
	p := dialPool(t, []*server{s})
	var who string
	c := p.Go(context.Background(), "who", struct{}{}, &who)
	rpctest.Await(t, c.Done(), "the call started by Go did not finish")
	require.NoError(t, c.Err())
	assert.Equal(t, "a", who)
	require.NoError(t, p.Notify(rpctest.Context(t), "work", 1))
	eventually(t, "the notification did not reach the server", func() bool { return s.calls.Load() == 2 })
	close(got)

	assert.NoError(t, p.Err())
	select {
	case <-p.Done():
		t.Fatal("Done is closed before Close")
	default:
	}
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	rpctest.Await(t, p.Done(), "Done was not closed by Close")
	assert.ErrorIs(t, p.Err(), mux.ErrClosed)
	err := p.Call(rpctest.Context(t), "who", struct{}{}, nil)
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.ErrorIs(t, err, pool.ErrNotRun)
	c = p.Go(context.Background(), "who", struct{}{}, nil)
	rpctest.Await(t, c.Done(), "Go after Close did not finish at once")
	assert.ErrorIs(t, c.Err(), mux.ErrClosed)
	assert.ErrorIs(t, p.Notify(rpctest.Context(t), "work", 1), mux.ErrClosed)
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	s := startServer(t, "a")
	s.setWork(blockUntil(make(chan struct{}), "a"))
	p := dialPool(t, []*server{s})
	c := p.Go(context.Background(), "work", 1, nil)
	rpctest.Await(t, s.started, "the handler did not start")
	p.Close()
	select {
	case <-c.Done():
	default:
		t.Fatal("Close returned before the call in flight finished")
	}
	assert.ErrorIs(t, c.Err(), mux.ErrClosed)
	assert.ErrorIs(t, c.Err(), pool.ErrMaybeRan)
}

func TestOverloadedIsRetriedElsewhere(t *testing.T) {
	busy, ok := startServer(t, "busy"), startServer(t, "ok")
	busy.setWork(overloaded)
	p := dialPool(t, []*server{busy, ok})
	eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
	ctx := rpctest.Context(t)
	for range 50 {
		var who string
		require.NoError(t, p.Call(ctx, "work", 1, &who))
		assert.Equal(t, "ok", who)
	}
	st := p.Stats()
	assert.Equal(t, uint64(busy.calls.Load()), st.Retries, "every call refused by the busy server is retried once")
	assert.Positive(t, busy.calls.Load(), "no call tried the busy server: the test proves nothing")
}

func TestMaybeRanIsRetriedOnlyIfIdempotent(t *testing.T) {
	for _, idem := range []bool{false, true} {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) {
			gate := make(chan struct{})
			ss := startServers(t, "a", "b")
			a, b := ss[0], ss[1]
			a.setWork(blockUntil(gate, "a"))
			b.setWork(blockUntil(gate, "b"))
			p := dialPool(t, []*server{a, b})
			eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
			ctx := context.Background()
			if idem {
				ctx = pool.Idempotent(ctx)
			}
			var who string
			c := p.Go(ctx, "work", 1, &who)
			first := rpctest.Await(t, a.started, "the handler did not start")
			victim, other := a, b
			if first == "b" {
				victim, other = b, a
			}
			victim.srv.Close() // the connection dies with the call in flight
			if !idem {
				rpctest.Await(t, c.Done(), "the call did not fail when its connection died")
				var pe *pool.Error
				require.ErrorAs(t, c.Err(), &pe)
				assert.True(t, pe.MaybeRan)
				assert.Equal(t, 1, pe.Attempts)
				assert.ErrorIs(t, c.Err(), pool.ErrMaybeRan)
				assert.ErrorIs(t, c.Err(), mux.ErrClosed)
				assert.NotErrorIs(t, c.Err(), pool.ErrNotRun)
				return
			}
			second := rpctest.Await(t, a.started, "the idempotent call was not retried on the other server")
			assert.Equal(t, other.name, second)
			close(gate)
			rpctest.Await(t, c.Done(), "the retried call did not finish")
			require.NoError(t, c.Err())
			assert.Equal(t, other.name, who)
			assert.Equal(t, uint64(1), p.Stats().Retries)
		})
	}
}

func TestGoAwayDrainsAndReplaces(t *testing.T) {
	gate := make(chan struct{})
	ss := startServers(t, "a", "b")
	a, b := ss[0], ss[1]
	a.setWork(blockUntil(gate, "a"))
	b.setWork(blockUntil(gate, "b"))
	p := dialPool(t, []*server{a, b})
	eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
	c := p.Go(context.Background(), "work", 1, nil)
	first := rpctest.Await(t, a.started, "the handler did not start")
	victim, other := a, b
	if first == "b" {
		victim, other = b, a
	}
	shut := make(chan error, 1)
	go func() { shut <- victim.srv.Shutdown(context.Background()) }()
	eventually(t, "the Pool kept the connection whose server sent GOAWAY", func() bool { return p.Stats().Conns == 1 })
	before := other.calls.Load()
	ctx := rpctest.Context(t)
	for range 20 {
		var who string
		require.NoError(t, p.Call(ctx, "who", struct{}{}, &who))
		assert.Equal(t, other.name, who)
	}
	assert.Equal(t, before+20, other.calls.Load())
	close(gate)
	rpctest.Await(t, c.Done(), "the call in flight on the draining connection did not finish")
	assert.NoError(t, c.Err(), "a call in flight when its server sent GOAWAY is answered")
	assert.NoError(t, rpctest.Await(t, shut, "Shutdown did not return once the Pool's call finished"))
}

func TestRetryBudgetStopsStorms(t *testing.T) {
	s := startServer(t, "a")
	s.setWork(overloaded)
	p := dialPool(t, []*server{s}, pool.MaxAttempts(5), pool.RetryBudget(10, 0.1))
	const calls = 100
	ctx := rpctest.Context(t)
	for range calls {
		err := p.Call(ctx, "work", 1, nil)
		require.ErrorIs(t, err, pool.ErrNotRun)
		var re *frame.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, frame.CodeOverloaded, re.Code)
	}
	// 10 tokens, retries while more than 5: the first call makes 5
	// attempts (tokens 10 to 5), every later one a single attempt.
	assert.Equal(t, int64(calls+4), s.calls.Load(), "attempts made")
	assert.Equal(t, uint64(4), p.Stats().Retries)
}

func TestDeadlineBoundsRetries(t *testing.T) {
	s := startServer(t, "a")
	s.setWork(overloaded)
	p := dialPool(t, []*server{s}, pool.MaxAttempts(1000), pool.RetryBudget(1e6, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Call(ctx, "work", 1, nil)
	// Either the Pool gave up waiting to retry (ErrNotRun), or the server
	// found the last attempt's time budget spent (CodeDeadlineExceeded).
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Greater(t, s.calls.Load(), int64(2), "the call was not retried")
}

func TestBadArgumentsAreNotRetried(t *testing.T) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	ctx := rpctest.Context(t)
	err := p.Call(ctx, "work", make(chan int), nil)
	require.ErrorIs(t, err, pool.ErrNotRun)
	assert.ErrorIs(t, err, mux.ErrNotSent)
	assert.Zero(t, p.Stats().Retries)
	// A handler's own error is returned as it is.
	s.setWork(func(context.Context) (string, error) { return "", errors.New("no") })
	err = p.Call(ctx, "work", 1, nil)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeApplication, re.Code)
	assert.NotErrorIs(t, err, pool.ErrNotRun)
	assert.NotErrorIs(t, err, pool.ErrMaybeRan)
}

func TestDialFailsWhenNothingAnswers(t *testing.T) {
	s := startServer(t, "a")
	addr := s.addr
	s.srv.Close() // nothing listens there any more
	start := time.Now()
	_, err := pool.Dial(rpctest.Context(t), "tcp", pool.Static(addr), pool.Backoff(time.Millisecond, 5*time.Millisecond))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	t.Log(err)
}

func TestUnavailableFailsFast(t *testing.T) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	s.srv.Close()
	eventually(t, "calls did not fail with ErrUnavailable once the only server was gone", func() bool {
		ctx := rpctest.Context(t)
		err := p.Call(ctx, "who", struct{}{}, nil)
		// Fast, on its own: a call that waited until ctx ended would
		// wrap ErrUnavailable too.
		return ctx.Err() == nil && errors.Is(err, pool.ErrUnavailable) && errors.Is(err, pool.ErrNotRun)
	})
}

func TestServerComesBack(t *testing.T) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	addr := s.addr
	s.srv.Close()
	eventually(t, "the Pool did not lose its connection", func() bool { return p.Stats().Conns == 0 })
	s2 := startServerAt(t, "a2", addr)
	eventually(t, "the Pool did not reconnect to the server that came back", func() bool {
		var who string
		return p.Call(rpctest.Context(t), "who", struct{}{}, &who) == nil && who == "a2"
	})
	_ = s2
}

// flakyDialer fails every dial to bad while broken is set, recording how
// many run at once, and dials for real otherwise.
type flakyDialer struct {
	bad     string
	broken  atomic.Bool
	running atomic.Int32
	maxRun  atomic.Int32
	dials   chan time.Time
}

func (d *flakyDialer) dial(ctx context.Context, network, addr string) (*mux.Mux, error) {
	if addr == d.bad && d.broken.Load() {
		n := d.running.Add(1)
		defer d.running.Add(-1)
		for {
			m := d.maxRun.Load()
			if n <= m || d.maxRun.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case d.dials <- time.Now():
		default:
		}
		return nil, errors.New("refused (test)")
	}
	return mux.Dial(ctx, network, addr, mux.Keepalive(50*time.Millisecond, 200*time.Millisecond))
}

func TestSetAsideEndpointIsProbedByOneConnection(t *testing.T) {
	good, bad := startServer(t, "good"), startServer(t, "bad")
	d := &flakyDialer{bad: bad.addr, dials: make(chan time.Time, 1000)}
	d.broken.Store(true)
	const k = 4
	const base, maxDelay = 10 * time.Millisecond, 40 * time.Millisecond
	p := dialPool(t, []*server{good, bad}, pool.ConnsPerEndpoint(k), pool.DialFunc(d.dial), pool.Backoff(base, maxDelay))
	// The first round: each slot fails once or more; then probes only.
	var last time.Time
	for i := range 3 * k {
		last = rpctest.Await(t, d.dials, "the bad endpoint was not dialed again")
		_ = i
	}
	d.maxRun.Store(0)
	for i := range 8 {
		at := rpctest.Await(t, d.dials, "the set-aside endpoint was not probed")
		gap := at.Sub(last)
		last = at
		// Set aside after 3 failures: probes come one at a time, at
		// least 0.8 × maxDelay apart (the backoff is at its cap).
		assert.GreaterOrEqual(t, gap, maxDelay*8/10-time.Millisecond, "probe %d came %v after the one before", i, gap)
	}
	assert.Equal(t, int32(1), d.maxRun.Load(), "dials to the set-aside endpoint at once")
	d.broken.Store(false)
	eventually(t, "the endpoint that came back did not get all its connections", func() bool { return p.Stats().Conns == 2*k })
	assert.Positive(t, p.Stats().DialFailures)
}

func TestResolverChanges(t *testing.T) {
	a, b := startServer(t, "a"), startServer(t, "b")
	var addrs atomic.Pointer[[]string]
	addrs.Store(&[]string{a.addr})
	r := resolverFunc(func(context.Context) ([]string, error) { return *addrs.Load(), nil })
	p, err := pool.Dial(rpctest.Context(t), "tcp", r, pool.ResolveEvery(20*time.Millisecond), fastKeepalive)
	require.NoError(t, err)
	defer p.Close()
	var who string
	require.NoError(t, p.Call(rpctest.Context(t), "who", struct{}{}, &who))
	assert.Equal(t, "a", who)
	addrs.Store(&[]string{b.addr})
	eventually(t, "the Pool did not move to the new endpoint", func() bool {
		st := p.Stats()
		return st.Endpoints == 1 && st.Conns == 1 &&
			p.Call(rpctest.Context(t), "who", struct{}{}, &who) == nil && who == "b"
	})
	// An error or an empty list keeps the endpoints.
	addrs.Store(&[]string{})
	ctx := rpctest.Context(t)
	for range 5 {
		require.NoError(t, p.Call(ctx, "who", struct{}{}, &who))
		assert.Equal(t, "b", who)
	}
}

func TestDNSResolver(t *testing.T) {
	ctx := rpctest.Context(t)
	addrs, err := pool.DNS("localhost:7000", "192.0.2.1:7001").Resolve(ctx)
	require.NoError(t, err)
	assert.Contains(t, addrs, "192.0.2.1:7001")
	assert.Greater(t, len(addrs), 1, "localhost did not resolve: %v", addrs)
	_, err = pool.DNS("no-port").Resolve(ctx)
	assert.Error(t, err)
	addrs, err = pool.Static("x:1", "y:2").Resolve(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"x:1", "y:2"}, addrs)
}

func TestDroppedEndpointDrains(t *testing.T) {
	// The resolver stops giving an endpoint while a call is in flight on
	// it: the call is answered there, and no new call goes there.
	gate := make(chan struct{})
	ss := startServers(t, "a", "b")
	a, b := ss[0], ss[1]
	a.setWork(blockUntil(gate, "a"))
	var addrs atomic.Pointer[[]string]
	addrs.Store(&[]string{a.addr})
	r := resolverFunc(func(context.Context) ([]string, error) { return *addrs.Load(), nil })
	p, err := pool.Dial(rpctest.Context(t), "tcp", r, pool.ResolveEvery(20*time.Millisecond), fastKeepalive)
	require.NoError(t, err)
	defer p.Close()
	var who string
	c := p.Go(context.Background(), "work", 1, &who)
	rpctest.Await(t, a.started, "the handler did not start")
	addrs.Store(&[]string{b.addr})
	var other string
	eventually(t, "the Pool did not move to the new endpoint", func() bool {
		return p.Call(rpctest.Context(t), "who", struct{}{}, &other) == nil && other == "b"
	})
	ctx := rpctest.Context(t)
	for range 10 {
		require.NoError(t, p.Call(ctx, "who", struct{}{}, &other))
		assert.Equal(t, "b", other, "a call went to the dropped endpoint")
	}
	select {
	case <-c.Done():
		t.Fatalf("the call in flight on the dropped endpoint ended early: %v", c.Err())
	default:
	}
	close(gate)
	rpctest.Await(t, c.Done(), "the call in flight on the dropped endpoint did not finish")
	require.NoError(t, c.Err())
	assert.Equal(t, "a", who)
}

func TestConnectionLossResolvesAgain(t *testing.T) {
	s := startServer(t, "a")
	var resolves atomic.Int32
	r := resolverFunc(func(context.Context) ([]string, error) {
		resolves.Add(1)
		return []string{s.addr}, nil
	})
	p, err := pool.Dial(rpctest.Context(t), "tcp", r, pool.ResolveEvery(time.Hour), fastKeepalive)
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, int32(1), resolves.Load())
	s.srv.Close() // the connection ends: the Pool asks the resolver again
	eventually(t, "the Pool did not resolve again after losing its connection", func() bool { return resolves.Load() >= 2 })
}

func TestShutdownRefusalsAreRetriedOutsideTheBudget(t *testing.T) {
	// A budget that allows a single budgeted retry: refusals by a server
	// shutting down are retried all the same, those of an overloaded
	// server soon are not.
	for _, code := range []frame.Code{frame.CodeShutdown, frame.CodeOverloaded} {
		t.Run(code.String(), func(t *testing.T) {
			refusing, ok := startServer(t, "refusing"), startServer(t, "ok")
			refusing.setWork(func(context.Context) (string, error) {
				return "", &frame.RemoteError{Code: code, Message: "refused (test)"}
			})
			p := dialPool(t, []*server{refusing, ok}, pool.RetryBudget(2, 0.001))
			eventually(t, "the Pool did not connect to both", func() bool { return p.Stats().Conns == 2 })
			failed := 0
			ctx := rpctest.Context(t)
			for range 100 {
				if err := p.Call(ctx, "work", 1, nil); err != nil {
					require.ErrorIs(t, err, pool.ErrNotRun)
					failed++
				}
			}
			t.Logf("%v: %d of 100 calls failed; the refusing server took %d", code, failed, refusing.calls.Load())
			require.Positive(t, refusing.calls.Load(), "no call tried the refusing server: the test proves nothing")
			if code == frame.CodeShutdown {
				assert.Zero(t, failed)
			} else {
				assert.Positive(t, failed)
			}
		})
	}
}

func TestComebackIsSpreadOverTime(t *testing.T) {
	// Many clients lose a server at once and keep failing to reach it;
	// when it comes back, they must not all reconnect in the same instant.
	// Without the jitter their backoff schedules, which started together,
	// would stay in step.
	good, back := startServer(t, "good"), startServer(t, "back")
	const pools = 20
	const base, maxDelay = 10 * time.Millisecond, 100 * time.Millisecond
	var up atomic.Bool
	type client struct {
		fails  atomic.Int32
		joined atomic.Int64 // when it first reached back, in ns since start
	}
	clients := make([]*client, pools)
	start := time.Now()
	for i := range clients {
		c := &client{}
		clients[i] = c
		dial := func(ctx context.Context, network, addr string) (*mux.Mux, error) {
			if addr == back.addr {
				if !up.Load() {
					c.fails.Add(1)
					return nil, errors.New("refused (test)")
				}
				c.joined.CompareAndSwap(0, int64(time.Since(start)))
			}
			return mux.Dial(ctx, network, addr)
		}
		dialPool(t, []*server{good, back}, pool.DialFunc(dial), pool.Backoff(base, maxDelay))
	}
	// Wait until every client has failed 8 times: its backoff is at its
	// cap, and 8 jittered waits have put the clients out of step.
	eventually(t, "the clients did not keep failing to reach the server", func() bool {
		for _, c := range clients {
			if c.fails.Load() < 8 {
				return false
			}
		}
		return true
	})
	upAt := time.Since(start)
	up.Store(true)
	var first, last time.Duration
	eventually(t, "not every client reached the server that came back", func() bool {
		first, last = time.Hour, 0
		for _, c := range clients {
			j := time.Duration(c.joined.Load())
			if j == 0 {
				return false
			}
			first, last = min(first, j), max(last, j)
		}
		return true
	})
	t.Logf("%d clients reached the server between %v and %v after it came back", pools, first-upAt, last-upAt)
	assert.GreaterOrEqual(t, last-first, 40*time.Millisecond, "the clients came back too close together")
	assert.LessOrEqual(t, last-upAt, 3*maxDelay, "a client took longer than its backoff cap to come back")
}

func TestRestartedServerIsFoundQuickly(t *testing.T) {
	// The only server restarts, as for a deploy; with the default backoff
	// the Pool finds it again within about DefaultBackoffMax.
	s := startServer(t, "a")
	addr := s.addr
	p := dialPool(t, []*server{s}, pool.Backoff(0, 0))
	s.srv.Close()
	eventually(t, "calls did not fail while the server was down", func() bool {
		return errors.Is(p.Call(rpctest.Context(t), "who", struct{}{}, nil), pool.ErrUnavailable)
	})
	// Down long enough for the backoff to reach its cap.
	eventually(t, "the Pool did not keep trying", func() bool { return p.Stats().DialFailures >= 5 })
	startServerAt(t, "a2", addr)
	back := time.Now()
	var who string
	eventually(t, "the Pool did not find the restarted server", func() bool {
		return p.Call(rpctest.Context(t), "who", struct{}{}, &who) == nil && who == "a2"
	})
	took := time.Since(back)
	t.Logf("the first call succeeded %v after the server came back", took.Round(time.Millisecond))
	assert.Less(t, took, 2*pool.DefaultBackoffMax, "the Pool took longer than its backoff cap to find the server")
}
