package channel_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
)

// queued returns a Conn over a pipe with fs queued before its writer
// starts, so that the writer takes them all in one batch, and the raw bytes
// its peer receives once the Conn has written everything and closed.
func queued(t *testing.T, cfg channel.Config, fs ...frame.Frame) []byte {
	t.Helper()
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	cfg.QueueDelay = -1 // the peer reads raw bytes: it answers no PING
	c := channel.New(a, cfg)
	ctx := rpctest.Context(t)
	for i := range fs {
		require.NoError(t, c.Send(ctx, &fs[i]))
	}
	done := serve(c)
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	require.NoError(t, c.Drain(ctx))
	require.NoError(t, c.Close())
	require.ErrorIs(t, rpctest.Await(t, done, "Serve did not return after Close"), channel.ErrClosed)
	all := rpctest.Await(t, got, "the peer did not read to the end of the stream")
	b.Close()
	require.True(t, bytes.HasPrefix(all, frame.Preface[:]), "the preface first")
	return all[len(frame.Preface):]
}

// rawFrame is one frame as it was on the wire.
type rawFrame struct {
	typ   frame.Type
	flags frame.Flags
	xid   uint64
	body  int
}

// rawFrames splits the bytes of a stream after its preface into frames.
func rawFrames(t *testing.T, b []byte) []rawFrame {
	var out []rawFrame
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), frame.HeaderSize)
		n := int(binary.BigEndian.Uint32(b))
		out = append(out, rawFrame{frame.Type(b[4]), frame.Flags(b[5]), binary.BigEndian.Uint64(b[6:]), n - frame.MinFrameSize})
		b = b[4+n:]
	}
	return out
}

// joined reads the frames of b as a receiver does, joining split messages.
func joined(t *testing.T, b []byte) []frame.Frame {
	r := frame.Native.NewReader(bytes.NewReader(b), 0)
	var out []frame.Frame
	for {
		var f frame.Frame
		err := r.ReadFrame(&f)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		f.Payload = bytes.Clone(f.Payload)
		out = append(out, f)
	}
}

func response(xid uint64, n int) frame.Frame {
	f := rpctest.Response(xid, bytes.Repeat([]byte{'x'}, n))
	return f
}

// TestSmallFrameOvertakesSplitMessage queues a 100 KiB response and a
// small one behind it: the small one leaves after the big one's first
// chunk, and the big one arrives whole.
func TestSmallFrameOvertakesSplitMessage(t *testing.T) {
	const chunk = 4096
	wire := queued(t, channel.Config{ChunkSize: chunk}, response(1, 100<<10), response(2, 10))
	frames := rawFrames(t, wire)
	require.Greater(t, len(frames), 25, "the big response leaves in chunks")
	for i, f := range frames {
		piece := f.body
		if i == 1 {
			piece -= 4 // the first chunk opens with the message's length
		}
		assert.LessOrEqual(t, piece, chunk, "frame %d", i)
	}
	// The writer takes whole frames ahead of the chunks of a split message.
	assert.Equal(t, uint64(2), frames[0].xid, "the small response first")
	assert.Equal(t, frame.FlagMore, frames[1].flags&frame.FlagMore)
	assert.Zero(t, frames[len(frames)-1].flags&frame.FlagMore, "the last chunk ends the message")

	got := joined(t, wire)
	require.Len(t, got, 2)
	assert.Equal(t, uint64(2), got[0].XID)
	assert.Equal(t, uint64(1), got[1].XID)
	var payload []byte
	require.NoError(t, frame.DecodePayload(got[1].Payload, &payload))
	assert.Equal(t, bytes.Repeat([]byte{'x'}, 100<<10), payload, "joined whole")
}

// TestSplitMessagesTakeTurns queues two split responses: each goes whole
// before the other while it is shorter than a turn (1 MiB) or at most a
// quarter turn longer, and longer ones take turns of 1 MiB, the last of
// which takes in a remainder of up to a quarter turn.
func TestSplitMessagesTakeTurns(t *testing.T) {
	xids := func(frames []rawFrame) []uint64 {
		var out []uint64
		for _, f := range frames {
			out = append(out, f.xid)
		}
		return out
	}
	frames := rawFrames(t, queued(t, channel.Config{ChunkSize: 1024}, response(1, 8<<10), response(2, 8<<10)))
	want := []uint64{}
	for range 9 { // 8 KiB and the payload's header: 9 chunks
		want = append(want, 1)
	}
	for range 9 {
		want = append(want, 2)
	}
	assert.Equal(t, want, xids(frames), "one after the other")

	const chunk = 256 << 10
	runs := func(runs ...[2]int) []uint64 { // runs of {xid, chunks}
		var out []uint64
		for _, r := range runs {
			for range r[1] {
				out = append(out, uint64(r[0]))
			}
		}
		return out
	}
	cfg := channel.Config{ChunkSize: chunk, QueueBytes: 8 << 20}
	// 1 MiB and a payload header: four chunks make a turn, and the few
	// bytes left go with them rather than behind the other message.
	frames = rawFrames(t, queued(t, cfg, response(1, 1<<20), response(2, 1<<20)))
	assert.Equal(t, runs([2]int{1, 5}, [2]int{2, 5}), xids(frames), "a message just over a turn goes whole")

	frames = rawFrames(t, queued(t, cfg, response(1, 2<<20), response(2, 2<<20)))
	assert.Equal(t, runs([2]int{1, 4}, [2]int{2, 4}, [2]int{1, 5}, [2]int{2, 5}), xids(frames),
		"turns of 1 MiB, the last with the header's bytes")

	frames = rawFrames(t, queued(t, cfg, response(1, 1<<20+splitTail+1), response(2, 1<<20)))
	assert.Equal(t, runs([2]int{1, 4}, [2]int{2, 5}, [2]int{1, 2}), xids(frames),
		"more than a quarter turn left: the other message goes first")
}

// splitTail is how much of a split message may be left at the end of its
// turn for it to finish in that turn (channel's splitTail).
const splitTail = 256 << 10

// TestWholeMessagesWithoutSplitting checks that a frame up to the chunk
// size leaves whole.
func TestWholeMessagesWithoutSplitting(t *testing.T) {
	frames := rawFrames(t, queued(t, channel.Config{ChunkSize: 64 << 10}, response(1, 60<<10)))
	require.Len(t, frames, 1)
	assert.Zero(t, frames[0].flags&frame.FlagMore)
}

func withPriority(f frame.Frame, p frame.Priority) frame.Frame {
	f.Flags = f.Flags.WithPriority(p)
	return f
}

// TestPriorityOrder queues frames of every priority: they leave urgent
// first, low last, and in the order queued within a priority.
func TestPriorityOrder(t *testing.T) {
	fs := []frame.Frame{
		withPriority(*cancelFrame(1), frame.PriorityLow),
		*cancelFrame(2),
		*cancelFrame(3),
		withPriority(*cancelFrame(4), frame.PriorityHigh),
		withPriority(*cancelFrame(5), frame.PriorityUrgent),
		*cancelFrame(6),
	}
	var order []uint64
	for _, f := range rawFrames(t, queued(t, channel.Config{}, fs...)) {
		order = append(order, f.xid)
	}
	assert.Equal(t, []uint64{5, 4, 2, 3, 6, 1}, order)
}

// TestLowPriorityIsNotStarved queues one low-priority frame before 30
// urgent ones: it leaves after at most 8 of them.
func TestLowPriorityIsNotStarved(t *testing.T) {
	fs := []frame.Frame{withPriority(*cancelFrame(100), frame.PriorityLow)}
	for i := range 30 {
		fs = append(fs, withPriority(*cancelFrame(uint64(i + 1)), frame.PriorityUrgent))
	}
	frames := rawFrames(t, queued(t, channel.Config{}, fs...))
	at := -1
	for i, f := range frames {
		if f.xid == 100 {
			at = i
		}
	}
	assert.Equal(t, 8, at, "the low frame goes once 8 urgent ones have passed it")
}

// TestFlowKeepsItsOrder checks that the frames of one request keep their
// order even when a split message holds up the first: a CANCEL waits for
// the end of its split REQUEST, and a NOTIFY for the end of a split NOTIFY,
// while the frames of other requests overtake them.
func TestFlowKeepsItsOrder(t *testing.T) {
	big := rpctest.Request(1, "Big.Call", bytes.Repeat([]byte{1}, 20<<10))
	note := rpctest.Request(0, "Big.Call", bytes.Repeat([]byte{1}, 20<<10))
	note.Type = frame.TypeNotify
	smallNote := rpctest.Request(0, "log", "hi")
	smallNote.Type = frame.TypeNotify
	fs := []frame.Frame{big, *cancelFrame(1), note, smallNote, *cancelFrame(7)}
	got := joined(t, queued(t, channel.Config{ChunkSize: 1024}, fs...))
	var order []string
	for _, f := range got {
		order = append(order, f.Type.String()+" "+f.Method)
	}
	assert.Equal(t, []string{"CANCEL ", "REQUEST Big.Call", "CANCEL ", "NOTIFY Big.Call", "NOTIFY log"}, order)
	assert.Equal(t, uint64(7), got[0].XID, "the unrelated CANCEL overtakes")
}

// TestWriterKeepsEveryFlowsOrder queues random mixes of frames of several
// requests in both roles, each request at a random priority (as mux and
// demux send them: all of a request's frames at its priority), at sizes
// around the chunk size, and checks that each arrives whole, once, and
// that the frames of each request in each role arrive in the order they
// were queued.
func TestWriterKeepsEveryFlowsOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	types := []frame.Type{frame.TypeRequest, frame.TypePush, frame.TypeCancel, frame.TypeResponse, frame.TypeYield}
	for round := range 50 {
		var fs []frame.Frame
		prio := map[uint64]frame.Priority{}
		for xid := uint64(1); xid <= 4; xid++ {
			prio[xid] = frame.Priority(rnd.IntN(4) - 1)
		}
		for i := range 40 {
			typ := types[rnd.IntN(len(types))]
			f := frame.Frame{Type: typ, XID: uint64(1 + rnd.IntN(4))}
			if typ != frame.TypeCancel {
				n := rnd.IntN(3000)
				f.Payload = bytes.Repeat([]byte{0xc0}, n) // n msgpack nils: not one value, but the writer does not look
				f.Payload = append(f.Payload, byte(i))
			}
			if typ == frame.TypeRequest {
				f.Method = fmt.Sprint("m", i)
			}
			f.Flags = f.Flags.WithPriority(prio[f.XID])
			fs = append(fs, f)
		}
		want := map[string][]string{} // flow -> the frames' identities in order
		id := func(f *frame.Frame) string {
			if len(f.Payload) == 0 {
				return fmt.Sprintf("%v %d", f.Type, f.XID)
			}
			return fmt.Sprintf("%v %d #%d len %d", f.Type, f.XID, f.Payload[len(f.Payload)-1], len(f.Payload))
		}
		flowOf := func(f *frame.Frame) string {
			server := f.Type == frame.TypeResponse || f.Type == frame.TypeYield
			return fmt.Sprint(server, f.XID)
		}
		for i := range fs {
			want[flowOf(&fs[i])] = append(want[flowOf(&fs[i])], id(&fs[i]))
		}
		got := map[string][]string{}
		for _, f := range joined(t, queued(t, channel.Config{ChunkSize: 1024}, fs...)) {
			got[flowOf(&f)] = append(got[flowOf(&f)], id(&f))
		}
		require.Equal(t, want, got, "round %d", round)
	}
}

// TestPacedChunksWaitForTheReader checks pacing end to end: while the
// receiver does not read (its handler is stuck), the sender has at most
// one window of chunks in flight, one chunk at first, however large the
// message, and frames written whole still leave; once the receiver reads
// again, the message arrives whole.
func TestPacedChunksWaitForTheReader(t *testing.T) {
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	const chunk = 4 << 10
	sender := channel.New(a, channel.Config{ChunkSize: chunk})
	receiver := channel.New(b, channel.Config{})
	gate := make(chan struct{})
	got := make(chan frame.Frame, 16)
	received := make(chan error, 1)
	go func() {
		received <- receiver.Serve(func(f *frame.Frame) error {
			if f.XID == 1 {
				<-gate // the reader stops here: no PONG, no more reading
			}
			g := *f
			g.Payload = bytes.Clone(f.Payload)
			f.Release()
			got <- g
			return nil
		})
	}()
	sent := serve(sender)
	ctx := rpctest.Context(t)
	stuck := response(1, 10)
	require.NoError(t, sender.Send(ctx, &stuck))
	big := response(2, 1<<20)
	require.NoError(t, sender.Send(ctx, &big))
	waitUntil(t, "the sender to stop with its window full", func() bool {
		inFlight, window := sender.InFlight()
		return inFlight > 0 && inFlight+chunk > window
	})
	inFlight, window := sender.InFlight()
	assert.LessOrEqual(t, inFlight, window, "no more than the window in flight")
	assert.LessOrEqual(t, window, int64(2*chunk), "the first window: a chunk or two")
	small := response(3, 10)
	require.NoError(t, sender.Send(ctx, &small))
	close(gate)
	var order []uint64
	seen := map[uint64]int{}
	for range 3 {
		select {
		case f := <-got:
			order = append(order, f.XID)
			seen[f.XID] = len(f.Payload)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v; the rest did not arrive within 10 s of the reader going on", seen)
		}
	}
	assert.Equal(t, []uint64{1, 3, 2}, order, "the small frame left while the big one waited for its window")
	assert.Equal(t, map[uint64]int{1: 12, 2: 1<<20 + 5, 3: 12}, seen, "each whole (bin8 of 10 is 12 bytes, bin32 of 1 MiB 5 more)")
	require.NoError(t, sender.Close())
	require.ErrorIs(t, rpctest.Await(t, sent, "the sender's Serve did not return after Close"), channel.ErrClosed)
	receiver.Close()
	rpctest.Await(t, received, "the receiver's Serve did not return after Close")
}

// pongingPeer plays the receiving end of a over the raw bytes of b: it
// sends the preface, answers every PING with its PONG, and once the
// stream ends returns the frames it read, as they were on the wire.
func pongingPeer(b io.ReadWriteCloser) <-chan []rawFrame {
	out := make(chan []rawFrame, 1)
	go func() {
		defer b.Close()
		var frames []rawFrame
		defer func() { out <- frames }()
		if _, err := b.Write(frame.Preface[:]); err != nil {
			return
		}
		if _, err := io.ReadFull(b, make([]byte, len(frame.Preface))); err != nil {
			return
		}
		hdr := make([]byte, frame.HeaderSize)
		for {
			if _, err := io.ReadFull(b, hdr); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint32(hdr))
			f := rawFrame{frame.Type(hdr[4]), frame.Flags(hdr[5]), binary.BigEndian.Uint64(hdr[6:]), n - frame.MinFrameSize}
			if _, err := io.CopyN(io.Discard, b, int64(f.body)); err != nil {
				return
			}
			frames = append(frames, f)
			if f.typ == frame.TypePing {
				pong := binary.BigEndian.AppendUint32(nil, frame.MinFrameSize)
				pong = append(pong, byte(frame.TypePong), 0)
				pong = binary.BigEndian.AppendUint64(pong, f.xid)
				if _, err := b.Write(pong); err != nil {
					return
				}
			}
		}
	}()
	return out
}

// chunkPieces sends fs through a paced Conn whose peer answers its PINGs,
// and returns the size of each chunk's piece of body as it left, in
// order.
func chunkPieces(t *testing.T, chunk int, fs ...frame.Frame) []int {
	t.Helper()
	a, b, err := channel.Pipe()
	require.NoError(t, err)
	// A long queue delay: the window grows with every PONG, however
	// loaded the machine.
	c := channel.New(a, channel.Config{ChunkSize: chunk, QueueDelay: time.Minute, QueueBytes: 64 << 20})
	peer := pongingPeer(b)
	done := serve(c)
	ctx := rpctest.Context(t)
	for i := range fs {
		require.NoError(t, c.Send(ctx, &fs[i]))
	}
	require.NoError(t, c.Drain(ctx))
	require.NoError(t, c.Close())
	require.ErrorIs(t, rpctest.Await(t, done, "Serve did not return after Close"), channel.ErrClosed)
	var frames []rawFrame
	select {
	case frames = <-peer:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer did not see the stream end within 10 s of Close")
	}
	var pieces []int
	open := map[uint64]bool{}
	for _, f := range frames {
		if f.typ != frame.TypeResponse || (!open[f.xid] && f.flags&frame.FlagMore == 0) {
			continue
		}
		piece := f.body
		if !open[f.xid] {
			piece -= 4 // the first chunk opens with the message's length
		}
		open[f.xid] = f.flags&frame.FlagMore != 0
		pieces = append(pieces, piece)
	}
	return pieces
}

// TestChunksGrowWhenAloneOnTheStream checks that while only split messages
// are written, their chunks grow with the pace's window, up to 16 chunk
// sizes, and that while frames written whole share the stream they stay
// at the chunk size.
func TestChunksGrowWhenAloneOnTheStream(t *testing.T) {
	const chunk = 1024
	bulk := func() []frame.Frame { // Send takes the frames: new ones each time
		var fs []frame.Frame
		for xid := range uint64(4) {
			fs = append(fs, response(xid+1, 512<<10))
		}
		return fs
	}
	pieces := chunkPieces(t, chunk, bulk()...)
	require.NotEmpty(t, pieces)
	assert.Equal(t, chunk, pieces[0], "the first chunk: the window is one chunk")
	assert.Greater(t, slices.Max(pieces), chunk, "grown with the window")
	assert.LessOrEqual(t, slices.Max(pieces), 16*chunk, "up to 16 chunks")

	// A small frame ahead of 2 MiB of split messages: the stream is
	// shared for the next 4 MiB of them.
	mixed := append([]frame.Frame{response(100, 10)}, bulk()...)
	pieces = chunkPieces(t, chunk, mixed...)
	require.NotEmpty(t, pieces)
	assert.Equal(t, chunk, slices.Max(pieces), "every chunk at the chunk size")
}
