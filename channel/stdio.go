package channel

import (
	"io"
	"os"
)

// Stdio returns this process's standard input and output as one stream:
// it reads os.Stdin and writes os.Stdout. It is the child's side of a
// parent's mux.Start; serve it with demux.New(channel.Stdio(), h). Nothing
// else in the process may write to os.Stdout while it is in use: log to
// os.Stderr instead.
//
// Close closes os.Stdin and os.Stdout; it is safe to call more than once
// and returns nil when they are already closed. A Read blocked on an
// inherited pipe may not return when os.Stdin is closed, as such reads
// cannot be interrupted; it returns once the parent closes its end, which
// a parent's Mux does when it sees os.Stdout close.
func Stdio() io.ReadWriteCloser {
	return &pipeEnd{r: os.Stdin, w: os.Stdout}
}
