package frame

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
)

// Version is the protocol version Native speaks: the last byte of its
// preface. Version 2 added split messages, priorities, ordering keys and
// streams (PROTOCOL.md).
const Version = 2

// Preface is what each side of a Native stream sends before its first
// frame: the magic "muxrpc\x00" and the version byte.
var Preface = [8]byte{'m', 'u', 'x', 'r', 'p', 'c', 0, Version}

// Native is muxrpc's own wire dialect, described in PROTOCOL.md.
var Native Codec = native{}

// Write buffer sizes: the writer's buffer is taken from the pool when there
// is something to write and given back on Flush, so an idle stream holds
// none. (The reader's are in reader.go.)
const (
	writeBufferSize = 64 << 10
	// chunkBufferSize is the size of the buffer the writer takes for the
	// chunks of split messages: a busy stream of chunks then leaves in
	// fewer, longer writes, while a stream of whole frames keeps to
	// writeBufferSize.
	chunkBufferSize = 256 << 10
	// directWrite is the payload size from which a payload is written
	// straight to the stream after the buffered bytes, not copied.
	directWrite = 32 << 10
)

// maxInterned bounds the per-connection table of method names, which spares
// an allocation per request for the methods a server actually sees.
const maxInterned = 256

type native struct{}

func (native) NewReader(r io.Reader, maxFrameSize int) Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &nativeReader{
		sr:      newStreamReader(r),
		max:     maxFrameSize,
		step:    bodyStep,
		methods: make(map[string]string),
		partial: make(map[partialKey]*partial),
	}
}

func (native) NewWriter(w io.Writer) Writer {
	return &nativeWriter{w: w}
}

func (native) FrameSize(f *Frame) int {
	return MinFrameSize + bodySize(f)
}

// bodySize is the number of bytes after the fixed header.
func bodySize(f *Frame) int {
	switch f.Type {
	case TypeRequest, TypeNotify:
		return callPrefixSize(f) + len(f.Payload) + len(f.tail())
	case TypeResponse, TypeYield, TypePush:
		return len(f.Payload) + len(f.tail())
	case TypeError, TypeGoAway:
		msg, trace := errorStrings(f.Err)
		return 2 + 4 + len(msg) + 4 + len(trace)
	case TypeChallenge, TypeProof:
		return len(f.Payload)
	case TypeWant, TypeTake:
		return 4
	}
	return 0
}

// callPrefixSize is the size of a REQUEST's or NOTIFY's fields before its
// payload.
func callPrefixSize(f *Frame) int {
	n := 2 + len(f.Method)
	if f.Flags&FlagDeadline != 0 {
		n += 8
	}
	if f.Flags&FlagStream != 0 {
		n += 4
	}
	if f.Flags&FlagKey != 0 {
		n += 1 + len(f.Key)
	}
	return n
}

// CanSplit reports whether frames of type t may be split into chunks
// (FlagMore): REQUEST, NOTIFY, RESPONSE, YIELD and PUSH.
func CanSplit(t Type) bool {
	switch t {
	case TypeRequest, TypeNotify, TypeResponse, TypeYield, TypePush:
		return true
	}
	return false
}

func errorStrings(e *RemoteError) (msg, trace string) {
	if e == nil {
		return "", ""
	}
	msg, trace = e.Message, e.Trace
	if len(msg) > MaxMessageLen {
		msg = msg[:MaxMessageLen]
	}
	if len(trace) > MaxMessageLen {
		trace = trace[:MaxMessageLen]
	}
	return msg, trace
}

type nativeWriter struct {
	w       io.Writer
	buf     *buffer // pooled; nil while nothing is buffered
	limit   int     // the size buf was taken with: a buffer this full is written out
	err     error   // the first write error; every later call returns it
	scratch []byte  // WriteChunk's copy of a call's fields
}

// buffered returns the bytes buffered so far, taking a buffer from the
// pool if there is none.
func (w *nativeWriter) buffered() []byte { return w.bufferedIn(writeBufferSize) }

// bufferedIn is buffered, taking a buffer of size bytes if there is none.
func (w *nativeWriter) bufferedIn(size int) []byte {
	if w.buf == nil {
		w.buf, w.limit = getBuffer(size), size
		w.buf.b = w.buf.b[:0]
	}
	return w.buf.b
}

// write writes p to the stream, remembering a failure.
func (w *nativeWriter) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.w.Write(p); err != nil {
		w.err = err
	}
	return w.err
}

func (w *nativeWriter) WritePreface() error {
	if w.err != nil {
		return w.err
	}
	w.buf.b = append(w.buffered(), Preface[:]...)
	return nil
}

// check returns the error of a frame that cannot be encoded.
func checkOutgoing(f *Frame, body int) error {
	switch f.Type {
	case TypeRequest, TypeNotify:
		if len(f.Method) == 0 || len(f.Method) > MaxMethodLen {
			return fmt.Errorf("%w: method name of %d bytes", ErrMalformed, len(f.Method))
		}
		if f.Flags&FlagKey != 0 && (len(f.Key) == 0 || len(f.Key) > MaxKeyLen) {
			return fmt.Errorf("%w: ordering key of %d bytes, want 1 to %d", ErrMalformed, len(f.Key), MaxKeyLen)
		}
		if f.Type == TypeNotify && f.Flags&FlagStream != 0 {
			return fmt.Errorf("%w: NOTIFY with FlagStream", ErrMalformed)
		}
	case TypeChallenge, TypeProof:
		if err := checkAuthBody(f.Type, len(f.Payload)); err != nil {
			return err
		}
	}
	if uint64(MinFrameSize+body) > math.MaxUint32 { // the length field would wrap
		return fmt.Errorf("%w: %v frame of %d bytes does not fit a 32-bit length", ErrTooLarge, f.Type, MinFrameSize+body)
	}
	return nil
}

// appendHeader appends the fixed header of a frame with a body of body
// bytes.
func appendHeader(dst []byte, t Type, flags Flags, xid uint64, body int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(MinFrameSize+body))
	dst = append(dst, byte(t), byte(flags))
	return binary.BigEndian.AppendUint64(dst, xid)
}

// appendPrefix appends the fields of f's body that come before its
// payload, or the whole body of a frame without a payload.
func appendPrefix(dst []byte, f *Frame) []byte {
	switch f.Type {
	case TypeRequest, TypeNotify:
		if f.Flags&FlagDeadline != 0 {
			dst = binary.BigEndian.AppendUint64(dst, uint64(f.Budget))
		}
		if f.Flags&FlagStream != 0 {
			dst = binary.BigEndian.AppendUint32(dst, f.Window)
		}
		if f.Flags&FlagKey != 0 {
			dst = append(dst, byte(len(f.Key)))
			dst = append(dst, f.Key...)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.Method)))
		dst = append(dst, f.Method...)
	case TypeError, TypeGoAway:
		msg, trace := errorStrings(f.Err)
		var code Code
		if f.Err != nil {
			code = f.Err.Code
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(code))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
		dst = append(dst, msg...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(trace)))
		dst = append(dst, trace...)
	case TypeWant, TypeTake:
		dst = binary.BigEndian.AppendUint32(dst, f.Window)
	}
	return dst
}

func (w *nativeWriter) WriteFrame(f *Frame) error {
	body := bodySize(f)
	if err := checkOutgoing(f, body); err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	hdr := appendHeader(w.buffered(), f.Type, f.Flags, f.XID, body)
	hdr = appendPrefix(hdr, f)
	var payload []byte
	switch f.Type {
	case TypeRequest, TypeNotify, TypeResponse, TypeYield, TypePush:
		payload = f.Payload
		if t := f.tail(); t != nil { // payload is only the head: the tail follows it
			hdr = append(hdr, payload...)
			payload = t
		}
	case TypeChallenge, TypeProof:
		payload = f.Payload
	}
	if len(payload) < directWrite {
		hdr = append(hdr, payload...)
		payload = nil
	}
	w.buf.b = hdr // appending may have outgrown the pooled buffer; fine
	if payload == nil && len(hdr) < w.limit {
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return w.write(payload)
}

// WriteChunk implements [ChunkWriter].
func (w *nativeWriter) WriteChunk(f *Frame, off, n int) (int, error) {
	body := bodySize(f)
	if off == 0 {
		if !CanSplit(f.Type) {
			return 0, fmt.Errorf("%w: %v frames are not split", ErrMalformed, f.Type)
		}
		if err := checkOutgoing(f, body); err != nil {
			return 0, err
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	n = min(max(n, 1), body-off)
	end := off + n
	flags := f.Flags
	if off > 0 {
		flags &= FlagPriorityMask
	}
	if end < body {
		flags |= FlagMore
	}
	// A chunk that would outgrow the buffer goes into a fresh one: growing
	// the pooled buffer by append would allocate at every few chunks.
	if b := w.bufferedIn(chunkBufferSize); len(b) > 0 && len(b)+HeaderSize+splitLenSize+min(n, directWrite) > cap(b) {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	var b []byte
	if off == 0 && end < body {
		// The first chunk of a split message says how long the whole
		// body is, so that the reader can size its buffer for it.
		b = appendHeader(w.bufferedIn(chunkBufferSize), f.Type, flags, f.XID, splitLenSize+n)
		b = binary.BigEndian.AppendUint32(b, uint32(body))
	} else {
		b = appendHeader(w.bufferedIn(chunkBufferSize), f.Type, flags, f.XID, n)
	}
	// The body is the prefix, the payload and the tail, end to end: copy
	// the part of each that falls in [off, end), or write it straight to
	// the stream once it is long enough for the copy to cost more than a
	// write.
	var prefix []byte
	if f.Type == TypeRequest || f.Type == TypeNotify {
		prefix = appendPrefix(w.scratch[:0], f)
		w.scratch = prefix[:0]
	}
	at := 0
	for i, part := range [3][]byte{prefix, f.Payload, f.tail()} {
		lo, hi := max(off-at, 0), min(end-at, len(part))
		at += len(part)
		if lo >= hi {
			continue
		}
		if i == 0 || hi-lo < directWrite {
			b = append(b, part[lo:hi]...)
			continue
		}
		w.buf.b = b
		if err := w.Flush(); err != nil {
			return 0, err
		}
		if err := w.write(part[lo:hi]); err != nil {
			return 0, err
		}
		b = w.bufferedIn(chunkBufferSize)
	}
	w.buf.b = b
	if len(b) >= w.limit {
		return end, w.Flush()
	}
	return end, nil
}

// Flush writes out what is buffered and gives the buffer back to the pool.
func (w *nativeWriter) Flush() error {
	if w.buf == nil {
		return w.err
	}
	err := w.err
	if err == nil && len(w.buf.b) > 0 {
		err = w.write(w.buf.b)
	}
	putBuffer(w.buf)
	w.buf = nil
	return err
}

type nativeReader struct {
	sr      *streamReader
	max     int
	step    int // bodyStep; tests make it small to reach the growing path
	methods map[string]string
	accept  func(Type) error // see SetTypeFilter; nil accepts every type
	partial map[partialKey]*partial
	spare   []*partial // finished ones, for the next split messages
	// scratch holds a frame's fixed fields while they are parsed, and
	// method holds a method name while it is looked up; local arrays would
	// escape through io.ReadFull and cost an allocation.
	scratch [HeaderSize]byte
	method  [maxScratchMethod]byte
}

// maxScratchMethod is the longest method name read without an allocation.
const maxScratchMethod = 256

func (r *nativeReader) SetTypeFilter(accept func(Type) error) {
	r.accept = accept
}

func (r *nativeReader) ReadPreface() error {
	got := r.scratch[:len(Preface)]
	n, err := io.ReadFull(r.sr, got)
	if err != nil {
		if n > 0 && err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: stream ended after %q", ErrBadPreface, got[:n])
		}
		return err
	}
	if string(got[:len(Preface)-1]) != string(Preface[:len(Preface)-1]) {
		return fmt.Errorf("%w: it opened with %q%s", ErrBadPreface, got, guessProtocol(got))
	}
	if got[len(Preface)-1] != Version {
		return fmt.Errorf("%w: peer speaks version %d, this side %d", ErrVersion, got[len(Preface)-1], Version)
	}
	return nil
}

// guessProtocol names a few protocols that a misdirected muxrpc connection
// commonly meets, to make the error say what went wrong.
func guessProtocol(b []byte) string {
	s := string(b)
	switch {
	case len(s) >= 4 && (s[:4] == "GET " || s[:4] == "POST" || s[:4] == "HTTP" || s[:4] == "PUT " || s[:4] == "HEAD"):
		return " (looks like HTTP)"
	case len(s) >= 3 && s[:3] == "SSH":
		return " (looks like SSH)"
	case len(s) >= 3 && s[0] == 0x16 && s[1] == 0x03:
		return " (looks like TLS)"
	case len(s) >= 3 && s[:3] == "PRI":
		return " (looks like HTTP/2)"
	}
	return ""
}

// readFull fills p, turning an EOF part-way into io.ErrUnexpectedEOF.
func (r *nativeReader) readFull(p []byte) error {
	_, err := io.ReadFull(r.sr, p)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *nativeReader) ReadFrame(f *Frame) error {
	for {
		*f = Frame{}
		hdr := r.scratch[:]
		if _, err := io.ReadFull(r.sr, hdr[:4]); err != nil {
			if err == io.EOF && len(r.partial) > 0 {
				return fmt.Errorf("%w: the stream ended inside %d split messages", io.ErrUnexpectedEOF, len(r.partial))
			}
			return err // io.EOF at a frame boundary, ErrUnexpectedEOF inside the prefix
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if uint64(n) > uint64(r.max) {
			return fmt.Errorf("%w: length field says %d bytes, limit is %d", ErrTooLarge, n, r.max)
		}
		if n < MinFrameSize {
			return fmt.Errorf("%w: length field says %d bytes, the header alone takes %d", ErrMalformed, n, MinFrameSize)
		}
		if err := r.readFull(hdr[4:]); err != nil {
			return err
		}
		f.Type = Type(hdr[4])
		f.Flags = Flags(hdr[5])
		f.XID = binary.BigEndian.Uint64(hdr[6:])
		body := int(n) - MinFrameSize
		key := partialKey{f.Type, f.XID}
		p := r.partial[key]
		if err := checkHeader(f, body, p != nil); err != nil {
			return err
		}
		if r.accept != nil {
			if err := r.accept(f.Type); err != nil {
				return err
			}
		}
		if p == nil && f.Flags&FlagMore == 0 {
			return r.readWhole(f, body)
		}
		done, err := r.readChunk(f, key, p, body)
		if done || err != nil {
			return err
		}
	}
}

// readWhole reads the body of a frame that is not a chunk.
func (r *nativeReader) readWhole(f *Frame, body int) error {
	switch f.Type {
	case TypeRequest, TypeNotify:
		return r.readCall(f, body)
	case TypeResponse, TypeYield, TypePush, TypeChallenge, TypeProof:
		return r.readPayload(f, body)
	case TypeError, TypeGoAway:
		return r.readError(f, body)
	case TypeWant, TypeTake:
		return r.readWindow(f)
	}
	return nil // CANCEL, CLOSE, PING, PONG: no body
}

// partialKey names a split message: at most one per type and xid is in
// progress at a time.
type partialKey struct {
	t   Type
	xid uint64
}

// partial is a split message whose last chunk has not arrived.
type partial struct {
	flags Flags   // the first chunk's, without FlagMore
	total int     // the length of the whole body, from the first chunk
	buf   *buffer // the body so far
}

// splitLenSize is the size of the field that opens the first chunk of a
// split message: the length of the message's whole body.
const splitLenSize = 4

// readChunk reads the body of a chunk of the message key, whose earlier
// chunks p holds (nil for the first chunk). With the last chunk read, it
// fills f with the whole message and reports done.
func (r *nativeReader) readChunk(f *Frame, key partialKey, p *partial, body int) (done bool, err error) {
	if p == nil {
		if len(r.partial) >= MaxPartial {
			return false, fmt.Errorf("%w: more than %d split messages in progress", ErrMalformed, MaxPartial)
		}
		if body < splitLenSize {
			return false, fmt.Errorf("%w: first chunk of a split %v message with a %d-byte body, too short for the message's length", ErrMalformed, f.Type, body)
		}
		b := r.scratch[:splitLenSize]
		if err := r.readFull(b); err != nil {
			return false, err
		}
		total := uint64(binary.BigEndian.Uint32(b))
		body -= splitLenSize
		if total > uint64(r.max-MinFrameSize) {
			return false, fmt.Errorf("%w: split %v message of %d bytes, limit is %d", ErrTooLarge, f.Type, MinFrameSize+total, r.max)
		}
		if uint64(body) > total {
			return false, fmt.Errorf("%w: split %v message of %d bytes whose first chunk holds %d", ErrMalformed, f.Type, total, body)
		}
		if n := len(r.spare); n > 0 {
			p, r.spare = r.spare[n-1], r.spare[:n-1]
		} else {
			p = new(partial)
		}
		*p = partial{flags: f.Flags &^ FlagMore, total: int(total)}
		r.partial[key] = p
	}
	have := 0
	if p.buf != nil {
		have = len(p.buf.b)
	}
	if have+body > p.total {
		return false, fmt.Errorf("%w: chunks of a split %v message hold more than its %d bytes", ErrMalformed, f.Type, p.total)
	}
	if f.Flags&FlagMore == 0 && have+body < p.total {
		return false, fmt.Errorf("%w: split %v message of %d bytes ended after %d", ErrMalformed, f.Type, p.total, have+body)
	}
	if p.buf, err = r.appendBody(p.buf, body, p.total); err != nil {
		return false, err
	}
	if f.Flags&FlagMore != 0 {
		return false, nil
	}
	delete(r.partial, key)
	f.Flags = p.flags
	buf := p.buf
	*p = partial{}
	r.spare = append(r.spare, p)
	if err := r.parseBody(f, buf); err != nil {
		return false, err
	}
	return true, nil
}

// parseBody fills f from buf, the whole body of a split message, handing
// buf to f or giving it back.
func (r *nativeReader) parseBody(f *Frame, buf *buffer) error {
	b := buf.b
	if f.Type == TypeRequest || f.Type == TypeNotify {
		fixed, err := r.parseCallFields(f, b)
		if err != nil {
			putBuffer(buf)
			return err
		}
		b = b[fixed:]
	}
	if len(b) == 0 {
		putBuffer(buf)
		return nil
	}
	f.Payload, f.buf = b, buf
	return nil
}

// parseCallFields parses the fields of a REQUEST's or NOTIFY's body before
// its payload and returns their size.
func (r *nativeReader) parseCallFields(f *Frame, b []byte) (int, error) {
	at := 0
	if f.Flags&FlagDeadline != 0 {
		if len(b) < 8 {
			return 0, fmt.Errorf("%w: %v body of %d bytes is too short for its budget", ErrMalformed, f.Type, len(b))
		}
		f.Budget = time.Duration(binary.BigEndian.Uint64(b))
		at = 8
	}
	if f.Flags&FlagStream != 0 {
		if len(b)-at < 4 {
			return 0, fmt.Errorf("%w: %v body of %d bytes is too short for its window", ErrMalformed, f.Type, len(b))
		}
		f.Window = binary.BigEndian.Uint32(b[at:])
		at += 4
	}
	if f.Flags&FlagKey != 0 {
		if len(b)-at < 1 {
			return 0, fmt.Errorf("%w: %v body of %d bytes is too short for its key", ErrMalformed, f.Type, len(b))
		}
		klen := int(b[at])
		at++
		if klen == 0 || klen > len(b)-at {
			return 0, fmt.Errorf("%w: key length %d in a body with %d bytes left", ErrMalformed, klen, len(b)-at)
		}
		f.Key = string(b[at : at+klen])
		at += klen
	}
	if len(b)-at < 2 {
		return 0, fmt.Errorf("%w: %v body of %d bytes is shorter than its fixed fields", ErrMalformed, f.Type, len(b))
	}
	mlen := int(binary.BigEndian.Uint16(b[at:]))
	at += 2
	if mlen == 0 || mlen > len(b)-at {
		return 0, fmt.Errorf("%w: method length %d in a body with %d bytes left", ErrMalformed, mlen, len(b)-at)
	}
	f.Method = r.intern(b[at : at+mlen])
	return at + mlen, nil
}

// appendBody reads the next n bytes of the stream onto the end of buf (nil
// for none), the body so far of a split message of total bytes. It asks
// the pool for at most four times what has arrived of the message plus
// bodyStep, rounded down to a size class, and never for more than total:
// on a fast stream the buffer grows in a few steps, the last of them to
// the body's exact size.
func (r *nativeReader) appendBody(buf *buffer, n, total int) (*buffer, error) {
	if buf == nil {
		room := r.step
		if n <= r.sr.buffered() {
			room = max(room, n)
		}
		buf = getBuffer(min(total, room))
		buf.b = buf.b[:0]
	}
	want := len(buf.b) + n
	for len(buf.b) < want {
		have := len(buf.b)
		if want > cap(buf.b) {
			room := total
			if limit := 4*have + r.step; limit < total {
				room = 1 << (bits.Len(uint(limit)) - 1) // a whole size class
			}
			if want-have <= r.sr.buffered() {
				room = max(room, want)
			}
			if room > cap(buf.b) {
				next := getBuffer(room)
				copy(next.b, buf.b)
				next.b = next.b[:have]
				putBuffer(buf)
				buf = next
			}
		}
		buf.b = buf.b[:min(want, cap(buf.b))]
		if err := r.readFull(buf.b[have:]); err != nil {
			putBuffer(buf)
			return nil, err
		}
	}
	return buf, nil
}

// readWindow reads the 4-byte body of a WANT or TAKE.
func (r *nativeReader) readWindow(f *Frame) error {
	b := r.scratch[:4]
	if err := r.readFull(b); err != nil {
		return err
	}
	f.Window = binary.BigEndian.Uint32(b)
	if f.Window == 0 {
		return fmt.Errorf("%w: %v granting 0 frames", ErrMalformed, f.Type)
	}
	return nil
}

// checkHeader applies the rules that depend on the fixed header alone:
// the type, the flags, the xid and, for the types whose body has a fixed
// size, the length.
func checkHeader(f *Frame, body int, continued bool) error {
	allowed := FlagPriorityMask
	switch f.Type {
	case TypeRequest:
		allowed |= FlagDeadline | FlagKey | FlagStream | FlagMore
	case TypeNotify:
		allowed |= FlagDeadline | FlagKey | FlagMore
	case TypeResponse, TypeYield, TypePush:
		allowed |= FlagMore
	case TypeError, TypeCancel, TypeGoAway, TypeClose, TypeWant, TypeTake:
	case TypePing, TypePong, TypeChallenge, TypeProof:
		allowed = 0
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrMalformed, uint8(f.Type))
	}
	if continued { // a later chunk: the first one carried the message's flags
		allowed &= FlagPriorityMask | FlagMore
	}
	if f.Flags&^allowed != 0 {
		return fmt.Errorf("%w: %v frame with flags %#02x", ErrMalformed, f.Type, uint8(f.Flags))
	}
	switch f.Type {
	case TypePing, TypePong: // the xid is opaque
	case TypeNotify, TypeGoAway, TypeChallenge, TypeProof:
		if f.XID != 0 {
			return fmt.Errorf("%w: %v frame with xid %d, want 0", ErrMalformed, f.Type, f.XID)
		}
	default:
		if f.XID == 0 {
			return fmt.Errorf("%w: %v frame with xid 0", ErrMalformed, f.Type)
		}
	}
	switch f.Type {
	case TypeCancel, TypeClose, TypePing, TypePong:
		if body != 0 {
			return fmt.Errorf("%w: %v frame with a %d-byte body", ErrMalformed, f.Type, body)
		}
	case TypeWant, TypeTake:
		if body != 4 {
			return fmt.Errorf("%w: %v frame with a %d-byte body, want 4", ErrMalformed, f.Type, body)
		}
	case TypeChallenge, TypeProof:
		return checkAuthBody(f.Type, body)
	}
	return nil
}

// checkAuthBody checks the length of a CHALLENGE's nonce or a PROOF.
func checkAuthBody(typ Type, n int) error {
	if typ == TypeChallenge && (n < NonceSize || n > maxNonceSize) {
		return fmt.Errorf("%w: CHALLENGE with a %d-byte nonce, want %d to %d", ErrMalformed, n, NonceSize, maxNonceSize)
	}
	if typ == TypeProof && n != proofSize {
		return fmt.Errorf("%w: PROOF of %d bytes, want %d", ErrMalformed, n, proofSize)
	}
	return nil
}

func (r *nativeReader) readCall(f *Frame, body int) error {
	fixed := 2
	if f.Flags&FlagDeadline != 0 {
		fixed += 8
	}
	if f.Flags&FlagStream != 0 {
		fixed += 4
	}
	if f.Flags&(FlagKey) != 0 {
		// A key makes the fields' size depend on the body: parse the fields
		// from the body read whole, as for a split message.
		buf, err := r.readBody(body)
		if err != nil {
			return err
		}
		return r.parseBody(f, buf)
	}
	if body < fixed {
		return fmt.Errorf("%w: %v body of %d bytes is shorter than its fixed fields", ErrMalformed, f.Type, body)
	}
	b := r.scratch[:fixed] // the header is parsed already
	if err := r.readFull(b); err != nil {
		return err
	}
	at := 0
	if f.Flags&FlagDeadline != 0 {
		f.Budget = time.Duration(binary.BigEndian.Uint64(b))
		at = 8
	}
	if f.Flags&FlagStream != 0 {
		f.Window = binary.BigEndian.Uint32(b[at:])
	}
	mlen := int(binary.BigEndian.Uint16(b[fixed-2:]))
	if mlen == 0 || mlen > body-fixed {
		return fmt.Errorf("%w: method length %d in a body with %d bytes left", ErrMalformed, mlen, body-fixed)
	}
	if mlen > len(r.method) { // too long for the scratch space
		buf, err := r.readBody(mlen)
		if err != nil {
			return err
		}
		f.Method = string(buf.b)
		putBuffer(buf)
		return r.readPayload(f, body-fixed-mlen)
	}
	name := r.method[:mlen]
	if err := r.readFull(name); err != nil {
		return err
	}
	f.Method = r.intern(name)
	return r.readPayload(f, body-fixed-mlen)
}

// intern returns name as a string, reusing an earlier copy when it has one.
func (r *nativeReader) intern(name []byte) string {
	if s, ok := r.methods[string(name)]; ok {
		return s
	}
	s := string(name)
	if len(r.methods) < maxInterned {
		r.methods[s] = s
	}
	return s
}

// bodyStep is how much the reader allocates for a body ahead of the bytes
// that have arrived: see readBody.
const bodyStep = 64 << 10

// readBody reads the next n bytes of the stream into a pooled buffer. When
// they are all buffered already, or n is at most bodyStep, the buffer has
// n bytes from the start. Otherwise it starts with bodyStep bytes and
// grows fourfold each time it fills, up to n: a peer whose length field
// claims more than it sends makes the reader hold at most four times what
// arrived, or bodyStep, not what the length field says. (Growing fourfold
// rather than twofold copies a third as much: a 1 MiB body is copied
// 320 KiB over instead of 960 KiB.)
func (r *nativeReader) readBody(n int) (*buffer, error) {
	size := n
	if n > r.step && n > r.sr.buffered() {
		size = r.step
	}
	buf := getBuffer(size)
	for have := 0; ; {
		if err := r.readFull(buf.b[have:]); err != nil {
			putBuffer(buf)
			return nil, err
		}
		have = len(buf.b)
		if have == n {
			return buf, nil
		}
		size = min(n, 4*have)
		if size <= cap(buf.b) {
			buf.b = buf.b[:size]
			continue
		}
		next := getBuffer(size)
		copy(next.b, buf.b)
		putBuffer(buf)
		buf = next
	}
}

func (r *nativeReader) readPayload(f *Frame, n int) error {
	if n == 0 {
		return nil
	}
	buf, err := r.readBody(n)
	if err != nil {
		return err
	}
	f.Payload, f.buf = buf.b, buf
	return nil
}

func (r *nativeReader) readError(f *Frame, body int) error {
	buf, err := r.readBody(body)
	if err != nil {
		return err
	}
	defer putBuffer(buf)
	e, err := parseError(buf.b)
	if err != nil {
		return fmt.Errorf("%w: %v body: %v", ErrMalformed, f.Type, err)
	}
	f.Err = e
	return nil
}

// parseError decodes the body of an ERROR or GOAWAY frame.
func parseError(b []byte) (*RemoteError, error) {
	if len(b) < 2+4 {
		return nil, fmt.Errorf("%d bytes, too short for a code and a message length", len(b))
	}
	e := &RemoteError{Code: Code(binary.BigEndian.Uint16(b))}
	b = b[2:]
	var err error
	if e.Message, b, err = lengthPrefixed(b, "message"); err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%d bytes left, too short for a trace length", len(b))
	}
	if e.Trace, b, err = lengthPrefixed(b, "trace"); err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the trace", len(b))
	}
	return e, nil
}

func lengthPrefixed(b []byte, what string) (string, []byte, error) {
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return "", nil, fmt.Errorf("%s length %d with %d bytes left", what, n, len(b))
	}
	return string(b[:n]), b[n:], nil
}
