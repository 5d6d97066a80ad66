package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// flowConfig is what the flow flags set: bulk callers beside the small
// ones, and the small callers' priority.
type flowConfig struct {
	Bulk     int  // goroutines echoing BulkSize bytes without pause; 0 = none
	BulkSize int  // bytes per bulk call; 0 = defaultBulkSize
	Priority bool // the small callers' calls are sent with mux.PriorityUrgent
}

// defaultBulkSize is what -bulk-size 0 means.
const defaultBulkSize = 1 << 20

// bulkMethod is the method the bulk callers call: its handler returns its
// argument.
const bulkMethod = "bulk"

// addFlowFlags defines -bulk, -bulk-size and -priority on fs.
func addFlowFlags(fs *flag.FlagSet, fc *flowConfig) {
	fs.IntVar(&fc.Bulk, "bulk", fc.Bulk, "bulk callers, each echoing -bulk-size bytes without pause beside the small callers until they are done")
	fs.IntVar(&fc.BulkSize, "bulk-size", fc.BulkSize, "bytes each bulk call echoes (0: 1 MiB)")
	fs.BoolVar(&fc.Priority, "priority", fc.Priority, "the small callers' calls are sent with mux.PriorityUrgent (mux.WithPriority)")
}

// validate rejects flow flags the demo cannot run.
func (fc flowConfig) validate() error {
	switch {
	case fc.Bulk < 0:
		return fmt.Errorf("-bulk must not be negative, not %d", fc.Bulk)
	case fc.BulkSize < 0:
		return fmt.Errorf("-bulk-size must not be negative, not %d", fc.BulkSize)
	}
	return nil
}

// size returns the bytes of each bulk call.
func (fc flowConfig) size() int {
	if fc.BulkSize == 0 {
		return defaultBulkSize
	}
	return fc.BulkSize
}

// smallContext returns the context the small callers call under: ctx,
// marked urgent with -priority.
func (fc flowConfig) smallContext(ctx context.Context) context.Context {
	if fc.Priority {
		return mux.WithPriority(ctx, mux.PriorityUrgent)
	}
	return ctx
}

// handleBulk adds bulkMethod to r.
func handleBulk(r *demux.Router) {
	r.Handle(bulkMethod, demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		return req.Bytes() // the argument's bytes, without a copy
	}))
}

// bulkStats are the bulk callers' counters. They are safe for concurrent
// use.
type bulkStats struct {
	ok         atomic.Int64 // replies that echoed their call
	mismatches atomic.Int64 // replies that did not
	errs       atomic.Int64 // calls that failed, other than by an interrupt
	latency    histogram
}

// bulkRun is the bulk callers at work.
type bulkRun struct {
	st    bulkStats
	stop  chan struct{} // closed to make the callers stop after their call
	wg    sync.WaitGroup
	begin time.Time

	mu  sync.Mutex
	err error // the first failure; guarded by mu
}

// startBulk starts cfg.Flow.Bulk callers over clients (caller i over
// clients[i mod len]: the Muxes of the connections, or the Pool with
// -servers), each echoing cfg.Flow.size() bytes in a loop under
// ctx until finish is called; each makes one call at least, unless ctx
// ends. It returns nil if there are none.
func startBulk(ctx context.Context, cfg config, clients []client) *bulkRun {
	if cfg.Flow.Bulk == 0 {
		return nil
	}
	b := &bulkRun{stop: make(chan struct{}), begin: time.Now()}
	size := cfg.Flow.size()
	for i := range cfg.Flow.Bulk {
		m := clients[i%len(clients)]
		b.wg.Add(1)
		go func() { // waited for by finish
			defer b.wg.Done()
			payload := make([]byte, size)
			for j := range payload {
				payload[j] = byte(i + j*7)
			}
			reply := make([]byte, 0, size)
			for {
				start := time.Now()
				err := m.Call(ctx, bulkMethod, payload, &reply)
				elapsed := time.Since(start)
				switch {
				case ctx.Err() != nil && errors.Is(err, ctx.Err()):
					return // interrupted
				case err != nil:
					b.st.errs.Add(1)
					b.fail(fmt.Errorf("bulk caller %d: %w", i, err))
					return
				case !bytes.Equal(reply, payload):
					b.st.mismatches.Add(1)
					b.fail(fmt.Errorf("bulk caller %d: reply of %d bytes is not the echo of its %d", i, len(reply), len(payload)))
				default:
					b.st.ok.Add(1)
				}
				b.st.latency.record(elapsed)
				select {
				case <-b.stop:
					return
				default:
				}
			}
		}()
	}
	return b
}

func (b *bulkRun) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
}

// finish makes the bulk callers stop after their current call, waits for
// them and returns their summary. A nil b returns nil.
func (b *bulkRun) finish(cfg config) *bulkSummary {
	if b == nil {
		return nil
	}
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return &bulkSummary{
		callers:    cfg.Flow.Bulk,
		size:       cfg.Flow.size(),
		ok:         b.st.ok.Load(),
		mismatches: b.st.mismatches.Load(),
		errs:       b.st.errs.Load(),
		wall:       time.Since(b.begin),
		p50:        b.st.latency.quantile(0.50),
		p99:        b.st.latency.quantile(0.99),
		max:        time.Duration(b.st.latency.max.Load()),
		err:        b.err,
	}
}

// bulkSummary is the outcome of the bulk callers.
type bulkSummary struct {
	callers, size        int
	ok, mismatches, errs int64
	wall                 time.Duration // from their start to their end
	p50, p99, max        time.Duration
	err                  error // the first failure
}

// throughput returns the bulk payload echoed per second, in MB (10^6
// bytes), one direction.
func (b *bulkSummary) throughput() float64 {
	if b.wall <= 0 {
		return 0
	}
	return float64(b.ok) * float64(b.size) / 1e6 / b.wall.Seconds()
}

// printRows writes the bulk rows of the summary table.
func (b *bulkSummary) printRows(row func(name, format string, args ...any)) {
	if b == nil {
		return
	}
	row("bulk callers", "%d x %d B", b.callers, b.size)
	row("bulk calls ok", "%d", b.ok)
	row("bulk errors", "%d", b.errs)
	row("bulk mismatches", "%d", b.mismatches)
	row("bulk throughput", "%.1f MB/s", b.throughput())
	row("bulk latency p50", "%v", roundLatency(b.p50))
	row("bulk latency p99", "%v", roundLatency(b.p99))
	row("bulk latency max", "%v", roundLatency(b.max))
}

// checks returns the bulk callers' checks.
func (b *bulkSummary) checks() []check {
	if b == nil {
		return nil
	}
	detail := fmt.Sprintf("%d errors, %d mismatched replies", b.errs, b.mismatches)
	if b.err != nil {
		detail += ": first: " + b.err.Error()
	}
	return []check{{"every bulk call echoed its payload", b.errs == 0 && b.mismatches == 0, detail}}
}
