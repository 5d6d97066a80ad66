package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/muxrpc/muxrpc/frame"
)

// caller is one goroutine's share of the load: it calls in sequence and
// checks that each reply is the echo of its own call and, in -nested mode,
// carries the stamp of the callback made for that call.
type caller struct {
	id     int
	calls  int
	nested bool   // replies must carry the callback's stamp
	conn   int    // index of the client connection m is (0 without -conns)
	m      client // the Mux of connection conn, or the Pool with -servers
	st     *stats
	rng    *rand.ChaCha8
	seq    uint64
	args   message // reused: Call encodes it before it returns
	reply  message // reused, and reset before each call
}

// newSeed returns a fresh seed for the callers' payloads.
func newSeed() uint64 { return rand.Uint64() }

// newCaller returns caller id, which calls over m, the Mux of client
// connection conn, with payloads that come from seed and its id.
func newCaller(id int, seed uint64, cfg config, conn int, m client, st *stats) *caller {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(id))
	return &caller{
		id:     id,
		calls:  cfg.Calls,
		nested: cfg.Nested,
		conn:   conn,
		m:      m,
		st:     st,
		rng:    rand.NewChaCha8(key),
		args:   message{Caller: id, Payload: make([]byte, cfg.Payload)},
	}
}

// run makes rounds of calls: c.calls calls to the methods in turn, then
// one to failMethod. It makes one round, and more until the time is past
// until if until is not zero. ctx ending interrupts it at once.
func (c *caller) run(ctx context.Context, until time.Time) {
	gotFailure := false
	for round := 0; round == 0 || (!until.IsZero() && time.Now().Before(until)); round++ {
		for i := range c.calls {
			if !c.call(ctx, methods[i%len(methods)].name) {
				return
			}
		}
		ok, expected := c.callFail(ctx)
		if !ok {
			return
		}
		gotFailure = gotFailure || expected
	}
	if !gotFailure {
		c.st.callersShort.Add(1)
	}
}

// call makes one call to method and checks the echo and, in -nested mode,
// its stamp. It reports false if ctx ended, which stops the caller.
func (c *caller) call(ctx context.Context, method string) bool {
	ok, err := c.do(ctx, method, &c.reply)
	if !ok {
		return false
	}
	switch {
	case c.st.countPoolFailure(err):
	case err != nil:
		c.st.unexpected.Add(1)
		c.st.note("caller %d call %d (%s): unexpected error: %v", c.id, c.seq, method, err)
	case !c.isEcho(method):
		c.st.mismatches.Add(1)
		c.st.note("caller %d call %d (%s): mismatched reply: caller %d call %d method %q, %d payload bytes (want %d, equal %t)",
			c.id, c.seq, method, c.reply.Caller, c.reply.Seq, c.reply.Method,
			len(c.reply.Payload), len(c.args.Payload), bytes.Equal(c.reply.Payload, c.args.Payload))
	case c.nested && !c.isStamped(method):
		c.st.mismatches.Add(1)
		c.st.callbackMismatches.Add(1)
		c.st.note("caller %d call %d (%s) on connection %d: mismatched callback stamp %+v",
			c.id, c.seq, method, c.conn, c.reply.Stamp)
	default:
		c.st.ok.Add(1)
		if c.nested {
			c.st.callbacksChecked.Add(1)
		}
	}
	return true
}

// callFail calls failMethod, which must fail with the error naming this
// call. ok is false if ctx ended; expected tells whether the right error
// came.
func (c *caller) callFail(ctx context.Context) (ok, expected bool) {
	ok, err := c.do(ctx, failMethod, nil)
	if !ok {
		return false, false
	}
	want := failMessage(c.id, c.seq)
	var re *frame.RemoteError
	switch {
	case err == nil:
		c.st.missing.Add(1)
		c.st.note("caller %d call %d (%s): succeeded, want error %q", c.id, c.seq, failMethod, want)
	case c.st.countPoolFailure(err):
	case !errors.As(err, &re) || re.Code != frame.CodeApplication || re.Message != want:
		c.st.unexpected.Add(1)
		c.st.note("caller %d call %d (%s): error %v, want %v %q", c.id, c.seq, failMethod, err, frame.CodeApplication, want)
	default:
		c.st.expected.Add(1)
		return true, true
	}
	return true, false
}

// do makes the next call with a fresh payload, timing it, and returns its
// error. ok is false if ctx ended before or during the call, which is then
// counted as canceled.
func (c *caller) do(ctx context.Context, method string, reply *message) (ok bool, err error) {
	if ctx.Err() != nil {
		return false, nil
	}
	c.seq++
	c.args.Seq = c.seq
	c.rng.Read(c.args.Payload)
	var dst any // nil: the reply, if any, is not decoded
	if reply != nil {
		*reply = message{Payload: reply.Payload[:0]}
		dst = reply
	}
	c.st.inFlight.Add(1)
	start := time.Now()
	err = c.m.Call(ctx, method, &c.args, dst)
	elapsed := time.Since(start)
	c.st.inFlight.Add(-1)
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		c.st.canceled.Add(1)
		return false, err
	}
	c.st.latency.record(elapsed)
	c.st.perConn[c.conn].Add(1)
	return true, err
}

// isEcho reports whether c.reply echoes the call just made to method.
func (c *caller) isEcho(method string) bool {
	r := &c.reply
	return r.Caller == c.id && r.Seq == c.seq && r.Method == method &&
		bytes.Equal(r.Payload, c.args.Payload)
}

// isStamped reports whether c.reply carries the stamp of the callback made
// for the call just made to method, served over c's connection.
func (c *caller) isStamped(method string) bool {
	want := message{Caller: c.id, Seq: c.seq, Method: method, Payload: c.args.Payload}
	return c.reply.Stamp != nil && *c.reply.Stamp == stampOf(&want, c.conn)
}
