package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/muxrpc/muxrpc/pool"
)

// summary is the outcome of a run.
type summary struct {
	cfg         config
	interrupted bool // the run's context ended before the callers finished

	ok, mismatches, expected, missing, unexpected, canceled int64
	callersShort                                            int64

	wall          time.Duration // from the first call to the last reply
	p50, p99, max time.Duration // latency of the calls that completed
	peak          int64         // most handlers running at once on the server

	// In -nested mode: callbacks the client side served, replies whose
	// callback stamp checked, and replies whose stamp was wrong.
	callbacks, callbacksChecked, callbackMismatches int64

	listener string  // in -conns mode, the server's network and address
	perConn  []int64 // calls completed on each client connection

	pool                     *pool.Stats // in -servers mode, what the Pool did
	poolMaybeRan, poolNotRun int64       // in -servers mode, calls failed saying whether they may have run

	bulk *bulkSummary // with -bulk, the bulk callers' outcome (flow.go)

	shutdownErr                       error
	goroutinesBefore, goroutinesAfter int
	notes                             []string // the first few failures
}

// completed returns the number of calls that completed, whatever their
// outcome.
func (s *summary) completed() int64 {
	return s.ok + s.mismatches + s.expected + s.missing + s.unexpected
}

// check is one pass/fail line of the summary.
type check struct {
	name   string
	passed bool
	detail string // shown when the check failed
}

// checks returns the checks that apply to the run.
func (s *summary) checks() []check {
	cs := []check{
		{"every reply echoed its own call", s.mismatches == 0,
			fmt.Sprintf("%d mismatched replies", s.mismatches)},
		{"no unexpected error", s.unexpected == 0,
			fmt.Sprintf("%d unexpected errors", s.unexpected)},
		{"every failing call failed as expected", s.missing == 0 && s.callersShort == 0,
			fmt.Sprintf("%d failing calls succeeded, %d callers finished without their expected error", s.missing, s.callersShort)},
	}
	if want := int64(s.cfg.Callers) * int64(s.cfg.Calls+1); s.cfg.Duration == 0 && !s.interrupted {
		cs = append(cs, check{"every call completed", s.completed() == want,
			fmt.Sprintf("%d calls completed, want %d", s.completed(), want)})
	}
	if s.cfg.Workers > 0 && s.cfg.Conns == 0 {
		cs = append(cs, check{"peak in flight <= workers", s.peak <= s.peakLimit(),
			fmt.Sprintf("%d handlers ran at once with %d workers", s.peak, s.cfg.Workers)})
	}
	if s.cfg.Workers > 0 && s.cfg.Conns > 0 {
		cs = append(cs, check{"peak in flight <= workers x connections", s.peak <= s.peakLimit(),
			fmt.Sprintf("%d handlers ran at once with %d workers on each of %d connections", s.peak, s.cfg.Workers, s.cfg.Conns)})
	}
	if s.cfg.Nested {
		// An interrupt may cancel a call after its callback was served.
		cs = append(cs, check{"every callback came back to its caller",
			s.callbackMismatches == 0 && (s.interrupted || s.callbacks == s.callbacksChecked),
			fmt.Sprintf("%d callbacks made, %d checked, %d wrong", s.callbacks, s.callbacksChecked, s.callbackMismatches)})
	}
	if s.cfg.Conns > 0 && !s.interrupted {
		idle := s.idleConns()
		cs = append(cs, check{"every connection carried calls", len(idle) == 0,
			fmt.Sprintf("connections %v completed no call", idle)})
	}
	cs = append(cs, s.bulk.checks()...)
	shutdown := "ok"
	if s.shutdownErr != nil {
		shutdown = s.shutdownErr.Error()
	}
	cs = append(cs,
		check{"clean shutdown", s.shutdownErr == nil, shutdown},
		// Fewer goroutines after than before is no leak: one outside the
		// run may have ended meanwhile, such as main's signal watcher.
		check{"no goroutine leak", s.goroutinesAfter <= s.goroutinesBefore,
			fmt.Sprintf("%d goroutines before, %d after", s.goroutinesBefore, s.goroutinesAfter)},
	)
	return cs
}

// peakLimit returns the most handlers the server may run at once: the
// workers of each connection, with a worker pool.
func (s *summary) peakLimit() int64 {
	return int64(s.cfg.Workers) * int64(max(s.cfg.Conns, 1))
}

// idleConns returns the indexes of the client connections on which no
// call completed.
func (s *summary) idleConns() []int {
	var idle []int
	for i, n := range s.perConn {
		if n == 0 {
			idle = append(idle, i)
		}
	}
	return idle
}

// verdict returns an error naming the failed checks, errInterrupted if
// none failed but the run was interrupted, or nil.
func (s *summary) verdict() error {
	var errs []error
	for _, c := range s.checks() {
		if !c.passed {
			errs = append(errs, fmt.Errorf("%s: %s", c.name, c.detail))
		}
	}
	if len(errs) == 0 && s.interrupted {
		return errInterrupted
	}
	return errors.Join(errs...)
}

// print writes the summary table and the checks to w.
func (s *summary) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	mode := "one round per caller"
	if s.cfg.Duration > 0 {
		mode = "rounds for " + s.cfg.Duration.String()
	}
	workers := fmt.Sprint(s.cfg.Workers)
	if s.cfg.Workers == 0 {
		workers = "0 (a goroutine per request)"
	}
	peak := fmt.Sprint(s.peak)
	switch {
	case s.cfg.Workers > 0 && s.cfg.Conns > 0:
		peak += fmt.Sprintf(" (limit %d: %d per connection)", s.peakLimit(), s.cfg.Workers)
	case s.cfg.Workers > 0:
		peak += fmt.Sprintf(" (limit %d)", s.cfg.Workers)
	}
	rate := 0.0
	if secs := s.wall.Seconds(); secs > 0 {
		rate = float64(s.completed()) / secs
	}

	if s.pool != nil {
		row("servers", "%s (pool.Pool, %d connections each)", s.cfg.Pool.Servers, s.cfg.Pool.conns())
	} else {
		row("transport", "%s", s.cfg.Transport)
	}
	if s.cfg.Conns > 0 {
		row("listener", "%s (demux.Server)", s.listener)
		row("connections", "%d (mux.Dial)", s.cfg.Conns)
	}
	row("workers", "%s", workers)
	row("callers", "%d", s.cfg.Callers)
	row("calls per round", "%d + 1 failing", s.cfg.Calls)
	row("mode", "%s", mode)
	row("payload", "%d B", s.cfg.Payload)
	if s.cfg.Flow.Priority {
		row("priority", "urgent")
	}
	row("delay scale", "%gx", s.cfg.Delay)
	row("calls completed", "%d", s.completed())
	row("replies ok", "%d", s.ok)
	row("errors expected", "%d", s.expected)
	row("errors unexpected", "%d", s.unexpected)
	row("expected errors missing", "%d", s.missing)
	row("mismatches", "%d", s.mismatches)
	row("canceled", "%d", s.canceled)
	if s.cfg.Nested {
		row("callbacks made", "%d", s.callbacks)
		row("callbacks checked", "%d", s.callbacksChecked)
		row("callback mismatches", "%d", s.callbackMismatches)
	}
	if s.cfg.Conns > 0 {
		row("calls per connection", "%s", perConnText(s.perConn))
	}
	row("wall time", "%v", s.wall.Round(time.Millisecond))
	row("calls/s", "%.0f", rate)
	row("latency p50", "%v", roundLatency(s.p50))
	row("latency p99", "%v", roundLatency(s.p99))
	row("latency max", "%v", roundLatency(s.max))
	s.bulk.printRows(row)
	row("peak in flight", "%s", peak)
	row("goroutines before", "%d", s.goroutinesBefore)
	row("goroutines after", "%d", s.goroutinesAfter)
	if s.interrupted {
		row("interrupted", "yes")
	}
	tw.Flush()

	fmt.Fprintln(w)
	failed := 0
	for _, c := range s.checks() {
		if c.passed {
			fmt.Fprintf(w, "PASS  %s\n", c.name)
		} else {
			failed++
			fmt.Fprintf(w, "FAIL  %s: %s\n", c.name, c.detail)
		}
	}
	for _, n := range s.notes {
		fmt.Fprintf(w, "      %s\n", n)
	}
	switch {
	case failed > 0:
		fmt.Fprintf(w, "result: FAIL (%d of %d checks)\n", failed, len(s.checks()))
	case s.interrupted:
		fmt.Fprintln(w, "result: interrupted, all checks passed")
	default:
		fmt.Fprintln(w, "result: PASS")
	}
}

// maxListedConns is the most connections whose call counts the summary
// lists one by one; past it, it gives their range.
const maxListedConns = 16

// perConnText formats the calls completed on each connection.
func perConnText(counts []int64) string {
	if len(counts) <= maxListedConns {
		return strings.Trim(fmt.Sprint(counts), "[]")
	}
	return fmt.Sprintf("%d to %d (%d connections)", slices.Min(counts), slices.Max(counts), len(counts))
}

// roundLatency rounds d to three or four significant digits for display.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}
