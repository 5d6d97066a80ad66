// Command nvimdemo drives a real Neovim with muxrpc in the msgpack-rpc
// dialect: it starts nvim --embed, sets the lines of its buffer, evaluates
// an expression, and serves a method, "greet", that Neovim calls back
// (rpcrequest) while the Go call that asked it to is still waiting.
//
//	go run ./cmd/nvimdemo            # nvim from PATH
//	go run ./cmd/nvimdemo -nvim PATH
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

func main() {
	nvim := flag.String("nvim", "nvim", "the nvim executable")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, *nvim, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nvimdemo:", err)
		os.Exit(1)
	}
}

// run does the demo against the nvim at path, writing what happens to out.
func run(ctx context.Context, path string, out io.Writer) error {
	r := demux.NewRouter()
	r.Handle("greet", demux.Func(func(ctx context.Context, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("greet takes one name, got %d arguments", len(args))
		}
		// Neovim waits for this answer, and Go's nvim_eval waits for
		// Neovim: the handler may still call Neovim itself.
		nvim, ok := mux.FromContext(ctx)
		if !ok {
			return "", fmt.Errorf("greet was not called over a connection")
		}
		var version string
		if err := nvim.Call(ctx, "nvim_exec", []any{"version", true}, &version); err != nil {
			return "", err
		}
		return fmt.Sprintf("hello, %s, from Go (you run %.11s)", args[0], version[1:]), nil
	}))
	cmd := exec.Command(path, "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n")
	cmd.Stderr = os.Stderr
	nvim, err := mux.Start(cmd, msgpackrpc.Dialect(), demux.Handle(r))
	if err != nil {
		return err
	}
	defer nvim.Close()

	var buf msgpackrpc.Buffer
	if err := nvim.Call(ctx, "nvim_get_current_buf", nil, &buf); err != nil {
		return err
	}
	lines := []string{"muxrpc", "speaks", "msgpack-rpc"}
	if err := nvim.Call(ctx, "nvim_buf_set_lines", []any{buf, 0, -1, true, lines}, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "set the lines of buffer %d to %q\n", buf, lines)

	var joined string
	if err := nvim.Call(ctx, "nvim_eval", []string{"join(getline(1, '$'), ' ')"}, &joined); err != nil {
		return err
	}
	fmt.Fprintf(out, "nvim_eval(join(getline(1, '$'), ' ')) = %q\n", joined)

	var info []any // [channel id, metadata]
	if err := nvim.Call(ctx, "nvim_get_api_info", nil, &info); err != nil {
		return err
	}
	var greeting string
	expr := fmt.Sprintf("rpcrequest(%v, 'greet', getline(1))", info[0])
	if err := nvim.Call(ctx, "nvim_eval", []string{expr}, &greeting); err != nil {
		return err
	}
	fmt.Fprintf(out, "nvim called Go's greet and got %q\n", greeting)
	return nvim.Close()
}
