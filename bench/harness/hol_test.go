package harness_test

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

func tcpPair() (net.Conn, net.Conn, error) {
	return transport.Pair(transport.TCP, new(transport.Counts))
}

// TestRunHOL runs the head-of-line cell briefly through each of its
// systems and checks that every phase measured something; it asserts no
// timing.
func TestRunHOL(t *testing.T) {
	for _, sys := range systems.Flow() {
		t.Run(sys.Name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			r := harness.RunHOL(sys, tcpPair, harness.HOLOptions{
				BulkCallers: 2, BulkSize: 256 << 10, SmallSize: 16,
				Unloaded: 50 * time.Millisecond, Warmup: 20 * time.Millisecond, Duration: 100 * time.Millisecond,
			})
			if !r.OK() || r.CloseErr != "" {
				t.Fatalf("%+v", r)
			}
			if r.Unloaded.N == 0 || r.Loaded.N == 0 || r.BulkCalls == 0 || r.BulkMBps <= 0 {
				t.Errorf("a phase measured nothing: %+v", r)
			}
			if r.Loaded.P50 > r.Loaded.P99 || r.Loaded.P99 > r.Loaded.Max+r.Loaded.Max/16 {
				t.Errorf("loaded quantiles out of order: %+v", r.Loaded)
			}
		})
	}
}

// TestRunLink runs the slow-link cell over a plain TCP pair (no toxiproxy:
// the cell's logic only) and checks that small calls were made beside the
// bulk echo.
func TestRunLink(t *testing.T) {
	for _, name := range []string{"raw", "muxrpc", "grpc"} {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			sys, _ := systems.ByName(name)
			r := harness.RunLink(sys, tcpPair, harness.LinkOptions{BulkSize: 1 << 20, SmallSize: 16, Unloaded: 5})
			if !r.OK() || r.CloseErr != "" {
				t.Fatalf("%+v", r)
			}
			if len(r.Unloaded) != 5 || len(r.Loaded) == 0 || r.Bulk <= 0 {
				t.Errorf("unloaded %d, loaded %d, bulk %v", len(r.Unloaded), len(r.Loaded), r.Bulk)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for q, want := range map[float64]time.Duration{0.5: 3, 1: 5, 0.01: 1} {
		if got := harness.Quantile(ds, q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if harness.Quantile(nil, 0.5) != 0 {
		t.Errorf("Quantile of nothing is not 0")
	}
}
