package channel_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
)

// Pipe connects two streams in one process: what is written on one end is
// read on the other, in both directions. Closing an end makes the other
// end read io.EOF, and its writes fail.
func ExamplePipe() {
	a, b, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	buf := make([]byte, 4)
	if _, err := a.Write([]byte("ping")); err != nil {
		log.Fatal(err)
	}
	if _, err := io.ReadFull(b, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("b read %q\n", buf)
	if _, err := b.Write([]byte("pong")); err != nil {
		log.Fatal(err)
	}
	if _, err := io.ReadFull(a, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("a read %q\n", buf)

	if err := a.Close(); err != nil {
		log.Fatal(err)
	}
	_, err = b.Read(buf)
	fmt.Println("b reads:", err)
	_, err = b.Write([]byte("anyone?"))
	fmt.Println("b's write fails:", err != nil)
	// Output:
	// b read "ping"
	// a read "pong"
	// b reads: EOF
	// b's write fails: true
}

// A Conn carries frames over a stream: Send queues a frame for the Conn's
// writer goroutine, and Serve exchanges the prefaces, then reads frames and
// hands each to a function. mux.Mux and demux.DeMux are built on Conn; use
// it directly only to speak the protocol frame by frame. Here a server
// answers a REQUEST with a RESPONSE that carries the same xid.
func ExampleConn() {
	a, b, err := channel.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	client := channel.New(a, channel.Config{})
	server := channel.New(b, channel.Config{})

	served := make(chan error, 1)
	go func() {
		served <- server.Serve(func(f *frame.Frame) error {
			fmt.Println("server got:", f)
			var name string
			err := frame.DecodePayload(f.Payload, &name)
			f.Release()
			if err != nil {
				return err // ends the stream
			}
			resp := &frame.Frame{Type: frame.TypeResponse, XID: f.XID}
			if err := resp.EncodePayload("Hello, " + name + "!"); err != nil {
				return err
			}
			return server.Send(context.Background(), resp)
		})
	}()

	replies := make(chan string, 1)
	clientDone := make(chan error, 1)
	go func() {
		clientDone <- client.Serve(func(f *frame.Frame) error {
			defer f.Release()
			fmt.Println("client got:", f)
			var greeting string
			if err := frame.DecodePayload(f.Payload, &greeting); err != nil {
				return err
			}
			replies <- greeting
			return nil
		})
	}()

	req := &frame.Frame{Type: frame.TypeRequest, XID: 1, Method: "Greeter.Hello"}
	if err := req.EncodePayload("gopher"); err != nil {
		log.Fatal(err)
	}
	if err := client.Send(context.Background(), req); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-replies)

	if err := client.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("client's Serve:", <-clientDone)
	fmt.Println("server's Serve:", <-served)
	// Output:
	// server got: REQUEST xid=1 method="Greeter.Hello" payload=7B
	// client got: RESPONSE xid=1 payload=15B
	// Hello, gopher!
	// client's Serve: channel: closed
	// server's Serve: EOF
}
