package pool

import (
	"context"
	"log/slog"
	"time"

	"github.com/muxrpc/muxrpc/mux"
)

// Option configures a Pool.
type Option func(*config)

type config struct {
	perEndpoint  int
	muxOpts      []mux.Option
	dial         func(ctx context.Context, network, addr string) (*mux.Mux, error)
	dialTimeout  time.Duration
	backoffBase  time.Duration
	backoffMax   time.Duration
	maxAttempts  int
	budgetMax    float64
	budgetRatio  float64
	resolveEvery time.Duration
	log          *slog.Logger
}

// Defaults of the options; each option's doc says what zero means.
const (
	// DefaultDialTimeout bounds each attempt to connect (DialTimeout).
	DefaultDialTimeout = 10 * time.Second
	// DefaultBackoffBase is the wait after an endpoint's first failure (Backoff).
	DefaultBackoffBase = 100 * time.Millisecond
	// DefaultBackoffMax is the longest wait between attempts to connect
	// (Backoff): a server back from a restart is found within about this
	// long, and each client probes a dead one about once per this period.
	DefaultBackoffMax = time.Second
	// DefaultMaxAttempts is how many times a call is sent at most (MaxAttempts).
	DefaultMaxAttempts = 3
	// DefaultBudgetTokens is the size of the retry budget (RetryBudget).
	DefaultBudgetTokens = 100
	// DefaultBudgetRatio is what an answered call gives back to the retry budget (RetryBudget).
	DefaultBudgetRatio = 0.1
	// DefaultResolveEvery is how often the Resolver is asked (ResolveEvery).
	DefaultResolveEvery = 30 * time.Second
)

func newConfig(opts []Option) config {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.perEndpoint <= 0 {
		c.perEndpoint = 1
	}
	if c.dialTimeout <= 0 {
		c.dialTimeout = DefaultDialTimeout
	}
	if c.backoffBase <= 0 {
		c.backoffBase = DefaultBackoffBase
	}
	if c.backoffMax <= 0 {
		c.backoffMax = DefaultBackoffMax
	}
	c.backoffMax = max(c.backoffMax, c.backoffBase)
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.budgetMax <= 0 {
		c.budgetMax = DefaultBudgetTokens
	}
	if c.budgetRatio <= 0 {
		c.budgetRatio = DefaultBudgetRatio
	}
	if c.resolveEvery <= 0 {
		c.resolveEvery = DefaultResolveEvery
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.dial == nil {
		muxOpts := c.muxOpts
		c.dial = func(ctx context.Context, network, addr string) (*mux.Mux, error) {
			return mux.Dial(ctx, network, addr, muxOpts...)
		}
	}
	return c
}

// ConnsPerEndpoint sets how many connections the Pool keeps to each
// endpoint; zero or negative means 1. Raise it when one endpoint is really
// several servers, as a layer-4 load balancer (HAProxy in TCP mode, a
// cloud network load balancer, a Kubernetes Service) is: it pins each
// connection to one backend, so K connections spread over up to K
// backends. Raise it too when one connection's writer or reader is the
// bottleneck (bench/README.md has figures).
func ConnsPerEndpoint(k int) Option {
	return func(c *config) { c.perEndpoint = k }
}

// MuxOptions sets the options of every Mux the Pool dials with mux.Dial:
// keepalive, TLS, AuthKey, MaxFrameSize, Logger. mux.Dial turns keepalive
// on by default, which is how the Pool finds a server that stopped
// answering; keep it on. DialFunc replaces mux.Dial, and these options
// with it.
func MuxOptions(opts ...mux.Option) Option {
	return func(c *config) { c.muxOpts = append(c.muxOpts[:len(c.muxOpts):len(c.muxOpts)], opts...) }
}

// DialFunc makes the Pool connect with dial instead of mux.Dial: for a
// transport of your own, a custom net.Dialer, or a Mux that serves too.
// dial must return within ctx, whose deadline is the DialTimeout (the
// Pool then waits, within the same deadline, for mux.Mux.Ready), and must
// return a Mux that finds a dead peer by itself (mux.Keepalive), or the
// Pool will not replace a connection to a server that vanished without a
// word.
func DialFunc(dial func(ctx context.Context, network, addr string) (*mux.Mux, error)) Option {
	return func(c *config) { c.dial = dial }
}

// DialTimeout bounds each attempt to connect, from the dial to the peer's
// preface (and, with mux.AuthKey, the handshake): a connection becomes
// ready for calls only once its peer is known to speak muxrpc. Zero or
// negative means DefaultDialTimeout. A server whose packets are dropped,
// or that accepts and never answers, makes each attempt last this long.
func DialTimeout(d time.Duration) Option {
	return func(c *config) { c.dialTimeout = d }
}

// Backoff sets how long the Pool waits before it dials an endpoint again
// after failing to reach it: base after the first failure, doubling with
// each further failure in a row, up to max, each wait varied at random by
// ±20% so that many clients do not come back at the same instant. Zero or
// negative values mean DefaultBackoffBase and DefaultBackoffMax; a max
// below base is base.
func Backoff(base, max time.Duration) Option {
	return func(c *config) { c.backoffBase, c.backoffMax = base, max }
}

// MaxAttempts bounds how many times one call is sent, the first attempt
// included; zero or negative means DefaultMaxAttempts, and 1 turns retries
// off.
func MaxAttempts(n int) Option {
	return func(c *config) { c.maxAttempts = n }
}

// RetryBudget sets the retry throttle, which works as gRPC's does: the
// Pool holds up to tokens tokens (it starts full); each attempt that an
// overloaded server refused (CodeOverloaded) or that may have run and is
// Idempotent takes one, each attempt a handler answered gives back ratio
// of one, and such retries are allowed only while more than half the
// tokens are left. A request that never left this side (mux.ErrNotSent),
// or that a server shutting down refused (CodeShutdown), cost the servers
// nothing and tells nothing of their load: it is retried on another
// connection, within MaxAttempts and its context, without the budget, as
// gRPC retries such calls transparently. So when most calls fail, as when every server is down,
// retries stop after about tokens/2 failures and resume as calls succeed
// again, and a retry storm cannot multiply the load. Zero or negative
// values mean DefaultBudgetTokens and DefaultBudgetRatio.
func RetryBudget(tokens, ratio float64) Option {
	return func(c *config) { c.budgetMax, c.budgetRatio = tokens, ratio }
}

// ResolveEvery sets how often the Pool asks its Resolver for the
// endpoints; zero or negative means DefaultResolveEvery. It also asks when
// a connection fails or a dial fails, at most once a second.
func ResolveEvery(d time.Duration) Option {
	return func(c *config) { c.resolveEvery = d }
}

// Logger sets where the Pool reports, at debug level, connections made,
// lost and refused (GOAWAY), failed dials, endpoints set aside and
// resolver failures. Nil, the default, means silence.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}
