package channel_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
)

// stdioChildEnv makes the test binary, re-run by TestStdio, run stdioChild
// instead of the tests.
const stdioChildEnv = "MUXRPC_TEST_STDIO_CHILD"

// stdioChild copies its stdin to its stdout through Stdio, then closes it
// twice; it returns the exit status.
func stdioChild() int {
	s := channel.Stdio()
	if _, err := io.Copy(s, s); err != nil {
		fmt.Fprintln(os.Stderr, "child: copy:", err)
		return 1
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "child: Close #%d: %v\n", i+1, err)
			return 1
		}
	}
	return 0
}

func TestStdio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	// Under -race, the child would sleep for a second on exit (the race
	// detector's atexit_sleep_ms).
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), stdioChildEnv+"=1", "GORACE="+race)
	cmd.Stdin = strings.NewReader("through stdin and stdout")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "the child did not exit within 10 s")
	require.NoError(t, err, "child's stderr: %s", stderr.String())
	assert.Equal(t, "through stdin and stdout", stdout.String(), "Stdio reads stdin and writes stdout")
}
