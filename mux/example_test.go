package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/mux"
)

// A client and a server in one process: a demux.DeMux serves a Router over
// one end of a pipe, and a Mux calls it over the other end. Any
// io.ReadWriteCloser works as the stream, such as a net.Conn.
func Example() {
	router := demux.NewRouter()
	router.Handle("Arith.Sum", demux.Func(func(_ context.Context, xs []int) (int, error) {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()

	m := mux.New(client)
	var sum int
	if err := m.Call(context.Background(), "Arith.Sum", []int{1, 2, 3}, &sum); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sum:", sum)

	// Hanging up ends the server's Serve with io.EOF.
	m.Close()
	fmt.Println("Serve:", <-served)
	// Output:
	// sum: 6
	// Serve: EOF
}

// Call blocks until the reply arrives and decodes it into reply, a
// pointer. Arguments and results are any values msgpack can encode, structs
// included; a nil reply discards the result.
func ExampleMux_Call() {
	type Rect struct{ W, H int }
	router := demux.NewRouter()
	router.Handle("Geo.Area", demux.Func(func(_ context.Context, r Rect) (int, error) {
		return r.W * r.H, nil
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

	ctx := context.Background()
	var area int
	if err := m.Call(ctx, "Geo.Area", Rect{W: 3, H: 4}, &area); err != nil {
		log.Fatal(err)
	}
	fmt.Println("area:", area)

	if err := m.Call(ctx, "Geo.Area", Rect{W: 5, H: 6}, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println("second call succeeded")
	// Output:
	// area: 12
	// second call succeeded
}

// Go starts a call and returns at once, so one goroutine can have many
// calls in flight. Here the server's handler does not answer until all
// three calls have reached it, which proves that they run at the same time.
// Each Call's Done channel is closed when it finishes; Err then tells how.
func ExampleMux_Go() {
	const n = 3
	var arrived sync.WaitGroup
	arrived.Add(n)
	router := demux.NewRouter()
	router.Handle("Square", demux.Func(func(_ context.Context, x int) (int, error) {
		arrived.Done()
		arrived.Wait()
		return x * x, nil
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

	calls := make([]*mux.Call, n)
	squares := make([]int, n)
	for i := range calls {
		calls[i] = m.Go(context.Background(), "Square", i+1, &squares[i])
	}
	for i, call := range calls {
		<-call.Done()
		if err := call.Err(); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d squared is %d\n", i+1, squares[i])
	}
	// Output:
	// 1 squared is 1
	// 2 squared is 4
	// 3 squared is 9
}

// Notify sends a request that gets no reply: it returns once the request is
// queued, and the caller never learns whether the handler ran or failed.
// Here the handler tells the example through a channel.
func ExampleMux_Notify() {
	logged := make(chan string, 1)
	router := demux.NewRouter()
	router.Handle("Log.Print", demux.Func(func(_ context.Context, msg string) (struct{}, error) {
		logged <- msg
		return struct{}{}, nil
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

	if err := m.Notify(context.Background(), "Log.Print", "hello"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("server logged:", <-logged)
	// Output:
	// server logged: hello
}

// When the caller's context is canceled, Call returns at once with an error
// that matches context.Canceled, and the server cancels the handler's
// context too.
func ExampleMux_Call_cancel() {
	started := make(chan struct{})
	stopped := make(chan error, 1)
	router := demux.NewRouter()
	router.Handle("Job.Wait", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
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

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started // the handler is running
		cancel()
	}()
	err = m.Call(ctx, "Job.Wait", nil, nil)
	fmt.Println(err)
	fmt.Println("canceled:", errors.Is(err, context.Canceled))
	fmt.Println("handler's context:", <-stopped)
	// Output:
	// mux: call "Job.Wait": context canceled
	// canceled: true
	// handler's context: context canceled
}

// A deadline on the caller's context travels with the request: the
// handler's context gets one no later than the caller's. When it passes,
// the call fails with an error that matches context.DeadlineExceeded,
// whichever side noticed first.
func ExampleMux_Call_deadline() {
	router := demux.NewRouter()
	router.Handle("Job.Report", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		deadline, ok := ctx.Deadline()
		fmt.Println("handler has a deadline:", ok)
		fmt.Println("within a minute:", time.Until(deadline) <= time.Minute)
		return nil, nil
	}))
	router.Handle("Job.Wait", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Call(ctx, "Job.Report", nil, nil); err != nil {
		log.Fatal(err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = m.Call(ctx, "Job.Wait", nil, nil)
	fmt.Println("deadline exceeded:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// handler has a deadline: true
	// within a minute: true
	// deadline exceeded: true
}

// What the handler failed with comes back as a *frame.RemoteError whose Code
// says what kind of failure it was: CodeApplication for an ordinary error,
// the handler's own choice when it returns a *frame.RemoteError, and
// CodeNoMethod for a method the server does not have. The Mux stays usable:
// a remote error is not a stream failure.
func ExampleMux_Call_remoteError() {
	router := demux.NewRouter()
	router.Handle("Bank.Withdraw", demux.Func(func(_ context.Context, amount int) (int, error) {
		return 0, fmt.Errorf("cannot withdraw %d: insufficient funds", amount)
	}))
	router.Handle("Bank.Audit", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
		return nil, &frame.RemoteError{Code: frame.CodeOverloaded, Message: "try again later"}
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

	for _, method := range []string{"Bank.Withdraw", "Bank.Audit", "Bank.Rob"} {
		err := m.Call(context.Background(), method, 100, nil)
		var re *frame.RemoteError
		if errors.As(err, &re) {
			fmt.Printf("%s: %v: %s (closed: %t)\n", method, re.Code, re.Message, errors.Is(err, mux.ErrClosed))
		}
	}
	// Output:
	// Bank.Withdraw: Application: cannot withdraw 100: insufficient funds (closed: false)
	// Bank.Audit: Overloaded: try again later (closed: false)
	// Bank.Rob: NoMethod: no method "Bank.Rob" (closed: false)
}

// Close fails every call still waiting for its reply with an error that
// matches ErrClosed, and every later call at once.
func ExampleMux_Close() {
	started := make(chan struct{})
	router := demux.NewRouter()
	router.Handle("Job.Wait", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		close(started)
		<-ctx.Done() // canceled when the stream ends
		return nil, ctx.Err()
	}))

	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, router)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)

	parked := make(chan error, 1)
	go func() { parked <- m.Call(context.Background(), "Job.Wait", nil, nil) }()
	<-started
	if err := m.Close(); err != nil {
		log.Fatal(err)
	}
	err = <-parked
	fmt.Println("parked call:", err, errors.Is(err, mux.ErrClosed), errors.Is(err, mux.ErrNotSent))
	err = m.Call(context.Background(), "Job.Wait", nil, nil)
	fmt.Println("later call:", err, errors.Is(err, mux.ErrClosed), errors.Is(err, mux.ErrNotSent))
	<-served // the server saw the stream end and canceled the handler
	// Output:
	// parked call: mux: closed true false
	// later call: mux: closed (request not sent) true true
}

// A handler can call back the client whose request it serves, on the same
// stream: FromContext gives it the Mux of its connection. The client serves
// those callbacks because demux.Handle gave its Mux a serving half. Here the
// server asks the client for a name in the middle of a call and puts the
// answer in its reply.
func ExampleFromContext() {
	server := demux.NewRouter()
	server.Handle("Greeter.Hello", demux.Func(func(ctx context.Context, _ struct{}) (string, error) {
		client, ok := mux.FromContext(ctx)
		if !ok {
			return "", errors.New("not called by a handler")
		}
		var name string
		if err := client.Call(ctx, "Client.Name", nil, &name); err != nil {
			return "", err
		}
		return "Hello, " + name + "!", nil
	}))
	callbacks := demux.NewRouter()
	callbacks.Handle("Client.Name", demux.Func(func(context.Context, struct{}) (string, error) {
		return "callback", nil
	}))

	clientEnd, serverEnd, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(serverEnd, server)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer func() { d.Close(); <-served }()
	m := mux.New(clientEnd, demux.Handle(callbacks))
	defer m.Close()

	var greeting string
	if err := m.Call(context.Background(), "Greeter.Hello", struct{}{}, &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)
	// Output:
	// Hello, callback!
}

// Dial connects to a server over the network and returns a Mux over the
// connection. Here the server is a DeMux serving the one connection it
// accepts on a loopback listener.
func ExampleDial() {
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

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := mux.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	var greeting string
	if err := m.Call(ctx, "Greeter.Hello", "Dial", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)

	if err := m.Close(); err != nil {
		log.Fatal(err)
	}
	err = <-served
	fmt.Println("server saw the hang-up:", errors.Is(err, io.EOF))
	// Output:
	// Hello, Dial!
	// server saw the hang-up: true
}

// Start runs a child process and calls it over the child's stdin and
// stdout. The child is a program whose main serves a DeMux over
// channel.Stdio until its parent closes its stdin, then exits:
//
//	func main() {
//		router := demux.NewRouter()
//		router.Handle("Greeter.Hello", demux.Func(func(_ context.Context, name string) (string, error) {
//			return "Hello, " + name + "!", nil
//		}))
//		err := demux.New(channel.Stdio(), router).Serve()
//		if err != nil && !errors.Is(err, io.EOF) {
//			log.Fatal(err) // log.Fatal writes to stderr: stdout is the stream
//		}
//	}
//
// This example is compiled but not run, as it needs that program built as
// ./greeter.
func ExampleStart() {
	cmd := exec.Command("./greeter")
	cmd.Stderr = os.Stderr // the child's logs; its stdin and stdout are the stream
	m, err := mux.Start(cmd, mux.GracePeriod(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	var greeting string
	if err := m.Call(context.Background(), "Greeter.Hello", "parent", &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)

	// Close closes the child's stdin, waits up to the grace period for it
	// to exit (then kills it), and returns its exit error: nil for status 0.
	if err := m.Close(); err != nil {
		log.Fatal("child: ", err)
	}
}

// Both ends prove they hold the same key before any call passes; a client
// with another key is refused, and no handler runs for it.
func ExampleAuthKey() {
	key := []byte("32 random bytes, shared in secret")
	serve := func(rwc io.ReadWriteCloser) (*demux.DeMux, chan error) {
		r := demux.NewRouter()
		r.Handle("hello", demux.Func(func(_ context.Context, name string) (string, error) {
			return "Hello, " + name + "!", nil
		}))
		d := demux.New(rwc, r, demux.AuthKey(key))
		served := make(chan error, 1)
		go func() { served <- d.Serve() }()
		return d, served
	}

	a, b, _ := channel.Pipe()
	d, served := serve(b)
	m := mux.New(a, mux.AuthKey(key))
	var greeting string
	err := m.Call(context.Background(), "hello", "friend", &greeting)
	fmt.Println(greeting, err)
	m.Close()
	<-served
	d.Close()

	a, b, _ = channel.Pipe()
	d, served = serve(b)
	m = mux.New(a, mux.AuthKey([]byte("a guess at the key, just as long")))
	err = m.Call(context.Background(), "hello", "intruder", &greeting)
	fmt.Println(errors.Is(err, channel.ErrAuth), errors.Is(err, mux.ErrNotSent))
	fmt.Println(errors.Is(<-served, channel.ErrAuth))
	m.Close()
	d.Close()
	// Output:
	// Hello, friend! <nil>
	// true true
	// true
}
