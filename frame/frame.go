package frame

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Type says what a frame is for. The zero Type is invalid on the wire.
type Type uint8

// Frame types. Their numeric values are part of the wire format.
const (
	// TypeRequest asks the peer to run Method with Payload as its argument
	// and to answer with a TypeResponse or TypeError frame carrying the same
	// xid.
	TypeRequest Type = 1
	// TypeNotify is a request that wants no answer. Its xid is 0.
	TypeNotify Type = 2
	// TypeResponse carries a handler's result for the request with the same
	// xid.
	TypeResponse Type = 3
	// TypeError carries a *RemoteError for the request with the same xid.
	TypeError Type = 4
	// TypeCancel tells the server that the caller of request xid has given
	// up. It has no body and no answer.
	TypeCancel Type = 5
	// TypeGoAway tells the client that the server takes no new requests;
	// requests already sent are still answered. Its xid is 0 and its body
	// says why, encoded like an error.
	TypeGoAway Type = 6
	// TypePing asks the peer for a TypePong with the same xid, to learn
	// that it is still there. It has no body; its xid is any 8 bytes the
	// sender picks, 0 included. Only a peer that has turned keepalive on
	// may be sent one (PROTOCOL.md).
	TypePing Type = 7
	// TypePong answers the TypePing with the same xid. It has no body.
	TypePong Type = 8
	// TypeChallenge opens the authentication: its Payload is the sender's
	// nonce, NonceSize to 255 bytes (NonceSize when muxrpc sends it). Its
	// xid is 0.
	TypeChallenge Type = 9
	// TypeProof answers the peer's TypeChallenge: its Payload is the
	// 32-byte proof that [AuthProof] computes. Its xid is 0.
	TypeProof Type = 10
	// TypeYield carries one item of the results of the streaming request
	// with the same xid (a REQUEST with FlagStream), sent in the server's
	// role before the RESPONSE or ERROR that ends the stream. The caller
	// grants the items it takes with TypeWant.
	TypeYield Type = 11
	// TypePush carries one item of the arguments of the request with the
	// same xid, sent in the client's role after its REQUEST. The server
	// grants the items it takes with TypeTake.
	TypePush Type = 12
	// TypeClose says, in the client's role, that no TypePush follows for
	// the request with the same xid. It has no body.
	TypeClose Type = 13
	// TypeWant grants, in the client's role, Window more TypeYield frames
	// for the request with the same xid.
	TypeWant Type = 14
	// TypeTake grants, in the server's role, Window more TypePush frames
	// for the request with the same xid.
	TypeTake Type = 15
)

// String returns the frame type's name, such as "REQUEST".
func (t Type) String() string {
	switch t {
	case TypeRequest:
		return "REQUEST"
	case TypeNotify:
		return "NOTIFY"
	case TypeResponse:
		return "RESPONSE"
	case TypeError:
		return "ERROR"
	case TypeCancel:
		return "CANCEL"
	case TypeGoAway:
		return "GOAWAY"
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeChallenge:
		return "CHALLENGE"
	case TypeProof:
		return "PROOF"
	case TypeYield:
		return "YIELD"
	case TypePush:
		return "PUSH"
	case TypeClose:
		return "CLOSE"
	case TypeWant:
		return "WANT"
	case TypeTake:
		return "TAKE"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Flags modify a frame. Bits a version does not define must be zero.
type Flags uint8

// Frame flags.
const (
	// FlagDeadline marks a REQUEST or NOTIFY whose body starts with the
	// caller's remaining time budget.
	FlagDeadline Flags = 1 << 0
	// FlagPriorityMask covers the two bits of a frame's [Priority]; see
	// [Flags.Priority]. They are zero on PING, PONG, CHALLENGE and PROOF.
	FlagPriorityMask Flags = 3 << 1
	// FlagKey marks a REQUEST or NOTIFY whose body carries an ordering key
	// (Frame.Key): requests with the same key run one at a time, in the
	// order they arrived.
	FlagKey Flags = 1 << 3
	// FlagStream marks a REQUEST whose caller takes a stream of results:
	// its body carries the number of YIELD frames the caller takes before
	// it grants more (Frame.Window).
	FlagStream Flags = 1 << 4
	// FlagMore marks a chunk of a message split over several frames: the
	// body goes on in the next frame of the same type and xid. The first
	// chunk opens with the length of the whole body; the last chunk has
	// FlagMore clear. Only REQUEST, NOTIFY, RESPONSE, YIELD and PUSH
	// are split.
	FlagMore Flags = 1 << 7
)

// Priority orders the frames waiting to be written and the requests
// waiting to run: higher first. The zero Priority is PriorityNormal.
type Priority int8

// Priorities, lowest first. Their wire values are in PROTOCOL.md.
const (
	PriorityLow    Priority = -1
	PriorityNormal Priority = 0
	PriorityHigh   Priority = 1
	PriorityUrgent Priority = 2
)

// String returns the priority's name, such as "high".
func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityUrgent:
		return "urgent"
	}
	return fmt.Sprintf("Priority(%d)", int8(p))
}

// Priority decodes the priority bits: 0 normal, 1 high, 2 urgent, 3 low.
func (f Flags) Priority() Priority {
	switch f & FlagPriorityMask >> 1 {
	case 1:
		return PriorityHigh
	case 2:
		return PriorityUrgent
	case 3:
		return PriorityLow
	}
	return PriorityNormal
}

// WithPriority returns f with its priority bits set to p; a p outside the
// four priorities is clamped to the nearest.
func (f Flags) WithPriority(p Priority) Flags {
	var bits Flags
	switch {
	case p < PriorityNormal:
		bits = 3
	case p == PriorityHigh:
		bits = 1
	case p > PriorityHigh:
		bits = 2
	}
	return f&^FlagPriorityMask | bits<<1
}

// Limits of the wire format.
const (
	// HeaderSize is the size of the fixed frame header: the 4-byte length,
	// the type, the flags and the 8-byte xid.
	HeaderSize = 14
	// MinFrameSize is the smallest value of the length field: type, flags
	// and xid.
	MinFrameSize = HeaderSize - 4
	// DefaultMaxFrameSize is the largest length field accepted when no other
	// limit is configured: 16 MiB.
	DefaultMaxFrameSize = 16 << 20
	// MaxMethodLen is the longest method name the 16-bit length can carry.
	MaxMethodLen = 1<<16 - 1
	// MaxMessageLen bounds the message and the trace of a RemoteError: a
	// longer one is cut to this many bytes when encoded.
	MaxMessageLen = 64 << 10
	// MaxKeyLen is the longest ordering key the 8-bit length can carry.
	MaxKeyLen = 255
	// MaxPartial is the most split messages a sender may have begun and
	// not finished at once; a receiver rejects one more.
	MaxPartial = 256
)

// Errors returned by the codec. Decoding errors wrap ErrMalformed or
// ErrTooLarge, so errors.Is tells a protocol violation from an I/O error.
var (
	// ErrTooLarge is returned for a frame whose length exceeds the limit,
	// both when reading (before anything is allocated) and when sending.
	ErrTooLarge = errors.New("frame: too large")
	// ErrMalformed is returned for bytes that do not form a valid frame or
	// payload.
	ErrMalformed = errors.New("frame: malformed")
	// ErrBadPreface is returned when the peer's first bytes are not a
	// muxrpc preface: the peer speaks another protocol.
	ErrBadPreface = errors.New("frame: peer is not muxrpc")
	// ErrVersion is returned when the peer's preface names a protocol
	// version this package does not speak.
	ErrVersion = errors.New("frame: unsupported protocol version")
)

// Frame is one decoded or to-be-encoded frame. Which fields matter depends
// on Type; the others are zero.
//
// Payload may live in a pooled buffer (see [Frame.EncodePayload] and
// [Reader.ReadFrame]); whoever holds the frame last calls [Frame.Release].
// A Frame is not safe for concurrent use.
type Frame struct {
	Type  Type
	Flags Flags
	// Window is the number of YIELD frames a REQUEST with FlagStream
	// lets the server send before it waits for a WANT, or the number of
	// frames a WANT or TAKE grants.
	Window uint32
	// XID ties a response, error or cancel to its request, or a PONG to
	// its PING. Requests use non-zero xids; NOTIFY, GOAWAY, CHALLENGE and
	// PROOF carry 0.
	XID uint64
	// Method names the procedure of a REQUEST or NOTIFY.
	Method string
	// Key is the ordering key of a REQUEST or NOTIFY with FlagKey, 1 to
	// MaxKeyLen bytes.
	Key string
	// Budget is the caller's remaining time when it sent the request; it is
	// meaningful when Flags has FlagDeadline.
	Budget time.Duration
	// Payload is the msgpack-encoded argument (REQUEST, NOTIFY) or result
	// (RESPONSE), the nonce of a CHALLENGE or the proof of a PROOF.
	Payload []byte
	// Err is the error of an ERROR frame or the reason of a GOAWAY.
	Err *RemoteError

	buf *buffer    // owner of Payload's bytes, if pooled
	ref *reference // the rest of the payload, referred to (ReferBytes)
}

// reference is the part of a payload that a frame refers to instead of
// holding it (Frame.ReferBytes). It sits behind a pointer so that frames
// without one, which are nearly all, stay small.
type reference struct {
	tail     []byte
	released *sync.WaitGroup // told when the frame lets go of tail
}

// tail returns the referred-to rest of f's payload, if any.
func (f *Frame) tail() []byte {
	if f.ref == nil {
		return nil
	}
	return f.ref.tail
}

// Release returns the frame's pooled buffer, if any, and clears Payload.
// Call it once, when nothing refers to Payload any more.
func (f *Frame) Release() {
	if f.buf != nil {
		putBuffer(f.buf)
		f.buf = nil
	}
	f.Payload = nil
	if f.ref != nil {
		f.ref.released.Done()
		f.ref = nil
	}
}

// ReferBytes makes b, msgpack-encoded exactly as EncodePayload encodes a
// []byte, f's payload without copying b: Payload holds only the encoding's
// header, and the frame refers to b for the rest until it is released. b
// must not change until then. ReferBytes calls released.Add(1) and Release
// calls released.Done(), so that released.Wait returns once the frame has
// let go of b. Only the [Native] codec writes such a frame (the bytes it
// writes are the same as for EncodePayload); for a nil or empty b,
// ReferBytes encodes as EncodePayload does.
func (f *Frame) ReferBytes(b []byte, released *sync.WaitGroup) {
	f.Release()
	if len(b) == 0 {
		f.buf = encodeBytes(b)
		f.Payload = f.buf.b
		return
	}
	h := binHeaderLen(len(b))
	f.buf = getBuffer(h)
	putBinHeader(f.buf.b[:h], len(b))
	f.Payload = f.buf.b[:h]
	f.ref = &reference{tail: b, released: released}
	released.Add(1)
}

// KeepPayload makes f a new frame of type typ for xid that keeps f's
// payload and its ownership, with every other field zero: a server
// answers in the frame its request came in.
func (f *Frame) KeepPayload(typ Type, xid uint64) {
	*f = Frame{Type: typ, XID: xid, Payload: f.Payload, buf: f.buf, ref: f.ref}
}

// String describes the frame for logs, without its payload bytes: a
// CHALLENGE or PROOF shows only the length of its nonce or proof.
func (f *Frame) String() string {
	s := fmt.Sprintf("%v xid=%d", f.Type, f.XID)
	if f.Method != "" {
		s += fmt.Sprintf(" method=%q", f.Method)
	}
	if f.Flags&FlagKey != 0 {
		s += fmt.Sprintf(" key=%q", f.Key)
	}
	if p := f.Flags.Priority(); p != PriorityNormal {
		s += fmt.Sprintf(" priority=%v", p)
	}
	if f.Flags&FlagStream != 0 || f.Type == TypeWant || f.Type == TypeTake {
		s += fmt.Sprintf(" window=%d", f.Window)
	}
	if f.Flags&FlagDeadline != 0 {
		s += fmt.Sprintf(" budget=%v", f.Budget)
	}
	if f.Err != nil {
		s += fmt.Sprintf(" err=%q", f.Err.Error())
	}
	switch f.Type {
	case TypePing, TypePong, TypeCancel, TypeClose, TypeWant, TypeTake:
		return s
	case TypeChallenge:
		return s + fmt.Sprintf(" nonce=%dB", len(f.Payload))
	case TypeProof:
		return s + fmt.Sprintf(" proof=%dB", len(f.Payload))
	}
	return s + fmt.Sprintf(" payload=%dB", len(f.Payload)+len(f.tail()))
}
