package pooltest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/muxrpc/muxrpc/demux"
)

// The environment of a server process: it listens on serverEnv's address,
// answers with nameEnv's name and appends the id of every call it runs to
// the file logEnv names.
const (
	serverEnv = "MUXRPC_POOLTEST_SERVER"
	nameEnv   = "MUXRPC_POOLTEST_NAME"
	logEnv    = "MUXRPC_POOLTEST_LOG"
)

// workArgs are the arguments of "work".
type workArgs struct {
	ID   uint64
	Wait time.Duration // how long the handler takes; zero means workTime
}

// workTime is how long "work" takes by default, so that calls are in
// flight on the server when it dies.
const workTime = time.Millisecond

// runServer serves "work" on addr until SIGTERM, then shuts down
// gracefully (GOAWAY, calls in flight finish) and returns 0. A call is
// logged, with a write that survives SIGKILL, before its handler does
// anything else, so the log tells which calls ran.
func runServer(addr string) int {
	name := os.Getenv(nameEnv)
	log, err := os.OpenFile(os.Getenv(logEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer log.Close()
	r := demux.NewRouter()
	r.Handle("work", demux.Func(func(ctx context.Context, a workArgs) (string, error) {
		if _, err := log.Write(append(strconv.AppendUint(nil, a.ID, 10), '\n')); err != nil {
			return "", err
		}
		wait := a.Wait
		if wait <= 0 {
			wait = workTime
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return name, nil
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	srv := demux.NewServer(r)
	go srv.Serve(ln)
	fmt.Println("ready")
	<-term
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		return 1
	}
	return 0
}
