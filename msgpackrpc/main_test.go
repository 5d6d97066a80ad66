package msgpackrpc_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) != "" { // started by nvim's jobstart: see TestNvimStartsGoPlugin
		os.Exit(runPlugin())
	}
	goleak.VerifyTestMain(m)
}
