package pool_test

import (
	"context"
	"net"
	"testing"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/pool"
)

// BenchmarkGo measures Pool.Go over one loopback TCP connection, 64 calls
// in flight at a time.
func BenchmarkGo(b *testing.B) {
	r := demux.NewRouter()
	r.Handle("who", demux.Func(func(context.Context, struct{}) (string, error) { return "a", nil }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := demux.NewServer(r)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() { srv.Close(); <-served }()
	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(ln.Addr().String()))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const inFlight = 64
	calls := make([]*pool.Call, inFlight)
	var who [inFlight]string
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += inFlight {
		for j := range calls {
			calls[j] = p.Go(ctx, "who", struct{}{}, &who[j])
		}
		for _, c := range calls {
			<-c.Done()
			if err := c.Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
