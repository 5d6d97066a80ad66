package pool

import (
	"context"
	"fmt"
	"net"
	"slices"
)

// Resolver tells a Pool where its servers are. Implement it for a service
// registry of your own; Static and DNS cover fixed lists and DNS names.
type Resolver interface {
	// Resolve returns the addresses of the endpoints now, each as the
	// Pool's dial function takes it (host:port for TCP). The Pool calls
	// it when it starts, every ResolveEvery, and when a connection or a
	// dial fails (at most once a second), never twice at once. It must
	// return within ctx. On an error, or an empty list, the Pool keeps
	// the endpoints it has.
	Resolve(ctx context.Context) ([]string, error)
}

// Static returns a Resolver that always gives addrs, as they are: a host
// name among them is resolved by each dial, to one address.
func Static(addrs ...string) Resolver {
	return staticResolver(slices.Clone(addrs))
}

type staticResolver []string

func (s staticResolver) Resolve(context.Context) ([]string, error) { return s, nil }

// DNS returns a Resolver that looks up the host of each host:port in
// addrs with net.DefaultResolver, each time the Pool asks, and gives one
// endpoint per address found, so that a name with several A or AAAA
// records becomes several endpoints, and a change in DNS reaches the Pool
// within ResolveEvery. An IP address is given as it is. A name that fails
// to resolve is left out, unless all fail: then Resolve fails.
func DNS(addrs ...string) Resolver {
	return dnsResolver(slices.Clone(addrs))
}

type dnsResolver []string

func (d dnsResolver) Resolve(ctx context.Context) ([]string, error) {
	var out []string
	var firstErr error
	for _, a := range d {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("pool: resolve %q: %w", a, err))
			continue
		}
		if net.ParseIP(host) != nil {
			out = append(out, a)
			continue
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("pool: resolve %q: %w", a, err))
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip, port))
		}
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
