package pool_test

import (
	"context"
	"testing"

	"github.com/muxrpc/muxrpc/pool"
)

// BenchmarkGo measures Pool.Go over one loopback TCP connection, 64 calls
// in flight at a time.
func BenchmarkGo(b *testing.B) {
	addr, stop := serve()
	defer stop()
	ctx := context.Background()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const inFlight = 64
	calls := make([]*pool.Call, inFlight)
	var sums [inFlight]int
	args := []int{1, 2}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += inFlight {
		for j := range calls {
			calls[j] = p.Go(ctx, "Arith.Sum", args, &sums[j])
		}
		for _, c := range calls {
			<-c.Done()
			if err := c.Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
