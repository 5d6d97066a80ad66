package msgpackrpc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// listenNvim starts nvim --listen addr and returns the address it listens
// on, which nvim prints on its stderr once it does. Cleanup ends nvim.
func listenNvim(t *testing.T, addr string) string {
	t.Helper()
	path := needNvim(t)
	args := append(append([]string{}, nvimArgs...), "--listen", addr,
		"-c", `call chansend(v:stderr, "listening on " . v:servername . "\n")`)
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		br := bufio.NewReader(stderr)
		line, err := br.ReadString('\n')
		if err != nil {
			line = fmt.Sprintf("(stderr ended: %v)", err)
		}
		lines <- line
		io.Copy(io.Discard, br) // read to the end before Wait closes the pipe
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		rpctest.Await(t, exited, "nvim did not exit after Kill")
	})
	select {
	case line := <-lines:
		got, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		require.True(t, ok, "nvim said %q, not where it listens", line)
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("nvim --listen did not say where it listens within 20s")
	}
	return ""
}

// TestNvimListen drives nvim --listen over a unix socket and over TCP:
// eval, buffers, concurrent calls and a call back into Go while a Go call
// is pending.
func TestNvimListen(t *testing.T) {
	for _, tt := range []struct{ network, addr string }{
		{"unix", filepath.Join(t.TempDir(), "nvim.sock")},
		{"tcp", "127.0.0.1:0"},
	} {
		t.Run(tt.network, func(t *testing.T) {
			addr := listenNvim(t, tt.addr)
			r := demux.NewRouter()
			r.Handle("double", demux.Func(func(ctx context.Context, args []int) (int, error) { return 2 * args[0], nil }))
			ctx := testCtx(t)
			m, err := mux.Dial(ctx, tt.network, addr, msgpackrpc.Dialect(), demux.Handle(r))
			require.NoError(t, err)
			defer m.Close()

			var n int
			require.NoError(t, m.Call(ctx, "nvim_eval", []string{"40 + 2"}, &n))
			assert.Equal(t, 42, n)
			var buf msgpackrpc.Buffer
			require.NoError(t, m.Call(ctx, "nvim_get_current_buf", nil, &buf))
			require.NoError(t, m.Call(ctx, "nvim_buf_set_lines", []any{buf, 0, -1, true, []string{tt.network}}, nil))
			var lines []string
			require.NoError(t, m.Call(ctx, "nvim_buf_get_lines", []any{buf, 0, -1, true}, &lines))
			assert.Equal(t, []string{tt.network}, lines)

			ch := channelID(t, m)
			require.NoError(t, m.Call(ctx, "nvim_eval", []string{fmt.Sprintf("rpcrequest(%d, 'double', 50)", ch)}, &n))
			assert.Equal(t, 100, n)

			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100 {
						var got string
						want := fmt.Sprintf("%d-%d", g, i)
						if err := m.Call(ctx, "nvim_eval", []string{"'" + want + "'"}, &got); err != nil || got != want {
							errs <- fmt.Errorf("call %s: got %q, %v", want, got, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// embedStream is nvim --embed's stdio, with the test able to write raw
// bytes to nvim's stdin besides the Mux.
type embedStream struct {
	cmd  *exec.Cmd
	r, w *os.File
	once sync.Once
}

func (s *embedStream) Read(b []byte) (int, error)  { return s.r.Read(b) }
func (s *embedStream) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *embedStream) Close() error {
	s.once.Do(func() {
		s.w.Close()
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.r.Close()
	})
	return nil
}

func startEmbed(t *testing.T) *embedStream {
	t.Helper()
	path := needNvim(t)
	cmd := exec.Command(path, append([]string{"--embed"}, nvimArgs...)...)
	stdin, toNvim, err := os.Pipe()
	require.NoError(t, err)
	fromNvim, stdout, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	require.NoError(t, cmd.Start())
	stdin.Close()
	stdout.Close()
	s := &embedStream{cmd: cmd, r: fromNvim, w: toNvim}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestNvimProtocolViolations sends nvim messages that break msgpack-rpc,
// between the calls of a Mux on the same stream: nvim answers each with
// an error for msgid 0 and closes the stream, and the Mux ends with
// ErrPeerViolation and nvim's message.
func TestNvimProtocolViolations(t *testing.T) {
	tests := []struct {
		name, msg, says string
	}{
		{"wrong array size", "92 00 01", "Request array size must be 4 (request) or 3 (notification)"},
		{"string msgid", "94 00 a1 31 a4 6563686f 90", "ID must be a positive integer"},
		{"unknown type", "94 05 01 c0 c0", "Unknown message type"},
		{"invalid msgpack", "c1", "Invalid msgpack payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmbed(t)
			m := mux.New(s, msgpackrpc.Dialect())
			defer m.Close()
			ctx := testCtx(t)
			var n int
			require.NoError(t, m.Call(ctx, "nvim_eval", []string{"1"}, &n))
			_, err := s.Write(unhex(t, tt.msg))
			require.NoError(t, err)
			select {
			case <-m.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("nvim did not end the connection within 20s of the violation")
			}
			require.ErrorIs(t, m.Err(), frame.ErrPeerViolation)
			var re *frame.RemoteError
			require.ErrorAs(t, m.Err(), &re)
			assert.Contains(t, re.Message, tt.says)
			assert.ErrorIs(t, m.Call(ctx, "nvim_eval", []string{"1"}, &n), mux.ErrClosed)
		})
	}
}
