package msgpackrpc_test

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

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// pluginEnv makes the test binary, started by nvim with jobstart(…,
// {'rpc': v:true}), a Go plugin host serving on its stdio.
const pluginEnv = "MSGPACKRPC_TEST_PLUGIN"

// runPlugin is the plugin's whole life: it serves "hello", which asks nvim
// for g:who while nvim waits for the answer, until nvim closes its stdin.
func runPlugin() int {
	r := demux.NewRouter()
	r.Handle("hello", demux.Func(func(ctx context.Context, args []string) (string, error) {
		nvim, ok := mux.FromContext(ctx)
		if !ok {
			return "", errors.New("no Mux in the handler's context")
		}
		var who string
		if err := nvim.Call(ctx, "nvim_get_var", []string{"who"}, &who); err != nil {
			return "", err
		}
		return fmt.Sprintf("hello %s, %s says the plugin", who, args[0]), nil
	}))
	r.Handle("fail", demux.Func(func(ctx context.Context, args []any) (any, error) {
		return nil, errors.New("the plugin refuses")
	}))
	err := demux.New(channel.Stdio(), r, msgpackrpc.Dialect()).Serve()
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "plugin:", err)
		return 1
	}
	return 0
}

// TestNvimStartsGoPlugin has nvim start a Go plugin host as an rpc job
// (nvim is the parent, the Go program serves on its stdio, as a remote
// plugin does) and call it; the plugin calls nvim back while nvim waits.
func TestNvimStartsGoPlugin(t *testing.T) {
	path := needNvim(t)
	cmd := exec.Command(path, append([]string{"--embed"}, nvimArgs...)...)
	// Inherited by the job; under -race, a child would sleep a second on exit.
	cmd.Env = append(os.Environ(), pluginEnv+"=1", "GORACE=atexit_sleep_ms=0")
	m, err := mux.Start(cmd, msgpackrpc.Dialect())
	require.NoError(t, err)
	defer m.Close()
	ctx := testCtx(t)

	require.NoError(t, m.Call(ctx, "nvim_set_var", []any{"plugin", os.Args[0]}, nil))
	require.NoError(t, m.Call(ctx, "nvim_exec", []any{"let g:job = jobstart([g:plugin], {'rpc': v:true, " +
		"'on_exit': {j, code, ev -> execute('let g:plugin_exit = ' . code)}})", false}, nil))
	var job int
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"job"}, &job))
	require.Positive(t, job, "jobstart of the plugin")
	require.NoError(t, m.Call(ctx, "nvim_set_var", []any{"who", "nvim"}, nil))

	var got string
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{fmt.Sprintf("rpcrequest(%d, 'hello', 'go')", job)}, &got))
	assert.Equal(t, "hello nvim, go says the plugin", got)

	var caught string
	require.NoError(t, m.Call(ctx, "nvim_exec", []any{fmt.Sprintf(
		"try\ncall rpcrequest(%d, 'fail')\ncatch\nlet g:caught = v:exception\nendtry", job), false}, nil))
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"caught"}, &caught))
	assert.Contains(t, caught, "the plugin refuses")

	// nvim closes the job's stdin; the plugin's Serve returns io.EOF and it
	// exits with status 0, which on_exit records.
	require.NoError(t, m.Call(ctx, "nvim_call_function", []any{"chanclose", []int{job}}, nil))
	var waited int
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{`wait(20000, 'exists("g:plugin_exit")')`}, &waited))
	require.Equal(t, 0, waited, "the plugin did not exit within 20s of its stdin closing (wait() returns -1 on a timeout)")
	var status int
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"plugin_exit"}, &status))
	assert.Equal(t, 0, status, "the plugin's exit status")
}
