// Command grantline-integration-example submits one access request as an integration and prints
// intake's answer: the request ID, or why it was refused. Against `grantline dev`:
//
//	go run ./cmd/grantline-integration-example --nkey ../../.grantline/keys/nats/integration-servicenow.nk \
//	  --requester alice --groups engineers --entitlement analytics-read --duration 1h --justification "weekly report"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/grantline/grantline/examples/integration"
)

func main() {
	cfg := integration.Config{}
	var r integration.Request
	var groups string
	var wait time.Duration
	flag.StringVar(&cfg.URL, "server", "nats://127.0.0.1:4222", "NATS server URL")
	flag.StringVar(&cfg.Name, "name", "servicenow", "the integration's name in the integrations file")
	flag.StringVar(&cfg.NKeyFile, "nkey", "", "the integration's NKey seed file")
	flag.StringVar(&cfg.Source, "source", "https://servicenow.example/requests", "CloudEvent source")
	flag.StringVar((*string)(&cfg.Binding), "binding", string(integration.JetStream), "nats or jetstream")
	flag.StringVar((*string)(&cfg.Mode), "mode", string(integration.Binary), "binary or structured")
	flag.StringVar(&r.Requester.ID, "requester", "", "who asks")
	flag.StringVar(&groups, "groups", "", "the requester's groups, comma-separated")
	flag.StringVar(&r.Entitlement, "entitlement", "", "the entitlement asked for")
	flag.StringVar(&r.Duration, "duration", "1h", "how long")
	flag.StringVar(&r.Justification, "justification", "", "why")
	flag.StringVar(&r.Ticket, "ticket", "", "the ticket in the integration's own system")
	id := flag.String("id", uuid.NewString(), "the CloudEvent ID: the idempotency key; send the same one to retry")
	flag.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the answer")
	flag.Parse()
	if groups != "" {
		r.Requester.Groups = strings.Split(groups, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, *id, r, wait); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg integration.Config, id string, r integration.Request, wait time.Duration) error {
	c, err := integration.Dial(cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	answer := make(chan integration.Outcome, 1)
	if _, err := c.Listen(ctx, func(o integration.Outcome) {
		if o.CloudEventID == id {
			select {
			case answer <- o:
			default:
			}
		}
	}); err != nil {
		return err
	}
	if err := c.Submit(ctx, id, r); err != nil {
		return err
	}
	select {
	case o := <-answer:
		if !o.Accepted {
			return fmt.Errorf("refused: %s %v", o.Reason, o.Errors)
		}
		fmt.Printf("accepted: request %s (%s)\n", o.RequestID, o.Status)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no answer to CloudEvent %s within %s", id, wait)
	}
}
