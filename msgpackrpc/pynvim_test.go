package msgpackrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// debianPython is Debian's own python3, which imports the python3-pynvim
// package; a python3 earlier on PATH (pyenv) may not.
const debianPython = "/usr/bin/python3"

// needPynvim skips the test loudly unless Debian's python3 imports pynvim.
func needPynvim(t *testing.T) {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import pynvim").CombinedOutput()
	if err != nil {
		t.Skipf("!!!!!!!! %s cannot import pynvim (%v: %s): the pynvim tests are SKIPPED; install it with apt-get install python3-pynvim (.ci/run does) !!!!!!!!", debianPython, err, out)
	}
}

// pynvimClient attaches pynvim to the socket in argv[1] and, from its event
// loop, so that it serves calls back while it waits, calls the Go server.
// It prints what it got as JSON.
const pynvimClient = `
import json, sys
import pynvim

nvim = pynvim.attach('socket', path=sys.argv[1])
out = {}

def on_request(name, args):
    if name == 'py_double':
        return args[0] * 2
    raise Exception('python serves no ' + name)

def on_notification(name, args):
    pass

def setup():
    try:
        out['channel'] = nvim.channel_id
        out['api_level'] = nvim.version.api_level
        out['add'] = nvim.request('add', 2, 3, 4)
        out['big'] = nvim.request('add', 2**40, -2**41, 7)
        out['callback'] = nvim.request('callback', 21)
        try:
            nvim.request('fail', 'go says no')
        except pynvim.api.NvimError as e:
            out['fail'] = str(e)
        try:
            nvim.request('no_such_method')
        except pynvim.api.NvimError as e:
            out['nomethod'] = str(e)
        b = nvim.request('get_buf')
        out['buf'] = [type(b).__name__, b.handle]
        out['take_buf'] = nvim.request('take_buf', b)
        out['strmap'] = nvim.request('strmap')
        out['mapback'] = nvim.request('mapback', {'a': 1, 'b': [1, 'x'], 'c': {'d': None}})
    except Exception as e:
        out['error'] = repr(e)
    finally:
        nvim.stop_loop()

nvim.run_loop(on_request, on_notification, setup)
print(json.dumps(out, sort_keys=True))
nvim.close()
`

// apiInfoReply is what pynvim needs from nvim_get_api_info: the channel id
// and the ext type ids of Buffer, Window and Tabpage.
func apiInfoReply(channel int) []any {
	return []any{channel, map[string]any{
		"version": map[string]any{"major": 0, "minor": 7, "patch": 2, "api_level": 9, "api_compatible": 0, "api_prerelease": false},
		"types": map[string]any{
			"Buffer":  map[string]any{"id": msgpackrpc.ExtBuffer, "prefix": "nvim_buf_"},
			"Window":  map[string]any{"id": msgpackrpc.ExtWindow, "prefix": "nvim_win_"},
			"Tabpage": map[string]any{"id": msgpackrpc.ExtTabpage, "prefix": "nvim_tabpage_"},
		},
		"error_types": map[string]any{"Exception": map[string]any{"id": 0}, "Validation": map[string]any{"id": 1}},
		"functions":   []any{},
		"ui_events":   []any{},
		"ui_options":  []any{},
	}}
}

// TestPynvimCallsGo attaches pynvim to a muxrpc Server in the dialect,
// which answers nvim_get_api_info as Neovim would, and has it call Go
// methods, one of which calls back into pynvim while pynvim waits.
func TestPynvimCallsGo(t *testing.T) {
	needPynvim(t)
	clientInfo := make(chan []any, 1)
	r := demux.NewRouter()
	r.Handle("nvim_get_api_info", demux.Func(func(ctx context.Context, args []any) ([]any, error) {
		return apiInfoReply(7), nil
	}))
	r.Handle("nvim_set_client_info", demux.Func(func(ctx context.Context, args []any) (any, error) {
		select {
		case clientInfo <- args:
		default:
		}
		return nil, nil
	}))
	r.Handle("add", demux.Func(func(ctx context.Context, args []int64) (int64, error) {
		var sum int64
		for _, a := range args {
			sum += a
		}
		return sum, nil
	}))
	r.Handle("callback", demux.Func(func(ctx context.Context, args []int) (int, error) {
		py, ok := mux.FromContext(ctx)
		if !ok {
			return 0, errors.New("no Mux in the handler's context")
		}
		var doubled int
		if err := py.Call(ctx, "py_double", args, &doubled); err != nil {
			return 0, err
		}
		return doubled + 1, nil
	}))
	r.Handle("fail", demux.Func(func(ctx context.Context, args []string) (any, error) {
		return nil, errors.New(args[0])
	}))
	r.Handle("get_buf", demux.Func(func(ctx context.Context, args []any) (msgpackrpc.Buffer, error) {
		return 5, nil
	}))
	r.Handle("take_buf", demux.Func(func(ctx context.Context, args []msgpackrpc.Buffer) (int64, error) {
		return int64(args[0]) * 10, nil
	}))
	r.Handle("mapback", demux.Func(func(ctx context.Context, args []map[string]any) (map[string]any, error) {
		m := args[0]
		m["go"] = true
		return m, nil
	}))
	r.Handle("strmap", demux.Func(func(ctx context.Context, args []any) (map[string]any, error) {
		return map[string]any{"k": "v", "n": int64(1)}, nil
	}))
	srv := demux.NewServer(r, msgpackrpc.Dialect())
	sock := filepath.Join(t.TempDir(), "go.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		require.NoError(t, srv.Close())
		rpctest.Await(t, served, "Serve did not return after Close")
	}()

	script := filepath.Join(t.TempDir(), "client.py")
	require.NoError(t, os.WriteFile(script, []byte(pynvimClient), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, script, sock)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "pynvim client failed; stderr:\n%s", stderr.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got), "pynvim printed %q", out)
	assert.Equal(t, map[string]any{
		"channel":   7.0,
		"api_level": 9.0,
		"add":       9.0,
		"big":       float64(int64(1)<<40 - int64(1)<<41 + 7),
		"callback":  43.0,
		"fail":      "go says no",
		"nomethod":  `no method "no_such_method"`,
		"buf":       []any{"Buffer", 5.0},
		"take_buf":  50.0,
		"strmap":    map[string]any{"k": "v", "n": 1.0},
		"mapback":   map[string]any{"a": 1.0, "b": []any{1.0, "x"}, "c": map[string]any{"d": nil}, "go": true},
	}, got)
	select {
	case info := <-clientInfo:
		require.NotEmpty(t, info, "nvim_set_client_info's params")
		assert.Equal(t, "python3-client", info[0], "the client's name")
	case <-time.After(10 * time.Second):
		t.Error("pynvim's nvim_set_client_info notification did not reach its handler within 10s")
	}
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
