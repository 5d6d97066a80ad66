package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// childEnv makes the test binary, re-run by startChild, a child that serves
// echo on its stdio (see TestMain). Its value says how the child behaves:
//
//	echo          exits with status 0 once its stdin closes
//	exit3         exits with status 3 once its stdin closes
//	ignore-stdin  never exits once its stdin closes, until killed
//	crash         also serves "crash", which exits at once with status 2
//	callback      also serves "ask", which calls the parent's "parent.name"
//	              back over the same stdio and answers with what it got
const childEnv = "MUXRPC_TEST_CHILD"

// runChild is the child's whole life; it returns the exit status.
func runChild(mode string) int {
	r := echoRouter()
	if mode == "crash" {
		r.Handle("crash", demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
			os.Exit(2)
			return nil, nil
		}))
	}
	if mode == "callback" {
		r.Handle("ask", demux.Func(func(ctx context.Context, q string) (string, error) {
			parent, ok := mux.FromContext(ctx)
			if !ok {
				return "", errors.New("no Mux in the handler's context")
			}
			var name string
			if err := parent.Call(ctx, "parent.name", q, &name); err != nil {
				return "", err
			}
			return "child asked " + name, nil
		}))
	}
	if err := demux.New(channel.Stdio(), r).Serve(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	switch mode {
	case "echo", "crash", "callback":
		return 0
	case "exit3":
		return 3
	case "ignore-stdin":
		for { // a child stuck after its stdin closed: only a kill ends it
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 1
}

// startChild starts the test binary as a child in mode and returns a Mux
// over its stdio.
func startChild(t *testing.T, mode string, opts ...mux.Option) (*mux.Mux, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// Under -race, a child that had several threads would sleep for a
	// second on exit (the race detector's atexit_sleep_ms).
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GORACE="+race)
	cmd.Stderr = os.Stderr
	m, err := mux.Start(cmd, opts...)
	require.NoError(t, err)
	return m, cmd
}

// childWait bounds every wait on a child: far above what any of them takes.
const childWait = 10 * time.Second

// closeWithin calls m.Close and fails the test if it does not return
// within childWait.
func closeWithin(t *testing.T, m *mux.Mux) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(childWait):
		t.Fatalf("Mux.Close did not return within %v", childWait)
		return nil
	}
}

// waitCall waits for c to finish and fails the test if it does not within
// childWait.
func waitCall(t *testing.T, c *mux.Call, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(childWait):
		t.Fatalf("%s did not finish within %v", what, childWait)
	}
}

// echoOnce checks that the child is up and serving.
func echoOnce(t *testing.T, m *mux.Mux) {
	t.Helper()
	var out echoArgs
	c := m.Go(context.Background(), "echo", echoArgs{Seq: 7}, &out)
	waitCall(t, c, "a call to the child")
	require.NoError(t, c.Err())
	require.Equal(t, 7, out.Seq)
}

func TestOverAChildProcess(t *testing.T) {
	m, cmd := startChild(t, "echo")
	calls := make([]*mux.Call, 50)
	outs := make([]echoArgs, len(calls))
	for i := range calls {
		calls[i] = m.Go(context.Background(), "echo", echoArgs{Seq: i, Data: []byte("over stdio")}, &outs[i])
	}
	for i, c := range calls {
		waitCall(t, c, fmt.Sprintf("call %d", i))
		require.NoError(t, c.Err())
		assert.Equal(t, i, outs[i].Seq)
		assert.Equal(t, "over stdio", string(outs[i].Data))
	}
	require.NoError(t, closeWithin(t, m), "the child served until its stdin closed, then exited cleanly")
	require.NotNil(t, cmd.ProcessState, "Close reaped the child")
	assert.Equal(t, 0, cmd.ProcessState.ExitCode())
	require.NoError(t, m.Close(), "a second Close returns the same result")
}

func TestChildExitStatus(t *testing.T) {
	m, _ := startChild(t, "exit3")
	echoOnce(t, m)
	err := closeWithin(t, m)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode())
	assert.Equal(t, err, m.Close(), "a second Close returns the same error")
}

func TestChildIgnoringStdinIsKilled(t *testing.T) {
	const grace = 100 * time.Millisecond
	m, cmd := startChild(t, "ignore-stdin", mux.GracePeriod(grace))
	echoOnce(t, m)
	start := time.Now()
	err := closeWithin(t, m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "killed after")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the kill's error wraps what Wait returned")
	assert.False(t, cmd.ProcessState.Success())
	assert.GreaterOrEqual(t, time.Since(start), grace, "Close gave the child its grace period first")
}

func TestChildCrashFailsPendingCalls(t *testing.T) {
	m, _ := startChild(t, "crash")
	echoOnce(t, m)
	c := m.Go(context.Background(), "crash", nil, nil)
	waitCall(t, c, "the call whose handler crashed the child")
	require.ErrorIs(t, c.Err(), mux.ErrClosed)
	assert.ErrorIs(t, c.Err(), io.EOF, "the cause is the child's stdout ending")
	require.ErrorIs(t, m.Call(rpctest.Context(t), "echo", echoArgs{}, nil), mux.ErrClosed, "later calls fail at once")

	err := closeWithin(t, m)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "Close returns the exit error of the child that crashed")
	assert.Equal(t, 2, exit.ExitCode())
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(fds)
}

func TestStartFailures(t *testing.T) {
	t.Run("no such binary", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("counts descriptors in /proc/self/fd")
		}
		for _, name := range []string{"/nonexistent/muxrpc-child", "muxrpc-no-such-command"} {
			before := openFDs(t)
			cmd := exec.Command(name)
			m, err := mux.Start(cmd)
			require.Error(t, err, name)
			assert.Nil(t, m)
			assert.Nil(t, cmd.Stdin, "Start leaves cmd as it was")
			assert.Nil(t, cmd.Stdout, "Start leaves cmd as it was")
			assert.Equal(t, before, openFDs(t), "Start closed every pipe end")
		}
		// TestMain's goleak check catches a goroutine left behind.
	})
	t.Run("stdout already set", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Stdout = io.Discard
		_, err := mux.Start(cmd)
		require.ErrorContains(t, err, "Stdout")
		assert.Nil(t, cmd.Process, "the child was not started")
	})
	t.Run("stdin already set", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Stdin = os.Stdin
		_, err := mux.Start(cmd)
		require.ErrorContains(t, err, "Stdin")
		assert.Nil(t, cmd.Process, "the child was not started")
	})
}

func TestChildCallsItsParentBack(t *testing.T) {
	// Both directions over a child's stdio: the parent's Mux serves
	// "parent.name", and the child's handler calls it in the middle of
	// the parent's call.
	r := demux.NewRouter()
	r.Handle("parent.name", demux.Func(func(_ context.Context, q string) (string, error) {
		return "parent about " + q, nil
	}))
	m, _ := startChild(t, "callback", demux.Handle(r))
	const n = 20
	calls := make([]*mux.Call, n)
	answers := make([]string, n)
	for i := range calls {
		calls[i] = m.Go(context.Background(), "ask", fmt.Sprint(i), &answers[i])
	}
	for i, c := range calls {
		waitCall(t, c, fmt.Sprintf("call %d through the child and back", i))
		require.NoError(t, c.Err())
		assert.Equal(t, fmt.Sprintf("child asked parent about %d", i), answers[i])
	}
	require.NoError(t, closeWithin(t, m))
}
