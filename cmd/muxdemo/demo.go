package main

import (
	"context"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// shutdownTimeout bounds the graceful shutdown of the server; past it the
// server is closed, which cancels the handlers still running.
const shutdownTimeout = 5 * time.Second

// run runs the demo as cfg says, drawing progress on stderr if
// cfg.Progress is set and printing the summary on stdout. It returns an
// error naming every check that failed, errInterrupted if ctx ended first
// and every check passed, or the error that kept the demo from starting.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Pool.Serve != "" {
		return serveOnly(ctx, cfg, stdout)
	}
	before := runtime.NumGoroutine()
	sum, err := demo(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	sum.goroutinesBefore = before
	sum.goroutinesAfter = settle(before)
	sum.print(stdout)
	sum.printPool(stdout)
	return sum.verdict()
}

// sides are a running server and the client Muxes that call it.
type sides struct {
	clients  []*mux.Mux   // connection i's Mux is clients[i]
	pool     *pool.Pool   // in -servers mode, the Pool the callers share
	listener string       // in -conns mode, the server's network and address
	stop     func() error // shuts the server down gracefully, then closes the clients
}

// demo sets up both sides, runs the callers and shuts everything down
// again. Every goroutine it starts has exited, or is past its last wait,
// when it returns.
func demo(ctx context.Context, cfg config, stderr io.Writer) (*summary, error) {
	srv := &server{}
	h := srv.handler(cfg.Delay, cfg.Nested)
	st := newStats(cfg.Conns)
	start := startPair
	if cfg.Conns > 0 {
		start = startServer
	}
	if cfg.Pool.Servers != "" {
		start = startPool
	}
	sd, err := start(cfg, h, st)
	if err != nil {
		return nil, err
	}

	var prog *progress
	if cfg.Progress {
		prog = startProgress(stderr, st, cfg.Interval)
	}
	clients := clientsOf(sd)
	bulk := startBulk(ctx, cfg, clients)
	begin := time.Now()
	callAll(cfg.Flow.smallContext(ctx), cfg, clients, st)
	wall := time.Since(begin)
	bulkSum := bulk.finish(cfg)
	interrupted := ctx.Err() != nil
	if prog != nil {
		prog.stop()
	}
	shutdownErr := sd.stop()
	sum := st.summarize(cfg, wall, interrupted, srv.peak.Load(), shutdownErr)
	sum.listener = sd.listener
	if sd.pool != nil {
		ps := sd.pool.Stats()
		sum.pool, sum.poolMaybeRan, sum.poolNotRun = &ps, st.pool.maybeRan.Load(), st.pool.notRun.Load()
	}
	sum.bulk = bulkSum
	return sum, nil
}

// callAll runs cfg.Callers callers at once, caller i over client
// connection i modulo their number, and waits for them all.
func callAll(ctx context.Context, cfg config, clients []client, st *stats) {
	// until is when the callers start no new round; zero means one round.
	// Their calls run under ctx, which ends only on an interrupt.
	var until time.Time
	if cfg.Duration > 0 {
		until = time.Now().Add(cfg.Duration)
	}
	seed := newSeed()
	var wg sync.WaitGroup
	wg.Add(cfg.Callers)
	for id := range cfg.Callers {
		conn := id % len(clients)
		c := newCaller(id, seed, cfg, conn, clients[conn], st)
		go func() {
			defer wg.Done()
			c.run(ctx, until)
		}()
	}
	wg.Wait()
}

// settle returns the number of goroutines once it is down to want, or the
// number it found when it gave up.
//
// When it is called, the clients' Mux.Close and the server's Serve have
// returned, so every goroutine the run started has passed its last wait;
// but a goroutine may not yet have been scheduled to run its last
// instructions (a deferred close or wg.Done, then the return). So settle
// polls: it yields the processor up to 200 times, then waits in 1 ms
// steps, about 0.8 s at most in all. This is a bounded settle, not a way to wait for work.
func settle(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; n > want && i < 1000; i++ {
		if i < 200 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Millisecond)
		}
		n = runtime.NumGoroutine()
	}
	return n
}
