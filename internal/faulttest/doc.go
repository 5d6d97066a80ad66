// Package faulttest holds fault tests: a demux.Server on 127.0.0.1 and a
// Mux made by mux.Dial that reaches it through a real toxiproxy
// (internal/toxitest), which delays, throttles, slices, resets, cuts and
// blackholes the TCP stream between them. The tests skip when toxiproxy
// has not been built (`make toxiproxy`). The package has no code of its
// own besides its tests.
package faulttest
