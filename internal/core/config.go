package core

import (
	"crypto/tls"
	"time"

	"github.com/muxrpc/muxrpc/channel"
)

// Config is everything the options of mux and demux set. The zero Config
// is ready to use: a connection that calls but does not serve.
type Config struct {
	// Channel configures the framed stream.
	Channel channel.Config
	// Serve, if set, makes the connection serve requests: it builds the
	// serving half once the connection exists. demux.Handle sets it.
	Serve func(c *Conn, cfg *Config) Server
	// Workers and MaxInFlight configure the serving half (demux.Workers,
	// demux.MaxInFlight); the serving half reads them.
	Workers     int
	MaxInFlight int
	// GracePeriod is how long mux.Start's Close waits for the child to
	// exit once its stdin is closed before it kills it; zero or negative
	// means DefaultGracePeriod.
	GracePeriod time.Duration
	// TLS, if set, makes mux.Dial run TLS over the connection it dials,
	// as a client with this configuration.
	TLS *tls.Config
	// MaxConns bounds the connections a demux.Server serves at once; zero
	// or negative means no bound.
	MaxConns int
	// IdleTimeout, if positive, shuts down a serving connection that has
	// had no request for that long and has none in flight (demux.IdleTimeout).
	IdleTimeout time.Duration
	// MaxServerInFlight and MaxServerHeld bound the requests of all of a
	// demux.Server's connections together; zero or negative means
	// demux's defaults. Only NewServer reads them.
	MaxServerInFlight int
	MaxServerHeld     int
	// TCPUserTimeout, if positive, is set as TCP_USER_TIMEOUT on a TCP
	// stream that a DeMux serves (demux.TCPUserTimeout).
	TCPUserTimeout time.Duration
}

// DefaultGracePeriod is the wait for a child process to exit after its
// stdin is closed, when no GracePeriod is set.
const DefaultGracePeriod = 5 * time.Second

// Option sets part of a Config. mux.Option and demux.Option are this type,
// so that options of either package configure the one connection.
type Option func(*Config)

// NewConfig applies opts, in order, to a zero Config.
func NewConfig(opts []Option) Config {
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}
