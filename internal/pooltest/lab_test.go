//go:build linux

package pooltest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests; reaching it is the failure.
const waitLimit = 20 * time.Second

// lab is a set of network namespaces on one bridge: the servers', the
// client's and, if asked for, a load balancer's. Its names carry a random
// id, so that what a crashed earlier run left cannot collide.
type lab struct {
	t       *testing.T
	id      string
	sw      string // the namespace of the bridge
	client  string // the client's namespace
	lb      string // the balancer's namespace, if any
	dir     string
	servers []*serverProc
	nsDial  chan dialReq
	nets    int // namespaces attached to the bridge so far

	haproxySock string // HAProxy's stats socket, once started
}

// subnet is the lab's network; it exists only inside its namespaces.
const subnet = "10.231.7."

// serverProc is one server process in its namespace.
type serverProc struct {
	name, ns, addr, log string
	cmd                 *exec.Cmd
	exited              chan struct{}
	stderr              *bytes.Buffer
}

// newLab makes the namespaces for n servers and the client, and one for a
// balancer if lb is set. It skips the test, loudly, if it cannot.
func newLab(t *testing.T, n int, lb bool) *lab {
	t.Helper()
	skip := func(why string) {
		t.Skipf("!!!!!!!! SKIPPED: %s; this test needs root, iproute2 (ip netns) and nftables, as .ci/run provides !!!!!!!!", why)
	}
	if os.Geteuid() != 0 {
		skip("not running as root")
	}
	if sysSetns < 0 {
		skip("setns(2) is not wired up for " + runtime.GOOS + "/" + runtime.GOARCH)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(tool + " not found")
		}
	}
	sweep(t)
	var b [3]byte
	rand.Read(b[:])
	l := &lab{t: t, id: fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), hex.EncodeToString(b[:])), dir: t.TempDir()}
	l.sw = l.id + "sw"
	if out, err := exec.Command("ip", "netns", "add", l.sw).CombinedOutput(); err != nil {
		skip(fmt.Sprintf("ip netns add failed: %v: %s", err, out))
	}
	t.Cleanup(l.cleanup)
	l.ip("-n", l.sw, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.sw, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("%ss%d", l.id, i)
		l.addNS(ns, fmt.Sprintf("%s%d", subnet, i))
		l.servers = append(l.servers, &serverProc{
			name: fmt.Sprintf("s%d", i),
			ns:   ns,
			addr: fmt.Sprintf("%s%d:7000", subnet, i),
			log:  filepath.Join(l.dir, fmt.Sprintf("s%d.log", i)),
		})
	}
	l.client = l.id + "c"
	l.addNS(l.client, subnet+"100")
	if lb {
		l.lb = l.id + "lb"
		l.addNS(l.lb, subnet+"10")
	}
	l.startDialer()
	return l
}

// nsPrefix starts the name of every namespace a lab makes, followed by
// the pid of the test process that made it.
const nsPrefix = "muxrpc-pooltest-"

// sweep deletes the namespaces left by labs whose test process is gone
// (killed before its cleanup ran). Those of a run still going are kept.
func sweep(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its run is still going
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("deleting the stale namespace %s: %v: %s", name, err, out)
		} else {
			t.Logf("deleted the stale namespace %s", name)
		}
	}
}

// orphanKill makes a process that this test starts die with the test
// process, even if the test is killed before its cleanup runs.
var orphanKill = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

// ip runs ip(8) with args, failing the test if it fails.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addNS makes namespace ns with address addr on an interface whose peer is
// on the bridge.
func (l *lab) addNS(ns, addr string) {
	l.t.Helper()
	l.ip("netns", "add", ns)
	l.nets++
	peer := fmt.Sprintf("p%d", l.nets)
	l.ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", l.sw)
	l.ip("-n", l.sw, "link", "set", peer, "master", "br0")
	l.ip("-n", l.sw, "link", "set", peer, "up")
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.ip("-n", ns, "link", "set", "lo", "up")
}

// cleanup kills what the lab started and deletes its namespaces, which
// deletes their interfaces and nft tables.
func (l *lab) cleanup() {
	if l.nsDial != nil {
		close(l.nsDial)
	}
	for _, s := range l.servers {
		s.kill(l.t)
	}
	namespaces := []string{l.client, l.lb}
	for _, s := range l.servers {
		namespaces = append(namespaces, s.ns)
	}
	namespaces = append(namespaces, l.sw)
	for _, ns := range namespaces {
		if ns == "" {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("No such file")) {
			l.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

// dialReq asks the dialer goroutine, which lives in the client's
// namespace, for a TCP connection.
type dialReq struct {
	ctx  context.Context
	addr string
	resp chan dialResp
}

type dialResp struct {
	conn net.Conn
	err  error
}

// startDialer starts a goroutine on an OS thread of its own that enters
// the client's namespace: sockets it opens belong to that namespace for
// their whole life. The thread stays locked, so it is never reused, and
// it ends with the goroutine at cleanup.
func (l *lab) startDialer() {
	l.t.Helper()
	f, err := os.Open("/var/run/netns/" + l.client)
	if err != nil {
		l.t.Fatal(err)
	}
	l.nsDial = make(chan dialReq)
	ready := make(chan error, 1)
	reqs := l.nsDial
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		_, _, errno := syscall.RawSyscall(uintptr(sysSetns), f.Fd(), syscall.CLONE_NEWNET, 0)
		f.Close()
		if errno != 0 {
			ready <- fmt.Errorf("setns: %w", errno)
			return
		}
		ready <- nil
		var d net.Dialer
		for r := range reqs {
			c, err := d.DialContext(r.ctx, "tcp", r.addr)
			r.resp <- dialResp{c, err}
		}
	}()
	if err := <-ready; err != nil {
		l.t.Fatal(err)
	}
}

// dial connects to addr from the client's namespace.
func (l *lab) dial(ctx context.Context, addr string) (net.Conn, error) {
	r := dialReq{ctx: ctx, addr: addr, resp: make(chan dialResp, 1)}
	select {
	case l.nsDial <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp := <-r.resp
	return resp.conn, resp.err
}

// start starts (or starts again) the server process, and waits until it
// listens.
func (s *serverProc) start(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", s.ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+s.addr, nameEnv+"="+s.name, logEnv+"="+s.log)
	cmd.SysProcAttr = orphanKill
	s.stderr = new(bytes.Buffer)
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting server %s: %v", s.name, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		line := ""
		if sc.Scan() {
			line = sc.Text()
		}
		ready <- line
		for sc.Scan() {
		}
		cmd.Wait()
		close(s.exited)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			<-s.exited
			t.Fatalf("server %s did not start: %q; stderr: %s", s.name, line, s.stderr)
		}
	case <-time.After(waitLimit):
		t.Fatalf("server %s did not say it was ready within %v", s.name, waitLimit)
	}
}

// signal sends sig to the server process.
func (s *serverProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to server %s: %v", sig, s.name, err)
	}
}

// awaitExit waits for the server process to exit.
func (s *serverProc) awaitExit(t *testing.T, why string) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(waitLimit):
		t.Fatalf("server %s did not exit within %v after %s", s.name, waitLimit, why)
	}
}

// kill kills the server process, if running, and waits for it.
func (s *serverProc) kill(t *testing.T) {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(waitLimit):
		t.Errorf("server %s did not exit after SIGKILL", s.name)
	}
}

// nft runs an nft script inside namespace ns.
func (l *lab) nft(ns, script string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v: %s\nscript:\n%s", ns, err, out, script)
	}
}

// blackhole drops every packet in and out of the server's namespace, as
// a host that vanished from the network does; unblackhole undoes it.
func (l *lab) blackhole(s *serverProc) {
	l.nft(s.ns, `table inet mxpblackhole {
	chain in { type filter hook input priority 0; policy drop; }
	chain out { type filter hook output priority 0; policy drop; }
}
`)
}

func (l *lab) unblackhole(s *serverProc) {
	l.nft(s.ns, "delete table inet mxpblackhole\n")
}

// startHAProxy starts HAProxy in TCP mode in the balancer's namespace, in
// front of every server, and waits until it accepts connections. It skips
// the test, loudly, if haproxy is not installed.
func (l *lab) startHAProxy() string {
	l.t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		l.t.Skipf("!!!!!!!! SKIPPED: haproxy not found (apt-get install haproxy, as .ci/run does) !!!!!!!!")
	}
	addr := subnet + "10:7000"
	var cfg strings.Builder
	l.haproxySock = filepath.Join(l.dir, "haproxy.sock")
	fmt.Fprintf(&cfg, `global
	maxconn 4096
	stats socket %s mode 600 level admin
defaults
	mode tcp
	timeout connect 1s
	timeout client 60s
	timeout server 60s
	retries 3
	option redispatch
frontend fe
	bind %s
	default_backend be
backend be
	balance leastconn
`, l.haproxySock, addr)
	for _, s := range l.servers {
		fmt.Fprintf(&cfg, "\tserver %s %s check inter 200ms fall 2 rise 2\n", s.name, s.addr)
	}
	path := filepath.Join(l.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.lb, "haproxy", "-db", "-f", path)
	cmd.SysProcAttr = orphanKill
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(waitLimit):
			l.t.Errorf("haproxy did not exit after SIGKILL")
		}
	})
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(20 * time.Millisecond) // between polls: nothing tells when the port opens
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := l.dial(ctx, addr)
		cancel()
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			l.t.Fatalf("haproxy exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("haproxy did not accept connections within %v: %v; output: %s", waitLimit, err, stderr.String())
		}
		<-tick.C
	}
}

// backendStat is what HAProxy says of one backend server.
type backendStat struct {
	status string // UP, DOWN, ...
	conns  int    // connections open to it now (scur)
}

// haproxyStats asks HAProxy's stats socket about the backend servers.
func (l *lab) haproxyStats() (map[string]backendStat, error) {
	c, err := net.Dial("unix", l.haproxySock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	var col map[string]int
	stats := map[string]backendStat{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "# "); ok {
			col = map[string]int{}
			for i, name := range strings.Split(h, ",") {
				col[name] = i
			}
			continue
		}
		f := strings.Split(line, ",")
		if col == nil || len(f) <= col["status"] || f[col["pxname"]] != "be" || f[col["svname"]] == "BACKEND" {
			continue
		}
		n, _ := strconv.Atoi(f[col["scur"]])
		stats[f[col["svname"]]] = backendStat{status: f[col["status"]], conns: n}
	}
	return stats, sc.Err()
}
