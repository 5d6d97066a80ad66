// Command muxdemo is muxrpc's stress demo: many goroutines call one server
// at once over a single byte stream, and every reply must come back to the
// goroutine that asked for it.
//
// It starts a demux.DeMux and a mux.Mux connected by the chosen transport,
// then launches the callers. Each caller makes its calls in sequence, to
// the methods "slow", "medium" and "fast" in turn, whose handlers sleep
// 30, 20 and 10 ms, and then one call to "fail", whose handler returns an
// error naming the caller. The arguments carry the caller's id, a sequence
// number and a random payload; a handler echoes them with its method name,
// and the caller checks the echo byte for byte. A reply that belongs to
// someone else, or to another call, is a mismatch.
//
// With -nested, each of those three handlers first calls the caller's side
// back on the same stream (through mux.FromContext): the client's Mux
// serves "client.stamp", which returns a stamp made of the caller's id, the
// sequence number and the method it was passed, a digest of the payload
// and the client connection it was served on. The handler puts the stamp
// in its reply, and the caller checks it too; a wrong stamp is a mismatch.
//
// With -conns n, the server is a demux.Server on a listener (TCP on
// 127.0.0.1, or a unix socket with -transport unix) and the callers share
// n client connections made by mux.Dial, caller i using connection i mod
// n. At the end the Server is shut down gracefully, and the summary gives
// the calls completed on each connection.
//
// While it runs, a progress line on stderr shows the calls done, the errors,
// the calls in flight and the rate. At the end a summary on stdout gives
// the counts, the latency percentiles, the server's peak of concurrently
// running handlers, the callbacks made and checked with -nested, the calls
// per connection with -conns, and the number of goroutines before the start
// and after both sides are closed, followed by the checks:
//
//   - no mismatched reply;
//   - no unexpected error, and every "fail" call failed with exactly the
//     *frame.RemoteError it should (code Application, the caller's message);
//   - every caller that ran to the end got its expected error;
//   - with a worker pool, no more handlers ran at once than there are workers
//     (on each connection, with -conns);
//   - with -nested, every callback made was checked by its caller;
//   - with -conns, every connection carried calls;
//   - with -bulk, every bulk call echoed its payload;
//   - the server shut down cleanly, and no goroutine outlived the run.
//
// Usage:
//
//	muxdemo [flags]
//
// The flags are:
//
//	-callers n     caller goroutines (default 700)
//	-calls n       successful calls per caller before its failing one
//	               (default 3: slow, medium, fast)
//	-workers n     the DeMux's worker pool; 0 runs a goroutine per request
//	               (default 100)
//	-transport t   pipe (two OS pipes), tcp (loopback), unix (a unix socket)
//	               or mem (net.Pipe) (default pipe; tcp with -conns, which
//	               takes only tcp or unix)
//	-payload n     bytes of random payload in each call (default 16)
//	-duration d    0 makes each caller run its calls once; a positive
//	               duration makes each caller repeat them, failing call
//	               included, until it has passed (default 0)
//	-delay f       scales the handlers' 30/20/10 ms sleeps; 0 means no sleep
//	               (default 1)
//	-nested        each server handler calls the caller's side back before
//	               answering, and the caller checks the callback's stamp
//	-conns n       serve with a demux.Server on a listener, the callers
//	               spread over n (at least 1, at most -callers) client
//	               connections made by mux.Dial (default: no listener, one
//	               stream of -transport)
//	-serve addr    only serve the demo's methods with a demux.Server on
//	               this TCP address until SIGTERM or Ctrl-C, then shut down
//	               gracefully (GOAWAY); start several to use -servers
//	-servers list  call, through one pool.Pool, the demo servers at these
//	               comma-separated addresses instead of starting a server;
//	               kill, stop or restart them during the run, and the
//	               summary's last line counts the Pool's retries and the
//	               calls that failed as "may have run" or "did not run"
//	               (not counted as unexpected errors)
//	-pool-conns n  with -servers, connections per server (default 1)
//	-bulk n        n bulk callers, each echoing -bulk-size bytes in a loop
//	               over the same connection(s) beside the small callers
//	               until they are done; the summary adds the bulk calls'
//	               throughput and latency, and its latency rows are then
//	               those of the small calls (default 0)
//	-bulk-size n   bytes of each bulk call; 0 means 1 MiB (default 0)
//	-priority      the small callers' calls are sent urgent
//	               (mux.WithPriority(ctx, mux.PriorityUrgent))
//	-quiet         no progress line (it is drawn only when stderr is a
//	               terminal anyway)
//
// The exit status is 0 when every check passed, 1 when one failed (the
// failed checks are named on stdout and stderr) or the flags are wrong, and
// 130 when the run was interrupted with Ctrl-C but no check failed. An
// interrupted run cancels the calls in flight, shuts the server down and
// still prints the summary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	Callers   int           // caller goroutines
	Calls     int           // successful calls per caller per round
	Workers   int           // DeMux worker pool; 0 = a goroutine per request
	Transport string        // pipe, tcp, unix or mem; tcp or unix when Conns > 0
	Payload   int           // random bytes per call
	Duration  time.Duration // 0 = one round per caller; > 0 = rounds until it passes
	Delay     float64       // scale of the handlers' sleeps
	Nested    bool          // handlers call the client back before answering
	Conns     int           // 0 = one stream; > 0 = a demux.Server and this many clients
	Progress  bool          // draw the progress line on stderr
	Interval  time.Duration // how often the progress line is redrawn; 0 = 250ms
	Pool      poolConfig    // -servers, -serve, -pool-conns (pool.go)
	Flow      flowConfig    // -bulk, -bulk-size, -priority (flow.go)
}

// defaultConfig is the configuration of a run without flags.
func defaultConfig() config {
	return config{
		Callers:   700,
		Calls:     3,
		Workers:   100,
		Transport: "pipe",
		Payload:   16,
		Delay:     1,
	}
}

// errInterrupted is what run returns when its context ended before the
// callers finished and no check failed.
var errInterrupted = errors.New("interrupted")

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(1) // parseFlags has printed the error and the usage
	}
	cfg.Progress = cfg.Progress && isTerminal(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal a second one kills the process as usual.
	context.AfterFunc(ctx, stop)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "muxdemo: interrupted")
		os.Exit(130)
	case err != nil:
		for _, line := range strings.Split(err.Error(), "\n") { // one per failed check
			fmt.Fprintf(os.Stderr, "muxdemo: FAIL: %s\n", line)
		}
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config, writing errors and the
// usage to stderr. It sets Progress unless -quiet is given; the caller
// clears it when stderr is not a terminal.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("muxdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Callers, "callers", cfg.Callers, "caller goroutines")
	fs.IntVar(&cfg.Calls, "calls", cfg.Calls, "successful calls per caller (slow, medium, fast in turn) before its failing call")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "server worker pool size; 0 runs a goroutine per request")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "pipe, tcp, unix or mem; with -conns, tcp (the default there) or unix")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "bytes of random payload per call")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "0: each caller runs its calls once; >0: callers repeat them until this has passed")
	fs.Float64Var(&cfg.Delay, "delay", cfg.Delay, "scale of the handlers' 30/20/10 ms sleeps; 0 means no sleep")
	fs.BoolVar(&cfg.Nested, "nested", cfg.Nested, "server handlers call the caller's side back before answering")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "serve with a demux.Server on a listener (tcp, or unix with -transport unix), the callers spread over this many connections")
	poolFlags(fs, &cfg.Pool)
	addFlowFlags(fs, &cfg.Flow)
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	err := resolveConns(fs, &cfg)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err == nil {
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return config{}, err
	}
	cfg.Progress = !*quiet
	return cfg, nil
}

// resolveConns checks -conns against the flags given: given, it must be at
// least 1, and it makes the transport tcp unless -transport was given too,
// which must then be tcp or unix.
func resolveConns(fs *flag.FlagSet, cfg *config) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case !given["conns"]:
		return nil
	case cfg.Conns < 1:
		return fmt.Errorf("-conns must be at least 1, not %d", cfg.Conns)
	case !given["transport"]:
		cfg.Transport = "tcp"
	}
	return nil
}

// validate rejects configurations the demo cannot run.
func (c config) validate() error {
	if err := c.Flow.validate(); err != nil {
		return err
	}
	switch {
	case c.Callers < 1:
		return fmt.Errorf("-callers must be at least 1, not %d", c.Callers)
	case c.Calls < 0:
		return fmt.Errorf("-calls must not be negative, not %d", c.Calls)
	case c.Workers < 0:
		return fmt.Errorf("-workers must not be negative, not %d", c.Workers)
	case c.Payload < 0:
		return fmt.Errorf("-payload must not be negative, not %d", c.Payload)
	case c.Duration < 0:
		return fmt.Errorf("-duration must not be negative, not %v", c.Duration)
	case c.Delay < 0:
		return fmt.Errorf("-delay must not be negative, not %v", c.Delay)
	case c.Conns < 0:
		return fmt.Errorf("-conns must not be negative, not %d", c.Conns)
	case c.Conns > c.Callers:
		return fmt.Errorf("-conns must be at most -callers (%d), not %d", c.Callers, c.Conns)
	case c.Conns > 0 && c.Transport != "tcp" && c.Transport != "unix":
		return fmt.Errorf("-conns needs -transport tcp or unix, not %q", c.Transport)
	}
	if err := c.Pool.validate(c); err != nil {
		return err
	}
	switch c.Transport {
	case "pipe", "tcp", "unix", "mem":
		return nil
	}
	return fmt.Errorf("-transport must be pipe, tcp, unix or mem, not %q", c.Transport)
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
