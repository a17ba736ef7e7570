package eventstore

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
)

// DialConfig is what a service process needs to reach its event store.
type DialConfig struct {
	// Service signs what the store appends; its key comes from GRANTLINE_SIGNING_KEY or
	// GRANTLINE_SIGNING_KEY_FILE, read through Getenv (os.Getenv in production).
	Service events.Service
	Getenv  func(string) string
	// TrustFile lists every service's keys, for verifying what is loaded.
	TrustFile string
	// NATSURL is one or more comma-separated server URLs; MonitorURLs are their monitoring endpoints,
	// asked whether every server fsyncs each write.
	NATSURL     string
	MonitorURLs []string
	// NKeyFile is the service's NATS user seed (GRANTLINE_NATS_NKEY_FILE); the connection authenticates
	// with it as the service's user (brokeraccess). Empty connects without credentials, to a server that
	// enforces none.
	NKeyFile string
	// RequestTimeout bounds each NATS round trip of the store (Config.RequestTimeout); 0 keeps its default.
	RequestTimeout time.Duration
}

// Connection is a service's NATS connection and its event store.
type Connection struct {
	NC    *nats.Conn
	JS    jetstream.JetStream
	Store *Store
}

// Dial loads the service's signing key and the trust file, connects to NATS (reconnecting for ever),
// and opens the store, which checks the streams and the servers' durability. Close the connection when
// the service stops.
func Dial(ctx context.Context, cfg DialConfig) (*Connection, error) {
	signer, err := events.SignerFromEnv(cfg.Getenv, cfg.Service)
	if err != nil {
		return nil, err
	}
	verifier, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return nil, err
	}
	opts, err := brokeraccess.ClientOptions(brokeraccess.User(cfg.Service), cfg.NKeyFile)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(opts, nats.Name("grantline-"+string(cfg.Service)), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	store, err := Open(ctx, js, Config{Signer: signer, Verifier: verifier,
		Durability: MonitorProbe(http.DefaultClient, cfg.MonitorURLs...), RequestTimeout: cfg.RequestTimeout})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Connection{NC: nc, JS: js, Store: store}, nil
}

// Close drains the connection: in-flight messages are handled before it closes.
func (c *Connection) Close() { _ = c.NC.Drain() }
