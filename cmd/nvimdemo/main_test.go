package main

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDemo(t *testing.T) {
	path, err := exec.LookPath("nvim")
	if err != nil {
		t.Skipf("!!!!!!!! nvim is not installed (%v): the nvimdemo test is SKIPPED; apt-get install neovim !!!!!!!!", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, path, &out))
	assert.Contains(t, out.String(), `set the lines of buffer 1 to ["muxrpc" "speaks" "msgpack-rpc"]`)
	assert.Contains(t, out.String(), `nvim_eval(join(getline(1, '$'), ' ')) = "muxrpc speaks msgpack-rpc"`)
	assert.Contains(t, out.String(), `nvim called Go's greet and got "hello, muxrpc, from Go (you run NVIM v0.`)
}
