// Command nvimbench measures muxrpc in the msgpack-rpc dialect against a
// real Neovim (nvim --embed, over its stdio), and, in the same run, muxrpc
// Go to Go over a child's stdio in its native dialect and in msgpack-rpc,
// at 1, 16 and 256 concurrent callers. Every call's result is checked.
//
//	make bench-nvim
//	cd bench && go run ./cmd/nvimbench -duration 3s -rounds 3
//
// See bench/README.md, section "msgpack-rpc against Neovim".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// childEnv makes this binary, started by the Go-to-Go systems, a child that
// serves nvim_eval on its stdio in the dialect the variable names.
const childEnv = "NVIMBENCH_CHILD"

func main() {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nvimbench:", err)
		os.Exit(1)
	}
}

// child serves a Go nvim_eval, which answers 1 for the expression "1" as
// Neovim does, until its stdin ends.
func child(mode string) int {
	r := demux.NewRouter()
	r.Handle("nvim_eval", demux.Func(func(ctx context.Context, args []string) (int, error) {
		if len(args) != 1 {
			return 0, fmt.Errorf("nvim_eval takes 1 argument, got %d", len(args))
		}
		return strconv.Atoi(args[0])
	}))
	var opts []demux.Option
	if mode == "msgpackrpc" {
		opts = append(opts, msgpackrpc.Dialect())
	}
	if err := demux.New(channel.Stdio(), r, opts...).Serve(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "nvimbench child:", err)
		return 1
	}
	return 0
}

// system is one peer behind mux.Start.
type system struct {
	name  string
	start func() (*mux.Mux, error)
}

func systems(nvim string) []system {
	self, err := os.Executable()
	goChild := func(mode string, opts ...mux.Option) func() (*mux.Mux, error) {
		return func() (*mux.Mux, error) {
			if err != nil {
				return nil, err
			}
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			cmd.Stderr = os.Stderr
			return mux.Start(cmd, opts...)
		}
	}
	return []system{
		{"muxrpc msgpack-rpc → nvim --embed", func() (*mux.Mux, error) {
			cmd := exec.Command(nvim, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n")
			cmd.Stderr = os.Stderr
			return mux.Start(cmd, msgpackrpc.Dialect())
		}},
		{"muxrpc msgpack-rpc → Go child", goChild("msgpackrpc", msgpackrpc.Dialect())},
		{"muxrpc native → Go child", goChild("native")},
	}
}

type result struct {
	system  string
	callers int
	rates   []float64 // calls/s of each round
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("nvimbench", flag.ContinueOnError)
	var (
		duration = fs.Duration("duration", 2*time.Second, "how long each cell runs in each round")
		rounds   = fs.Int("rounds", 3, "how many times each cell runs; the median is reported")
		callers  = fs.String("callers", "1,16,256", "comma-separated numbers of concurrent callers")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	nvim, err := exec.LookPath("nvim")
	if err != nil {
		return fmt.Errorf("nvim is not installed (apt-get install neovim): %w", err)
	}
	var counts []int
	for _, s := range strings.Split(*callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -callers %q", *callers)
		}
		counts = append(counts, n)
	}
	syss := systems(nvim)
	results := map[[2]int]*result{}
	for round := range *rounds {
		for i := range syss {
			// The order rotates every round, so no system always goes first.
			si := (i + round) % len(syss)
			s := syss[si]
			m, err := s.start()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			for ci, n := range counts {
				rate, err := measure(m, n, *duration)
				if err != nil {
					m.Close()
					return fmt.Errorf("%s, %d callers: %w", s.name, n, err)
				}
				r := results[[2]int{si, ci}]
				if r == nil {
					r = &result{system: s.name, callers: n}
					results[[2]int{si, ci}] = r
				}
				r.rates = append(r.rates, rate)
				fmt.Fprintf(os.Stderr, "round %d: %-36s %4d callers: %9.0f calls/s\n", round+1, s.name, n, rate)
			}
			if err := m.Close(); err != nil {
				return fmt.Errorf("%s: closing: %w", s.name, err)
			}
		}
	}
	nv, _ := exec.Command(nvim, "--version").Output()
	fmt.Fprintf(out, "Calls/s, median of %d rounds of %v (min–max); %s; %s; GOMAXPROCS=%d\n\n",
		*rounds, *duration, strings.SplitN(string(nv), "\n", 2)[0], runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "| system |")
	for _, n := range counts {
		fmt.Fprintf(out, " %d callers |", n)
	}
	fmt.Fprintf(out, "\n|---|%s\n", strings.Repeat("---:|", len(counts)))
	for si, s := range syss {
		fmt.Fprintf(out, "| %s |", s.name)
		for ci := range counts {
			r := results[[2]int{si, ci}]
			slices.Sort(r.rates)
			fmt.Fprintf(out, " %.0f (%.0f–%.0f) |", r.rates[len(r.rates)/2], r.rates[0], r.rates[len(r.rates)-1])
		}
		fmt.Fprintln(out)
	}
	return nil
}

// measure runs callers goroutines that call nvim_eval("1") on m for d,
// after a short warm-up, and returns the calls per second. A wrong result
// is an error.
func measure(m *mux.Mux, callers int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	for range 100 {
		if err := call(ctx, m); err != nil {
			return 0, err
		}
	}
	var (
		calls   atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	stop := time.Now().Add(d)
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := call(ctx, m); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return 0, first
	}
	return float64(calls.Load()) / elapsed.Seconds(), nil
}

var evalArgs = []string{"1"}

func call(ctx context.Context, m *mux.Mux) error {
	var n int
	if err := m.Call(ctx, "nvim_eval", evalArgs, &n); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("nvim_eval(\"1\") returned %d", n)
	}
	return nil
}
