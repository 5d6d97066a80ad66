// Command streambench measures streamed throughput over one TCP loopback
// connection: the server sends -total bytes in -item byte items on one
// server-streaming call, muxrpc (mux.Stream, demux.Yield, credits) against
// gRPC server streaming, in the same run, -rounds times with the order of
// the systems alternating.
//
//	cd bench && go run ./cmd/streambench      # 1 GiB in 64 KiB items, 3 rounds
//
// It prints a markdown table (median MB/s with min–max) and writes it to
// -out if given.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streambench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sysList = fs.String("systems", "muxrpc,grpc", "systems to run")
		total   = fs.Int64("total", 1<<30, "bytes streamed per run")
		item    = fs.Int("item", 64<<10, "bytes per item")
		rounds  = fs.Int("rounds", 3, "runs of each system; the order alternates each round")
		timeout = fs.Duration("timeout", 2*time.Minute, "bound on each run")
		out     = fs.String("out", "", "also write the markdown to this file")
		quiet   = fs.Bool("q", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *item <= 0 || *total < int64(*item) {
		return fmt.Errorf("-item must be positive and at most -total")
	}
	var syss []systems.System
	for _, name := range strings.Split(*sysList, ",") {
		s, ok := systems.ByName(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown system %q", name)
		}
		syss = append(syss, s)
	}
	n := int(*total / int64(*item))
	connect := func() (net.Conn, net.Conn, error) { return transport.Pair(transport.TCP, new(transport.Counts)) }
	results := make(map[string][]harness.StreamResult)
	started := time.Now()
	for round := range max(*rounds, 1) {
		order := slices.Clone(syss)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			r := harness.RunStream(s, connect, n, *item, *timeout)
			results[s.Name()] = append(results[s.Name()], r)
			if !*quiet {
				status := fmt.Sprintf("%7.0f MB/s in %v", r.MBps, r.Elapsed.Round(time.Millisecond))
				if !r.OK() {
					status = "FAILED: " + r.Err
				}
				fmt.Fprintf(stderr, "round %d %-8s %s\n", round+1, s.Name(), status)
			}
		}
	}
	m := harness.ThisMachine()
	var md bytes.Buffer
	fmt.Fprintf(&md, "# Streamed throughput: %s in %s items over one TCP loopback connection\n\n", harness.SizeName(int(*total)), harness.SizeName(*item))
	fmt.Fprintf(&md, "Command: `cd bench && go run ./cmd/streambench %s` (%.0f s)  \n", strings.Join(args, " "), time.Since(started).Seconds())
	fmt.Fprintf(&md, "Machine: %s, %d CPUs, GOMAXPROCS %d, %s. Shared with other work while this ran. %d rounds, the order of the systems alternating; MB/s is 10^6 bytes of items per second, from the call to the end of the stream; median (min–max).\n\n",
		m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, max(*rounds, 1))
	fmt.Fprintln(&md, "| system | MB/s | × grpc | time per run |")
	fmt.Fprintln(&md, "|---|---|---|---|")
	med := func(rs []harness.StreamResult, f func(harness.StreamResult) float64) (float64, float64, float64, []string) {
		var v []float64
		var errs []string
		for _, r := range rs {
			if r.OK() {
				v = append(v, f(r))
			} else {
				errs = append(errs, r.Err)
			}
		}
		if len(v) == 0 {
			return 0, 0, 0, errs
		}
		sort.Float64s(v)
		mid := v[(len(v)-1)/2]
		if len(v)%2 == 0 {
			mid = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return mid, v[0], v[len(v)-1], errs
	}
	grpcMB, _, _, _ := med(results["grpc"], func(r harness.StreamResult) float64 { return r.MBps })
	for _, s := range syss {
		rs := results[s.Name()]
		mb, lo, hi, errs := med(rs, func(r harness.StreamResult) float64 { return r.MBps })
		tm, tlo, thi, _ := med(rs, func(r harness.StreamResult) float64 { return r.Elapsed.Seconds() })
		x := "–"
		if grpcMB > 0 && mb > 0 {
			x = fmt.Sprintf("%.2f", mb/grpcMB)
		}
		fmt.Fprintf(&md, "| %s | %.0f (%.0f–%.0f) | %s | %.2f s (%.2f–%.2f) |\n", s.Name(), mb, lo, hi, x, tm, tlo, thi)
		if len(errs) > 0 {
			fmt.Fprintf(&md, "| %s | %d of %d runs failed: %s |||\n", s.Name(), len(errs), len(rs), strings.Join(errs, "; "))
		}
	}
	fmt.Fprintln(&md)
	fmt.Fprintln(&md, "- `muxrpc`: `mux.Mux.Stream` → a `demux.HandlerFunc` that calls `demux.Yield` once per item (the same []byte each time, msgpack bin); the client's `Stream.Recv` decodes each item into a reused buffer; default window (mux.DefaultStreamWindow = 16 items) and chunk size (16 KiB).")
	fmt.Fprintln(&md, "- `grpc`: a hand-written server-streaming `StreamDesc` on the same `grpc.Server` and pass-through codec as peerbench's `grpc`; `ClientConn.NewStream`, `RecvMsg` into a reused buffer; default windows.")
	if *out != "" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			return err
		}
	}
	_, err := stdout.Write(md.Bytes())
	return err
}
