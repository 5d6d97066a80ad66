// Package msgpackrpc makes muxrpc speak msgpack-rpc, the protocol of
// Neovim, its plugins and its clients in every language, instead of its
// native dialect. [Dialect] is an option of mux.New, mux.Dial, mux.Start,
// demux.New and demux.NewServer: the connection then reads and writes
// bare msgpack-rpc arrays (frame.MsgpackRPC describes the mapping), and
// everything else works as it does natively: both ends call and serve on
// one stream, calls take contexts, handlers run on bounded workers, a
// panicking handler answers with an error, and decoding is bomb-proof.
//
// msgpack-rpc has no wire form for cancellation, deadlines, GOAWAY or
// keepalive. A canceled call, or one whose deadline passes, returns at once
// with the context's error and its late reply is dropped; the peer goes on
// running it. Keepalive is off (mux.Keepalive and demux.Keepalive do
// nothing with this dialect), authentication (AuthKey) fails the
// connection, and a server shutting down closes the stream once its
// handlers have answered, without a GOAWAY. PROTOCOL.md has the details.
//
// Parameters are an array on the wire. A call's args that encode as an
// array (a slice, or a struct with the msgpack "as_array" tag) are the
// params; any other value v is sent as [v], and nil as []. A handler
// receives the params array: decode it into a slice or an as_array struct.
//
// Errors cross as Neovim's [type, message]: a *frame.RemoteError of code
// CodeBadRequest or CodeNoMethod is sent as Validation (1), any other as
// Exception (0), and a received Validation error arrives as CodeBadRequest,
// any other error value as CodeApplication, with the peer's message.
// Neovim's errors thus keep their type both ways; between two muxrpc ends
// other codes are not kept. An error that Neovim sends for msgid 0 reports
// a protocol violation of this side: the connection ends with an error
// wrapping frame.ErrPeerViolation and Neovim's message.
//
// A Mux numbers its calls' msgids from 1, wrapping at 2^32 and skipping
// those still in flight.
//
// Neovim's Buffer, Window and Tabpage handles travel as msgpack ext types
// 0, 1 and 2; the types of the same names here encode and decode them.
// Any other ext type is written the same way, with [EncodeExt] and
// [DecodeExt] in the EncodeMsgpack and DecodeMsgpack methods of a Go type;
// [Ext] holds an ext value of any type id. An ext decoded into an
// interface value (an any, a []any) is an error unless its type is
// registered with msgpack.RegisterExt, which is process-wide: decode into
// typed values instead.
package msgpackrpc
