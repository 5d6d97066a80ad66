// Package frame is muxrpc's wire format: the preface each side sends first,
// the length-prefixed frames that follow it, the error codes they carry and
// the msgpack payload codec. Besides the frames of calls it defines those
// of two options both ends turn on: keepalive (PING and PONG) and
// authentication (CHALLENGE and PROOF, whose proof [AuthProof] computes),
// and, since protocol version 2, those of streams (YIELD, PUSH, CLOSE,
// WANT, TAKE), the priority bits ([Priority]), ordering keys ([FlagKey])
// and split messages ([FlagMore]): a [Reader] joins the chunks of a split
// message before it returns it, and a [ChunkWriter] writes one a chunk at
// a time, so that a writer can interleave them with other frames.
//
// The package does no I/O scheduling and starts no goroutines: a [Writer]
// turns frames into bytes in a buffer it flushes on demand, and a [Reader]
// turns the bytes of a stream into frames, checking every length against a
// limit before allocating, and allocating for a body only as its bytes
// arrive. Both hold their large buffers only while data
// flows, so an idle stream costs little. PROTOCOL.md at the root of the
// module describes the format byte by byte; the golden frames in
// testdata/golden pin it.
//
// A [Codec] is one wire dialect: it decides the bytes of the preface and of
// every frame. [Native] is muxrpc's own. Package channel takes any Codec
// (channel.Config.Codec), but a second dialect needs more than a Codec if
// its ids are narrower than 64 bits (package mux builds 64-bit xids) or its
// payloads are not msgpack (payloads are encoded and decoded by this
// package). A Codec outside this package also cannot put a payload in a
// pooled buffer, nor write a frame whose payload is by reference (see
// [Frame.ReferBytes]), which package mux sends. [MsgpackRPC], the
// protocol of Neovim, is such a second dialect, in this package for those
// reasons; it implements [Limits] to tell package channel and package mux
// which frames it cannot carry and how wide its ids are.
//
// Payloads are msgpack. [DecodePayload] walks the encoded bytes before
// decoding them and rejects any container or string whose claimed length
// exceeds the bytes left in the payload, so a hostile peer cannot make the
// decoder allocate more than a small multiple of the frame it sent.
package frame
