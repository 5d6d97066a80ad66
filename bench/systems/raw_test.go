package systems

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRawCallerGivesUp checks that a caller whose context ends gets its
// error, and that the late reply is read and dropped without disturbing
// the next call.
func TestRawCallerGivesUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, s := net.Pipe()
	// A server that holds the first frame until told to go on.
	release := make(chan struct{})
	go func() {
		<-release
		rawServe(s, false)
	}()
	client := newRawClient(c, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := client.Echo(ctx, []byte("late"), nil)
		done <- err
	}()
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Echo with an ended context returned %v", err)
	}
	close(release)
	out, err := client.Echo(context.Background(), []byte("next"), nil)
	if err != nil || string(out) != "next" {
		t.Fatalf("next call: %q, %v", out, err)
	}
	if err := client.close(); err != nil {
		t.Logf("close: %v", err)
	}
}

// TestRawServerGone checks that callers waiting when the server hangs up
// get an error.
func TestRawServerGone(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, s := net.Pipe()
	client := newRawClient(c, true)
	go func() {
		var b [4]byte
		s.Read(b[:]) // take part of the first frame, then hang up
		s.Close()
	}()
	_, err := client.Echo(context.Background(), []byte("hello"), nil)
	if err == nil {
		t.Fatal("Echo succeeded with no server")
	}
	client.close()
}
