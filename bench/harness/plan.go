package harness

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

// KeyCells are the cells repeated over several rounds: TCP with 16 B at 1
// and 256 callers, 4 KiB at 256 callers and 1 MiB at 16 callers.
var KeyCells = []Cell{
	{transport.TCP, 16, 1},
	{transport.TCP, 16, 256},
	{transport.TCP, 4 << 10, 256},
	{transport.TCP, 1 << 20, 16},
}

// Plan is what a run covers.
type Plan struct {
	Systems    []systems.System
	Transports []transport.Kind
	Payloads   []int
	Callers    []int
	KeyOnly    bool // only the key cells (-quick)
	Rounds     int  // runs of each key cell
	Options
	Progress io.Writer // one line per run; nil for none
}

// Outcome is everything a run measured.
type Outcome struct {
	Plan     Plan
	Matrix   map[Cell]map[string]Result   // one result per system and cell; the median run for key cells
	Key      map[Cell]map[string][]Result // every round of the key cells
	KeyCells []Cell                       // the key cells that were run, in order
	Started  time.Time
	Wall     time.Duration
}

// Execute runs the plan: first the key cells, Rounds times, rotating the
// order of the systems each round (and reversing it every other round) so
// that no system always runs first or after the same neighbour; then every
// other cell of the matrix once, with the systems interleaved cell by cell
// in an order that also rotates.
func Execute(p Plan) *Outcome {
	out := &Outcome{
		Plan:    p,
		Matrix:  make(map[Cell]map[string]Result),
		Key:     make(map[Cell]map[string][]Result),
		Started: time.Now(),
	}
	inPlan := func(c Cell) bool {
		return slices.Contains(p.Transports, c.Transport) && slices.Contains(p.Payloads, c.Payload) && slices.Contains(p.Callers, c.Callers)
	}
	for _, c := range KeyCells {
		if inPlan(c) {
			out.KeyCells = append(out.KeyCells, c)
		}
	}
	total := len(out.KeyCells) * p.Rounds * len(p.Systems)
	if !p.KeyOnly {
		total += (len(p.Transports)*len(p.Payloads)*len(p.Callers) - len(out.KeyCells)) * len(p.Systems)
	}
	done := 0
	progress := func(r Result) {
		done++
		if p.Progress == nil {
			return
		}
		status := fmt.Sprintf("%10.0f calls/s  p50 %-9v p99 %-9v", r.CallsPerSec, r.P50, r.P99)
		switch {
		case r.Skipped != "":
			status = "skipped: " + r.Skipped
		case r.Err != "":
			status = "FAILED: " + r.Err
		}
		fmt.Fprintf(p.Progress, "[%4d/%d %5.0fs] %-15s %-18s %s\n", done, total, time.Since(out.Started).Seconds(), r.System, r.Cell, status)
	}
	for round := range p.Rounds {
		order := rotate(p.Systems, round)
		for _, c := range out.KeyCells {
			if out.Key[c] == nil {
				out.Key[c] = make(map[string][]Result)
			}
			for _, sys := range order {
				r := Run(sys, c, p.Options)
				out.Key[c][sys.Name()] = append(out.Key[c][sys.Name()], r)
				progress(r)
			}
		}
	}
	for _, c := range out.KeyCells {
		out.Matrix[c] = make(map[string]Result)
		for name, rs := range out.Key[c] {
			out.Matrix[c][name] = MedianResult(rs)
		}
	}
	if !p.KeyOnly {
		i := 0
		for _, k := range p.Transports {
			for _, size := range p.Payloads {
				for _, n := range p.Callers {
					c := Cell{k, size, n}
					if slices.Contains(out.KeyCells, c) {
						continue
					}
					out.Matrix[c] = make(map[string]Result)
					for _, sys := range rotate(p.Systems, i) {
						r := Run(sys, c, p.Options)
						out.Matrix[c][sys.Name()] = r
						progress(r)
					}
					i++
				}
			}
		}
	}
	out.Wall = time.Since(out.Started)
	return out
}

// rotate returns systems rotated left by i, reversed when i is odd.
func rotate(s []systems.System, i int) []systems.System {
	n := len(s)
	out := make([]systems.System, n)
	for j := range s {
		out[j] = s[(j+i)%n]
	}
	if i%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// MedianResult returns the run with the median calls/s among those that
// succeeded (the lower middle one for an even count), or the first failure
// if none did.
func MedianResult(rs []Result) Result {
	var ok []Result
	for _, r := range rs {
		if r.OK() {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		if len(rs) == 0 {
			return Result{}
		}
		return rs[0]
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].CallsPerSec < ok[j].CallsPerSec })
	return ok[(len(ok)-1)/2]
}

// Spread summarizes the calls/s of the successful runs among rs.
type Spread struct {
	N                  int
	Median, Min, Max   float64
	CV                 float64 // standard deviation / mean
	Failed, Skipped    int
	FirstErr, Skipped0 string
}

// SpreadOf computes the spread of rs.
func SpreadOf(rs []Result) Spread {
	var s Spread
	var v []float64
	for _, r := range rs {
		switch {
		case r.Skipped != "":
			s.Skipped++
			s.Skipped0 = r.Skipped
		case !r.OK():
			s.Failed++
			if s.FirstErr == "" {
				s.FirstErr = r.Err
			}
		default:
			v = append(v, r.CallsPerSec)
		}
	}
	s.N = len(v)
	if s.N == 0 {
		return s
	}
	sort.Float64s(v)
	s.Median = v[(len(v)-1)/2]
	if len(v)%2 == 0 {
		s.Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	s.Min, s.Max = v[0], v[len(v)-1]
	var sum, sq float64
	for _, x := range v {
		sum += x
	}
	mean := sum / float64(len(v))
	for _, x := range v {
		sq += (x - mean) * (x - mean)
	}
	if len(v) > 1 && mean > 0 {
		s.CV = math.Sqrt(sq/float64(len(v)-1)) / mean
	}
	return s
}
