package main

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// maxNotes bounds the failures the summary quotes.
const maxNotes = 5

// stats are the callers' counters. They are safe for concurrent use.
type stats struct {
	ok           atomic.Int64 // replies that echoed their call
	mismatches   atomic.Int64 // replies that did not
	expected     atomic.Int64 // failMethod calls that failed as they should
	missing      atomic.Int64 // failMethod calls that succeeded
	unexpected   atomic.Int64 // any other error
	canceled     atomic.Int64 // calls cut short by the end of the run's context
	callersShort atomic.Int64 // callers that ran to the end without their expected error
	inFlight     atomic.Int64 // calls started and not returned
	latency      histogram    // of calls that completed

	// In -nested mode: the callbacks the client side served, the replies
	// whose callback stamp was checked, and those whose stamp was wrong
	// (counted in mismatches too).
	callbacks, callbacksChecked, callbackMismatches atomic.Int64

	perConn []atomic.Int64 // calls completed on each client connection
	pool    poolCounts     // in -servers mode, calls failed saying whether they may have run

	mu    sync.Mutex
	notes []string // the first few failures, for the summary
}

// newStats returns zeroed counters for a run over conns client connections
// (at least one).
func newStats(conns int) *stats {
	return &stats{perConn: make([]atomic.Int64, max(conns, 1))}
}

// done returns the number of calls that completed, whatever their outcome.
func (s *stats) done() int64 {
	return s.ok.Load() + s.mismatches.Load() + s.expected.Load() + s.missing.Load() + s.unexpected.Load()
}

// note keeps a description of a failure if there are fewer than maxNotes.
func (s *stats) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.notes) < maxNotes {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

// summarize freezes the counters into a summary. It must be called once
// the callers have returned.
func (s *stats) summarize(cfg config, wall time.Duration, interrupted bool, peak int64, shutdownErr error) *summary {
	s.mu.Lock()
	notes := append([]string(nil), s.notes...)
	s.mu.Unlock()
	perConn := make([]int64, len(s.perConn))
	for i := range s.perConn {
		perConn[i] = s.perConn[i].Load()
	}
	return &summary{
		cfg:          cfg,
		interrupted:  interrupted,
		ok:           s.ok.Load(),
		mismatches:   s.mismatches.Load(),
		expected:     s.expected.Load(),
		missing:      s.missing.Load(),
		unexpected:   s.unexpected.Load(),
		canceled:     s.canceled.Load(),
		callersShort: s.callersShort.Load(),
		wall:         wall,
		p50:          s.latency.quantile(0.50),
		p99:          s.latency.quantile(0.99),
		max:          time.Duration(s.latency.max.Load()),
		peak:         peak,
		shutdownErr:  shutdownErr,
		notes:        notes,

		callbacks:          s.callbacks.Load(),
		callbacksChecked:   s.callbacksChecked.Load(),
		callbackMismatches: s.callbackMismatches.Load(),
		perConn:            perConn,
	}
}

// histogram counts durations in buckets whose width is at most 1/64 of
// their lower bound, so that quantiles are within 1.6% of the truth in
// constant memory however long the run. It is safe for concurrent use.
type histogram struct {
	counts [(64-subBits)*subBuckets + subBuckets]atomic.Uint64
	max    atomic.Int64 // exact, in nanoseconds
}

const (
	subBits    = 6
	subBuckets = 1 << subBits // buckets per power of two
)

// record counts d.
func (h *histogram) record(d time.Duration) {
	ns := max(int64(d), 0)
	h.counts[bucketOf(uint64(ns))].Add(1)
	for m := h.max.Load(); ns > m && !h.max.CompareAndSwap(m, ns); m = h.max.Load() {
	}
}

// quantile returns the lower bound of the bucket holding the q-quantile
// of what was recorded, or 0 if nothing was.
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(q*float64(total)+0.5), 1) // the rank-th smallest value
	var seen uint64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen >= rank {
			return time.Duration(lowerBound(i))
		}
	}
	return time.Duration(h.max.Load())
}

// bucketOf returns the bucket of v: v itself below subBuckets, and above
// that the power of two of v and the next subBits bits below its top bit.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subBuckets, 2*subBuckets)
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// lowerBound returns the smallest value in bucket i.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << shift
}
