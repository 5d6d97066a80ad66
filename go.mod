module github.com/muxrpc/muxrpc

go 1.24

require github.com/vmihailenco/msgpack/v5 v5.3.6

require (
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)
