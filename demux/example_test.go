package demux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

// A server: a Router of typed handlers made with Func, served on a pool of
// four workers over one end of a pipe. A mux.Mux calls it from the other
// end. Shutdown stops the server and makes Serve return nil.
func Example() {
	router := demux.NewRouter()
	router.Handle("Greeter.Hello", demux.Func(func(_ context.Context, name string) (string, error) {
		return "Hello, " + name + "!", nil
	}))
	router.Handle("Arith.Max", demux.Func(func(_ context.Context, xs []int) (int, error) {
		if len(xs) == 0 {
			return 0, errors.New("max of no numbers")
		}
		return slices.Max(xs), nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router, demux.Workers(4))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()

	m := mux.New(client)
	defer m.Close()
	ctx := context.Background()
	var greeting string
	if err := m.Call(ctx, "Greeter.Hello", "gopher", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)
	var largest int
	if err := m.Call(ctx, "Arith.Max", []int{3, 9, 4}, &largest); err != nil {
		log.Fatal(err)
	}
	fmt.Println(largest)

	if err := d.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Serve:", <-served)
	// Output:
	// Hello, gopher!
	// 9
	// Serve: <nil>
}

// Func turns a typed function into a Handler. The request's arguments are
// decoded into the function's argument type, and its result is sent back.
// An error it returns reaches the caller with CodeApplication; arguments
// that do not decode are answered with CodeBadRequest without calling it.
func ExampleFunc() {
	type DivArgs struct{ A, B int }
	div := demux.Func(func(_ context.Context, args DivArgs) (int, error) {
		if args.B == 0 {
			return 0, errors.New("division by zero")
		}
		return args.A / args.B, nil
	})
	router := demux.NewRouter()
	router.Handle("Arith.Div", div)

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	for _, args := range []any{DivArgs{A: 7, B: 2}, DivArgs{A: 7}, "seven by two"} {
		var quotient int
		err := m.Call(context.Background(), "Arith.Div", args, &quotient)
		var re *frame.RemoteError
		switch {
		case err == nil:
			fmt.Println("quotient:", quotient)
		case errors.As(err, &re):
			fmt.Println("failed:", re.Code)
		default:
			log.Fatal(err)
		}
	}
	// Output:
	// quotient: 3
	// failed: Application
	// failed: BadRequest
}

// A Router sends each request to the Handler registered for its method and
// answers any other method with CodeNoMethod. Handle may add methods while
// the Router serves.
func ExampleRouter() {
	router := demux.NewRouter()
	router.Handle("Strings.Upper", demux.Func(func(_ context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	call := func(method string) {
		var out string
		if err := m.Call(context.Background(), method, "gopher", &out); err != nil {
			fmt.Println(method, "failed:", err)
			return
		}
		fmt.Println(method, "returned", out)
	}
	call("Strings.Upper")
	call("Strings.Title")

	router.Handle("Strings.Title", demux.Func(func(_ context.Context, s string) (string, error) {
		return strings.ToUpper(s[:1]) + s[1:], nil
	}))
	call("Strings.Title")
	// Output:
	// Strings.Upper returned GOPHER
	// Strings.Title failed: remote: NoMethod: no method "Strings.Title"
	// Strings.Title returned Gopher
}

// A HandlerFunc sees the request itself: it can choose what to do from
// req.Method and decode the arguments with req.Decode, which reports
// arguments that do not decode with CodeBadRequest. Here one function
// serves a family of methods without a Router.
func ExampleHandlerFunc() {
	convert := demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		var s string
		if err := req.Decode(&s); err != nil {
			return nil, err
		}
		switch req.Method {
		case "upper":
			return strings.ToUpper(s), nil
		case "lower":
			return strings.ToLower(s), nil
		}
		return nil, &frame.RemoteError{Code: frame.CodeNoMethod, Message: "cannot convert to " + req.Method}
	})

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, convert)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	for _, method := range []string{"upper", "lower", "title"} {
		var out string
		err := m.Call(context.Background(), method, "Hello, World", &out)
		fmt.Printf("%s: %q %v\n", method, out, err)
	}
	// Output:
	// upper: "HELLO, WORLD" <nil>
	// lower: "hello, world" <nil>
	// title: "" remote: NoMethod: cannot convert to title
}

// Request.Bytes reads a byte-string argument in place, without the copy
// Decode makes. The slice is valid until the handler returns, and a result
// made of it is encoded before its bytes are reused, so a handler that
// passes bytes through, or a part of them, copies nothing itself.
func ExampleRequest_Bytes() {
	firstLine := demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		b, err := req.Bytes()
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
		return b, nil
	})

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, firstLine)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	var line []byte
	err = m.Call(context.Background(), "firstLine", []byte("GET / HTTP/1.1\nHost: example\n"), &line)
	fmt.Printf("%q %v\n", line, err)
	err = m.Call(context.Background(), "firstLine", 42, &line)
	fmt.Println(err)
	// Output:
	// "GET / HTTP/1.1" <nil>
	// remote: BadRequest: arguments of "firstLine" do not decode into []byte: frame: malformed: payload is not a single byte string
}

// Shutdown stops a server gracefully. It tells the client to send no new
// requests, lets the calls in flight finish and deliver their replies, and
// then closes the stream; Serve returns nil. Calls made after that fail
// with an error that matches mux.ErrClosed.
func ExampleDeMux_Shutdown() {
	started := make(chan struct{})
	finish := make(chan struct{})
	router := demux.NewRouter()
	router.Handle("Job.Run", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
		close(started)
		<-finish
		return "finished", nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	defer m.Close()

	ctx := context.Background()
	var reply string
	inFlight := m.Go(ctx, "Job.Run", nil, &reply)
	<-started

	shutdown := make(chan error, 1)
	go func() { shutdown <- d.Shutdown(ctx) }()
	close(finish) // Shutdown waits for this handler and its reply
	<-inFlight.Done()
	fmt.Println("in-flight call:", reply, inFlight.Err())
	fmt.Println("Shutdown:", <-shutdown)
	fmt.Println("Serve:", <-served)

	err = m.Call(ctx, "Job.Run", nil, nil)
	fmt.Println("new call closed:", errors.Is(err, mux.ErrClosed))
	// Output:
	// in-flight call: finished <nil>
	// Shutdown: <nil>
	// Serve: <nil>
	// new call closed: true
}

// With Workers(1) one goroutine runs every handler, in the order the
// requests arrived: requests sent one after another are handled one at a
// time, in that order. Without it each request gets a goroutine of its own
// and they may run in any order.
func ExampleWorkers() {
	router := demux.NewRouter()
	router.Handle("Queue.Process", demux.Func(func(_ context.Context, job string) (struct{}, error) {
		fmt.Println("processing", job)
		return struct{}{}, nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router, demux.Workers(1))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	var calls []*mux.Call
	for _, job := range []string{"first", "second", "third"} {
		calls = append(calls, m.Go(context.Background(), "Queue.Process", job, nil))
	}
	for _, call := range calls {
		<-call.Done()
		if err := call.Err(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("all done")
	// Output:
	// processing first
	// processing second
	// processing third
	// all done
}

// A DeMux serves any io.ReadWriteCloser, such as a TCP connection. This
// server accepts one connection on a loopback listener and serves it until
// the client hangs up; to serve every connection a listener accepts, use a
// Server.
func ExampleDeMux_Serve_tcp() {
	router := demux.NewRouter()
	router.Handle("Greeter.Hello", demux.Func(func(_ context.Context, name string) (string, error) {
		return "Hello, " + name + "!", nil
	}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- demux.New(conn, router).Serve()
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	m := mux.New(conn)
	var greeting string
	if err := m.Call(context.Background(), "Greeter.Hello", "TCP", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)

	m.Close()
	fmt.Println("Serve:", <-served)
	// Output:
	// Hello, TCP!
	// Serve: EOF
}

// A Server accepts connections on a listener and serves each with a DeMux
// of its own. Shutdown stops it gracefully: it closes the listener, lets
// the calls in flight finish on every connection and closes them, and
// Serve returns ErrServerClosed. The timeout bounds how long Shutdown
// waits for handlers before it closes the connections at once.
func ExampleServer() {
	router := demux.NewRouter()
	router.Handle("Greeter.Hello", demux.Func(func(_ context.Context, name string) (string, error) {
		return "Hello, " + name + "!", nil
	}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := demux.NewServer(router)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	m := mux.New(conn)
	defer m.Close()
	var greeting string
	if err := m.Call(context.Background(), "Greeter.Hello", "server", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Serve:", <-served)
	// Output:
	// Hello, server!
	// Serve: demux: Server closed
}

// Both ends of one stream call and serve: each is a mux.Mux that Handle
// gave a serving half with its own Router. Neither is the client or the
// server; each calls the other whenever it likes.
func ExampleHandle() {
	aliceRouter := demux.NewRouter()
	aliceRouter.Handle("Name", demux.Func(func(context.Context, struct{}) (string, error) {
		return "Alice", nil
	}))
	bobRouter := demux.NewRouter()
	bobRouter.Handle("Name", demux.Func(func(context.Context, struct{}) (string, error) {
		return "Bob", nil
	}))

	aliceEnd, bobEnd, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	alice := mux.New(aliceEnd, demux.Handle(aliceRouter))
	defer alice.Close()
	bob := mux.New(bobEnd, demux.Handle(bobRouter))
	defer bob.Close()

	var name string
	if err := alice.Call(context.Background(), "Name", nil, &name); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Alice called", name)
	if err := bob.Call(context.Background(), "Name", nil, &name); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Bob called", name)
	// Output:
	// Alice called Bob
	// Bob called Alice
}

// PeerFromContext tells a handler who called it: the addresses of its
// connection and, over TLS, the certificates the client presented. Over
// pipes and stdio the addresses are nil.
func ExamplePeerFromContext() {
	router := demux.NewRouter()
	router.Handle("Whoami", demux.Func(func(ctx context.Context, _ struct{}) (string, error) {
		peer, ok := demux.PeerFromContext(ctx)
		if !ok {
			return "", errors.New("not called by a handler")
		}
		addr, ok := peer.RemoteAddr.(*net.TCPAddr)
		if !ok {
			return "", fmt.Errorf("not a TCP peer: %v", peer.RemoteAddr)
		}
		return fmt.Sprintf("loopback: %t, TLS: %t", addr.IP.IsLoopback(), peer.TLS != nil), nil
	}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := demux.NewServer(router)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()

	ctx := context.Background()
	m, err := mux.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	var who string
	if err := m.Call(ctx, "Whoami", nil, &who); err != nil {
		log.Fatal(err)
	}
	fmt.Println(who)
	// Output:
	// loopback: true, TLS: false
}

// A server that shuts down gracefully on Ctrl-C (SIGINT): the context
// from signal.NotifyContext ends when the signal arrives, and Shutdown then
// stops accepting, lets every call in flight finish and deliver its reply,
// and closes the connections. MaxConns bounds the connections served at
// once. In this example nobody presses Ctrl-C: calling stop ends the
// context in its place.
func ExampleServer_Shutdown() {
	router := demux.NewRouter()
	router.Handle("Greeter.Hello", demux.Func(func(_ context.Context, name string) (string, error) {
		return "Hello, " + name + "!", nil
	}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := demux.NewServer(router, demux.MaxConns(100))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// A client makes a call, then the program is interrupted.
	m, err := mux.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	var greeting string
	if err := m.Call(context.Background(), "Greeter.Hello", "Ctrl-C", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)
	stop() // in a real program, Ctrl-C ends ctx

	<-ctx.Done()
	timeout, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(timeout); err != nil {
		log.Fatal(err) // the timeout passed: the connections were closed at once
	}
	fmt.Println("Serve:", <-served)
	// Output:
	// Hello, Ctrl-C!
	// Serve: demux: Server closed
}

// A handler that panics does not take the server down: the DeMux recovers
// the panic and answers the call with CodePanic, the panic value as the
// message and the handler's stack in Trace. Then it goes on serving.
func ExampleHandler_panic() {
	router := demux.NewRouter()
	router.Handle("List.Last", demux.Func(func(_ context.Context, xs []int) (int, error) {
		return xs[len(xs)], nil // a bug: one past the end
	}))
	router.Handle("List.Len", demux.Func(func(_ context.Context, xs []int) (int, error) {
		return len(xs), nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(client)
	defer m.Close()

	err = m.Call(context.Background(), "List.Last", []int{1, 2, 3}, nil)
	var re *frame.RemoteError
	if !errors.As(err, &re) {
		log.Fatal(err)
	}
	fmt.Println(re.Code)
	fmt.Println(re.Message)
	fmt.Println("trace recorded:", re.Trace != "")

	var n int
	if err := m.Call(context.Background(), "List.Len", []int{1, 2, 3}, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("still serving: length", n)
	// Output:
	// Panic
	// runtime error: index out of range [3] with length 3
	// trace recorded: true
	// still serving: length 3
}
