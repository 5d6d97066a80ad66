module github.com/muxrpc/muxrpc/bench

go 1.26.0

replace github.com/muxrpc/muxrpc => ../

require (
	github.com/lesismal/arpc v1.2.17
	github.com/muxrpc/muxrpc v0.0.0-00010101000000-000000000000
	github.com/valyala/gorpc v0.0.0-20160519171614-908281bef774
	go.uber.org/goleak v1.3.0
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4
	google.golang.org/grpc v1.85.0
	storj.io/drpc v1.0.0
)

require (
	github.com/vmihailenco/msgpack/v5 v5.3.6 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	github.com/zeebo/errs v1.2.2 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
