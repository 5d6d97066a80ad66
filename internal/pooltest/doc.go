// Package pooltest holds the failover tests of package pool against real
// separate hosts: each test builds network namespaces (one per server,
// one for the client, one for HAProxy where used) joined by veth pairs on
// a bridge that lives in a namespace of its own, so that nothing is added
// to the host's own network. The servers are this test binary started
// again inside their namespaces; they are killed with SIGKILL, shut down
// gracefully with SIGTERM (demux.Server.Shutdown, which sends GOAWAY) and
// blackholed with an nft drop rule, while 256 callers go through one
// pool.Pool. The tests need root, iproute2, nftables and (for the
// balancer test) haproxy; without them they skip with a loud message.
// The package has no code of its own besides its tests.
package pooltest
