package frame

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// MsgpackRPC is the msgpack-rpc dialect, the protocol of Neovim and its
// clients: bare msgpack arrays with no preface and no length prefix,
//
//	[0, msgid, method, params]   a REQUEST
//	[1, msgid, error, result]    a RESPONSE (error nil) or an ERROR
//	[2, method, params]          a NOTIFY
//
// PROTOCOL.md has a section on it. How frames map to messages:
//
//   - The xid of a REQUEST, RESPONSE or ERROR is its msgid, an unsigned
//     32-bit integer; a Writer refuses a larger xid. Package mux gives its
//     calls msgids from 1 up, wrapping at 2^32 and skipping those still in
//     flight; a peer's request may use any msgid, 0 included.
//   - The payload of a REQUEST or NOTIFY is its params, which msgpack-rpc
//     requires to be an array: a payload that is an array is sent as it
//     is, an empty or nil payload as the empty array, and any other value v
//     as the one-element array [v]. A received request's payload is its
//     params array.
//   - A RESPONSE's payload is its result (an empty payload is nil).
//   - An ERROR's *RemoteError is sent as Neovim's [type, message]: type 1
//     (Neovim's Validation) for CodeBadRequest and CodeNoMethod, 0
//     (Exception) for every other code; the trace is not sent. A received
//     [type, message] with an integer type and a str or bin message becomes
//     a RemoteError with that message and the code CodeBadRequest for type
//     1, CodeApplication for any other type; a bare str or bin error
//     (pynvim's handlers send one) becomes CodeApplication with it as the
//     message; any other value becomes CodeApplication with the value
//     printed as the message. So Neovim's errors cross unchanged both ways.
//   - An ERROR with msgid 0, which muxrpc never gives a call, is how Neovim
//     reports a protocol violation before it closes the stream: ReadFrame
//     returns an error wrapping ErrPeerViolation and the *RemoteError.
//   - CANCEL, GOAWAY, PING, PONG, CHALLENGE and PROOF have no wire form: a
//     Writer drops them without a word (see [Limits]), and a REQUEST's
//     deadline (FlagDeadline) is not sent.
//
// Integers in payloads are written in their shortest form, as Python and
// JavaScript peers write them, whatever width the Go encoder chose; method
// names are written as str and read as str or bin. A Reader holds a whole
// message before it returns it, bounded by the frame size limit (counting
// the message's bytes), growing its buffer only as bytes arrive, and
// payloads pass the same checks as in the native dialect (DecodePayload).
var MsgpackRPC Codec = msgpackRPC{}

// Limits is implemented by a Codec that cannot carry everything [Native]
// does. Package channel and package mux ask a codec through it; a Codec
// that does not implement it carries every frame type with 64-bit xids.
type Limits interface {
	// Carries reports whether frames of type t have a wire form. A Writer
	// drops the others; package channel does not turn keepalive on
	// without PING, nor authentication without CHALLENGE.
	Carries(t Type) bool
	// XIDBits is how many low bits of an xid the wire carries: package mux
	// then gives its calls xids from 1 below 2^XIDBits, skipping those in
	// flight, instead of its native 64-bit ones.
	XIDBits() int
}

// ErrPeerViolation is wrapped by the error a [MsgpackRPC] Reader returns for
// an ERROR with msgid 0: the peer (Neovim does this) says that this side
// broke the protocol and closes the stream. The error also wraps the
// peer's *RemoteError, which says what it objected to.
var ErrPeerViolation = fmt.Errorf("frame: peer reports a protocol violation")

// msgpack-rpc message types.
const (
	mrpcRequest  = 0
	mrpcResponse = 1
	mrpcNotify   = 2
)

// Neovim's error types, the first element of its [type, message] errors.
const (
	nvimException  = 0
	nvimValidation = 1
)

type msgpackRPC struct{}

func (msgpackRPC) Carries(t Type) bool {
	switch t {
	case TypeRequest, TypeNotify, TypeResponse, TypeError:
		return true
	}
	return false
}

func (msgpackRPC) XIDBits() int { return 32 }

func (msgpackRPC) NewReader(r io.Reader, maxFrameSize int) Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &mrpcReader{
		sr:      newStreamReader(r),
		max:     maxFrameSize,
		step:    bodyStep,
		methods: make(map[string]string),
	}
}

func (msgpackRPC) NewWriter(w io.Writer) Writer {
	return &mrpcWriter{nw: nativeWriter{w: w}}
}

// FrameSize is an upper bound of the message's encoded size: integers that
// the writer shortens count at their length before.
func (msgpackRPC) FrameSize(f *Frame) int {
	const head = 1 + 1 + 5 // array header, type, msgid
	payload := len(f.Payload) + len(f.tail())
	switch f.Type {
	case TypeRequest, TypeNotify:
		return head + strHeaderLen(len(f.Method)) + len(f.Method) + 1 + max(payload, 1)
	case TypeResponse:
		return head + 1 + max(payload, 1)
	case TypeError:
		msg := errorMessage(f.Err)
		return head + 1 + 1 + strHeaderLen(len(msg)) + len(msg) + 1
	}
	return 0
}

// strHeaderLen is the size of the str header msgpack writes for n bytes.
func strHeaderLen(n int) int {
	switch {
	case n < 32:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n < 1<<8:
		return append(b, 0xd9, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

// appendUint appends v in msgpack's shortest form.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendInt appends v in msgpack's shortest form.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// errorMessage is the message an ERROR carries, cut to MaxMessageLen.
func errorMessage(e *RemoteError) string {
	msg, _ := errorStrings(e)
	return msg
}

// nvimErrorType is the Neovim error type a code is sent as.
func nvimErrorType(e *RemoteError) byte {
	if e != nil && (e.Code == CodeBadRequest || e.Code == CodeNoMethod) {
		return nvimValidation
	}
	return nvimException
}

// mrpcWriter writes msgpack-rpc messages, reusing the native writer's
// pooled buffer and its writing of large payloads straight to the stream.
type mrpcWriter struct {
	nw nativeWriter
}

func (w *mrpcWriter) WritePreface() error { return w.nw.err } // msgpack-rpc has none
func (w *mrpcWriter) Flush() error        { return w.nw.Flush() }

func (w *mrpcWriter) WriteFrame(f *Frame) error {
	switch f.Type {
	case TypeRequest, TypeNotify:
		if len(f.Method) == 0 || len(f.Method) > MaxMethodLen {
			return fmt.Errorf("%w: method name of %d bytes", ErrMalformed, len(f.Method))
		}
	case TypeResponse, TypeError:
	default:
		return nil // no wire form: dropped, as MsgpackRPC says
	}
	if f.Type != TypeNotify && f.XID > math.MaxUint32 {
		return fmt.Errorf("%w: %v xid %d does not fit a msgpack-rpc msgid", ErrMalformed, f.Type, f.XID)
	}
	if w.nw.err != nil {
		return w.nw.err
	}
	b := w.nw.buffered()
	switch f.Type {
	case TypeRequest:
		b = append(b, 0x94, mrpcRequest)
		b = appendUint(b, f.XID)
		b = appendStrHeader(b, len(f.Method))
		b = append(b, f.Method...)
	case TypeNotify:
		b = append(b, 0x93, mrpcNotify)
		b = appendStrHeader(b, len(f.Method))
		b = append(b, f.Method...)
	case TypeResponse:
		b = append(b, 0x94, mrpcResponse)
		b = appendUint(b, f.XID)
		b = append(b, 0xc0) // no error
	case TypeError:
		msg := errorMessage(f.Err)
		b = append(b, 0x94, mrpcResponse)
		b = appendUint(b, f.XID)
		b = append(b, 0x92, nvimErrorType(f.Err))
		b = appendStrHeader(b, len(msg))
		b = append(b, msg...)
		b = append(b, 0xc0) // no result
		w.nw.buf.b = b
		return w.flushIfFull()
	}
	p := f.Payload
	params := f.Type != TypeResponse
	switch {
	case len(p) == 0 || len(p) == 1 && p[0] == 0xc0:
		if params {
			b = append(b, 0x90)
		} else {
			b = append(b, 0xc0)
		}
		w.nw.buf.b = b
		return w.flushIfFull()
	case params && !isArrayStart(p[0]):
		b = append(b, 0x91) // params must be an array: [v]
	}
	if tail := f.tail(); tail != nil { // p is a bin header, the bytes follow in tail
		b = append(b, p...)
		return w.writeTail(b, tail)
	}
	if len(p) >= directWrite && !hasWideInts(p) {
		// Nothing to rewrite: written straight from the payload, as the
		// native writer does, rather than copied into the buffer.
		return w.writeTail(b, p)
	}
	start := len(b)
	b, err := appendCompact(b, p)
	if err != nil {
		// Not msgpack (a payload made by hand): sent as it is, as the
		// native dialect would, for the peer to judge.
		b = append(b[:start], p...)
	}
	w.nw.buf.b = b // appending may have outgrown the pooled buffer; fine
	return w.flushIfFull()
}

// writeTail finishes a message whose last bytes are tail, a referred []byte.
func (w *mrpcWriter) writeTail(b, tail []byte) error {
	if len(tail) < directWrite {
		w.nw.buf.b = append(b, tail...)
		return w.flushIfFull()
	}
	w.nw.buf.b = b
	if err := w.nw.Flush(); err != nil {
		return err
	}
	return w.nw.write(tail)
}

// flushIfFull writes out the buffer once it is full.
func (w *mrpcWriter) flushIfFull() error {
	if len(w.nw.buf.b) < w.nw.limit {
		return nil
	}
	return w.nw.Flush()
}

// isArrayStart reports whether c starts a msgpack array.
func isArrayStart(c byte) bool {
	return c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd
}

// appendCompact appends the msgpack value that is all of src to dst, rewriting every
// integer in its shortest form; everything else is copied as it is. It
// fails, having appended part of src, if src is not well-formed msgpack.
func appendCompact(dst, src []byte) ([]byte, error) {
	i := 0
	for left := 1; left > 0; left-- {
		if i >= len(src) {
			return dst, fmt.Errorf("%w: payload ends where a value should start", ErrMalformed)
		}
		c := src[i]
		switch {
		case c >= 0xcc && c <= 0xcf: // uint 8, 16, 32, 64
			n := 1 << (c - 0xcc)
			if len(src)-i-1 < n {
				return dst, errShortLength
			}
			dst = appendUint(dst, readBE(src[i+1:i+1+n]))
			i += 1 + n
			continue
		case c >= 0xd0 && c <= 0xd3: // int 8, 16, 32, 64
			n := 1 << (c - 0xd0)
			if len(src)-i-1 < n {
				return dst, errShortLength
			}
			v := readBE(src[i+1 : i+1+n])
			shift := 64 - 8*n
			dst = appendInt(dst, int64(v<<shift)>>shift) // sign-extended
			i += 1 + n
			continue
		}
		var skip, count int64
		isContainer, isMap := false, false
		next := i + 1
		switch {
		case c <= 0x7f || c >= 0xe0:
		case c <= 0x8f:
			isContainer, isMap, count = true, true, int64(c&0x0f)
		case c <= 0x9f:
			isContainer, count = true, int64(c&0x0f)
		case c <= 0xbf:
			skip = int64(c & 0x1f)
		default:
			var err error
			if skip, count, isContainer, isMap, next, err = checkLong(src, next, c); err != nil {
				return dst, err
			}
		}
		if skip > int64(len(src)-next) {
			return dst, fmt.Errorf("%w: value of %d bytes with %d left", ErrMalformed, skip, len(src)-next)
		}
		end := next + int(skip)
		dst = append(dst, src[i:end]...)
		i = end
		if isContainer {
			if isMap {
				count *= 2
			}
			if count > int64(len(src)-i) {
				return dst, fmt.Errorf("%w: container claims %d items with %d bytes left", ErrMalformed, count, len(src)-i)
			}
			left += int(count)
		}
	}
	if i != len(src) {
		return dst, fmt.Errorf("%w: %d bytes after the payload value", ErrMalformed, len(src)-i)
	}
	return dst, nil
}

// hasWideInts reports whether the msgpack value that is all of p holds an
// integer that appendCompact would shorten, or is not well-formed (which
// appendCompact then handles).
func hasWideInts(p []byte) bool {
	var scratch [9]byte
	i := 0
	for left := 1; left > 0; left-- {
		if i >= len(p) {
			return true
		}
		c := p[i]
		if c >= 0xcc && c <= 0xd3 {
			n := 1 << ((c - 0xcc) & 3)
			if len(p)-i-1 < n {
				return true
			}
			v := readBE(p[i+1 : i+1+n])
			var short []byte
			if c <= 0xcf {
				short = appendUint(scratch[:0], v)
			} else {
				shift := 64 - 8*n
				short = appendInt(scratch[:0], int64(v<<shift)>>shift)
			}
			if len(short) < 1+n {
				return true
			}
			i += 1 + n
			continue
		}
		skip, count, next, err := valueHeader(p, i)
		if err != nil || skip > int64(len(p)-next) || count > int64(len(p)-next) {
			return true
		}
		i = next + int(skip)
		left += int(count)
	}
	return i != len(p)
}

// readBE reads a big-endian unsigned integer of 1, 2, 4 or 8 bytes.
func readBE(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
