// Command tracewait reads a Go execution trace, such as peerbench -trace
// writes, and says where goroutines waited: how long each kind of goroutine
// (named by the function it started in) stayed runnable before it ran, how
// long the Ps were idle, how calls were spread in time (gaps in which no
// caller got its reply), and, for the slow calls, whether the time went in
// waiting for the reply or in waiting to run once it had come.
//
//	cd bench && go run ./cmd/peerbench -systems muxrpc -transports tcp -payloads 16 \
//	    -callers 256 -duration 1s -rounds 1 -out /tmp/pb -trace /tmp/muxrpc.trace
//	cd bench && go run ./cmd/tracewait /tmp/muxrpc.trace
//
// A caller is a goroutine started by -caller (by default the harness's
// caller loop); a call is one of its blocked-then-runnable-then-running
// cycles, which for a caller of peerbench is one Echo call.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

func main() {
	caller := flag.String("caller", "harness.Run.func", "substring of the start function that names the callers' goroutines")
	slow := flag.Duration("slow", 2*time.Millisecond, "calls longer than this are split into waiting for the reply and waiting to run")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tracewait [flags] TRACE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracewait:", err)
		os.Exit(1)
	}
	defer f.Close()
	s := newStats(*caller, *slow)
	if err := s.read(f); err != nil {
		fmt.Fprintln(os.Stderr, "tracewait:", err)
		os.Exit(1)
	}
	s.report(os.Stdout)
}

// goroutine is what is known of one goroutine while the trace is read.
type goroutine struct {
	kind       string     // the function it started in
	runnableAt trace.Time // when it last became runnable
	blockedAt  trace.Time // when it last blocked (callers)
	runnable   bool
	blocked    bool
}

type stats struct {
	caller string
	slow   time.Duration

	gs      map[trace.GoID]*goroutine
	waits   map[string][]time.Duration // runnable → running, by kind
	replies []trace.Time               // callers becoming runnable after blocking
	idleAt  map[trace.ProcID]trace.Time
	idle    []time.Duration

	calls, slowCalls          int
	slowBlocked, slowRunnable time.Duration
	blockedMost               int // slow calls that spent longer blocked than runnable
	threads                   map[trace.ThreadID]bool
}

func newStats(caller string, slow time.Duration) *stats {
	return &stats{
		caller:  caller,
		slow:    slow,
		gs:      make(map[trace.GoID]*goroutine),
		waits:   make(map[string][]time.Duration),
		idleAt:  make(map[trace.ProcID]trace.Time),
		threads: make(map[trace.ThreadID]bool),
	}
}

func (s *stats) read(r io.Reader) error {
	tr, err := trace.NewReader(r)
	if err != nil {
		return err
	}
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Thread() != trace.NoThread {
			s.threads[ev.Thread()] = true
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		switch st.Resource.Kind {
		case trace.ResourceProc:
			s.proc(ev, st)
		case trace.ResourceGoroutine:
			s.goroutine(ev, st)
		}
	}
}

func (s *stats) proc(ev trace.Event, st trace.StateTransition) {
	from, to := st.Proc()
	p := st.Resource.Proc()
	switch {
	case to == trace.ProcIdle:
		s.idleAt[p] = ev.Time()
	case from == trace.ProcIdle && to == trace.ProcRunning:
		if t, ok := s.idleAt[p]; ok {
			s.idle = append(s.idle, time.Duration(ev.Time()-t))
			delete(s.idleAt, p)
		}
	}
}

func (s *stats) goroutine(ev trace.Event, st trace.StateTransition) {
	id := st.Resource.Goroutine()
	from, to := st.Goroutine()
	g := s.gs[id]
	if g == nil || from == trace.GoNotExist {
		g = &goroutine{kind: "?"}
		for fr := range st.Stack.Frames() {
			g.kind = fr.Func // the outermost frame: where it started
		}
		s.gs[id] = g
	}
	isCaller := strings.Contains(g.kind, s.caller)
	switch {
	case to == trace.GoRunnable:
		g.runnableAt, g.runnable = ev.Time(), true
		if isCaller && from == trace.GoWaiting && g.blocked {
			s.replies = append(s.replies, ev.Time())
		}
	case to == trace.GoRunning && g.runnable:
		wait := time.Duration(ev.Time() - g.runnableAt)
		s.waits[g.kind] = append(s.waits[g.kind], wait)
		g.runnable = false
		if isCaller && g.blocked {
			s.call(time.Duration(g.runnableAt-g.blockedAt), wait)
			g.blocked = false
		}
	case from == trace.GoRunning && to == trace.GoWaiting && isCaller:
		g.blockedAt, g.blocked = ev.Time(), true
	}
}

func (s *stats) call(blocked, runnable time.Duration) {
	s.calls++
	if blocked+runnable <= s.slow {
		return
	}
	s.slowCalls++
	s.slowBlocked += blocked
	s.slowRunnable += runnable
	if blocked > runnable {
		s.blockedMost++
	}
}

func (s *stats) report(w io.Writer) {
	fmt.Fprintf(w, "threads that ran: %d\n\n", len(s.threads))
	fmt.Fprintln(w, "runnable before running, by the function a goroutine started in:")
	kinds := make([]string, 0, len(s.waits))
	for k := range s.waits {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return len(s.waits[b]) - len(s.waits[a]) })
	fmt.Fprintf(w, "  %-56s %9s %9s %9s %9s %9s %7s\n", "goroutine", "wake-ups", "p50", "p99", "p999", "max", ">1ms")
	for _, k := range kinds {
		d := s.waits[k]
		if len(d) < 10 {
			continue
		}
		slices.Sort(d)
		fmt.Fprintf(w, "  %-56s %9d %9v %9v %9v %9v %7d\n", short(k, 56), len(d), q(d, .5), q(d, .99), q(d, .999), d[len(d)-1], over(d, time.Millisecond))
	}

	slices.Sort(s.idle)
	var idle time.Duration
	for _, d := range s.idle {
		idle += d
	}
	fmt.Fprintf(w, "\nP idle periods: %d, %v in all", len(s.idle), idle)
	if len(s.idle) > 0 {
		fmt.Fprintf(w, "; p50 %v, p99 %v, max %v, %d over 1ms", q(s.idle, .5), q(s.idle, .99), s.idle[len(s.idle)-1], over(s.idle, time.Millisecond))
	}
	fmt.Fprintln(w)

	if len(s.replies) < 2 {
		fmt.Fprintf(w, "\nno caller goroutines matched -caller %q\n", s.caller)
		return
	}
	slices.Sort(s.replies)
	span := time.Duration(s.replies[len(s.replies)-1] - s.replies[0])
	var gaps []time.Duration
	for i := 1; i < len(s.replies); i++ {
		gaps = append(gaps, time.Duration(s.replies[i]-s.replies[i-1]))
	}
	var in500 time.Duration
	for _, g := range gaps {
		if g > 500*time.Microsecond {
			in500 += g
		}
	}
	slices.Sort(gaps)
	fmt.Fprintf(w, "replies to callers: %d over %v; gaps with no reply over 0.5ms: %d, %.1f%% of the time; over 1ms: %d; longest %v\n",
		len(s.replies), span.Round(time.Millisecond), over(gaps, 500*time.Microsecond), 100*float64(in500)/float64(span), over(gaps, time.Millisecond), gaps[len(gaps)-1])
	if s.calls > 0 {
		fmt.Fprintf(w, "calls over %v: %d of %d (%.2f%%); their time blocked for the reply %v, runnable once it came %v; %d spent longer blocked, %d longer runnable\n",
			s.slow, s.slowCalls, s.calls, 100*float64(s.slowCalls)/float64(s.calls), s.slowBlocked.Round(time.Millisecond), s.slowRunnable.Round(time.Millisecond), s.blockedMost, s.slowCalls-s.blockedMost)
	}
}

// q returns the q-quantile of sorted d.
func q(d []time.Duration, q float64) time.Duration { return d[int(float64(len(d)-1)*q)] }

// over counts the values of sorted d above limit.
func over(d []time.Duration, limit time.Duration) int {
	i, _ := slices.BinarySearch(d, limit+1)
	return len(d) - i
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
