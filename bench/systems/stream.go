package systems

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/muxrpc/muxrpc/demux"
)

// Streamer is a Caller that can also make a server-streaming call: the
// server sends n items of size bytes each, all the same pattern
// (StreamItem), and recv sees each one in order. The item passed to recv
// is valid only until recv returns. Stream is safe for concurrent use.
type Streamer interface {
	Stream(ctx context.Context, n, size int, recv func(item []byte) error) error
}

// StreamItem returns the item of size bytes that servers stream.
func StreamItem(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// maxStreamItem bounds the item size a stream request may ask for.
const maxStreamItem = 16 << 20

// streamRequest is the argument of a streaming call: n and size, 8 bytes
// each, big-endian.
func streamRequest(n, size int) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(n))
	binary.BigEndian.PutUint64(b[8:], uint64(size))
	return b
}

func parseStreamRequest(b []byte) (n, size int, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("stream request of %d bytes, want 16", len(b))
	}
	n, size = int(binary.BigEndian.Uint64(b)), int(binary.BigEndian.Uint64(b[8:]))
	if n < 0 || size < 0 || size > maxStreamItem {
		return 0, 0, fmt.Errorf("stream request for %d items of %d bytes", n, size)
	}
	return n, size, nil
}

// muxStreamHandler yields the items a stream request asks for.
func muxStreamHandler(ctx context.Context, req *demux.Request) (any, error) {
	b, err := req.Bytes()
	if err != nil {
		return nil, err
	}
	n, size, err := parseStreamRequest(b)
	if err != nil {
		return nil, err
	}
	item := StreamItem(size)
	for range n {
		if err := demux.Yield(ctx, item); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Stream implements Streamer with mux.Mux.Stream.
func (c muxCaller) Stream(ctx context.Context, n, size int, recv func([]byte) error) error {
	s, err := c.m.Stream(ctx, "stream", streamRequest(n, size))
	if err != nil {
		return err
	}
	defer s.Close()
	buf := make([]byte, 0, size)
	for {
		item := buf[:0]
		err := s.Recv(&item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := recv(item); err != nil {
			return err
		}
		if cap(item) >= cap(buf) {
			buf = item
		}
	}
	var sent int
	if err := s.Reply(&sent); err != nil {
		return err
	}
	if sent != n {
		return fmt.Errorf("server says it sent %d items, want %d", sent, n)
	}
	return nil
}

const grpcStreamMethod = "/peerbench.Echo/Stream"

// grpcStreamDesc is what protoc-gen-go-grpc would generate for
//
//	rpc Stream(Bytes) returns (stream Bytes);
var grpcStreamDesc = grpc.StreamDesc{
	StreamName:    "Stream",
	ServerStreams: true,
	Handler: func(_ any, stream grpc.ServerStream) error {
		var req []byte
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		n, size, err := parseStreamRequest(req)
		if err != nil {
			return err
		}
		item := StreamItem(size)
		for range n {
			if err := stream.SendMsg(&item); err != nil {
				return err
			}
		}
		return nil
	},
}

// Stream implements Streamer with a gRPC server-streaming call.
func (c grpcCaller) Stream(ctx context.Context, n, size int, recv func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.cc.NewStream(ctx, &grpcStreamDesc, grpcStreamMethod)
	if err != nil {
		return err
	}
	req := streamRequest(n, size)
	if err := cs.SendMsg(&req); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	item := make([]byte, 0, size)
	got := 0
	for {
		err := cs.RecvMsg(&item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		got++
		if err := recv(item); err != nil {
			return err
		}
	}
	if got != n {
		return fmt.Errorf("got %d items, want %d", got, n)
	}
	return nil
}
