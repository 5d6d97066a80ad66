//go:build linux

package pooltest

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/sockopt"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// The keepalive of the client's connections: a blackholed server is found
// within about a second and a half.
const (
	kaInterval = 200 * time.Millisecond
	kaTimeout  = time.Second
)

const callers = 256

// outcome is how one call ended, as its caller saw it.
type outcome uint8

const (
	answered     outcome = iota // a result, or a handler's error
	notRun                      // failed with pool.ErrNotRun
	maybeRan                    // failed with pool.ErrMaybeRan
	unclassified                // failed saying neither: a bug
)

// record is one call.
type record struct {
	id   uint64
	idem bool
	out  outcome
	err  error
}

// load is the 256 callers going through one Pool.
type load struct {
	p        *pool.Pool
	wait     time.Duration // how long each call's handler takes
	next     atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	records  []record
	lastSeen map[string]*atomic.Int64 // server name: when it last answered, in ns since start
	start    time.Time
}

func startLoad(p *pool.Pool, servers []*serverProc, wait time.Duration) *load {
	ld := &load{p: p, wait: wait, stop: make(chan struct{}), lastSeen: map[string]*atomic.Int64{}, start: time.Now()}
	for _, s := range servers {
		ld.lastSeen[s.name] = new(atomic.Int64)
	}
	for range callers {
		ld.wg.Add(1)
		go ld.caller()
	}
	return ld
}

func (ld *load) caller() {
	defer ld.wg.Done()
	var mine []record
	defer func() {
		ld.mu.Lock()
		ld.records = append(ld.records, mine...)
		ld.mu.Unlock()
	}()
	for {
		select {
		case <-ld.stop:
			return
		default:
		}
		id := ld.next.Add(1)
		r := record{id: id, idem: id%2 == 0}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if r.idem {
			ctx = pool.Idempotent(ctx)
		}
		var name string
		err := ld.p.Call(ctx, "work", workArgs{ID: id, Wait: ld.wait}, &name)
		cancel()
		var re *frame.RemoteError
		switch {
		case err == nil:
			if seen := ld.lastSeen[name]; seen != nil {
				seen.Store(int64(time.Since(ld.start)))
			}
		case errors.Is(err, pool.ErrNotRun) && !errors.Is(err, pool.ErrMaybeRan):
			r.out = notRun
		case errors.Is(err, pool.ErrMaybeRan) && !errors.Is(err, pool.ErrNotRun):
			r.out = maybeRan
		case errors.As(err, &re):
			r.out = answered // the handler ran and failed
		default:
			r.out = unclassified
		}
		r.err = err
		mine = append(mine, r)
	}
}

// seenSince reports whether server name answered a call after t.
func (ld *load) seenSince(name string, t time.Time) bool {
	return ld.lastSeen[name].Load() > int64(t.Sub(ld.start))
}

// finish stops the callers and returns every call.
func (ld *load) finish() []record {
	close(ld.stop)
	ld.wg.Wait()
	return ld.records
}

// eventually polls cond until it holds, failing with what after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", waitLimit, what)
		}
		<-tick.C
	}
}

// hold lets the load run for d: a phase of the test, not a wait for an
// event.
func hold(d time.Duration) { <-time.After(d) }

// executions reads the servers' logs: how many times each call ran.
func executions(t *testing.T, servers []*serverProc) (map[uint64]int, map[string]int) {
	t.Helper()
	runs := map[uint64]int{}
	per := map[string]int{}
	for _, s := range servers {
		f, err := os.Open(s.log)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				t.Fatalf("%s: bad line %q", s.log, sc.Text())
			}
			runs[id]++
			per[s.name]++
		}
		f.Close()
	}
	return runs, per
}

// check tells whether every call was answered or failed saying whether it
// may have run, and whether that is true according to the servers' logs.
func check(t *testing.T, records []record, servers []*serverProc) {
	t.Helper()
	runs, _ := executions(t, servers)
	var counts [4]int
	issued := map[uint64]bool{}
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	shown := map[outcome]int{}
	for _, r := range records {
		if r.out == notRun || r.out == maybeRan {
			if shown[r.out]++; shown[r.out] <= 2 {
				t.Logf("for example, call %d failed: %v", r.id, r.err)
			}
		}
		counts[r.out]++
		if issued[r.id] {
			fail("call %d reported twice", r.id)
		}
		issued[r.id] = true
		n := runs[r.id]
		switch r.out {
		case answered:
			if n == 0 {
				fail("call %d was answered (err %v) but no server ran it", r.id, r.err)
			}
		case notRun:
			if n != 0 {
				fail("call %d failed saying it did not run, but ran %d times: %v", r.id, n, r.err)
			}
		case unclassified:
			fail("call %d failed without saying whether it may have run: %v", r.id, r.err)
		}
		if !r.idem && n > 1 {
			fail("call %d, not idempotent, ran %d times", r.id, n)
		}
	}
	for id := range runs {
		if !issued[id] {
			fail("call %d ran but no caller reported it", id)
		}
	}
	total := counts[answered] + counts[notRun] + counts[maybeRan] + counts[unclassified]
	t.Logf("%d calls: %d answered, %d failed as not run, %d failed as may have run, %d unclassified; %d distinct calls ran",
		len(records), counts[answered], counts[notRun], counts[maybeRan], counts[unclassified], len(runs))
	if total != len(issued) {
		t.Errorf("the counts do not add up: %d outcomes for %d calls", total, len(issued))
	}
	if bad > 10 {
		t.Errorf("... and %d more", bad-10)
	}
	if counts[answered] == 0 {
		t.Error("no call was answered")
	}
}

// dialFunc makes the Pool's connections from the client's namespace.
func (l *lab) dialFunc() pool.Option {
	return pool.DialFunc(func(ctx context.Context, _, addr string) (*mux.Mux, error) {
		c, err := l.dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		sockopt.SetUserTimeout(c, kaInterval+kaTimeout)
		return mux.New(c, mux.Keepalive(kaInterval, kaTimeout)), nil
	})
}

func newPool(t *testing.T, l *lab, addrs []string, k int) *pool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addrs...), l.dialFunc(),
		pool.ConnsPerEndpoint(k), pool.DialTimeout(time.Second), pool.Backoff(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestFailoverAcrossHosts(t *testing.T) {
	l := newLab(t, 3, false)
	var addrs []string
	for _, s := range l.servers {
		s.start(t)
		addrs = append(addrs, s.addr)
	}
	const k = 2
	p := newPool(t, l, addrs, k)
	eventually(t, "the Pool did not connect to every server", func() bool { return p.Stats().Conns == 3*k })
	ld := startLoad(p, l.servers, 0)
	stopped := false
	defer func() {
		if !stopped {
			ld.finish()
		}
	}()
	s1, s2, s3 := l.servers[0], l.servers[1], l.servers[2]
	hold(time.Second)

	t.Log("SIGKILL", s1.name)
	s1.signal(t, syscall.SIGKILL)
	s1.awaitExit(t, "SIGKILL")
	hold(500 * time.Millisecond)
	back := time.Now()
	s1.start(t)
	eventually(t, "the Pool did not come back to the server restarted after SIGKILL", func() bool { return ld.seenSince(s1.name, back) })
	t.Logf("%s answered again %v after it restarted", s1.name, time.Since(back).Round(time.Millisecond))

	t.Log("SIGTERM (graceful shutdown)", s2.name)
	s2.signal(t, syscall.SIGTERM)
	s2.awaitExit(t, "SIGTERM")
	if s2.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("server %s did not shut down cleanly: %s; stderr: %s", s2.name, s2.cmd.ProcessState, s2.stderr)
	}
	hold(500 * time.Millisecond)
	back = time.Now()
	s2.start(t)
	eventually(t, "the Pool did not come back to the server restarted after its graceful shutdown", func() bool { return ld.seenSince(s2.name, back) })

	t.Log("blackhole", s3.name)
	cut := time.Now()
	l.blackhole(s3)
	eventually(t, "the Pool did not drop its connections to the blackholed server", func() bool { return p.Stats().Conns == 2*k })
	t.Logf("the blackholed server's connections were dropped %v after the cut", time.Since(cut).Round(time.Millisecond))
	hold(500 * time.Millisecond)
	back = time.Now()
	l.unblackhole(s3)
	eventually(t, "the Pool did not come back to the server no longer blackholed", func() bool { return ld.seenSince(s3.name, back) })
	hold(500 * time.Millisecond)

	records := ld.finish()
	stopped = true
	st := p.Stats()
	t.Logf("pool: %+v", st)
	check(t, records, l.servers)
	if st.Retries == 0 {
		t.Error("no call was retried: the failover path was not exercised")
	}
	if st.MaybeRan == 0 {
		t.Error("no call failed as may have run: the SIGKILL did not catch calls in flight")
	}
}

func TestFailoverBehindHAProxy(t *testing.T) {
	l := newLab(t, 3, true)
	for _, s := range l.servers {
		s.start(t)
	}
	lb := l.startHAProxy()
	eventually(t, "HAProxy did not see every backend up", func() bool {
		st, err := l.haproxyStats()
		if err != nil || len(st) != len(l.servers) {
			return false
		}
		for _, b := range st {
			if b.status != "UP" {
				return false
			}
		}
		return true
	})
	const k = 6
	p := newPool(t, l, []string{lb}, k)
	eventually(t, "the Pool did not open its connections", func() bool { return p.Stats().Conns == k })
	eventually(t, "HAProxy did not pass the Pool's connections on to the backends", func() bool {
		st, err := l.haproxyStats()
		n := 0
		for _, b := range st {
			n += b.conns
		}
		return err == nil && n == k
	})
	st, _ := l.haproxyStats()
	t.Logf("HAProxy's connections to each backend: %v", st)
	// Calls that take 50 ms: 256 callers then ask for about 5000 calls/s,
	// well below what two shared cores serve even under the race
	// detector, so the backends' counts measure how the Pool spreads its
	// calls, not which server process the scheduler favoured.
	ld := startLoad(p, l.servers, 50*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			ld.finish()
		}
	}()
	hold(2 * time.Second)
	_, per := executions(t, l.servers)
	lo, hi := -1, 0
	for _, s := range l.servers {
		n := per[s.name]
		t.Logf("backend %s: %d calls", s.name, n)
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if lo <= 0 || float64(hi) > 1.25*float64(lo) {
		t.Errorf("the load is not spread over the backends within 25%%: %v", per)
	}

	s1, s2, s3 := l.servers[0], l.servers[1], l.servers[2]
	t.Log("SIGKILL", s1.name)
	s1.signal(t, syscall.SIGKILL)
	s1.awaitExit(t, "SIGKILL")
	hold(time.Second)
	s1.start(t)
	t.Log("SIGTERM (graceful shutdown)", s2.name)
	s2.signal(t, syscall.SIGTERM)
	s2.awaitExit(t, "SIGTERM")
	hold(time.Second)
	s2.start(t)
	hold(time.Second) // HAProxy's checks see it back
	t.Log("blackhole", s3.name)
	dials := p.Stats().Dials
	l.blackhole(s3)
	eventually(t, "the Pool did not replace the connections that went to the blackholed backend", func() bool { return p.Stats().Dials > dials })
	hold(time.Second)
	l.unblackhole(s3)
	hold(time.Second)

	records := ld.finish()
	stopped = true
	t.Logf("pool: %+v", p.Stats())
	check(t, records, l.servers)
	ok := 0
	for _, r := range records[max(0, len(records)-1000):] {
		if r.out == answered && r.err == nil {
			ok++
		}
	}
	if ok == 0 {
		t.Error("the last calls all failed: the Pool did not recover behind the balancer")
	}
}
