// Command holbench measures head-of-line blocking: how long small calls
// wait behind large ones on the same connection.
//
// The loopback cell: over one TCP loopback connection, -bulk-callers
// goroutines echo -bulk-size bytes without pause while one caller makes
// -small-size byte calls in sequence. It reports the small calls' latency
// alone and beside the bulk callers (p50, p99, max) and the bulk
// throughput, for each system, over -rounds rounds whose system order
// rotates as peerbench's key cells do.
//
// The slow-link cell (-link): the client's connection goes through a
// toxiproxy whose bandwidth toxic limits the client-to-server direction to
// -link-rate KB/s; one -bulk-size echo is in flight while the small caller
// calls in sequence until it is done. It reports how long the small calls
// waited, in absolute terms and in chunk times (chunk size / rate).
//
//	cd bench && go run ./cmd/holbench            # both cells, ~4 min on 2 cores
//	cd bench && go run ./cmd/holbench -link=false
//
// See bench/README.md, section "Head-of-line blocking".
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
	"github.com/muxrpc/muxrpc/internal/toxiproxy"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "holbench:", err)
		os.Exit(1)
	}
}

type config struct {
	systems, linkSystems []systems.System
	rounds, linkRounds   int
	hol                  harness.HOLOptions
	link                 bool
	linkRate             int // KB/s (1000 bytes)
	linkOpt              harness.LinkOptions
	toxiproxy            string
	sock                 sockOpts
	outDir, name         string
	progress             io.Writer
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("holbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sysList   = fs.String("systems", strings.Join(names(systems.Flow()), ","), "systems of the loopback cell")
		linkList  = fs.String("link-systems", "raw,muxrpc,muxrpc-chunk4KiB,grpc", "systems of the slow-link cell")
		rounds    = fs.Int("rounds", 5, "rounds of the loopback cell")
		lrounds   = fs.Int("link-rounds", 3, "rounds of the slow-link cell")
		bulkN     = fs.Int("bulk-callers", 4, "callers echoing -bulk-size without pause in the loopback cell")
		bulkSize  = fs.Int("bulk-size", 1<<20, "bytes each bulk call echoes")
		smallSize = fs.Int("small-size", 16, "bytes each small call echoes")
		duration  = fs.Duration("duration", 2*time.Second, "measured window with the bulk callers, per run")
		warmup    = fs.Duration("warmup", 300*time.Millisecond, "warm-up with the bulk callers before the window")
		unloaded  = fs.Duration("unloaded", 500*time.Millisecond, "the small caller alone, per run (after a warm-up of a fifth of it)")
		link      = fs.Bool("link", true, "run the slow-link cell (needs toxiproxy)")
		linkRate  = fs.Int("link-rate", 100, "the slow link's rate, KB/s (1000 bytes), client to server")
		sockbuf   = fs.Int("sockbuf", 0, "set SO_SNDBUF and SO_RCVBUF of both ends of the connection to this many bytes (0: the kernel's defaults and autotuning)")
		lowat     = fs.Int("notsent-lowat", 0, "set TCP_NOTSENT_LOWAT of both ends to this many bytes: a write waits while more than this is queued in the socket and not yet sent (0: the kernel's default, no limit)")
		toxi      = fs.String("toxiproxy", defaultToxiproxy(), "toxiproxy server binary ($MUXRPC_TOXIPROXY, else ../.bin/toxiproxy-server)")
		outDir    = fs.String("out", "../docs/flow", "directory for the markdown report and the SVG charts")
		name      = fs.String("name", "results.md", "report file name in -out")
		quiet     = fs.Bool("q", false, "no progress lines on stderr")
		cpuProf   = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config{
		rounds: max(*rounds, 1), linkRounds: max(*lrounds, 1),
		hol: harness.HOLOptions{
			BulkCallers: *bulkN, BulkSize: *bulkSize, SmallSize: *smallSize,
			Unloaded: *unloaded, Warmup: *warmup, Duration: *duration,
		},
		link: *link, linkRate: *linkRate, toxiproxy: *toxi, sock: sockOpts{*sockbuf, *lowat},
		linkOpt: harness.LinkOptions{BulkSize: *bulkSize, SmallSize: *smallSize, Unloaded: 20},
		outDir:  *outDir, name: *name,
	}
	var err error
	if cfg.systems, err = pick(*sysList); err != nil {
		return err
	}
	if cfg.linkSystems, err = pick(*linkList); err != nil {
		return err
	}
	if !*quiet {
		cfg.progress = stderr
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	started := time.Now()
	hol := runHOL(cfg)
	var links map[string][]harness.LinkResult
	var linkErr error
	if cfg.link {
		links, linkErr = runLink(cfg)
		if linkErr != nil {
			fmt.Fprintln(stderr, "holbench: slow-link cell:", linkErr)
		}
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	prefix := strings.TrimSuffix(cfg.name, ".md")
	charts, err := writeCharts(cfg, prefix, hol, links)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	writeReport(&md, cfg, args, hol, links, linkErr, charts, time.Since(started))
	if err := os.WriteFile(filepath.Join(cfg.outDir, cfg.name), md.Bytes(), 0o644); err != nil {
		return err
	}
	if _, err := stdout.Write(md.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "holbench: wrote %s and %d charts in %.0fs\n", filepath.Join(cfg.outDir, cfg.name), len(charts), time.Since(started).Seconds())
	return nil
}

func defaultToxiproxy() string {
	if p := os.Getenv("MUXRPC_TOXIPROXY"); p != "" {
		return p
	}
	return filepath.Join("..", ".bin", "toxiproxy-server")
}

func names(ss []systems.System) []string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name())
	}
	return n
}

func pick(list string) ([]systems.System, error) {
	var out []systems.System
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		s, ok := systems.ByName(f)
		if !ok {
			return nil, fmt.Errorf("unknown system %q", f)
		}
		out = append(out, s)
	}
	return out, nil
}

// rotate returns s rotated left by i, reversed when i is odd, as
// peerbench orders its key cells' rounds.
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

func runHOL(cfg config) map[string][]harness.HOLResult {
	out := make(map[string][]harness.HOLResult)
	counted := cfg.sock == (sockOpts{}) // tcpPair's conns are not wrapped for counting
	var counts *transport.Counts
	connect := func() (net.Conn, net.Conn, error) {
		if !counted {
			return tcpPair(cfg.sock)
		}
		return transport.Pair(transport.TCP, counts)
	}
	for round := range cfg.rounds {
		for _, sys := range rotate(cfg.systems, round) {
			opt := cfg.hol
			if counted {
				counts = new(transport.Counts)
				opt.Counts = counts
			}
			r := harness.RunHOL(sys, connect, opt)
			out[sys.Name()] = append(out[sys.Name()], r)
			if cfg.progress != nil {
				status := fmt.Sprintf("alone p50 %-9v | loaded p50 %-9v p99 %-9v max %-9v | bulk %6.0f MB/s",
					r.Unloaded.P50, r.Loaded.P50, r.Loaded.P99, r.Loaded.Max, r.BulkMBps)
				if counted && r.OK() {
					// Read and Write calls of both ends in the window, per
					// bulk MiB echoed (small calls' included): a gauge of
					// how the writers batch.
					mib := float64(r.BulkCalls) * float64(cfg.hol.BulkSize) / (1 << 20)
					status += fmt.Sprintf(" | %.1f writes, %.1f reads per bulk MiB", float64(r.Writes)/mib, float64(r.Reads)/mib)
				}
				if !r.OK() {
					status = "FAILED: " + r.Err
				}
				fmt.Fprintf(cfg.progress, "loopback round %d %-18s %s\n", round+1, sys.Name(), status)
			}
		}
	}
	return out
}

func runLink(cfg config) (map[string][]harness.LinkResult, error) {
	if _, err := os.Stat(cfg.toxiproxy); err != nil {
		return nil, fmt.Errorf("no toxiproxy server at %s (run `make toxiproxy` at the repository root): %w", cfg.toxiproxy, err)
	}
	var toxiLog bytes.Buffer
	srv, err := toxiproxy.Start(cfg.toxiproxy, &toxiLog)
	if err != nil {
		return nil, fmt.Errorf("%w; its log:\n%s", err, &toxiLog)
	}
	defer srv.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	proxy, err := srv.NewProxy("holbench", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	if err := proxy.AddToxic("slow", "bandwidth", toxiproxy.Upstream, toxiproxy.Attrs{"rate": cfg.linkRate}); err != nil {
		return nil, err
	}
	connect := func() (net.Conn, net.Conn, error) {
		accepted := make(chan net.Conn, 1)
		acceptErr := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}()
		client, err := dialOpts(proxy.Listen, cfg.sock)
		if err != nil {
			ln.Close() // ends the Accept; the run fails
			return nil, nil, errors.Join(err, <-acceptErr)
		}
		select {
		case server := <-accepted:
			if err := setOpts(server, cfg.sock); err != nil {
				client.Close()
				server.Close()
				return nil, nil, err
			}
			return client, server, nil
		case err := <-acceptErr:
			client.Close()
			return nil, nil, err
		}
	}
	out := make(map[string][]harness.LinkResult)
	for round := range cfg.linkRounds {
		for _, sys := range rotate(cfg.linkSystems, round) {
			r := harness.RunLink(sys, connect, cfg.linkOpt)
			out[sys.Name()] = append(out[sys.Name()], r)
			if cfg.progress != nil {
				status := fmt.Sprintf("alone p50 %-9v | %3d small calls beside the bulk echo: p50 %-9v max %-9v | bulk echo %v",
					harness.Quantile(r.Unloaded, 0.5), len(r.Loaded), harness.Quantile(r.Loaded, 0.5), harness.Quantile(r.Loaded, 1), r.Bulk.Round(time.Millisecond))
				if !r.OK() {
					status = "FAILED: " + r.Err
				}
				fmt.Fprintf(cfg.progress, "link round %d %-18s %s\n", round+1, sys.Name(), status)
			}
		}
	}
	return out, nil
}

// spread is the median, min and max of some values.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	med := s[(len(s)-1)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med, s[0], s[len(s)-1]}
}

func durSpread(rs []harness.HOLResult, f func(harness.HOLResult) time.Duration) spread {
	var v []float64
	for _, r := range rs {
		// A zero latency is no measurement (a phase in which the small
		// caller completed no call, on a starved machine).
		if d := f(r); r.OK() && d > 0 {
			v = append(v, float64(d))
		}
	}
	return spreadOf(v)
}

func fmtDur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", ns/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	case d >= 10*time.Microsecond:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	}
	return fmt.Sprintf("%.1f µs", ns/1e3)
}

func (s spread) dur() string {
	return fmt.Sprintf("%s (%s–%s)", fmtDur(s.med), fmtDur(s.lo), fmtDur(s.hi))
}

// chunkSize returns the chunk size of a muxrpc system, 0 for others.
func chunkSize(s systems.System) int {
	if m, ok := s.(systems.Muxrpc); ok {
		if m.ChunkSize > 0 {
			return m.ChunkSize
		}
		return 16 << 10
	}
	return 0
}

func writeReport(w io.Writer, cfg config, args []string, hol map[string][]harness.HOLResult, links map[string][]harness.LinkResult, linkErr error, charts []string, wall time.Duration) {
	m := harness.ThisMachine()
	fmt.Fprintf(w, "# Head-of-line blocking: small calls beside bulk echoes\n\n")
	fmt.Fprintf(w, "Command: `cd bench && go run ./cmd/holbench %s` (%.0f s)  \n", strings.Join(args, " "), wall.Seconds())
	fmt.Fprintf(w, "Machine: %s, %d CPUs, GOMAXPROCS %d, %s %s/%s. The machine was shared with other work while this ran: read the ranges, not just the medians.\n\n",
		m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.GOOS, m.GOARCH)
	for _, c := range charts {
		fmt.Fprintf(w, "![%s](%s)\n\n", c, c)
	}

	fmt.Fprintf(w, "## TCP loopback: one caller's %d B calls beside %d callers echoing %s without pause\n\n",
		cfg.hol.SmallSize, cfg.hol.BulkCallers, harness.SizeName(cfg.hol.BulkSize))
	fmt.Fprintf(w, "One connection per run. Each run: the small caller alone for %v (after %v of warm-up), then the bulk callers start, %v of warm-up, and a %v window in which the small calls' latency and the bulk calls completed are counted. %d rounds; the order of the systems rotates each round and reverses every other round. Each figure is the median of the rounds' values, with min–max. Bulk MB/s is payload echoed (10^6 bytes, one direction) per second by the %d bulk callers together; \"× raw\" divides the medians.\n\n",
		cfg.hol.Unloaded, cfg.hol.Unloaded/5, cfg.hol.Warmup, cfg.hol.Duration, cfg.rounds, cfg.hol.BulkCallers)
	fmt.Fprintln(w, "| system | alone p50 | alone p99 | loaded p50 | loaded p99 | loaded max | small calls in window | bulk MB/s | × raw | bulk call p50 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	rawMB := 0.0
	if rs, ok := hol["raw"]; ok {
		rawMB = mbSpread(rs).med
	}
	for _, s := range cfg.systems {
		rs := hol[s.Name()]
		var failed []string
		for _, r := range rs {
			if !r.OK() {
				failed = append(failed, r.Err)
			}
		}
		if len(failed) == len(rs) {
			fmt.Fprintf(w, "| %s | failed: %s |||||||||\n", s.Name(), strings.Join(failed, "; "))
			continue
		}
		mb := mbSpread(rs)
		x := "–"
		if rawMB > 0 {
			x = fmt.Sprintf("%.2f", mb.med/rawMB)
		}
		var n []float64
		for _, r := range rs {
			if r.OK() {
				n = append(n, float64(r.Loaded.N))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.0f | %.0f (%.0f–%.0f) | %s | %s |\n", s.Name(),
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Unloaded.P50 }).dur(),
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Unloaded.P99 }).dur(),
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.P50 }).dur(),
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.P99 }).dur(),
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.Max }).dur(),
			spreadOf(n).med, mb.med, mb.lo, mb.hi, x,
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Bulk.P50 }).dur())
		if len(failed) > 0 {
			fmt.Fprintf(w, "| %s | %d of %d rounds failed: %s |||||||||\n", s.Name(), len(failed), len(rs), strings.Join(failed, "; "))
		}
	}
	fmt.Fprintln(w)
	for _, s := range cfg.systems {
		fmt.Fprintf(w, "- `%s`: %s\n", s.Name(), s.Note())
	}
	fmt.Fprintln(w)

	if !cfg.link {
		return
	}
	fmt.Fprintf(w, "## A %d KB/s link: %d B calls while one %s echo is in flight\n\n", cfg.linkRate, cfg.linkOpt.SmallSize, harness.SizeName(cfg.linkOpt.BulkSize))
	if linkErr != nil {
		fmt.Fprintf(w, "Not run: %v\n\n", linkErr)
		return
	}
	rate := float64(cfg.linkRate) * 1000
	fmt.Fprintf(w, "The client dials a toxiproxy (v2.12.0) whose `bandwidth` toxic limits the client-to-server direction to %d KB/s (%.0f bytes/s); the server's replies come back unlimited. Each run: %d small calls alone, then one %s echo starts and the small caller calls in sequence until it is done (a call that ends after it still counts). All the rounds' small calls are pooled (%d rounds). A chunk time is the chunk size divided by the rate: 4 KiB → %.0f ms, 16 KiB → %.0f ms, 64 KiB → %.0f ms. The systems without chunks are measured against muxrpc's default 16 KiB chunk time.\n\n",
		cfg.linkRate, rate, cfg.linkOpt.Unloaded, harness.SizeName(cfg.linkOpt.BulkSize), cfg.linkRounds,
		4096/rate*1e3, 16384/rate*1e3, 65536/rate*1e3)
	fmt.Fprintln(w, "| system | chunk | alone p50 | small calls beside the bulk echo | their p50 | their p90 | their max | max in chunk times | bulk echo |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, s := range cfg.linkSystems {
		rs := links[s.Name()]
		var alone, loaded []time.Duration
		var bulk []float64
		var errs []string
		for _, r := range rs {
			if !r.OK() {
				errs = append(errs, r.Err)
				continue
			}
			alone = append(alone, r.Unloaded...)
			loaded = append(loaded, r.Loaded...)
			bulk = append(bulk, float64(r.Bulk))
		}
		if len(loaded) == 0 {
			fmt.Fprintf(w, "| %s | failed: %s ||||||||\n", s.Name(), strings.Join(errs, "; "))
			continue
		}
		cs := chunkSize(s)
		chunkName := "none"
		ref := 16 << 10
		if cs > 0 {
			chunkName, ref = harness.SizeName(cs), cs
		}
		chunkTime := float64(ref) / rate * 1e9
		mx := harness.Quantile(loaded, 1)
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %.1f | %s |\n", s.Name(), chunkName,
			fmtDur(float64(harness.Quantile(alone, 0.5))), len(loaded),
			fmtDur(float64(harness.Quantile(loaded, 0.5))), fmtDur(float64(harness.Quantile(loaded, 0.9))),
			fmtDur(float64(mx)), float64(mx)/chunkTime, spreadOf(bulk).dur())
		if len(errs) > 0 {
			fmt.Fprintf(w, "| %s | %d of %d rounds failed: %s ||||||||\n", s.Name(), len(errs), len(rs), strings.Join(errs, "; "))
		}
	}
	fmt.Fprintln(w)
}

func mbSpread(rs []harness.HOLResult) spread {
	var v []float64
	for _, r := range rs {
		if r.OK() {
			v = append(v, r.BulkMBps)
		}
	}
	return spreadOf(v)
}

func writeCharts(cfg config, prefix string, hol map[string][]harness.HOLResult, links map[string][]harness.LinkResult) ([]string, error) {
	var names []string
	write := func(name string, draw func(io.Writer)) error {
		var b bytes.Buffer
		draw(&b)
		names = append(names, name)
		return os.WriteFile(filepath.Join(cfg.outDir, name), b.Bytes(), 0o644)
	}
	var groups []harness.Bars
	for _, s := range cfg.systems {
		rs := hol[s.Name()]
		groups = append(groups, harness.Bars{Name: s.Name(), Values: []float64{
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Unloaded.P99 }).med / 1e3,
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.P50 }).med / 1e3,
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.P99 }).med / 1e3,
			durSpread(rs, func(r harness.HOLResult) time.Duration { return r.Loaded.Max }).med / 1e3,
		}})
	}
	title := fmt.Sprintf("%d B calls beside %d × %s echoes, TCP loopback (median round)", cfg.hol.SmallSize, cfg.hol.BulkCallers, harness.SizeName(cfg.hol.BulkSize))
	err := write(prefix+"-loopback.svg", func(w io.Writer) {
		harness.WriteBarChart(w, title, "µs (log scale)", []string{"alone p99", "loaded p50", "loaded p99", "loaded max"}, groups,
			func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "µs" })
	})
	if err != nil || len(links) == 0 {
		return names, err
	}
	groups = nil
	for _, s := range cfg.linkSystems {
		var loaded []time.Duration
		for _, r := range links[s.Name()] {
			if r.OK() {
				loaded = append(loaded, r.Loaded...)
			}
		}
		groups = append(groups, harness.Bars{Name: s.Name(), Values: []float64{
			float64(harness.Quantile(loaded, 0.5)) / 1e6, float64(harness.Quantile(loaded, 1)) / 1e6,
		}})
	}
	title = fmt.Sprintf("%d B calls beside one %s echo over a %d KB/s link", cfg.linkOpt.SmallSize, harness.SizeName(cfg.linkOpt.BulkSize), cfg.linkRate)
	err = write(prefix+"-link.svg", func(w io.Writer) {
		harness.WriteBarChart(w, title, "ms (log scale)", []string{"p50", "max"}, groups,
			func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "ms" })
	})
	return names, err
}

// sockOpts are socket options set on both ends of a connection; zero
// fields leave the kernel's defaults.
type sockOpts struct {
	buf   int // SO_SNDBUF and SO_RCVBUF
	lowat int // TCP_NOTSENT_LOWAT
}

// tcpNotsentLowat is TCP_NOTSENT_LOWAT on Linux (the syscall package
// lacks it).
const tcpNotsentLowat = 25

// set sets o on the socket fd.
func (o sockOpts) set(fd int) error {
	var errs []error
	if o.buf > 0 {
		errs = append(errs, syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, o.buf),
			syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.buf))
	}
	if o.lowat > 0 {
		errs = append(errs, syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, tcpNotsentLowat, o.lowat))
	}
	return errors.Join(errs...)
}

// control returns a Dialer or ListenConfig Control function that sets o
// before the connection is made (so that the window scale fits the
// buffers).
func (o sockOpts) control() func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = o.set(int(fd)) })
		return errors.Join(err, serr)
	}
}

// dialOpts dials addr over TCP with o set.
func dialOpts(addr string, o sockOpts) (net.Conn, error) {
	d := net.Dialer{Control: o.control()}
	return d.Dial("tcp", addr)
}

// setOpts sets o on an accepted TCP connection.
func setOpts(c net.Conn, o sockOpts) error {
	if o == (sockOpts{}) {
		return nil
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("not a socket: %T", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = o.set(int(fd)) })
	return errors.Join(err, serr)
}

// tcpPair connects two ends over TCP loopback with o set on both.
func tcpPair(o sockOpts) (client, server net.Conn, err error) {
	lc := net.ListenConfig{Control: o.control()}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	client, err = dialOpts(ln.Addr().String(), o)
	if err != nil {
		ln.Close()
		return nil, nil, errors.Join(err, <-acceptErr)
	}
	select {
	case server = <-accepted:
	case err := <-acceptErr:
		client.Close()
		return nil, nil, err
	}
	if err := setOpts(server, o); err != nil {
		client.Close()
		server.Close()
		return nil, nil, err
	}
	return client, server, nil
}
