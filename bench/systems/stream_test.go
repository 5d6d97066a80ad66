package systems_test

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/muxrpc/muxrpc/bench/harness"
	"github.com/muxrpc/muxrpc/bench/systems"
	"github.com/muxrpc/muxrpc/bench/transport"
)

// TestStream streams 40 items of 100 KiB through each system that can
// stream, over TCP, checking each item.
func TestStream(t *testing.T) {
	connect := func() (net.Conn, net.Conn, error) { return transport.Pair(transport.TCP, new(transport.Counts)) }
	for _, name := range []string{"muxrpc", "grpc"} {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			sys, _ := systems.ByName(name)
			r := harness.RunStream(sys, connect, 40, 100<<10, 20*time.Second)
			if !r.OK() || r.CloseErr != "" {
				t.Fatalf("%s: %s %s", name, r.Err, r.CloseErr)
			}
			if r.Bytes != 40*100<<10 {
				t.Errorf("%s: %d bytes, want %d", name, r.Bytes, 40*100<<10)
			}
		})
	}
}

// TestFlowSystems echoes through the head-of-line benchmark's systems
// that TestEcho does not cover (muxrpc with other chunk sizes, and with
// its small calls urgent).
func TestFlowSystems(t *testing.T) {
	for _, sys := range systems.Flow() {
		if _, ok := sys.(systems.Muxrpc); !ok || sys.Name() == "muxrpc" {
			continue
		}
		t.Run(sys.Name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			echoTest(t, sys, transport.TCP, []int{16, 200 << 10, 1 << 20}, 4, 3)
		})
	}
}
