package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// watchdog panics with every goroutine's stack if the test is still
// running after d, instead of letting it hang until go test's timeout.
// The tests do not run in parallel: run counts goroutines.
func watchdog(t *testing.T, d time.Duration) {
	t.Helper()
	name := t.Name()
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		panic(fmt.Sprintf("%s: still running after %v\n\n%s", name, d, buf[:n]))
	})
	t.Cleanup(func() { timer.Stop() })
}

// smallConfig is a quick configuration: few callers, short sleeps.
func smallConfig(transport string, workers int) config {
	return config{
		Callers:   50,
		Calls:     2,
		Workers:   workers,
		Transport: transport,
		Payload:   64,
		Delay:     0.01, // 0.3, 0.2 and 0.1 ms
	}
}

var rowRE = regexp.MustCompile(`^(\S.*?)\s{2,}(\S.*)$`)

// parseSummary returns the rows of the summary table printed by run.
func parseSummary(t *testing.T, out string) map[string]string {
	t.Helper()
	rows := make(map[string]string)
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			break // the table ends at the first blank line
		}
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("summary line %q is not a row", line)
		}
		rows[m[1]] = m[2]
	}
	return rows
}

// number returns the leading integer of a row's value.
func number(t *testing.T, rows map[string]string, key string) int64 {
	t.Helper()
	v, ok := rows[key]
	if !ok {
		t.Fatalf("summary has no row %q", key)
	}
	n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
	if err != nil {
		t.Fatalf("row %q: %v", key, err)
	}
	return n
}

// runDemo runs cfg in-process and returns its summary output.
func runDemo(t *testing.T, ctx context.Context, cfg config, stderr io.Writer) (string, error) {
	t.Helper()
	var stdout bytes.Buffer
	err := run(ctx, cfg, &stdout, stderr)
	t.Logf("summary:\n%s", stdout.String())
	return stdout.String(), err
}

func TestRun(t *testing.T) {
	for _, transport := range []string{"pipe", "tcp", "unix", "mem"} {
		for _, workers := range []int{0, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", transport, workers), func(t *testing.T) {
				watchdog(t, 20*time.Second)
				cfg := smallConfig(transport, workers)
				out, err := runDemo(t, context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				checkFullRun(t, cfg, out)
			})
		}
	}
}

// checkFullRun checks the summary of a run of cfg that was not interrupted
// and had one round per caller: every call completed and checked, none
// mismatched, at most the workers' limit of handlers at once, no leak, and
// the rows and checks of -nested and -conns when they were set. It
// returns the summary's rows.
func checkFullRun(t *testing.T, cfg config, out string) map[string]string {
	t.Helper()
	rows := parseSummary(t, out)
	want := map[string]int64{
		"calls completed":         int64(cfg.Callers * (cfg.Calls + 1)),
		"replies ok":              int64(cfg.Callers * cfg.Calls),
		"errors expected":         int64(cfg.Callers),
		"errors unexpected":       0,
		"expected errors missing": 0,
		"mismatches":              0,
		"canceled":                0,
	}
	if cfg.Nested {
		want["callbacks made"] = int64(cfg.Callers * cfg.Calls)
		want["callbacks checked"] = int64(cfg.Callers * cfg.Calls)
		want["callback mismatches"] = 0
	} else if _, ok := rows["callbacks made"]; ok {
		t.Errorf("summary reports callbacks without -nested")
	}
	if cfg.Conns > 0 {
		want["connections"] = int64(cfg.Conns)
	}
	for key, want := range want {
		if got := number(t, rows, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	peak, limit := number(t, rows, "peak in flight"), int64(cfg.Workers*max(cfg.Conns, 1))
	if peak < 1 || cfg.Workers > 0 && peak > limit {
		t.Errorf("peak in flight = %d with %d workers on %d connections", peak, cfg.Workers, max(cfg.Conns, 1))
	}
	if b, a := number(t, rows, "goroutines before"), number(t, rows, "goroutines after"); a > b {
		t.Errorf("goroutines: %d before, %d after", b, a)
	}
	for _, c := range (&summary{cfg: cfg}).checks() {
		if !strings.Contains(out, "PASS  "+c.name+"\n") {
			t.Errorf("summary does not pass the check %q", c.name)
		}
	}
	if !strings.Contains(out, "result: PASS\n") {
		t.Errorf("summary does not end with PASS")
	}
	return rows
}

// TestRunNested runs -nested over every transport: each handler calls the
// client back, and every reply must carry the stamp of its own callback.
func TestRunNested(t *testing.T) {
	for _, transport := range []string{"pipe", "tcp", "unix", "mem"} {
		for _, workers := range []int{0, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", transport, workers), func(t *testing.T) {
				watchdog(t, 20*time.Second)
				cfg := smallConfig(transport, workers)
				cfg.Nested = true
				out, err := runDemo(t, context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				checkFullRun(t, cfg, out)
			})
		}
	}
}

// TestRunConns runs -conns over a demux.Server on TCP and on a unix socket,
// with and without -nested, and checks the calls of each connection.
func TestRunConns(t *testing.T) {
	for _, transport := range []string{"tcp", "unix"} {
		for _, nested := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/nested=%t", transport, nested), func(t *testing.T) {
				watchdog(t, 20*time.Second)
				cfg := smallConfig(transport, 4)
				cfg.Conns = 3
				cfg.Nested = nested
				out, err := runDemo(t, context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				rows := checkFullRun(t, cfg, out)
				if l := rows["listener"]; !strings.HasPrefix(l, transport+" ") {
					t.Errorf("listener = %q, want a %s address", l, transport)
				}
				// Caller i uses connection i mod 3; each makes Calls+1 calls.
				var want []string
				for conn := range cfg.Conns {
					callers := (cfg.Callers - conn + cfg.Conns - 1) / cfg.Conns
					want = append(want, strconv.Itoa(callers*(cfg.Calls+1)))
				}
				if got := rows["calls per connection"]; got != strings.Join(want, " ") {
					t.Errorf("calls per connection = %q, want %q", got, strings.Join(want, " "))
				}
			})
		}
	}
}

func TestRunDuration(t *testing.T) {
	watchdog(t, 20*time.Second)
	cfg := smallConfig("pipe", 4)
	cfg.Duration = 20 * time.Millisecond
	out, err := runDemo(t, context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	rows := parseSummary(t, out)
	// Every caller makes at least one round, so at least one failing call.
	if got := number(t, rows, "errors expected"); got < int64(cfg.Callers) {
		t.Errorf("errors expected = %d, want at least %d", got, cfg.Callers)
	}
	for _, key := range []string{"errors unexpected", "expected errors missing", "mismatches"} {
		if got := number(t, rows, key); got != 0 {
			t.Errorf("%s = %d, want 0", key, got)
		}
	}
}

func TestRunProgress(t *testing.T) {
	watchdog(t, 20*time.Second)
	cfg := smallConfig("pipe", 4)
	cfg.Progress = true
	cfg.Interval = time.Millisecond
	var stderr bytes.Buffer // written by the progress goroutine, read after run waited for it
	if _, err := runDemo(t, context.Background(), cfg, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\r")
	last := lines[len(lines)-1]
	want := fmt.Sprintf("%d calls done, %d errors (0 unexpected), 0 mismatches, 0 in flight,", cfg.Callers*(cfg.Calls+1), cfg.Callers)
	if !strings.HasPrefix(last, want) || !strings.HasSuffix(stderr.String(), "\x1b[K\n") {
		t.Errorf("last progress line %q, want it to start with %q and end with ESC[K and a newline", last, want)
	}
}

// cancelWriter cancels a context once a progress line shows want calls in
// flight.
type cancelWriter struct {
	mu     sync.Mutex
	want   int
	cancel context.CancelFunc
	buf    bytes.Buffer
}

var inFlightRE = regexp.MustCompile(`(\d+) in flight`)

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := inFlightRE.FindSubmatch(p); m != nil {
		if n, _ := strconv.Atoi(string(m[1])); n == w.want {
			w.cancel()
		}
	}
	return w.buf.Write(p)
}

// TestRunInterrupted cancels the run, as Ctrl-C does, once every caller is
// waiting for a handler that would sleep for 30 s (in -nested mode, after
// its callback): run must cancel them, shut down at once, print the
// summary and report errInterrupted.
func TestRunInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nested    bool
		conns     int
		transport string
	}{
		{"pipe", false, 0, "pipe"},
		{"conns=2/nested", true, 2, "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watchdog(t, 20*time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := smallConfig(tc.transport, 4)
			cfg.Nested, cfg.Conns = tc.nested, tc.conns
			cfg.Delay = 1000 // the first call's handler sleeps 30 s
			cfg.Progress = true
			cfg.Interval = time.Millisecond
			start := time.Now()
			out, err := runDemo(t, ctx, cfg, &cancelWriter{want: cfg.Callers, cancel: cancel})
			if !errors.Is(err, errInterrupted) {
				t.Fatalf("run: %v, want %v", err, errInterrupted)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("run took %v: the handlers were not canceled", d)
			}
			rows := parseSummary(t, out)
			if got := number(t, rows, "canceled"); got != int64(cfg.Callers) {
				t.Errorf("canceled = %d, want %d", got, cfg.Callers)
			}
			if got := number(t, rows, "calls completed"); got != 0 {
				t.Errorf("calls completed = %d, want 0", got)
			}
			if tc.nested {
				if got := number(t, rows, "callbacks checked"); got != 0 {
					t.Errorf("callbacks checked = %d, want 0", got)
				}
			}
			if rows["interrupted"] != "yes" || !strings.Contains(out, "result: interrupted, all checks passed\n") {
				t.Errorf("summary does not say the run was interrupted")
			}
		})
	}
}

func TestRunCanceledBeforeStart(t *testing.T) {
	for _, conns := range []int{0, 3} {
		t.Run(fmt.Sprintf("conns=%d", conns), func(t *testing.T) {
			watchdog(t, 20*time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			cfg := smallConfig("tcp", 4)
			cfg.Conns = conns
			out, err := runDemo(t, ctx, cfg, io.Discard)
			if !errors.Is(err, errInterrupted) {
				t.Fatalf("run: %v, want %v", err, errInterrupted)
			}
			if got := number(t, parseSummary(t, out), "calls completed"); got != 0 {
				t.Errorf("calls completed = %d, want 0", got)
			}
		})
	}
}

// TestVerdict checks that each kind of failure fails the run and is named.
func TestVerdict(t *testing.T) {
	good := func() *summary {
		cfg := smallConfig("pipe", 4)
		return &summary{
			cfg:              cfg,
			ok:               int64(cfg.Callers * cfg.Calls),
			expected:         int64(cfg.Callers),
			peak:             4,
			goroutinesBefore: 3,
			goroutinesAfter:  3,
		}
	}
	if err := good().verdict(); err != nil {
		t.Fatalf("verdict of a good run: %v", err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(s *summary)
		check string
	}{
		{"mismatch", func(s *summary) { s.ok--; s.mismatches++ }, "every reply echoed its own call"},
		{"unexpected", func(s *summary) { s.ok--; s.unexpected++ }, "no unexpected error"},
		{"missing", func(s *summary) { s.expected--; s.missing++ }, "every failing call failed as expected"},
		{"caller short", func(s *summary) { s.callersShort++ }, "every failing call failed as expected"},
		{"lost call", func(s *summary) { s.ok-- }, "every call completed"},
		{"peak", func(s *summary) { s.peak = 5 }, "peak in flight <= workers"},
		{"shutdown", func(s *summary) { s.shutdownErr = errors.New("boom") }, "clean shutdown"},
		{"leak", func(s *summary) { s.goroutinesAfter++ }, "no goroutine leak"},
		{"leak when interrupted", func(s *summary) { s.interrupted = true; s.goroutinesAfter++ }, "no goroutine leak"},
		{"callback mismatch", func(s *summary) { nested(s); s.callbacksChecked--; s.callbackMismatches++ }, "every callback came back to its caller"},
		{"callback unchecked", func(s *summary) { nested(s); s.callbacks++ }, "every callback came back to its caller"},
		{"idle connection", func(s *summary) { conns(s); s.perConn[1] = 0 }, "every connection carried calls"},
		{"peak over connections", func(s *summary) { conns(s); s.peak = 9 }, "peak in flight <= workers x connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.spoil(s)
			err := s.verdict()
			if err == nil || errors.Is(err, errInterrupted) || !strings.Contains(err.Error(), tc.check) {
				t.Errorf("verdict = %v, want the failure of %q", err, tc.check)
			}
			var out bytes.Buffer
			s.print(&out)
			if !strings.Contains(out.String(), "FAIL  "+tc.check) || !strings.Contains(out.String(), "result: FAIL") {
				t.Errorf("summary does not show the failure of %q:\n%s", tc.check, out.String())
			}
		})
	}
	s := good()
	s.cfg.Workers = 0
	s.peak = 1000 // no limit without a pool
	if err := s.verdict(); err != nil {
		t.Errorf("verdict with workers=0: %v", err)
	}
	s = good()
	nested(s)
	conns(s)
	s.peak = 8 // 4 workers on each of 2 connections
	if err := s.verdict(); err != nil {
		t.Errorf("verdict of a good -nested -conns 2 run: %v", err)
	}
	s = good()
	nested(s)
	conns(s)
	s.interrupted = true
	s.callbacks++    // served, but its call was canceled
	s.perConn[1] = 0 // and no call completed there
	if err := s.verdict(); !errors.Is(err, errInterrupted) {
		t.Errorf("verdict of an interrupted -nested -conns 2 run: %v, want %v", err, errInterrupted)
	}
}

// nested makes s the summary of a good -nested run.
func nested(s *summary) {
	s.cfg.Nested = true
	s.callbacks, s.callbacksChecked = s.ok, s.ok
}

// conns makes s the summary of a good -conns 2 run.
func conns(s *summary) {
	s.cfg.Conns = 2
	s.cfg.Transport = "tcp"
	half := s.completed() / 2
	s.perConn = []int64{half, s.completed() - half}
}

func TestHistogram(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 999_999, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		b := bucketOf(v)
		lo := lowerBound(b)
		if lo > v || v-lo > v/subBuckets {
			t.Errorf("value %d: bucket %d starts at %d", v, b, lo)
		}
		if b > 0 && lowerBound(b-1) >= lo {
			t.Errorf("bucket %d starts at %d, not above bucket %d", b, lo, b-1)
		}
	}
	var h histogram
	if q := h.quantile(0.5); q != 0 {
		t.Errorf("quantile of nothing = %v", q)
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if got > tc.want || tc.want-got > tc.want/subBuckets {
			t.Errorf("quantile(%v) = %v, want %v within 1/%d", tc.q, got, tc.want, subBuckets)
		}
	}
	if got := time.Duration(h.max.Load()); got != time.Millisecond {
		t.Errorf("max = %v, want 1ms", got)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Progress = true
	if cfg != want {
		t.Errorf("defaults: %+v, want %+v", cfg, want)
	}
	cfg, err = parseFlags(strings.Fields("-callers 5 -calls 1 -workers 0 -transport unix -payload 0 -duration 2s -delay 0.5 -quiet"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = config{Callers: 5, Calls: 1, Workers: 0, Transport: "unix", Payload: 0, Duration: 2 * time.Second, Delay: 0.5}
	if cfg != want {
		t.Errorf("flags: %+v, want %+v", cfg, want)
	}
	for _, tc := range []struct {
		args string
		want config
	}{
		{"-nested -quiet", config{Callers: 700, Calls: 3, Workers: 100, Transport: "pipe", Payload: 16, Delay: 1, Nested: true}},
		{"-conns 4 -nested -quiet", config{Callers: 700, Calls: 3, Workers: 100, Transport: "tcp", Payload: 16, Delay: 1, Nested: true, Conns: 4}},
		{"-conns 1 -transport unix -quiet", config{Callers: 700, Calls: 3, Workers: 100, Transport: "unix", Payload: 16, Delay: 1, Conns: 1}},
	} {
		cfg, err := parseFlags(strings.Fields(tc.args), io.Discard)
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tc.args, err)
		} else if cfg != tc.want {
			t.Errorf("parseFlags(%q): %+v, want %+v", tc.args, cfg, tc.want)
		}
	}
	for _, args := range []string{"-callers 0", "-calls -1", "-workers -1", "-transport udp", "-payload -1", "-duration -1s", "-delay -1", "extra", "-nosuchflag",
		"-conns 0", "-conns -1", "-conns 2 -transport pipe", "-conns 2 -transport mem", "-callers 2 -conns 3"} {
		if _, err := parseFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
