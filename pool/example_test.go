package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/pool"
)

// serve starts a demux.Server answering "Arith.Sum" on a loopback port and
// returns its address and a function that stops it.
func serve() (addr string, stop func()) {
	router := demux.NewRouter()
	router.Handle("Arith.Sum", demux.Func(func(_ context.Context, xs []int) (int, error) {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	}))
	router.Handle("Count", demux.Func(func(ctx context.Context, n int) (string, error) {
		for i := 1; i <= n; i++ {
			if err := demux.Yield(ctx, i); err != nil {
				return "", err
			}
		}
		return "liftoff", nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := demux.NewServer(router)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	return ln.Addr().String(), func() { srv.Close(); <-served }
}

// A Pool over two servers, with two connections to each: code written
// for a Mux works the same, with pool.Dial in place of mux.Dial.
func Example() {
	addr1, stop1 := serve()
	defer stop1()
	addr2, stop2 := serve()
	defer stop2()

	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addr1, addr2), pool.ConnsPerEndpoint(2))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var sum int
	if err := p.Call(ctx, "Arith.Sum", []int{1, 2, 3}, &sum); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sum:", sum)

	call := p.Go(ctx, "Arith.Sum", []int{4, 5}, &sum)
	<-call.Done()
	fmt.Println("sum:", sum, "err:", call.Err())
	// Output:
	// sum: 6
	// sum: 9 err: <nil>
}

// A streaming call goes to one connection of the Pool, which counts it as
// a call in flight until it is over: its items, then its final result.
func ExamplePool_Stream() {
	addr, stop := serve()
	defer stop()
	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	s, err := p.Stream(ctx, "Count", 3)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for {
		var n int
		err := s.Recv(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n)
	}
	var last string
	if err := s.Reply(&last); err != nil {
		log.Fatal(err)
	}
	fmt.Println(last)
	// Output:
	// 1
	// 2
	// 3
	// liftoff
}

// A call marked Idempotent is retried on another connection even when it
// may have run (its connection died while it waited for the reply); mark
// only calls that do no harm when run twice.
func ExampleIdempotent() {
	addr, stop := serve()
	defer stop()
	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var sum int
	if err := p.Call(pool.Idempotent(ctx), "Arith.Sum", []int{2, 3}, &sum); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sum:", sum)
	// Output:
	// sum: 5
}

// Every failure that is not the handler's own answer says whether the call
// may have run. Here the only server sheds load (CodeOverloaded), which
// means the call did not run: the Pool retries it, up to MaxAttempts, and
// then fails saying so.
func ExampleError() {
	router := demux.NewRouter()
	router.Handle("Arith.Sum", demux.Func(func(context.Context, []int) (int, error) {
		return 0, &frame.RemoteError{Code: frame.CodeOverloaded, Message: "busy"}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := demux.NewServer(router)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() { srv.Close(); <-served }()

	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(ln.Addr().String()), pool.MaxAttempts(2))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var sum int
	err = p.Call(ctx, "Arith.Sum", []int{1}, &sum)
	var pe *pool.Error
	var re *frame.RemoteError
	switch {
	case errors.Is(err, pool.ErrMaybeRan):
		fmt.Println("may have run")
	case errors.As(err, &pe) && errors.Is(err, pool.ErrNotRun) && errors.As(err, &re):
		fmt.Printf("did not run after %d attempts (%v): safe to try again later\n", pe.Attempts, re.Code)
	}
	// Output:
	// did not run after 2 attempts (Overloaded): safe to try again later
}
