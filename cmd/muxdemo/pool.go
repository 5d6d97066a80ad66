package main

// Pool mode: -serve runs only a demo server on an address, and -servers
// runs the callers through a pool.Pool over such servers, so that servers
// can be killed, shut down or restarted under load and the summary shows
// what the Pool made of it.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/pool"
)

// client is what a caller calls through: a mux.Mux, or a pool.Pool with
// -servers.
type client interface {
	Call(ctx context.Context, method string, args, reply any) error
}

// poolConfig is what the flags of pool mode set.
type poolConfig struct {
	Servers string // -servers: comma-separated addresses to call through a Pool
	Serve   string // -serve: the address to serve on, and nothing else
	Conns   int    // -pool-conns: connections per server; 0 means 1
}

// conns returns the connections per server, 1 unless -pool-conns says.
func (c poolConfig) conns() int { return max(1, c.Conns) }

// poolFlags registers the flags of pool mode.
func poolFlags(fs *flag.FlagSet, c *poolConfig) {
	fs.StringVar(&c.Servers, "servers", "", "call through a pool.Pool over these demo servers (addr,addr,...; start them with -serve)")
	fs.StringVar(&c.Serve, "serve", "", "only serve the demo's methods on this TCP address, until interrupted (SIGTERM or Ctrl-C shuts down gracefully)")
	fs.Func("pool-conns", "with -servers, connections per server (default 1)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && n < 1 {
			err = fmt.Errorf("must be at least 1, not %d", n)
		}
		c.Conns = n
		return err
	})
}

// validate rejects what pool mode cannot run.
func (c poolConfig) validate(cfg config) error {
	switch {
	case c.Servers != "" && c.Serve != "":
		return errors.New("-servers and -serve exclude each other")
	case c.Servers != "" && cfg.Conns > 0:
		return errors.New("-servers and -conns exclude each other")
	case c.Servers != "" && cfg.Nested:
		return errors.New("-nested does not work with -servers: the stamp names one connection")
	case c.Conns < 0:
		return fmt.Errorf("-pool-conns must be at least 1, not %d", c.Conns)
	}
	return nil
}

// poolCounts are the calls that failed saying whether they may have run.
type poolCounts struct {
	maybeRan, notRun atomic.Int64
}

// countPoolFailure counts err if it is a Pool's failure that says whether
// the call may have run, and reports whether it was.
func (s *stats) countPoolFailure(err error) bool {
	switch {
	case errors.Is(err, pool.ErrMaybeRan):
		s.pool.maybeRan.Add(1)
	case errors.Is(err, pool.ErrNotRun):
		s.pool.notRun.Add(1)
	default:
		return false
	}
	return true
}

// startPool starts the sides of -servers mode: a Pool over the servers.
// stop closes it.
func startPool(cfg config, _ demux.Handler, _ *stats) (*sides, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	addrs := strings.Split(cfg.Pool.Servers, ",")
	p, err := pool.Dial(ctx, "tcp", pool.DNS(addrs...), pool.ConnsPerEndpoint(cfg.Pool.conns()))
	if err != nil {
		return nil, err
	}
	return &sides{
		pool:     p,
		listener: "pool over " + cfg.Pool.Servers,
		stop:     p.Close,
	}, nil
}

// clientsOf returns what the callers call through.
func clientsOf(sd *sides) []client {
	if sd.pool != nil {
		return []client{sd.pool}
	}
	cs := make([]client, len(sd.clients))
	for i, m := range sd.clients {
		cs[i] = m
	}
	return cs
}

// printPool writes what the Pool did, in -servers mode.
func (s *summary) printPool(w io.Writer) {
	if s.pool == nil {
		return
	}
	fmt.Fprintf(w, "pool: %d endpoints, %d dials (%d failed), %d retries, %d calls failed as \"may have run\", %d as \"did not run\"\n",
		s.pool.Endpoints, s.pool.Dials, s.pool.DialFailures, s.pool.Retries, s.poolMaybeRan, s.poolNotRun)
}

// serveOnly serves the demo's methods on addr until ctx ends, then shuts
// down gracefully.
func serveOnly(ctx context.Context, cfg config, stdout io.Writer) error {
	srv := &server{}
	ln, err := net.Listen("tcp", cfg.Pool.Serve)
	if err != nil {
		return err
	}
	s := demux.NewServer(srv.handler(cfg.Delay, false), demux.Workers(cfg.Workers))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	fmt.Fprintf(stdout, "muxdemo: serving on %s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	<-served
	fmt.Fprintf(stdout, "muxdemo: shut down at %s\n", time.Now().Format(time.TimeOnly))
	return err
}
