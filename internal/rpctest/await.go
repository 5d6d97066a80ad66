package rpctest

import (
	"testing"
	"time"
)

// WaitLimit bounds every wait of the tests that use Await: reaching it is
// the failure.
const WaitLimit = 10 * time.Second

// Await returns the next value from ch, or fails the test saying what did
// not happen if none comes within WaitLimit. Like t.Fatal, it must be
// called from the goroutine running the test.
func Await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(WaitLimit):
		t.Fatalf("after %v: %s", WaitLimit, what)
		panic("unreachable")
	}
}
