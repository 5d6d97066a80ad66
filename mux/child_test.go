package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// childEnv marks the test binary re-run as a DeMux serving its stdio (see
// TestMain).
const childEnv = "MUXRPC_TEST_CHILD"

// stdio is a child process's standard input and output as one stream.
type stdio struct {
	io.Reader
	io.Writer
}

func (stdio) Close() error { return os.Stdout.Close() }

// serveStdio is the child's whole life: it serves echo on stdin/stdout
// until its parent closes its stdin, and returns the exit status.
func serveStdio() int {
	d := demux.New(stdio{os.Stdin, os.Stdout}, echoRouter())
	if err := d.Serve(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// pipeToChild is the parent's end: the child's stdout to read, its stdin to
// write; Close closes stdin, which ends the child's Serve.
type pipeToChild struct {
	io.ReadCloser
	io.WriteCloser
}

func (p pipeToChild) Close() error {
	err := p.WriteCloser.Close()
	p.ReadCloser.Close()
	return err
}

func TestOverAChildProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	m := mux.New(pipeToChild{stdout, stdin})
	calls := make([]*mux.Call, 50)
	outs := make([]echoArgs, len(calls))
	for i := range calls {
		calls[i] = m.Go(context.Background(), "echo", echoArgs{Seq: i, Data: []byte("over stdio")}, &outs[i])
	}
	for i, c := range calls {
		<-c.Done()
		require.NoError(t, c.Err())
		assert.Equal(t, i, outs[i].Seq)
		assert.Equal(t, "over stdio", string(outs[i].Data))
	}
	require.NoError(t, m.Close())
	require.NoError(t, cmd.Wait(), "the child served until its stdin closed, then exited cleanly")
}
