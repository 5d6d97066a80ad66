package frame

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCodeString(t *testing.T) {
	for code, want := range map[Code]string{
		CodeApplication:      "Application",
		CodeNoMethod:         "NoMethod",
		CodeBadRequest:       "BadRequest",
		CodePanic:            "Panic",
		CodeCanceled:         "Canceled",
		CodeDeadlineExceeded: "DeadlineExceeded",
		CodeOverloaded:       "Overloaded",
		CodeShutdown:         "Shutdown",
		CodeInternal:         "Internal",
		0:                    "Code(0)",
		10:                   "Code(10)",
		0xffff:               "Code(65535)",
	} {
		assert.Equal(t, want, code.String())
	}
}

// TestCodeValues pins the numbers, which are part of the wire format and
// of PROTOCOL.md's table.
func TestCodeValues(t *testing.T) {
	assert.Equal(t, []Code{1, 2, 3, 4, 5, 6, 7, 8, 9}, []Code{
		CodeApplication, CodeNoMethod, CodeBadRequest, CodePanic, CodeCanceled,
		CodeDeadlineExceeded, CodeOverloaded, CodeShutdown, CodeInternal,
	})
	assert.Equal(t, []Type{1, 2, 3, 4, 5, 6}, []Type{
		TypeRequest, TypeNotify, TypeResponse, TypeError, TypeCancel, TypeGoAway,
	})
	assert.Equal(t, []Flags{0x01, 0x06, 0x08, 0x10, 0x80}, []Flags{FlagDeadline, FlagPriorityMask, FlagKey, FlagStream, FlagMore})
}

func TestRemoteErrorError(t *testing.T) {
	e := &RemoteError{Code: CodeNoMethod, Message: `no method "x"`, Trace: "hidden"}
	assert.Equal(t, `remote: NoMethod: no method "x"`, e.Error())
	assert.Equal(t, "remote: Code(77): ", (&RemoteError{Code: 77}).Error())
}

func TestRemoteErrorIs(t *testing.T) {
	canceled := &RemoteError{Code: CodeCanceled, Message: "gave up"}
	expired := &RemoteError{Code: CodeDeadlineExceeded, Message: "too slow"}
	app := &RemoteError{Code: CodeApplication, Message: "bad"}

	assert.ErrorIs(t, canceled, context.Canceled)
	assert.NotErrorIs(t, canceled, context.DeadlineExceeded)
	assert.ErrorIs(t, expired, context.DeadlineExceeded)
	assert.NotErrorIs(t, expired, context.Canceled)
	assert.NotErrorIs(t, app, context.Canceled)
	assert.NotErrorIs(t, app, context.DeadlineExceeded)

	// Through wrapping, as a caller meets them.
	wrapped := fmt.Errorf("mux: call %q: %w", "m", canceled)
	assert.ErrorIs(t, wrapped, context.Canceled)

	// Two RemoteErrors match when their codes do, whatever the message.
	assert.ErrorIs(t, app, &RemoteError{Code: CodeApplication})
	assert.ErrorIs(t, fmt.Errorf("x: %w", app), &RemoteError{Code: CodeApplication, Message: "other"})
	assert.NotErrorIs(t, app, &RemoteError{Code: CodeNoMethod, Message: "bad"})

	assert.NotErrorIs(t, app, io.EOF)
	assert.NotErrorIs(t, app, errors.New("remote: Application: bad"))
	assert.NotErrorIs(t, app, (*RemoteError)(nil), "a typed nil target matches nothing")

	var re *RemoteError
	assert.ErrorAs(t, fmt.Errorf("x: %w", app), &re)
	assert.Same(t, app, re)
}
