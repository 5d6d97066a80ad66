package systems

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
)

// Raw is the baseline: the least an RPC system over one stream must do,
// written for this benchmark. A frame is a 4-byte big-endian length (of
// what follows), an 8-byte id and the payload. Callers queue frames for one
// writer goroutine that writes everything queued into a 64 KiB buffered
// writer and flushes when the queue runs dry; a reader goroutine routes each
// reply by id to its caller. The server reads frames and queues each one,
// unchanged, for its own writer of the same kind: no handler goroutine, no
// codec.
//
// With Yield, a writer that finds its queue empty calls runtime.Gosched
// once and looks again before flushing, so that goroutines just woken by
// replies can join the write (what muxrpc's writer does).
type Raw struct{ Yield bool }

// Name implements System.
func (r Raw) Name() string {
	if r.Yield {
		return "raw-yield"
	}
	return "raw"
}

// Note implements System.
func (r Raw) Note() string {
	s := "baseline written here: 12-byte header (length, id) + payload; one coalescing writer goroutine per end (64 KiB bufio), one reader per end routing replies by id; server echoes on its reader goroutine"
	if r.Yield {
		s += "; the writer yields once (runtime.Gosched) before each flush and looks at its queue again"
	} else {
		s += "; the writer flushes as soon as its queue is empty"
	}
	return s
}

const rawHeader = 12

// rawMaxFrame bounds a frame's length field, as any reader must.
const rawMaxFrame = 64 << 20

var errRawClosed = errors.New("raw: connection closed")

// rawItem is one frame waiting for a writer.
type rawItem struct {
	id      uint64
	payload []byte
	buf     *rawBuf // returned to its pool once written; nil on the client
}

// rawBuf is a pooled server-side payload buffer.
type rawBuf struct{ b []byte }

var rawBufPool = sync.Pool{New: func() any { return new(rawBuf) }}

// rawWriter is one end's writer goroutine and its queue.
type rawWriter struct {
	w     *bufio.Writer
	yield bool
	wake  chan struct{}
	done  chan struct{} // closed when the writer has exited

	mu     sync.Mutex
	queue  []rawItem
	err    error
	closed bool
}

func newRawWriter(w io.Writer, yield bool) *rawWriter {
	rw := &rawWriter{
		w:     bufio.NewWriterSize(w, 64<<10),
		yield: yield,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go rw.loop()
	return rw
}

// send queues a frame; the writer owns it from now on.
func (rw *rawWriter) send(it rawItem) error {
	rw.mu.Lock()
	if rw.err != nil || rw.closed {
		err := rw.err
		rw.mu.Unlock()
		if it.buf != nil {
			rawBufPool.Put(it.buf)
		}
		if err == nil {
			err = errRawClosed
		}
		return err
	}
	rw.queue = append(rw.queue, it)
	rw.mu.Unlock()
	select {
	case rw.wake <- struct{}{}:
	default:
	}
	return nil
}

// stop makes the writer exit once it has written what is queued (or at
// once if it cannot write).
func (rw *rawWriter) stop() {
	rw.mu.Lock()
	rw.closed = true
	rw.mu.Unlock()
	select {
	case rw.wake <- struct{}{}:
	default:
	}
	<-rw.done
}

func (rw *rawWriter) loop() {
	defer close(rw.done)
	var batch []rawItem
	var hdr [rawHeader]byte
	for {
		<-rw.wake
		yielded := false
		for {
			rw.mu.Lock()
			batch, rw.queue = rw.queue, batch[:0]
			closed := rw.closed
			rw.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					rw.fail(rw.w.Flush())
					return
				}
				if !rw.yield || yielded {
					break
				}
				yielded = true
				runtime.Gosched()
				continue
			}
			yielded = false
			var err error
			for i := range batch {
				it := &batch[i]
				if err == nil {
					binary.BigEndian.PutUint32(hdr[:4], uint32(8+len(it.payload)))
					binary.BigEndian.PutUint64(hdr[4:], it.id)
					if _, err = rw.w.Write(hdr[:]); err == nil {
						_, err = rw.w.Write(it.payload)
					}
				}
				if it.buf != nil {
					rawBufPool.Put(it.buf)
				}
				*it = rawItem{}
			}
			if err != nil {
				rw.fail(err)
				return
			}
		}
		if err := rw.w.Flush(); err != nil {
			rw.fail(err)
			return
		}
	}
}

// fail records the writer's error; queued frames are dropped.
func (rw *rawWriter) fail(err error) {
	if err == nil {
		return
	}
	rw.mu.Lock()
	if rw.err == nil {
		rw.err = err
	}
	for _, it := range rw.queue {
		if it.buf != nil {
			rawBufPool.Put(it.buf)
		}
	}
	rw.queue = nil
	rw.mu.Unlock()
}

// readFrame reads one frame's header and returns its id and payload length.
func readFrameHeader(r *bufio.Reader, hdr *[rawHeader]byte) (id uint64, n int, err error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 8 || size > rawMaxFrame {
		return 0, 0, fmt.Errorf("raw: bad frame length %d", size)
	}
	return binary.BigEndian.Uint64(hdr[4:]), int(size) - 8, nil
}

// grow returns b resized to n bytes, reusing its capacity if it can.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n)
}

// Start implements System.
func (r Raw) Start(client, server net.Conn) (Caller, io.Closer, error) {
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		rawServe(server, r.Yield)
	}()
	c := newRawClient(client, r.Yield)
	closer := closerFunc(func() error {
		err := c.close()
		<-srvDone
		return err
	})
	return c, closer, nil
}

// rawServe echoes every frame read from conn until it fails, then closes
// conn and waits for its writer.
func rawServe(conn net.Conn, yield bool) {
	w := newRawWriter(conn, yield)
	br := bufio.NewReaderSize(conn, 64<<10)
	var hdr [rawHeader]byte
	for {
		id, n, err := readFrameHeader(br, &hdr)
		if err != nil {
			break
		}
		buf := rawBufPool.Get().(*rawBuf)
		buf.b = grow(buf.b, n)
		if _, err := io.ReadFull(br, buf.b); err != nil {
			rawBufPool.Put(buf)
			break
		}
		if err := w.send(rawItem{id: id, payload: buf.b, buf: buf}); err != nil {
			break
		}
	}
	conn.Close()
	w.stop()
}

// rawCall is one call waiting for its reply.
type rawCall struct {
	done  chan struct{} // one token when reply or err is set
	reply []byte
	err   error
}

var rawCallPool = sync.Pool{New: func() any { return &rawCall{done: make(chan struct{}, 1)} }}

// rawClient is the client end of the raw baseline.
type rawClient struct {
	conn       net.Conn
	w          *rawWriter
	readerDone chan struct{}

	mu      sync.Mutex
	pending map[uint64]*rawCall
	lastID  uint64
	err     error
}

func newRawClient(conn net.Conn, yield bool) *rawClient {
	c := &rawClient{
		conn:       conn,
		w:          newRawWriter(conn, yield),
		readerDone: make(chan struct{}),
		pending:    make(map[uint64]*rawCall),
	}
	go c.read()
	return c
}

// Echo implements Caller. The reply is read straight into buf when it has
// room.
func (c *rawClient) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	call := rawCallPool.Get().(*rawCall)
	call.reply = buf
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		rawCallPool.Put(call)
		return nil, err
	}
	c.lastID++
	id := c.lastID
	c.pending[id] = call
	c.mu.Unlock()
	if err := c.w.send(rawItem{id: id, payload: in}); err != nil {
		c.mu.Lock()
		_, mine := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if mine {
			rawCallPool.Put(call)
			return nil, err
		}
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		c.mu.Lock()
		_, mine := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if mine {
			rawCallPool.Put(call)
			return nil, ctx.Err()
		}
		<-call.done
	}
	reply, err := call.reply, call.err
	*call = rawCall{done: call.done}
	rawCallPool.Put(call)
	return reply, err
}

// read routes replies to their callers until the stream fails, then fails
// every waiting call.
func (c *rawClient) read() {
	defer close(c.readerDone)
	br := bufio.NewReaderSize(c.conn, 64<<10)
	var hdr [rawHeader]byte
	var err error
	var discard []byte
	for {
		var id uint64
		var n int
		id, n, err = readFrameHeader(br, &hdr)
		if err != nil {
			break
		}
		c.mu.Lock()
		call := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if call == nil { // its caller gave up
			discard = grow(discard, n)
			if _, err = io.ReadFull(br, discard); err != nil {
				break
			}
			continue
		}
		call.reply = grow(call.reply, n)
		if _, err = io.ReadFull(br, call.reply); err != nil {
			call.err = err
			call.done <- struct{}{}
			break
		}
		call.done <- struct{}{}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", errRawClosed, err)
	}
	pending := c.pending
	c.pending = make(map[uint64]*rawCall)
	cerr := c.err
	c.mu.Unlock()
	for _, call := range pending {
		call.err = cerr
		call.done <- struct{}{}
	}
}

// close closes the stream and waits for the reader and the writer.
func (c *rawClient) close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = errRawClosed
	}
	c.mu.Unlock()
	err := c.conn.Close()
	<-c.readerDone
	c.w.stop()
	return err
}
