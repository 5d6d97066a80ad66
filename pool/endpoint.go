package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/muxrpc/muxrpc/mux"
)

// setAsideAfter is how many failures in a row set an endpoint aside: only
// one of its connections then tries to reach it (a probe), on the backoff
// schedule, and the others wait until the probe connects. So a server that
// comes back after an outage gets one connection first from each client,
// at times spread by the jitter, rather than ConnsPerEndpoint at once.
const setAsideAfter = 3

// healthyAfter is how long a connection must last to count as a success:
// one that ends sooner (a server that accepts and hangs up, a balancer
// with no backend) counts as a failure of its endpoint, so that it is not
// redialed in a tight loop.
const healthyAfter = time.Second

// endpoint is one address the Resolver gave, with ConnsPerEndpoint slots,
// each run by a goroutine that keeps one connection to it.
type endpoint struct {
	p      *Pool
	addr   string
	ctx    context.Context // ends when the endpoint is dropped or the Pool closed
	cancel context.CancelFunc

	fails  int           // failures in a row; guarded by p.mu
	prober int           // the slot probing the endpoint set aside, or -1; guarded by p.mu
	back   chan struct{} // closed and replaced when a probe connects; guarded by p.mu
}

func newEndpoint(p *Pool, addr string) *endpoint {
	ctx, cancel := context.WithCancel(p.ctx)
	return &endpoint{p: p, addr: addr, ctx: ctx, cancel: cancel, prober: -1, back: make(chan struct{})}
}

// run is one slot: it keeps a connection to the endpoint, dialing again
// after each one ends, until the endpoint is dropped or the Pool closed.
func (ep *endpoint) run(slot int) {
	p := ep.p
	defer p.wg.Done()
	var delay time.Duration
	for {
		if delay > 0 && sleep(ep.ctx, nil, delay) != nil {
			return
		}
		if ep.ctx.Err() != nil {
			return
		}
		if wait := ep.mayDial(slot); wait != nil {
			select {
			case <-wait: // the probe connected: come back too, spread out
				delay = time.Duration(rand.Int64N(int64(p.cfg.backoffBase)))
			case <-ep.ctx.Done():
				return
			}
			continue
		}
		p.stats.dials.Add(1)
		ctx, cancel := context.WithTimeout(ep.ctx, p.cfg.dialTimeout)
		m, err := p.cfg.dial(ctx, p.network, ep.addr)
		if err == nil {
			err = awaitReady(ctx, m)
		}
		cancel()
		if err != nil {
			if ep.ctx.Err() != nil {
				return
			}
			delay = ep.failed(err)
			p.resolveNow()
			continue
		}
		c := &conn{m: m, idle: make(chan struct{})}
		if !ep.connected(c) {
			m.Close()
			return
		}
		start := time.Now()
		select {
		case <-m.Refusing(): // GOAWAY, or the connection ended
		case <-ep.ctx.Done():
		}
		p.removeConn(c)
		p.wg.Add(1) // this goroutine is counted: the count is not zero
		go p.drain(c)
		if ep.ctx.Err() != nil {
			return
		}
		p.resolveNow()
		if lived := time.Since(start); lived < healthyAfter {
			p.log.Debug("muxrpc pool: connection lost soon after it was made", "addr", ep.addr, "lived", lived, "err", m.Err())
			delay = ep.failed(m.Err())
			continue
		}
		p.log.Debug("muxrpc pool: connection lost or refusing calls; redialing", "addr", ep.addr, "err", m.Err())
		delay = time.Duration(rand.Int64N(int64(p.cfg.backoffBase)))
	}
}

// awaitReady waits until m's peer has sent a good preface (and passed the
// handshake, with mux.AuthKey), so that no call goes to a peer that
// speaks something else or never answers. It closes m if that fails or
// ctx ends first.
func awaitReady(ctx context.Context, m *mux.Mux) error {
	select {
	case <-m.Ready():
		return nil
	case <-m.Done():
		m.Close()
		return fmt.Errorf("pool: the connection ended before the peer's handshake: %w", m.Err())
	case <-ctx.Done():
		m.Close()
		return fmt.Errorf("pool: no handshake from the peer: %w", ctx.Err())
	}
}

// mayDial reports whether the slot may dial now: nil if so, otherwise a
// channel closed when it may try again (the endpoint is set aside and
// another slot probes it). The first slot to find the endpoint set aside
// probes it until a probe connects.
func (ep *endpoint) mayDial(slot int) <-chan struct{} {
	p := ep.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if ep.fails < setAsideAfter || ep.prober == slot {
		return nil
	}
	if ep.prober >= 0 {
		return ep.back
	}
	ep.prober = slot
	return nil
}

// failed counts a failure of the endpoint and returns how long the slot
// waits before it dials again.
func (ep *endpoint) failed(err error) time.Duration {
	p := ep.p
	p.stats.dialFailures.Add(1)
	p.mu.Lock()
	ep.fails++
	fails := ep.fails
	if err != nil {
		p.lastErr = err
	}
	p.broadcast() // callers waiting for a connection may give up
	p.mu.Unlock()
	if fails == setAsideAfter {
		p.log.Debug("muxrpc pool: endpoint set aside after failing in a row; probing it with one connection", "addr", ep.addr, "failures", fails, "err", err)
	} else {
		p.log.Debug("muxrpc pool: dial failed", "addr", ep.addr, "failures", fails, "err", err)
	}
	return p.backoff(fails)
}

// connected makes c ready, unless the endpoint was dropped or the Pool
// closed meanwhile, and clears the endpoint's failures.
func (ep *endpoint) connected(c *conn) bool {
	p := ep.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || ep.ctx.Err() != nil {
		return false
	}
	if ep.fails >= setAsideAfter {
		p.log.Debug("muxrpc pool: endpoint back", "addr", ep.addr)
	}
	ep.fails = 0
	if ep.prober >= 0 {
		ep.prober = -1
		close(ep.back)
		ep.back = make(chan struct{})
	}
	p.conns = append(p.conns[:len(p.conns):len(p.conns)], c)
	p.publish()
	return true
}

// drain closes c, which left the ready set, once its calls in flight have
// finished, or at once if it ended or the Pool is closing.
func (p *Pool) drain(c *conn) {
	defer p.wg.Done()
	select {
	case <-c.idle:
	case <-c.m.Done():
	case <-p.ctx.Done():
	}
	c.m.Close()
}

// backoff is the wait after the endpoint's fails-th failure in a row.
func (p *Pool) backoff(fails int) time.Duration {
	d := p.cfg.backoffBase
	for i := 1; i < fails && d < p.cfg.backoffMax; i++ {
		d *= 2
	}
	return jitter(min(d, p.cfg.backoffMax))
}

// jitter varies d at random by ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
