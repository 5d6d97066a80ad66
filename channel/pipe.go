package channel

import (
	"errors"
	"io"
	"os"
)

// Pipe returns two connected streams built on OS pipes: what is written to
// a is read from b and the other way round. Closing either end closes both
// of its file descriptors, so the other end reads io.EOF and its writes fail.
func Pipe() (a, b io.ReadWriteCloser, err error) {
	ar, bw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	br, aw, err := os.Pipe()
	if err != nil {
		ar.Close()
		bw.Close()
		return nil, nil, err
	}
	return &pipeEnd{r: ar, w: aw}, &pipeEnd{r: br, w: bw}, nil
}

// pipeEnd is one side of Pipe: it reads one OS pipe and writes the other.
type pipeEnd struct {
	r *os.File
	w *os.File
}

func (p *pipeEnd) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeEnd) Write(b []byte) (int, error) { return p.w.Write(b) }

// Close closes both descriptors; it is safe to call more than once.
func (p *pipeEnd) Close() error {
	err := errors.Join(p.r.Close(), p.w.Close())
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
