package mux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// addStreamHandlers adds the streaming methods the tests call, which the
// child process of child_test.go serves too:
//
//	count n        yields 0..n-1, then returns "done"
//	sum            receives ints until CloseSend, returns their sum
//	double         yields 2x for each int it receives, returns the count
//	blob [n, size] yields n items of size bytes each
//	fail n         yields 0..n-1, then fails with "failed after n"
//	steps n        reports progress 1..n, returns n
func addStreamHandlers(r *demux.Router) {
	r.Handle("count", demux.Func(func(ctx context.Context, n int) (string, error) {
		for i := range n {
			if err := demux.Yield(ctx, i); err != nil {
				return "", err
			}
		}
		return "done", nil
	}))
	r.Handle("sum", demux.Func(func(ctx context.Context, _ any) (int, error) {
		sum := 0
		for {
			var v int
			err := demux.Recv(ctx, &v)
			if err == io.EOF {
				return sum, nil
			}
			if err != nil {
				return 0, err
			}
			sum += v
		}
	}))
	r.Handle("double", demux.Func(func(ctx context.Context, _ any) (int, error) {
		n := 0
		for {
			var v int
			err := demux.Recv(ctx, &v)
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return 0, err
			}
			if err := demux.Yield(ctx, 2*v); err != nil {
				return 0, err
			}
			n++
		}
	}))
	r.Handle("blob", demux.Func(func(ctx context.Context, a [2]int) (int, error) {
		item := bytes.Repeat([]byte{'b'}, a[1])
		for range a[0] {
			if err := demux.Yield(ctx, item); err != nil {
				return 0, err
			}
		}
		return a[0], nil
	}))
	r.Handle("fail", demux.Func(func(ctx context.Context, n int) (int, error) {
		for i := range n {
			if err := demux.Yield(ctx, i); err != nil {
				return 0, err
			}
		}
		return 0, fmt.Errorf("failed after %d", n)
	}))
	r.Handle("steps", demux.Func(func(ctx context.Context, n int) (int, error) {
		for i := 1; i <= n; i++ {
			if err := demux.Progress(ctx, i); err != nil {
				return 0, err
			}
		}
		return n, nil
	}))
}

// streamWait bounds every wait of the stream tests.
const streamWait = 10 * time.Second

// recvAll receives ints until the stream ends, failing the test if it
// takes longer than streamWait.
func recvAll(t *testing.T, s *mux.Stream) ([]int, error) {
	t.Helper()
	type result struct {
		got []int
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got []int
		for {
			var v int
			if err := s.Recv(&v); err != nil {
				done <- result{got, err}
				return
			}
			got = append(got, v)
		}
	}()
	select {
	case r := <-done:
		return r.got, r.err
	case <-time.After(streamWait):
		t.Fatalf("the stream did not end within %v", streamWait)
		return nil, nil
	}
}

func TestStreamResults(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		s, err := p.Mux.Stream(rpctest.Context(t), "count", 1000)
		require.NoError(t, err)
		got, err := recvAll(t, s)
		require.ErrorIs(t, err, io.EOF)
		require.Len(t, got, 1000)
		for i, v := range got {
			require.Equal(t, i, v, "items arrive in order")
		}
		var reply string
		require.NoError(t, s.Reply(&reply))
		assert.Equal(t, "done", reply)
		require.ErrorIs(t, s.Recv(new(int)), io.EOF, "the end stays the end")
		require.NoError(t, s.Close())
	})
}

func TestStreamArguments(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		s, err := p.Mux.Stream(rpctest.Context(t), "sum", nil)
		require.NoError(t, err)
		want := 0
		for i := range 1000 {
			require.NoError(t, s.Send(i))
			want += i
		}
		require.NoError(t, s.CloseSend())
		require.ErrorIs(t, s.Send(1), mux.ErrStreamEnded, "Send after CloseSend")
		var sum int
		require.NoError(t, s.Reply(&sum))
		assert.Equal(t, want, sum)
	})
}

func TestStreamBothWays(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		s, err := p.Mux.Stream(rpctest.Context(t), "double", nil)
		require.NoError(t, err)
		defer s.Close()
		// One at a time, each answer before the next item: the two
		// directions' credits both turn over many times.
		for i := range 200 {
			require.NoError(t, s.Send(i))
			var v int
			require.NoError(t, s.Recv(&v))
			require.Equal(t, 2*i, v)
		}
		require.NoError(t, s.CloseSend())
		require.ErrorIs(t, s.Recv(new(int)), io.EOF)
		var n int
		require.NoError(t, s.Reply(&n))
		assert.Equal(t, 200, n)
	})
}

func TestStreamHandlerError(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	s, err := p.Mux.Stream(rpctest.Context(t), "fail", 3)
	require.NoError(t, err)
	got, err := recvAll(t, s)
	assert.Equal(t, []int{0, 1, 2}, got, "the items before the error")
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "failed after 3", re.Message)
	require.ErrorAs(t, s.Reply(new(int)), &re)
}

func TestStreamLargeItemsArriveWhole(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		s, err := p.Mux.Stream(rpctest.Context(t), "blob", [2]int{20, 200 << 10})
		require.NoError(t, err)
		defer s.Close()
		want := bytes.Repeat([]byte{'b'}, 200<<10)
		for i := range 20 {
			var item []byte
			require.NoError(t, s.Recv(&item), "item %d", i)
			require.Equal(t, want, item, "item %d", i)
		}
		require.ErrorIs(t, s.Recv(new([]byte)), io.EOF)
	})
}

// TestSlowConsumerStopsProducer checks the flow control of results: a
// caller that does not receive lets the handler yield DefaultStreamWindow
// items and no more, while other calls on the connection go on; each
// batch it receives lets the handler go on by as much.
func TestSlowConsumerStopsProducer(t *testing.T) {
	produced := make(chan int, 1000)
	r := demux.NewRouter()
	r.Handle("produce", demux.Func(func(ctx context.Context, _ any) (any, error) {
		for i := 0; ; i++ {
			if err := demux.Yield(ctx, i); err != nil {
				return nil, err
			}
			produced <- i
		}
	}))
	r.Handle("echo", demux.Func(func(_ context.Context, a echoArgs) (echoArgs, error) { return a, nil }))
	p := rpctest.Start(t, transport.TCP, r, nil)
	s, err := p.Mux.Stream(rpctest.Context(t), "produce", nil)
	require.NoError(t, err)
	take := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-produced:
			case <-time.After(streamWait):
				t.Fatalf("the handler did not yield its window within %v", streamWait)
			}
		}
	}
	take(mux.DefaultStreamWindow)
	// Other calls pass while the stream waits; and by the time one has
	// gone there and back, a handler without flow control would have
	// yielded more.
	for i := range 10 {
		var out echoArgs
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{Seq: i}, &out))
	}
	assert.Empty(t, produced, "the handler yielded past the window")
	for i := range mux.DefaultStreamWindow / 2 {
		var v int
		require.NoError(t, s.Recv(&v))
		require.Equal(t, i, v)
	}
	take(mux.DefaultStreamWindow / 2) // the WANT for 8 lets 8 more go
	var out echoArgs
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "echo", echoArgs{}, &out))
	assert.Empty(t, produced, "the handler yielded past what was granted")
	require.NoError(t, s.Close())
}

// TestSlowHandlerStopsPusher checks the flow control of arguments: Send
// waits once the handler has not received DefaultPushWindow items.
func TestSlowHandlerStopsPusher(t *testing.T) {
	gate := make(chan struct{})
	r := demux.NewRouter()
	r.Handle("slow", demux.Func(func(ctx context.Context, _ any) (int, error) {
		var v int
		if err := demux.Recv(ctx, &v); err != nil { // grants the window
			return 0, err
		}
		<-gate
		n := 1
		for demux.Recv(ctx, &v) == nil {
			n++
		}
		return n, nil
	}))
	p := rpctest.Start(t, transport.Pipe, r, nil)
	s, err := p.Mux.Stream(rpctest.Context(t), "slow", nil)
	require.NoError(t, err)
	for i := range demux.DefaultPushWindow {
		require.NoError(t, s.Send(i), "item %d is within the window", i)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- s.Send(99) }()
	select {
	case err := <-blocked:
		t.Fatalf("Send past the window returned %v instead of waiting", err)
	case <-p.Mux.Go(context.Background(), "nothing", nil, nil).Done():
		// A round trip on the same connection: the Send still waits.
	}
	close(gate)
	select {
	case err := <-blocked:
		require.NoError(t, err, "the handler received, so Send went on")
	case <-time.After(streamWait):
		t.Fatalf("Send did not go on within %v once the handler received", streamWait)
	}
	require.NoError(t, s.CloseSend())
	var n int
	require.NoError(t, s.Reply(&n))
	assert.Equal(t, demux.DefaultPushWindow+1, n)
}

// TestStreamCancelEndsBothEnds checks that Close, a canceled context and
// a deadline each end the stream at the caller at once and cancel the
// handler's context.
func TestStreamCancelEndsBothEnds(t *testing.T) {
	for _, how := range []string{"Close", "cancel", "deadline"} {
		t.Run(how, func(t *testing.T) {
			ended := make(chan error, 1)
			r := demux.NewRouter()
			r.Handle("forever", demux.Func(func(ctx context.Context, _ any) (any, error) {
				for i := 0; ; i++ {
					if err := demux.Yield(ctx, i); err != nil {
						ended <- err
						return nil, err
					}
				}
			}))
			p := rpctest.Start(t, transport.Unix, r, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
			}
			s, err := p.Mux.Stream(ctx, "forever", nil)
			require.NoError(t, err)
			var v int
			require.NoError(t, s.Recv(&v))
			switch how {
			case "Close":
				require.NoError(t, s.Close())
			case "cancel":
				cancel()
			}
			_, err = recvAll(t, s)
			switch how {
			case "Close", "cancel":
				require.ErrorIs(t, err, context.Canceled)
			case "deadline":
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			select {
			case err := <-ended:
				assert.True(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded), "%v", err)
			case <-time.After(streamWait):
				t.Fatalf("the handler's Yield did not end within %v", streamWait)
			}
		})
	}
}

func TestCallProgress(t *testing.T) {
	rpctest.Each(t, func(t *testing.T, kind transport.Kind) {
		p := rpctest.Start(t, kind, echoRouter(), nil)
		var steps []int
		var n int
		err := p.Mux.CallProgress(rpctest.Context(t), "steps", 5, &n, func(pr *mux.Progress) {
			var step int
			require.NoError(t, pr.Decode(&step))
			steps = append(steps, step)
		})
		require.NoError(t, err)
		assert.Equal(t, 5, n)
		assert.Equal(t, []int{1, 2, 3, 4, 5}, steps, "every report, in order: within the window none is dropped")

		// A plain call to the same method: the reports are dropped at the
		// handler's end, the result comes.
		require.NoError(t, p.Mux.Call(rpctest.Context(t), "steps", 5, &n))
		assert.Equal(t, 5, n)
	})
}

func TestYieldToAPlainCall(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	var reply string
	err := p.Mux.Call(rpctest.Context(t), "count", 3, &reply)
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, demux.ErrNotStream.Error())
}

func TestStreamOverAChildProcess(t *testing.T) {
	m, _ := startChild(t, "echo")
	s, err := m.Stream(rpctest.Context(t), "count", 500)
	require.NoError(t, err)
	got, err := recvAll(t, s)
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, got, 500)
	assert.Equal(t, 499, got[499])
	s2, err := m.Stream(rpctest.Context(t), "sum", nil)
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, s2.Send(i))
	}
	require.NoError(t, s2.CloseSend())
	var sum int
	require.NoError(t, s2.Reply(&sum))
	assert.Equal(t, 4950, sum)
	require.NoError(t, closeWithin(t, m))
}

// TestCanceledStreamIsForgotten checks that a stream whose context ends
// while nobody reads it is no longer routed to once its call has ended, so
// that it holds no items and no entry in the Mux.
func TestCanceledStreamIsForgotten(t *testing.T) {
	p := rpctest.Start(t, transport.Pipe, echoRouter(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := p.Mux.Stream(ctx, "count", 1<<30) // yields until canceled
	require.NoError(t, err)
	require.Equal(t, 1, p.Mux.Streams())
	var v int
	require.NoError(t, s.Recv(&v), "the stream runs")
	cancel()
	rpctest.Await(t, s.CallDone(), "the canceled stream's call did not end")
	assert.Zero(t, p.Mux.Streams(), "the ended stream is still routed to")
	_, err = recvAll(t, s) // items that came before the cancel, then its error
	require.ErrorIs(t, err, context.Canceled)
}
