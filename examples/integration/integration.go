// Package integration is a complete Grantline integration written with the CloudEvents Go SDK and its
// NATS or JetStream protocol binding, each used with its defaults: it submits access requests as
// CloudEvents on grantline.intake.<name>.requests and reads intake's answers on
// grantline.intake.<name>.outcomes (docs/integrations.md).
//
// It depends on nothing of Grantline's: an integration in another repository is written the same way.
package integration

import (
	"context"
	"fmt"
	"time"

	natsce "github.com/cloudevents/sdk-go/protocol/nats/v2"
	jetstreamce "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/nats-io/nats.go"
)

// The names of Grantline's integration protocol.
const (
	// Stream holds every integration's requests and intake's outcomes; the JetStream binding looks it
	// up at start (it creates nothing: an integration may not).
	Stream = "GRANTLINE_INTAKE"
	// consumerPrefix starts the name of the durable consumer the operator provisions, per integration,
	// on Stream for its outcomes (grantline streams provision --integrations).
	consumerPrefix = "outcomes-"
	// TypeRequest is the type of a request; TypeAccepted and TypeRefused are the types of intake's
	// answers to it.
	TypeRequest  = "io.grantline.intake.request"
	TypeAccepted = "io.grantline.intake.accepted"
	TypeRefused  = "io.grantline.intake.refused"
)

// RequestSubject is where integration name publishes its requests: the broker lets only name's NATS
// user publish there, which is how intake knows who sent them.
func RequestSubject(name string) string { return "grantline.intake." + name + ".requests" }

// OutcomeSubject is where intake answers integration name; only name's NATS user may read it.
func OutcomeSubject(name string) string { return "grantline.intake." + name + ".outcomes" }

// Consumer is the durable consumer of Stream through which integration name reads its outcomes over
// JetStream. Grantline's operator creates it; the integration only binds to it (nats.Bind), since the
// broker lets no integration create, change or delete a consumer.
func Consumer(name string) string { return consumerPrefix + name }

// DeliverGroup is the queue group in which the replicas of integration name receive from Consumer(name),
// each outcome reaching one of them.
func DeliverGroup(name string) string { return name }

// Binding is the CloudEvents SDK protocol binding the client speaks.
type Binding string

const (
	// NATS is core NATS: requests are published without an acknowledgement from the stream, and
	// only outcomes published while the client is subscribed reach it.
	NATS Binding = "nats"
	// JetStream publishes each request with the stream's acknowledgement, and reads outcomes through
	// the integration's durable consumer (Consumer), which remembers what was acknowledged, so none
	// published while the client was away is missed.
	JetStream Binding = "jetstream"
)

// Mode is the CloudEvents content mode requests are written in.
type Mode string

const (
	// Binary, the SDK's default, sends the data as the message body and each attribute as a ce-*
	// header. The SDK's core NATS binding (v2.16) writes structured mode whatever it is asked.
	Binary Mode = "binary"
	// Structured sends the whole CloudEvent, data included, as one JSON body.
	Structured Mode = "structured"
)

// Config says how to reach Grantline as one integration.
type Config struct {
	// URL is the NATS server (comma-separated for a cluster).
	URL string
	// Name is the integration's name in Grantline's integrations file (examples/integrations.yaml).
	Name string
	// NKeyFile is the integration's NKey seed file, from the operator (grantline deploy secrets, or
	// .grantline/keys/nats/ under grantline dev).
	NKeyFile string
	// Source is the CloudEvent source of the requests: a URI naming the system that asks.
	Source  string
	Binding Binding
	Mode    Mode
	// Options are further connection options (an error handler, reconnection settings).
	Options []nats.Option
}

// ConnectOptions are the options every connection of integration name needs: the NKey that
// authenticates it, and its own inbox prefix. Replies (the stream's acknowledgements, lookups)
// come to inboxes, and Grantline lets each NATS user subscribe only to _INBOX.<user>.>, never to the
// shared _INBOX.>, where it could read everyone's replies.
func ConnectOptions(name, nkeyFile string) ([]nats.Option, error) {
	auth, err := nats.NkeyOptionFromSeed(nkeyFile)
	if err != nil {
		return nil, fmt.Errorf("nkey: %w", err)
	}
	return []nats.Option{auth, nats.CustomInboxPrefix("_INBOX.integration-" + name)}, nil
}

// Requester is who asks, as the integration vouches for them; Grantline checks that the integration
// may assert them.
type Requester struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups,omitempty"`
}

// Subject is who will hold the access when it is not the requester (a service account, say).
type Subject struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Request is the data of a request CloudEvent: the same fields as POST /v1/requests, and the
// requester.
type Request struct {
	Requester     Requester `json:"requester"`
	Entitlement   string    `json:"entitlement"`
	Justification string    `json:"justification"`
	// Duration is "2h", "30m" or ISO 8601 ("PT2H").
	Duration  string   `json:"duration"`
	Subject   *Subject `json:"subject,omitempty"`
	Ticket    string   `json:"ticket,omitempty"`
	Start     string   `json:"start,omitempty"`
	Emergency bool     `json:"emergency,omitempty"`
	Extends   string   `json:"extends,omitempty"`
}

// FieldError is what is wrong with one field of a refused request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Outcome is intake's answer to one request CloudEvent.
type Outcome struct {
	// CloudEventID is the ID of the request CloudEvent answered (the answer's subject).
	CloudEventID string `json:"-"`
	// Accepted is true for io.grantline.intake.accepted, false for io.grantline.intake.refused.
	Accepted bool `json:"-"`
	// RequestID and Status are the request's, when accepted.
	RequestID string `json:"request_id,omitempty"`
	Status    string `json:"status,omitempty"`
	// Reason and Errors say why, when refused.
	Reason string       `json:"reason,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// Client is one integration's connection to Grantline.
type Client struct {
	cfg  Config
	conn *nats.Conn
	ce   cloudevents.Client
	// closeProtocol closes the binding (its subscription; the JetStream consumer stays, for next time).
	closeProtocol func(context.Context) error
}

// Dial connects as cfg says and opens the binding with the SDK's defaults.
func Dial(cfg Config) (*Client, error) {
	opts, err := ConnectOptions(cfg.Name, cfg.NKeyFile)
	if err != nil {
		return nil, err
	}
	conn, err := nats.Connect(cfg.URL, append(opts, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.URL, err)
	}
	c := &Client{cfg: cfg, conn: conn}
	var p interface {
		protocol.Sender
		protocol.Receiver
		protocol.Opener
		protocol.Closer
	}
	switch cfg.Binding {
	case NATS:
		p, err = natsce.NewProtocolFromConn(conn, RequestSubject(cfg.Name), OutcomeSubject(cfg.Name))
	case JetStream:
		// The SDK's standard parameters: subscription options that bind to the provisioned consumer
		// instead of creating one, and a queue subscriber in its deliver group.
		p, err = jetstreamce.NewProtocolFromConn(conn, Stream, RequestSubject(cfg.Name), OutcomeSubject(cfg.Name), nil,
			[]nats.SubOpt{nats.Bind(Stream, Consumer(cfg.Name))},
			jetstreamce.WithConsumerOptions(jetstreamce.WithQueueSubscriber(DeliverGroup(cfg.Name))))
	default:
		err = fmt.Errorf("binding %q, want %s or %s", cfg.Binding, NATS, JetStream)
	}
	if err == nil {
		c.closeProtocol = p.Close
		c.ce, err = cloudevents.NewClient(p)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s binding: %w", cfg.Binding, err)
	}
	return c, nil
}

// Submit sends r as the request CloudEvent id. The ID is the idempotency key: sending the same ID
// again (after a timeout, a restart) is answered with the same request, never a second one; reusing
// it for a different request is refused.
func (c *Client) Submit(ctx context.Context, id string, r Request) error {
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetSource(c.cfg.Source)
	ev.SetType(TypeRequest)
	ev.SetTime(time.Now())
	if err := ev.SetData(cloudevents.ApplicationJSON, r); err != nil {
		return err
	}
	if c.cfg.Mode == Structured {
		ctx = cloudevents.WithEncodingStructured(ctx)
	}
	if res := c.ce.Send(ctx, ev); cloudevents.IsUndelivered(res) {
		return fmt.Errorf("submit %s: %w", id, res)
	}
	return nil
}

// Listen calls handle with each outcome until ctx ends. It returns once the subscription is in
// place, so a request submitted after it returns has its outcome seen even over core NATS; the
// returned channel yields the receiver's error when it stops.
func (c *Client) Listen(ctx context.Context, handle func(Outcome)) (<-chan error, error) {
	before := c.conn.NumSubscriptions()
	done := make(chan error, 1)
	go func() {
		done <- c.ce.StartReceiver(ctx, func(ev cloudevents.Event) {
			o := Outcome{CloudEventID: ev.Subject(), Accepted: ev.Type() == TypeAccepted}
			if err := ev.DataAs(&o); err != nil || (!o.Accepted && ev.Type() != TypeRefused) {
				return // not an outcome this client understands
			}
			handle(o)
		})
	}()
	// The SDK subscribes in the receiver's goroutine and does not say when: wait for the subscription,
	// then for the server to have it (a flush), before anything is submitted.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.conn.NumSubscriptions() == before {
		select {
		case err := <-done:
			return nil, fmt.Errorf("receive outcomes: %w", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	if err := c.conn.FlushWithContext(ctx); err != nil {
		return nil, err
	}
	return done, nil
}

// Close stops the binding and closes the connection.
func (c *Client) Close(ctx context.Context) error {
	defer c.conn.Close()
	return c.closeProtocol(ctx)
}
