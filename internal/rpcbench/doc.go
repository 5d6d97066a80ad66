// Package rpcbench holds muxrpc's in-tree benchmarks and the tests that pin
// its hot path. It has no API: everything lives in its _test.go files.
//
// BenchmarkCall measures whole calls, client and server in one process:
//
//	BenchmarkCall/<system>/<transport>/<payload>/<callers>
//
// where system is muxrpc (a mux.Mux calling a demux.DeMux with default
// options: a goroutine per request; the handler echoes Request.Bytes, the
// argument's bytes without a copy), muxrpc-func (the same with a typed
// demux.Func handler, which decodes the argument into a new []byte),
// muxrpc-workers (muxrpc with demux.Workers(64)) or netrpc (Go's net/rpc
// with gob, as a baseline);
// transport is mem (net.Pipe) or tcp (loopback), both from
// internal/transport; payload is a []byte of 16 B or 4 KiB echoed back; and
// callers is the number of goroutines calling at once. b.N is the total
// number of calls, shared among the callers, each of which calls
// sequentially. Besides ns/op it reports calls/s and, as both ends run in
// this process, allocs/op and B/op that count the client and the server
// together.
//
// BenchmarkEncodeDecode measures the frame package alone: encoding and
// decoding msgpack payloads, and a REQUEST frame written and read back
// through the Native codec.
//
// The scale measurements (scale_test.go, scale_norace_test.go) ask what
// muxrpc costs as calls pile up: BenchmarkParkedCalls and
// TestParkedCallMemory the heap held by each of 100,000 (20,000 in the
// test) calls parked on one Mux, budget 1 KiB beyond goroutine stacks;
// BenchmarkIdlePair and TestIdlePairHeap the heap of an idle Mux+DeMux
// pair, budget 64 KiB; BenchmarkInFlight/<n> the cost of a call with n
// others parked, which should stay flat from 10 to 100,000. The ones that
// park thousands of goroutines do not run under the race detector.
//
// TestAllocsPerCall pins the allocations of one sequential call, both ends
// counted, to a budget; it is skipped under the race detector, which
// changes allocation counts.
//
// Run the benchmarks with
//
//	go test -run='^$' -bench=. ./internal/rpcbench/
//
// and compare runs with benchstat, e.g.
//
//	go test -run='^$' -bench=BenchmarkCall -benchtime=2s -count=3 ./internal/rpcbench/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
//
// CI runs every benchmark once (-benchtime=1x) so that they keep compiling
// and working.
package rpcbench
