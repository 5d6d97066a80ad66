package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// shutdownTimeout bounds the graceful shutdown of the server; past it the
// DeMux is closed, which cancels the handlers still running.
const shutdownTimeout = 5 * time.Second

// run runs the demo as cfg says, drawing progress on stderr if
// cfg.Progress is set and printing the summary on stdout. It returns an
// error naming every check that failed, errInterrupted if ctx ended first
// and every check passed, or the error that kept the demo from starting.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	before := runtime.NumGoroutine()
	sum, err := demo(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	sum.goroutinesBefore = before
	sum.goroutinesAfter = settle(before)
	sum.print(stdout)
	return sum.verdict()
}

// demo sets up both sides, runs the callers and shuts everything down
// again. Every goroutine it starts has exited, or is past its last wait,
// when it returns.
func demo(ctx context.Context, cfg config, stderr io.Writer) (*summary, error) {
	clientEnd, serverEnd, err := transport.Pair(transport.Kind(cfg.Transport))
	if err != nil {
		return nil, fmt.Errorf("making a %s pair: %w", cfg.Transport, err)
	}
	srv := &server{}
	d := demux.New(serverEnd, srv.handler(cfg.Delay, cfg.Nested), demux.Workers(cfg.Workers))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	st := &stats{}
	m := mux.New(clientEnd, clientOptions(cfg, 0, st)...)

	var prog *progress
	if cfg.Progress {
		prog = startProgress(stderr, st, cfg.Interval)
	}
	start := time.Now()
	callAll(ctx, cfg, m, st)
	wall := time.Since(start)
	interrupted := ctx.Err() != nil
	if prog != nil {
		prog.stop()
	}
	shutdownErr := shutdown(d, served, m)
	return st.summarize(cfg, wall, interrupted, srv.peak.Load(), shutdownErr), nil
}

// callAll runs cfg.Callers callers at once and waits for them all.
func callAll(ctx context.Context, cfg config, m *mux.Mux, st *stats) {
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
		c := newCaller(id, seed, cfg, 0, m, st)
		go func() {
			defer wg.Done()
			c.run(ctx, until)
		}()
	}
	wg.Wait()
}

// shutdown stops the server gracefully, waits for Serve to return, then
// closes the client. It returns what went wrong, if anything did.
func shutdown(d *demux.DeMux, served <-chan error, m *mux.Mux) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if err := d.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("DeMux.Shutdown: %w", err))
	}
	if err := <-served; err != nil {
		errs = append(errs, fmt.Errorf("DeMux.Serve: %w", err))
	}
	if err := m.Close(); err != nil {
		errs = append(errs, fmt.Errorf("Mux.Close: %w", err))
	}
	return errors.Join(errs...)
}

// settle returns the number of goroutines once it is down to want, or the
// number it found when it gave up.
//
// When it is called, Mux.Close and DeMux.Serve have returned, so every
// goroutine the run started has passed its last wait; but a goroutine may
// not yet have been scheduled to run its last instructions (a deferred
// close or wg.Done, then the return). So settle polls: it yields the
// processor up to 200 times, then waits in 1 ms steps, about 0.8 s at
// most in all. This is a bounded settle, not a way to wait for work.
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
