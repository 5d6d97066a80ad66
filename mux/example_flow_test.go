package mux_test

import (
	"context"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// serveExample serves h over a pipe and returns a Mux calling it, and a
// function that closes both.
func serveExample(h demux.Handler, opts ...demux.Option) (*mux.Mux, func()) {
	client, server, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	d := demux.New(server, h, opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client)
	return m, func() { m.Close(); d.Close(); <-served }
}

// WithPriority marks the calls made under a context: their requests leave
// before waiting requests of lower priority, the serving side starts them
// first, and their replies come back at the same priority. A handler sees
// the priority in its Request.
func ExampleWithPriority() {
	m, stop := serveExample(demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		return fmt.Sprintf("%s served at priority %v", req.Method, req.Priority), nil
	}))
	defer stop()

	ctx := context.Background()
	var reply string
	if err := m.Call(mux.WithPriority(ctx, mux.PriorityUrgent), "Health.Check", nil, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	if err := m.Call(mux.WithPriority(ctx, mux.PriorityLow), "Index.Rebuild", nil, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	// Output:
	// Health.Check served at priority urgent
	// Index.Rebuild served at priority low
}

// WithKey gives calls an ordering key: the server runs the requests of one
// key one at a time, in the order they arrived, like the messages of one
// actor's mailbox, while other keys run in parallel. Here the deposits of
// one account are notifications that return at once, and the balance
// call, sent after them with the same key, runs only after all of them.
func ExampleWithKey() {
	var mu sync.Mutex
	balances := map[string]int{}
	router := demux.NewRouter()
	router.Handle("Account.Deposit", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		var amount int
		if err := req.Decode(&amount); err != nil {
			return nil, err
		}
		mu.Lock()
		balances[req.Key] += amount
		mu.Unlock()
		return nil, nil
	}))
	router.Handle("Account.Balance", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		return balances[req.Key], nil
	}))
	m, stop := serveExample(router)
	defer stop()

	alice := mux.WithKey(context.Background(), "alice")
	for _, amount := range []int{10, 20, 12} {
		if err := m.Notify(alice, "Account.Deposit", amount); err != nil {
			log.Fatal(err)
		}
	}
	var balance int
	if err := m.Call(alice, "Account.Balance", nil, &balance); err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice has", balance)
	// Output:
	// alice has 42
}

// GoFunc calls back when a call finishes, on the goroutine that finished
// it, so that many calls can be in flight without a goroutine waiting for
// each. The callback must not block: here it only hands the result on
// through a buffered channel.
func ExampleMux_GoFunc() {
	m, stop := serveExample(demux.Func(func(_ context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	}))
	defer stop()

	words := []string{"alpha", "beta", "gamma"}
	results := make(chan string, len(words))
	for _, w := range words {
		reply := new(string)
		m.GoFunc(context.Background(), "Upper", w, reply, func(c *mux.Call) {
			if c.Err() != nil {
				results <- "error: " + c.Err().Error()
				return
			}
			results <- *reply
		})
	}
	var got []string
	for range words {
		got = append(got, <-results)
	}
	sort.Strings(got) // the calls may finish in any order
	fmt.Println(got)
	// Output:
	// [ALPHA BETA GAMMA]
}

// A Group runs calls together and reports the first error, as errgroup
// does: when one call fails, the Group's context is canceled, so the
// others end at once and their servers are told to stop.
func ExampleGroup() {
	router := demux.NewRouter()
	router.Handle("Square", demux.Func(func(_ context.Context, x int) (int, error) { return x * x, nil }))
	router.Handle("Slow", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		<-ctx.Done() // runs until the caller gives up
		return nil, ctx.Err()
	}))
	router.Handle("Broken", demux.Func(func(_ context.Context, _ int) (int, error) {
		return 0, fmt.Errorf("out of order")
	}))
	m, stop := serveExample(router)
	defer stop()

	g := mux.NewGroup(context.Background())
	squares := make([]int, 3)
	for i := range squares {
		g.Go(m, "Square", i+1, &squares[i])
	}
	if err := g.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("squares:", squares)

	g = mux.NewGroup(context.Background())
	slow := g.Go(m, "Slow", nil, nil)
	g.Go(m, "Broken", 1, nil)
	fmt.Println("Wait:", g.Wait())
	fmt.Println("the slow call:", slow.Err())
	// Output:
	// squares: [1 4 9]
	// Wait: remote: Application: out of order
	// the slow call: mux: call "Slow": context canceled
}
