package rpctest

import (
	"context"
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

// Context returns a context that ends after WaitLimit, or when the test
// ends, for the calls a test makes on its own goroutine: a call that hangs
// then fails with context.DeadlineExceeded instead of holding the test
// until go test's timeout.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	t.Cleanup(cancel)
	return ctx
}
