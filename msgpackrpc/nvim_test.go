package msgpackrpc_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// nvimArgs starts Neovim without user configuration, shada or swap files.
var nvimArgs = []string{"--headless", "-u", "NONE", "-i", "NONE", "-n"}

// needNvim returns the path of nvim, or skips the test loudly.
func needNvim(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("nvim")
	if err != nil {
		t.Skipf("!!!!!!!! nvim is not installed (%v): the tests against real Neovim are SKIPPED; install it with apt-get install neovim (.ci/run does) !!!!!!!!", err)
	}
	return path
}

// startNvim starts nvim --embed through mux.Start, serving h (if not nil)
// to nvim on the same stdio. Cleanup closes it.
func startNvim(t testing.TB, h demux.Handler) *mux.Mux {
	t.Helper()
	path := needNvim(t)
	opts := []mux.Option{msgpackrpc.Dialect()}
	if h != nil {
		opts = append(opts, demux.Handle(h))
	}
	m, err := mux.Start(exec.Command(path, append([]string{"--embed"}, nvimArgs...)...), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// testCtx bounds every call of a test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiInfo is nvim_get_api_info's answer, the array [channel, metadata]
// (msgpack decodes a struct from an array by field order).
type apiInfo struct {
	Channel int64
	Meta    struct {
		Types map[string]struct {
			ID     int8   `msgpack:"id"`
			Prefix string `msgpack:"prefix"`
		} `msgpack:"types"`
		Version map[string]any `msgpack:"version"`
	}
}

func TestNvimEval(t *testing.T) {
	m := startNvim(t, nil)
	ctx := testCtx(t)
	var n int
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{"1 + 2"}, &n))
	assert.Equal(t, 3, n)
	var s string
	require.NoError(t, m.Call(ctx, "nvim_eval", "toupper('héllo')", &s), "a non-slice argument is sent as [v]")
	assert.Equal(t, "HÉLLO", s)
	var l []any
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{"[1, 'a', {'k': 1.5}, v:null]"}, &l))
	assert.Equal(t, []any{int8(1), "a", map[string]any{"k": 1.5}, nil}, l)
	// Large integers and negative ones in their shortest form both ways.
	var big []int64
	require.NoError(t, m.Call(ctx, "nvim_call_function", []any{"reverse", []any{[]int64{-1, 1 << 40, -1 << 40, 200}}}, &big))
	assert.Equal(t, []int64{200, -1 << 40, 1 << 40, -1}, big)
}

func TestNvimAPIInfo(t *testing.T) {
	m := startNvim(t, nil)
	var info apiInfo
	require.NoError(t, m.Call(testCtx(t), "nvim_get_api_info", nil, &info))
	assert.Positive(t, info.Channel)
	assert.Equal(t, msgpackrpc.ExtBuffer, info.Meta.Types["Buffer"].ID)
	assert.Equal(t, msgpackrpc.ExtWindow, info.Meta.Types["Window"].ID)
	assert.Equal(t, msgpackrpc.ExtTabpage, info.Meta.Types["Tabpage"].ID)
	assert.Equal(t, "nvim_buf_", info.Meta.Types["Buffer"].Prefix)
	assert.NotNil(t, info.Meta.Version["api_level"])
}

func TestNvimBuffers(t *testing.T) {
	m := startNvim(t, nil)
	ctx := testCtx(t)
	var buf msgpackrpc.Buffer
	require.NoError(t, m.Call(ctx, "nvim_get_current_buf", nil, &buf))
	assert.Equal(t, msgpackrpc.Buffer(1), buf)
	require.NoError(t, m.Call(ctx, "nvim_buf_set_lines", []any{buf, 0, -1, true, []string{"one", "two", "three"}}, nil))
	var lines []string
	require.NoError(t, m.Call(ctx, "nvim_buf_get_lines", []any{buf, 0, -1, true}, &lines))
	assert.Equal(t, []string{"one", "two", "three"}, lines)

	var created msgpackrpc.Buffer
	require.NoError(t, m.Call(ctx, "nvim_create_buf", []any{true, false}, &created))
	var bufs []msgpackrpc.Buffer
	require.NoError(t, m.Call(ctx, "nvim_list_bufs", nil, &bufs))
	assert.Equal(t, []msgpackrpc.Buffer{buf, created}, bufs)

	var win msgpackrpc.Window
	require.NoError(t, m.Call(ctx, "nvim_get_current_win", nil, &win))
	var winBuf msgpackrpc.Buffer
	require.NoError(t, m.Call(ctx, "nvim_win_get_buf", []any{win}, &winBuf))
	assert.Equal(t, buf, winBuf)
	var tab msgpackrpc.Tabpage
	require.NoError(t, m.Call(ctx, "nvim_get_current_tabpage", nil, &tab))
	var tabWin msgpackrpc.Window
	require.NoError(t, m.Call(ctx, "nvim_tabpage_get_win", []any{tab}, &tabWin))
	assert.Equal(t, win, tabWin)

	// An ext decoded into Ext keeps its type and data as they came.
	var raw msgpackrpc.Ext
	require.NoError(t, m.Call(ctx, "nvim_get_current_win", nil, &raw))
	assert.Equal(t, msgpackrpc.ExtWindow, raw.Type)
}

func TestNvimErrors(t *testing.T) {
	m := startNvim(t, nil)
	ctx := testCtx(t)
	var re *frame.RemoteError

	err := m.Call(ctx, "nvim_eval", []string{"no_such_variable"}, nil)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeApplication, re.Code, "Neovim's Exception")
	assert.Contains(t, re.Message, "E121: Undefined variable: no_such_variable")

	err = m.Call(ctx, "nvim_buf_get_lines", []any{msgpackrpc.Buffer(999), 0, -1, true}, nil)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeBadRequest, re.Code, "Neovim's Validation")
	assert.Contains(t, re.Message, "Invalid buffer id")

	err = m.Call(ctx, "no_such_method", nil, nil)
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "no_such_method")

	// The connection is still good after errors.
	var n int
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{"6 * 7"}, &n))
	assert.Equal(t, 42, n)
}

func TestNvimConcurrentCalls(t *testing.T) {
	m := startNvim(t, nil)
	ctx := testCtx(t)
	const callers, calls = 50, 10000
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	start := time.Now()
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < calls; i += callers {
				var got int
				if err := m.Call(ctx, "nvim_eval", []string{fmt.Sprintf("%d * 3", i)}, &got); err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
				if got != 3*i {
					errs <- fmt.Errorf("call %d: got %d, want %d", i, got, 3*i)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d nvim_eval calls from %d goroutines in %v", calls, callers, time.Since(start))
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// channelID returns nvim's id for the connection of m.
func channelID(t testing.TB, m *mux.Mux) int64 {
	t.Helper()
	var info apiInfo
	require.NoError(t, m.Call(testCtx(t), "nvim_get_api_info", nil, &info))
	return info.Channel
}

func TestNvimCallsBack(t *testing.T) {
	r := demux.NewRouter()
	r.Handle("double", demux.Func(func(ctx context.Context, args []int) (int, error) {
		if len(args) != 1 {
			return 0, fmt.Errorf("double takes 1 argument, got %d", len(args))
		}
		return 2 * args[0], nil
	}))
	r.Handle("fail", demux.Func(func(ctx context.Context, args []any) (any, error) {
		return nil, errors.New("go says no")
	}))
	r.Handle("ask", demux.Func(func(ctx context.Context, args []string) (string, error) {
		// A callback that calls nvim again while nvim waits for it.
		nvim, ok := mux.FromContext(ctx)
		if !ok {
			return "", errors.New("no Mux in the handler's context")
		}
		var s string
		err := nvim.Call(ctx, "nvim_eval", []string{"toupper('" + args[0] + "')"}, &s)
		return s, err
	}))
	m := startNvim(t, r)
	ctx := testCtx(t)
	ch := channelID(t, m)

	// Go calls nvim_eval; while it is pending, nvim calls Go's "double".
	var n int
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{fmt.Sprintf("rpcrequest(%d, 'double', 21)", ch)}, &n))
	assert.Equal(t, 42, n)

	// Three levels: Go → nvim → Go → nvim.
	var s string
	require.NoError(t, m.Call(ctx, "nvim_eval", []string{fmt.Sprintf("rpcrequest(%d, 'ask', 'deep')", ch)}, &s))
	assert.Equal(t, "DEEP", s)

	// A Go handler's error reaches Vim script as an exception with its message.
	var caught string
	require.NoError(t, m.Call(ctx, "nvim_exec", []any{fmt.Sprintf(
		"try\ncall rpcrequest(%d, 'fail')\ncatch\nlet g:caught = v:exception\nendtry", ch), false}, nil))
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"caught"}, &caught))
	assert.Contains(t, caught, "go says no")

	// A method Go does not serve.
	require.NoError(t, m.Call(ctx, "nvim_exec", []any{fmt.Sprintf(
		"try\ncall rpcrequest(%d, 'nope')\ncatch\nlet g:caught = v:exception\nendtry", ch), false}, nil))
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"caught"}, &caught))
	assert.Contains(t, caught, `no method "nope"`)
}

func TestNvimNotifies(t *testing.T) {
	got := make(chan []any, 1)
	r := demux.NewRouter()
	r.Handle("note", demux.Func(func(ctx context.Context, args []any) (any, error) {
		got <- args
		return nil, nil
	}))
	m := startNvim(t, r)
	ctx := testCtx(t)
	ch := channelID(t, m)
	require.NoError(t, m.Call(ctx, "nvim_command", []string{fmt.Sprintf("call rpcnotify(%d, 'note', 'hello', 5, [1, 2])", ch)}, nil))
	select {
	case args := <-got:
		assert.Equal(t, []any{"hello", int8(5), []any{int8(1), int8(2)}}, args)
	case <-time.After(10 * time.Second):
		t.Fatal("nvim's rpcnotify did not reach the Go handler within 10s")
	}
	// A notification from Go to nvim.
	require.NoError(t, m.Notify(ctx, "nvim_set_var", []any{"from_go", "yes"}))
	var v string
	require.NoError(t, m.Call(ctx, "nvim_get_var", []string{"from_go"}, &v))
	assert.Equal(t, "yes", v)
}
