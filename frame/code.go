package frame

import (
	"context"
	"fmt"
)

// Code classifies a RemoteError. Its numeric values are part of the wire
// format; a receiver keeps codes it does not know.
type Code uint16

// Error codes.
const (
	// CodeApplication: the handler returned an error of its own.
	CodeApplication Code = 1
	// CodeNoMethod: the server has no handler for the method.
	CodeNoMethod Code = 2
	// CodeBadRequest: the arguments could not be decoded into what the
	// handler expects, or the request was otherwise invalid.
	CodeBadRequest Code = 3
	// CodePanic: the handler panicked; Trace holds its stack.
	CodePanic Code = 4
	// CodeCanceled: the request was canceled before it finished.
	CodeCanceled Code = 5
	// CodeDeadlineExceeded: the request's deadline passed before it finished.
	CodeDeadlineExceeded Code = 6
	// CodeOverloaded: the server sheds load; the caller may retry later.
	// muxrpc's own server pushes back by reading slower instead, so only
	// handlers return this code.
	CodeOverloaded Code = 7
	// CodeShutdown: the server is shutting down and took no new requests.
	CodeShutdown Code = 8
	// CodeInternal: the server failed outside the handler, for instance
	// while encoding its result.
	CodeInternal Code = 9
)

// String returns the code's name, such as "NoMethod".
func (c Code) String() string {
	switch c {
	case CodeApplication:
		return "Application"
	case CodeNoMethod:
		return "NoMethod"
	case CodeBadRequest:
		return "BadRequest"
	case CodePanic:
		return "Panic"
	case CodeCanceled:
		return "Canceled"
	case CodeDeadlineExceeded:
		return "DeadlineExceeded"
	case CodeOverloaded:
		return "Overloaded"
	case CodeShutdown:
		return "Shutdown"
	case CodeInternal:
		return "Internal"
	}
	return fmt.Sprintf("Code(%d)", uint16(c))
}

// RemoteError is what a remote handler failed with, as it crossed the wire.
// A handler may return a *RemoteError to choose the code its caller sees.
type RemoteError struct {
	Code    Code
	Message string
	// Trace is the remote stack for CodePanic, empty otherwise.
	Trace string
}

// Error returns the code and the message. The trace is left out; read it
// from the Trace field.
func (e *RemoteError) Error() string {
	return "remote: " + e.Code.String() + ": " + e.Message
}

// Is reports whether the error matches target: CodeCanceled matches
// context.Canceled and CodeDeadlineExceeded matches
// context.DeadlineExceeded, so callers can test remote cancellation the way
// they test their own. Two RemoteErrors match when their codes are equal; a
// nil *RemoteError target matches nothing.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case context.Canceled:
		return e.Code == CodeCanceled
	case context.DeadlineExceeded:
		return e.Code == CodeDeadlineExceeded
	}
	if t, ok := target.(*RemoteError); ok && t != nil {
		return t.Code == e.Code
	}
	return false
}
