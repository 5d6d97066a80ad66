package demux

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestContextCancel(t *testing.T) {
	c := newReqContext(nil, false, 0)
	_, ok := c.Deadline()
	assert.False(t, ok)
	require.NoError(t, c.Err())
	assert.Nil(t, c.Value("anything"))
	done := c.Done()
	select {
	case <-done:
		t.Fatal("done before cancel")
	default:
	}
	c.cancel(canceled)
	receive(t, done, "cancel closed Done")
	assert.ErrorIs(t, c.Err(), context.Canceled)
	c.cancel(expired) // the first reason stays
	assert.ErrorIs(t, c.Err(), context.Canceled)

	late := newReqContext(nil, false, 0)
	late.cancel(canceled)
	receive(t, late.Done(), "Done asked for after the end was closed") // already closed
}

func TestRequestContextDeadline(t *testing.T) {
	c := newReqContext(nil, true, time.Hour)
	d, ok := c.Deadline()
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(time.Hour), d, time.Minute)
	require.NoError(t, c.Err())
	c.cancel(canceled) // stops the timer
	assert.ErrorIs(t, c.Err(), context.Canceled)

	expired := newReqContext(nil, true, -time.Second)
	assert.ErrorIs(t, expired.Err(), context.DeadlineExceeded)
	receive(t, expired.Done(), "the past deadline closed Done")

	soon := newReqContext(nil, true, time.Millisecond)
	receive(t, soon.Done(), "the deadline closed Done")
	assert.ErrorIs(t, soon.Err(), context.DeadlineExceeded)
}

func TestRequestContextDerived(t *testing.T) {
	c := newReqContext(nil, false, 0)
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	ran := make(chan struct{})
	stop := context.AfterFunc(c, func() { close(ran) })
	unused := context.AfterFunc(c, func() { t.Error("stopped AfterFunc ran") })
	require.True(t, unused())

	c.cancel(canceled)
	receive(t, child.Done(), "the cancel ended the derived context")
	receive(t, timed.Done(), "the cancel ended the derived timeout context")
	receive(t, ran, "the cancel ran the AfterFunc")
	assert.ErrorIs(t, child.Err(), context.Canceled)
	assert.ErrorIs(t, timed.Err(), context.Canceled)
	assert.False(t, stop(), "already run")

	// Deriving from an ended context ends the child at once.
	again, cancelAgain := context.WithCancel(c)
	defer cancelAgain()
	receive(t, again.Done(), "the context derived from the ended one ended")
}
