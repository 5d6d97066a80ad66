package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestRunBulk runs the small callers beside bulk callers, with and without
// -priority, and checks the summary's bulk rows and checks; it asserts no
// timing.
func TestRunBulk(t *testing.T) {
	for _, transport := range []string{"pipe", "tcp"} {
		for _, priority := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/priority=%t", transport, priority), func(t *testing.T) {
				watchdog(t, 20*time.Second)
				cfg := smallConfig(transport, 4)
				cfg.Callers = 8
				cfg.Flow = flowConfig{Bulk: 3, BulkSize: 256 << 10, Priority: priority}
				out, err := runDemo(t, context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				rows := checkFullRun(t, cfg, out)
				if got := rows["bulk callers"]; got != "3 x 262144 B" {
					t.Errorf("bulk callers = %q, want %q", got, "3 x 262144 B")
				}
				if n := number(t, rows, "bulk calls ok"); n < 3 {
					t.Errorf("bulk calls ok = %d, want at least one per bulk caller", n)
				}
				for _, key := range []string{"bulk errors", "bulk mismatches"} {
					if n := number(t, rows, key); n != 0 {
						t.Errorf("%s = %d, want 0", key, n)
					}
				}
				for _, key := range []string{"bulk throughput", "bulk latency p50", "bulk latency p99", "bulk latency max", "latency p50", "latency p99", "latency max"} {
					if rows[key] == "" {
						t.Errorf("summary has no row %q", key)
					}
				}
				if !strings.HasSuffix(rows["bulk throughput"], " MB/s") {
					t.Errorf("bulk throughput = %q, want MB/s", rows["bulk throughput"])
				}
				if got, want := rows["priority"], map[bool]string{true: "urgent"}[priority]; got != want {
					t.Errorf("priority row = %q, want %q", got, want)
				}
				if !strings.Contains(out, "PASS  every bulk call echoed its payload\n") {
					t.Errorf("summary does not pass the bulk check")
				}
			})
		}
	}
}

// TestRunNoBulk checks that a run without -bulk has no bulk rows.
func TestRunNoBulk(t *testing.T) {
	watchdog(t, 20*time.Second)
	out, err := runDemo(t, context.Background(), smallConfig("mem", 0), io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(out, "bulk") || strings.Contains(out, "priority") {
		t.Errorf("summary of a run without -bulk mentions bulk calls or priority")
	}
}

func TestParseFlowFlags(t *testing.T) {
	cfg, err := parseFlags(strings.Fields("-bulk 4 -bulk-size 65536 -priority -quiet"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (flowConfig{Bulk: 4, BulkSize: 65536, Priority: true}); cfg.Flow != want {
		t.Errorf("flow flags: %+v, want %+v", cfg.Flow, want)
	}
	if cfg.Flow.size() != 65536 || (flowConfig{}).size() != defaultBulkSize {
		t.Errorf("size: %d and %d, want 65536 and %d", cfg.Flow.size(), (flowConfig{}).size(), defaultBulkSize)
	}
	for _, args := range []string{"-bulk -1", "-bulk-size -1"} {
		if _, err := parseFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// TestBulkThroughPool runs the bulk callers beside the small ones through
// the Pool of -servers.
func TestBulkThroughPool(t *testing.T) {
	watchdog(t, time.Minute)
	a, b := startDemoServer(t), startDemoServer(t)
	cfg := smallConfig("tcp", 10)
	cfg.Pool = poolConfig{Servers: a + "," + b, Conns: 1}
	cfg.Flow = flowConfig{Bulk: 2, BulkSize: 64 << 10, Priority: true}
	out, err := runDemo(t, context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	rows := parseSummary(t, out)
	if n := number(t, rows, "bulk calls ok"); n < 2 {
		t.Errorf("bulk calls ok = %d, want at least 2", n)
	}
	if n := number(t, rows, "bulk errors"); n != 0 {
		t.Errorf("bulk errors = %d", n)
	}
	if !strings.Contains(out, "PASS  every bulk call echoed its payload\n") {
		t.Errorf("summary does not pass the bulk check")
	}
}
