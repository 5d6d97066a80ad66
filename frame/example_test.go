package frame_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muxrpc/muxrpc/frame"
)

// Native turns frames into bytes and back. This writes the preface and a
// REQUEST with a deadline, shows the bytes, and reads them back.
func ExampleNative() {
	req := &frame.Frame{
		Type:   frame.TypeRequest,
		Flags:  frame.FlagDeadline,
		XID:    2,
		Budget: 1500 * time.Millisecond,
		Method: "Arith.Add",
	}
	if err := req.EncodePayload([]int{4, 5}); err != nil {
		panic(err)
	}
	defer req.Release()

	var stream bytes.Buffer
	w := frame.Native.NewWriter(&stream)
	if err := w.WritePreface(); err != nil {
		panic(err)
	}
	if err := w.WriteFrame(req); err != nil {
		panic(err)
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", stream.Bytes()[:8])
	fmt.Printf("% x\n", stream.Bytes()[8:])

	r := frame.Native.NewReader(&stream, 0)
	if err := r.ReadPreface(); err != nil {
		panic(err)
	}
	var f frame.Frame
	if err := r.ReadFrame(&f); err != nil {
		panic(err)
	}
	defer f.Release()
	var args []int
	if err := frame.DecodePayload(f.Payload, &args); err != nil {
		panic(err)
	}
	fmt.Println(&f)
	fmt.Println(args)
	// Output:
	// 6d 75 78 72 70 63 00 02
	// 00 00 00 20 01 01 00 00 00 00 00 00 00 02 00 00 00 00 59 68 2f 00 00 09 41 72 69 74 68 2e 41 64 64 92 04 05
	// REQUEST xid=2 method="Arith.Add" budget=1.5s payload=3B
	// [4 5]
}

// DecodePayload checks a payload before decoding it. These five bytes
// claim an array of 4294967295 items; msgpack v5.4.1 decoding them into an
// any dies for want of memory. DecodePayload rejects them at once.
func ExampleDecodePayload() {
	bomb := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	var v any
	err := frame.DecodePayload(bomb, &v)
	fmt.Println(errors.Is(err, frame.ErrMalformed))
	fmt.Println(err)
	// Output:
	// true
	// frame: malformed: container claims 4294967295 items with 0 bytes left
}

// EncodePayload and DecodePayload carry any msgpack-encodable value.
func ExampleFrame_EncodePayload() {
	type point struct{ X, Y int }
	var f frame.Frame
	if err := f.EncodePayload(point{X: 1, Y: -2}); err != nil {
		panic(err)
	}
	defer f.Release()
	fmt.Printf("% x\n", f.Payload)

	var p point
	if err := frame.DecodePayload(f.Payload, &p); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", p)
	// Output:
	// 82 a1 58 01 a1 59 fe
	// {X:1 Y:-2}
}

// A remote error with CodeCanceled or CodeDeadlineExceeded matches the
// context error of the same meaning, so callers test remote cancellation
// as they test their own. RemoteErrors match each other by code.
func ExampleRemoteError_Is() {
	err := fmt.Errorf("call %q: %w", "Slow.Op", &frame.RemoteError{
		Code:    frame.CodeDeadlineExceeded,
		Message: "context deadline exceeded",
	})
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	fmt.Println(errors.Is(err, context.Canceled))
	fmt.Println(errors.Is(err, &frame.RemoteError{Code: frame.CodeDeadlineExceeded}))

	var re *frame.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code, re.Code == frame.CodeDeadlineExceeded)
	}
	// Output:
	// true
	// false
	// true
	// DeadlineExceeded true
}

// ReadPreface tells a peer that speaks another protocol from one that
// speaks another version of muxrpc.
func ExampleReader_ReadPreface() {
	for _, peer := range []string{
		"muxrpc\x00\x02",
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"muxrpc\x00\x01",
	} {
		err := frame.Native.NewReader(strings.NewReader(peer), 0).ReadPreface()
		fmt.Println(errors.Is(err, frame.ErrBadPreface), errors.Is(err, frame.ErrVersion), err)
	}
	// Output:
	// false false <nil>
	// true false frame: peer is not muxrpc: it opened with "GET / HT" (looks like HTTP)
	// false true frame: unsupported protocol version: peer speaks version 1, this side 2
}
