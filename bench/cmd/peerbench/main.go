// Command peerbench compares muxrpc with other Go RPC systems and with a
// hand-written framed echo, all multiplexing echo calls over one
// connection, and writes the results as markdown and SVG charts.
//
//	cd bench && go run ./cmd/peerbench -quick      # key cells only, about 100 s
//	cd bench && go run ./cmd/peerbench             # the whole matrix
//
// See bench/README.md for what is measured and how.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		quick      = fs.Bool("quick", false, "run only the key cells (TCP: 16 B with 1 and 256 callers, 4 KiB with 256, 1 MiB with 16)")
		sysList    = fs.String("systems", "", "comma-separated systems to run (default all: "+strings.Join(systemNames(), ",")+")")
		transports = fs.String("transports", "mem,pipe,unix,tcp", "comma-separated transports")
		payloads   = fs.String("payloads", "16,4096,65536,1048576", "comma-separated payload sizes in bytes (suffixes KiB and MiB allowed)")
		callers    = fs.String("callers", "1,16,256,4096", "comma-separated numbers of concurrent callers")
		duration   = fs.Duration("duration", 0, "measured window of each run (default 400ms with -quick, 3s without)")
		warmup     = fs.Duration("warmup", 0, "warm-up before each measured window (default a fifth of -duration, at most 300ms)")
		rounds     = fs.Int("rounds", 5, "runs of each key cell, interleaved across systems")
		maxFlight  = fs.String("maxinflight", "512MiB", "skip cells whose payload × callers exceeds this")
		outDir     = fs.String("out", "../docs/peers", "directory for the markdown report and the SVG charts")
		name       = fs.String("name", "", "report file name in -out (default results.md with -quick, results-full.md without)")
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		execTrace  = fs.String("trace", "", "write an execution trace of the whole run to this file (go tool trace reads it; keep the run short)")
		quiet      = fs.Bool("q", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var plan harness.Plan
	names := systemNames()
	if *sysList != "" {
		names = splitList(*sysList)
	}
	for _, n := range names {
		s, ok := systems.ByName(n)
		if !ok {
			return fmt.Errorf("unknown system %q (have %s)", n, strings.Join(systemNames(), ", "))
		}
		plan.Systems = append(plan.Systems, s)
	}
	for _, t := range splitList(*transports) {
		k := transport.Kind(t)
		if !contains(transport.All, k) {
			return fmt.Errorf("unknown transport %q (have mem, pipe, unix, tcp)", t)
		}
		plan.Transports = append(plan.Transports, k)
	}
	var err error
	if plan.Payloads, err = parseSizes(*payloads); err != nil {
		return err
	}
	if plan.Callers, err = parseInts(*callers); err != nil {
		return err
	}
	mf, err := parseSize(*maxFlight)
	if err != nil {
		return err
	}
	plan.MaxInFlight = int64(mf)
	plan.KeyOnly = *quick
	plan.Rounds = max(*rounds, 1)
	plan.Duration = *duration
	if plan.Duration <= 0 {
		plan.Duration = 3 * time.Second
		if *quick {
			plan.Duration = 400 * time.Millisecond
		}
	}
	plan.Warmup = *warmup
	if plan.Warmup <= 0 {
		plan.Warmup = min(plan.Duration/5, 300*time.Millisecond)
	}
	if !*quiet {
		plan.Progress = stderr
	}
	file := *name
	if file == "" {
		file = "results.md"
		if !*quick {
			file = "results-full.md"
		}
	}

	stopProfile, err := record(*cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	stopTrace, err := record(*execTrace, trace.Start, trace.Stop)
	if err != nil {
		return err
	}
	defer stopTrace()

	out := harness.Execute(plan)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	prefix := strings.TrimSuffix(file, ".md")
	rep := &harness.Report{
		Title:   "muxrpc and its peers: echo calls over one connection",
		Command: commandLine(args),
		Machine: harness.ThisMachine(),
	}
	if *quick {
		rep.Title += " (quick run: key cells only)"
	}
	charts, err := writeCharts(*outDir, prefix, out)
	if err != nil {
		return err
	}
	rep.Charts = charts
	var md bytes.Buffer
	rep.WriteMarkdown(&md, out)
	if err := os.WriteFile(filepath.Join(*outDir, file), md.Bytes(), 0o644); err != nil {
		return err
	}
	if _, err := stdout.Write(md.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "peerbench: wrote %s and %d charts in %.1fs\n", filepath.Join(*outDir, file), len(charts), out.Wall.Seconds())
	return nil
}

// writeCharts writes the throughput chart (TCP, 16 B) and the latency
// chart of the key cell TCP/16B/256 callers, and returns their file names.
func writeCharts(dir, prefix string, o *harness.Outcome) ([]string, error) {
	var names []string
	write := func(name string, draw func(io.Writer)) error {
		var b bytes.Buffer
		draw(&b)
		names = append(names, name)
		return os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644)
	}
	p := o.Plan
	var series []harness.Series
	for _, s := range p.Systems {
		var sr harness.Series
		sr.Name = s.Name()
		for _, n := range p.Callers {
			r, ok := o.Matrix[harness.Cell{Transport: transport.TCP, Payload: 16, Callers: n}][s.Name()]
			if ok && r.OK() {
				sr.X = append(sr.X, float64(n))
				sr.Y = append(sr.Y, r.CallsPerSec)
			}
		}
		if len(sr.X) > 0 {
			series = append(series, sr)
		}
	}
	if len(series) > 0 {
		err := write(prefix+"-throughput-tcp-16B.svg", func(w io.Writer) {
			harness.WriteLineChart(w, "Echo calls/s over one TCP loopback connection, 16 B", "concurrent callers (log scale)", "calls/s (log scale)", series,
				func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) })
		})
		if err != nil {
			return nil, err
		}
	}
	key := harness.Cell{Transport: transport.TCP, Payload: 16, Callers: 256}
	if rs, ok := o.Key[key]; ok {
		var groups []harness.Bars
		for _, s := range p.Systems {
			r := harness.MedianResult(rs[s.Name()])
			if !r.OK() {
				continue
			}
			groups = append(groups, harness.Bars{Name: s.Name(), Values: []float64{
				float64(r.P50) / 1e3, float64(r.P99) / 1e3, float64(r.P999) / 1e3,
			}})
		}
		err := write(prefix+"-latency-tcp-16B-256.svg", func(w io.Writer) {
			harness.WriteBarChart(w, "Call latency, TCP loopback, 16 B, 256 callers (median round)", "µs (log scale)",
				[]string{"p50", "p99", "p999"}, groups, func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "µs" })
		})
		if err != nil {
			return nil, err
		}
	}
	return names, nil
}

func commandLine(args []string) string {
	s := "cd bench && go run ./cmd/peerbench"
	for _, a := range args {
		s += " " + a
	}
	return s
}

func systemNames() []string {
	var n []string
	for _, s := range systems.All() {
		n = append(n, s.Name())
	}
	return n
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := parseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseSize(f string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(f, "MiB"):
		mult, f = 1<<20, strings.TrimSuffix(f, "MiB")
	case strings.HasSuffix(f, "KiB"):
		mult, f = 1<<10, strings.TrimSuffix(f, "KiB")
	case strings.HasSuffix(f, "B"):
		f = strings.TrimSuffix(f, "B")
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", f)
	}
	return n * mult, nil
}

// record starts a profile or trace written to path with start, and returns
// what stops it and closes the file. An empty path records nothing.
func record(path string, start func(io.Writer) error, stop func()) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		stop()
		f.Close()
	}, nil
}
