package msgpackrpc_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/msgpackrpc"
	"github.com/muxrpc/muxrpc/mux"
)

// Two Go ends speak msgpack-rpc over a pipe: Dialect goes to both, and
// the rest is the usual mux and demux. A handler receives the params
// array, so it decodes a slice; a call whose args are not a slice sends
// them as a one-element array.
func Example() {
	client, server, err := channel.Pipe()
	if err != nil {
		panic(err)
	}
	r := demux.NewRouter()
	r.Handle("upper", demux.Func(func(ctx context.Context, args []string) (string, error) {
		return strings.ToUpper(strings.Join(args, " ")), nil
	}))
	d := demux.New(server, r, msgpackrpc.Dialect())
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()

	m := mux.New(client, msgpackrpc.Dialect())
	var s string
	if err := m.Call(context.Background(), "upper", []string{"hello", "neovim"}, &s); err != nil {
		panic(err)
	}
	fmt.Println(s)
	if err := m.Call(context.Background(), "upper", "one", &s); err != nil {
		panic(err)
	}
	fmt.Println(s)
	err = m.Call(context.Background(), "lower", nil, nil)
	fmt.Println(err)

	m.Close()
	<-served
	// Output:
	// HELLO NEOVIM
	// ONE
	// remote: BadRequest: no method "lower"
}

// A Go program drives Neovim over its stdio and serves a method that
// Neovim calls back while the Go call that triggered it is still waiting.
// (It needs nvim on PATH, so it is compiled but not run by go test; the
// tests and cmd/nvimdemo run the same against a real nvim.)
func Example_neovim() {
	r := demux.NewRouter()
	r.Handle("greet", demux.Func(func(ctx context.Context, args []string) (string, error) {
		return "hello, " + args[0], nil
	}))
	cmd := exec.Command("nvim", "--embed", "--headless", "-u", "NONE", "-i", "NONE", "-n")
	nvim, err := mux.Start(cmd, msgpackrpc.Dialect(), demux.Handle(r))
	if err != nil {
		panic(err)
	}
	defer nvim.Close()
	ctx := context.Background()

	var buf msgpackrpc.Buffer // an ext type on the wire
	if err := nvim.Call(ctx, "nvim_get_current_buf", nil, &buf); err != nil {
		panic(err)
	}
	if err := nvim.Call(ctx, "nvim_buf_set_lines", []any{buf, 0, -1, true, []string{"one", "two"}}, nil); err != nil {
		panic(err)
	}
	var info []any // [channel id, metadata]
	if err := nvim.Call(ctx, "nvim_get_api_info", nil, &info); err != nil {
		panic(err)
	}
	var reply string
	expr := fmt.Sprintf("rpcrequest(%v, 'greet', join(getline(1, '$'), ' and '))", info[0])
	if err := nvim.Call(ctx, "nvim_eval", []string{expr}, &reply); err != nil {
		panic(err)
	}
	fmt.Println(reply) // hello, one and two
}

// Point travels as msgpack ext type 5 whose data is the array [X, Y]: the
// two methods are all it takes to make a Go type an ext type, for calls,
// results and handlers alike, without a process-wide registry.
type Point struct{ X, Y int }

// EncodeMsgpack writes p as ext type 5.
func (p Point) EncodeMsgpack(enc *msgpack.Encoder) error {
	return msgpackrpc.EncodeExt(enc, 5, []int{p.X, p.Y})
}

// DecodeMsgpack reads an ext of type 5 into p.
func (p *Point) DecodeMsgpack(dec *msgpack.Decoder) error {
	var xy []int
	if err := msgpackrpc.DecodeExt(dec, 5, &xy); err != nil {
		return err
	}
	if len(xy) != 2 {
		return fmt.Errorf("a Point has 2 coordinates, not %d", len(xy))
	}
	p.X, p.Y = xy[0], xy[1]
	return nil
}

// An ext type of one's own, as Neovim's Buffer, Window and Tabpage are
// written: Point above encodes and decodes itself with EncodeExt and
// DecodeExt. An ext whose type has no Go type decodes into an Ext.
func ExampleEncodeExt() {
	client, server, err := channel.Pipe()
	if err != nil {
		panic(err)
	}
	r := demux.NewRouter()
	r.Handle("mirror", demux.Func(func(ctx context.Context, args []Point) (Point, error) {
		return Point{X: -args[0].X, Y: args[0].Y}, nil
	}))
	d := demux.New(server, r, msgpackrpc.Dialect())
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(client, msgpackrpc.Dialect())

	var p Point
	if err := m.Call(context.Background(), "mirror", []Point{{X: 3, Y: 4}}, &p); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", p)
	var raw msgpackrpc.Ext
	if err := m.Call(context.Background(), "mirror", []Point{{X: 1, Y: 2}}, &raw); err != nil {
		panic(err)
	}
	fmt.Printf("ext type %d, data % x\n", raw.Type, raw.Data)

	m.Close()
	<-served
	// Output:
	// {X:-3 Y:4}
	// ext type 5, data 92 ff 02
}
