package mux

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/muxrpc/muxrpc/internal/core"
)

// Start starts cmd and returns a Mux over the child's standard input and
// output, which the child serves with a demux.DeMux over channel.Stdio.
// cmd.Stdin and cmd.Stdout must be nil: Start sets them to pipes of its
// own. cmd.Stderr is left as it is; set it to see what the child logs. If
// the child cannot be started, Start returns the error and leaves nothing
// open.
//
// The Mux's Close shuts the child down in this order: it closes the child's
// stdin, so that the child's Serve returns io.EOF and the child can exit;
// it waits for the child to exit, and kills it if it has not exited after
// the grace period (see GracePeriod; 5 s by default); it reaps the child
// with cmd.Wait, which honours cmd.WaitDelay; and it closes the child's
// stdout. Close then returns what cmd.Wait returned: nil if the child
// exited with status 0, an *exec.ExitError otherwise, or, if the child was
// killed, an error that says so and wraps the *exec.ExitError. Calls still
// waiting fail with an error wrapping ErrClosed.
//
// Whatever ends the stream first (Close, the child exiting, an I/O error or
// a protocol violation), the child is shut down this way before the Mux's
// waiting calls fail. If the child exits on its own, the Mux sees its
// stdout end and reaps it at once; its calls fail with an error wrapping
// ErrClosed and io.EOF, and a later Close returns the child's exit error.
// The caller must not call cmd.Wait itself.
func Start(cmd *exec.Cmd, opts ...Option) (*Mux, error) {
	if cmd.Stdin != nil {
		return nil, errors.New("mux: Start: cmd.Stdin is already set")
	}
	if cmd.Stdout != nil {
		return nil, errors.New("mux: Start: cmd.Stdout is already set")
	}
	cfg := core.NewConfig(withDefaults(opts))
	grace := cfg.GracePeriod
	if grace <= 0 {
		grace = core.DefaultGracePeriod
	}
	stdin, toChild, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("mux: Start: %w", err)
	}
	fromChild, stdout, err := os.Pipe()
	if err != nil {
		stdin.Close()
		toChild.Close()
		return nil, fmt.Errorf("mux: Start: %w", err)
	}
	cmd.Stdin, cmd.Stdout = stdin, stdout
	err = cmd.Start()
	// The child has its own copies of its ends now, or no child exists.
	stdin.Close()
	stdout.Close()
	if err != nil {
		cmd.Stdin, cmd.Stdout = nil, nil
		toChild.Close()
		fromChild.Close()
		return nil, fmt.Errorf("mux: Start: %w", err)
	}
	s := &childStream{cmd: cmd, r: fromChild, w: toChild, grace: grace}
	return start(s, cfg), nil
}

// childStream is the parent's end of a child's stdio. The pipes are the
// parent's own rather than cmd.StdinPipe and cmd.StdoutPipe, which cmd.Wait
// closes: Wait would then close the read end under the Mux's reader.
type childStream struct {
	cmd   *exec.Cmd
	r     *os.File // the child's stdout
	w     *os.File // the child's stdin
	grace time.Duration

	once sync.Once
	err  error // what Close returns; set in once
}

func (s *childStream) Read(b []byte) (int, error)  { return s.r.Read(b) }
func (s *childStream) Write(b []byte) (int, error) { return s.w.Write(b) }

// Close shuts the child down once, as Start describes; later and
// concurrent calls wait for the first and return its error.
func (s *childStream) Close() error {
	s.once.Do(func() { s.err = s.shutdown() })
	return s.err
}

func (s *childStream) shutdown() error {
	s.w.Close() // the child reads EOF on its stdin
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }() // received below on every path
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	var err error
	select {
	case err = <-exited:
	case <-timer.C:
		killErr := s.cmd.Process.Kill()
		err = <-exited
		if killErr == nil && err != nil {
			err = fmt.Errorf("mux: child %s killed after it did not exit within the %v grace period: %w", s.cmd.Path, s.grace, err)
		}
	}
	s.r.Close() // unblocks the reader if something else still holds the child's stdout
	return err
}
