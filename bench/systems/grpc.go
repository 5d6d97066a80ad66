package systems

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// GRPC is google.golang.org/grpc with a hand-written ServiceDesc and a
// pass-through codec, so that no protoc is needed: a message is a *[]byte
// sent as is.
type GRPC struct{}

// Name implements System.
func (GRPC) Name() string { return "grpc" }

// Note implements System.
func (GRPC) Note() string {
	return "google.golang.org/grpc, one ClientConn (WithContextDialer returns the pre-made conn once) → grpc.Server.Serve on a one-conn listener; hand-written ServiceDesc, pass-through *[]byte codec (no protobuf), insecure credentials, default windows and buffers"
}

// rawCodec is a grpc encoding.Codec whose messages are *[]byte.
type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

const grpcMethod = "/peerbench.Echo/Echo"

// grpcEchoDesc is what protoc-gen-go-grpc would generate for
//
//	service Echo { rpc Echo(Bytes) returns (Bytes); }
var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "peerbench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			echo := func(_ context.Context, req any) (any, error) { return req, nil }
			if interceptor == nil {
				return echo(ctx, &in)
			}
			info := &grpc.UnaryServerInfo{FullMethod: grpcMethod}
			return interceptor(ctx, &in, info, echo)
		},
	}},
	Streams: []grpc.StreamDesc{grpcStreamDesc},
}

// Start implements System.
func (GRPC) Start(client, server net.Conn) (Caller, io.Closer, error) {
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&grpcEchoDesc, struct{}{})
	lis := newOneConnListener(server)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	dial := dialOnce(client)
	cc, err := grpc.NewClient("passthrough:///pre-made",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		srv.Stop()
		<-served
		client.Close()
		return nil, nil, err
	}
	closer := closerFunc(func() error {
		errC := cc.Close()
		srv.Stop()
		errS := <-served
		if errors.Is(errS, grpc.ErrServerStopped) {
			errS = nil
		}
		return errors.Join(errC, errS)
	})
	return grpcCaller{cc}, closer, nil
}

type grpcCaller struct{ cc *grpc.ClientConn }

func (c grpcCaller) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	out := buf[:0]
	err := c.cc.Invoke(ctx, grpcMethod, &in, &out)
	return out, err
}
