// Command poolbench measures what a pool.Pool costs and gives over one
// mux.Mux: calls/s of 16-byte echo calls from many goroutines over TCP on
// 127.0.0.1, through a plain Mux, and through a Pool of one endpoint with
// 1, 2 and 4 connections to the same server.
//
//	make bench-pool                      # from the repository root
//	cd bench && go run ./cmd/poolbench -h
//
// Each round runs every configuration once, in an order that rotates from
// round to round; the report gives the median calls/s of the rounds with
// the min and max, and the Pool of one connection against the plain Mux.
// See bench/README.md for figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		os.Exit(1)
	}
}

// caller is the calling API that mux.Mux and pool.Pool share.
type caller interface {
	Call(ctx context.Context, method string, args, reply any) error
	Close() error
}

// config is one thing measured.
type config struct {
	name string
	dial func(ctx context.Context, addr string) (caller, error)
}

func configs() []config {
	cs := []config{{"mux.Mux", func(ctx context.Context, addr string) (caller, error) {
		return mux.Dial(ctx, "tcp", addr)
	}}}
	for _, k := range []int{1, 2, 4} {
		cs = append(cs, config{fmt.Sprintf("pool K=%d", k), func(ctx context.Context, addr string) (caller, error) {
			return pool.Dial(ctx, "tcp", pool.Static(addr), pool.ConnsPerEndpoint(k))
		}})
	}
	return cs
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poolbench", flag.ContinueOnError)
	var (
		callers  = fs.Int("callers", 256, "concurrent callers")
		size     = fs.Int("payload", 16, "payload bytes of each call")
		duration = fs.Duration("duration", time.Second, "measured window of each run")
		warmup   = fs.Duration("warmup", 200*time.Millisecond, "warm-up before each measured window")
		rounds   = fs.Int("rounds", 5, "runs of each configuration, interleaved")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	router := demux.NewRouter()
	router.Handle("echo", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		return req.Bytes()
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := demux.NewServer(router)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()

	cs := configs()
	results := make([][]float64, len(cs))
	for r := range *rounds {
		for i := range cs {
			j := (i + r) % len(cs)
			if r%2 == 1 {
				j = len(cs) - 1 - j
			}
			rate, err := measure(cs[j], ln.Addr().String(), *callers, *size, *warmup, *duration)
			if err != nil {
				return fmt.Errorf("%s: %w", cs[j].name, err)
			}
			results[j] = append(results[j], rate)
		}
	}
	fmt.Fprintf(out, "16-byte echo over TCP on 127.0.0.1, %d callers, payload %d B, %d rounds of %v (GOMAXPROCS from the environment)\n\n", *callers, *size, *rounds, *duration)
	fmt.Fprintln(out, "| client | calls/s (median) | min–max | vs mux.Mux |")
	fmt.Fprintln(out, "|---|---:|---:|---:|")
	base := median(results[0])
	for i, c := range cs {
		m := median(results[i])
		fmt.Fprintf(out, "| %s | %.0f | %.0f–%.0f | %+.1f%% |\n", c.name, m, slices.Min(results[i]), slices.Max(results[i]), 100*(m/base-1))
	}
	return nil
}

// measure runs callers goroutines calling echo through a client made by c
// for warmup+d, and returns the calls/s of the last d.
func measure(c config, addr string, callers, size int, warmup, d time.Duration) (float64, error) {
	ctx := context.Background()
	cl, err := c.dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var (
		counting atomic.Bool
		calls    atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]byte, size)
			var reply []byte
			n := int64(0)
			for {
				select {
				case <-stop:
					calls.Add(n)
					return
				default:
				}
				if err := cl.Call(ctx, "echo", in, &reply); err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
					return
				}
				if counting.Load() {
					n++
				}
			}
		}()
	}
	time.Sleep(warmup) // the warm-up is a period, not a wait for an event
	counting.Store(true)
	start := time.Now()
	time.Sleep(d)
	counting.Store(false)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	return float64(calls.Load()) / elapsed.Seconds(), firstErr
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
