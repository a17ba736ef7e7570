// Package integration takes requests that integrations publish as CloudEvents on
// grantline.intake.<name>.requests and answers each on grantline.intake.<name>.outcomes: accepted with
// the request ID, or refused with the reason (the refused event also goes to the dead-letter stream).
package integration

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/throttle"
)

// CloudEvent types of the integration protocol.
const (
	TypeRequest  = "io.grantline.intake.request"
	TypeAccepted = "io.grantline.intake.accepted"
	TypeRefused  = "io.grantline.intake.refused"
)

// cloudEvent is the CloudEvent an integration sends, in either content mode (decode), and the
// structured-mode envelope of intake's answers. Only these attributes are known; anything else is
// refused, like every other input.
type cloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject,omitempty"`
	Time            string         `json:"time,omitempty"`
	DataContentType string         `json:"datacontenttype,omitempty"`
	DataSchema      string         `json:"dataschema,omitempty"`
	TraceParent     string         `json:"traceparent,omitempty"`
	TraceState      string         `json:"tracestate,omitempty"`
	CorrelationID   string         `json:"correlationid,omitempty"`
	Data            jsontext.Value `json:"data"`
}

// Outcome is the data of an accepted or refused answer.
type Outcome struct {
	RequestID string              `json:"request_id,omitempty"`
	Status    events.Status       `json:"status,omitempty"`
	Reason    string              `json:"reason,omitempty"`
	Errors    []intake.FieldError `json:"errors,omitempty"`
}

// Handler turns integration CloudEvents into requests.
type Handler struct {
	JS           jetstream.JetStream
	Store        *eventstore.Store
	Catalogue    *catalogue.Catalogue
	Integrations *intake.Integrations
	Idempotency  *idempotency.Keys
	// Submissions limits how fast each integration submits; nil limits nothing. A submission over
	// the limit is answered refused with the reason and when to retry, and not dead-lettered.
	Submissions *throttle.Limiter
	Now         func() time.Time
	Log         *slog.Logger
}

// Spec is the durable consumer the handler runs on.
func Spec() consumer.Spec {
	return consumer.Spec{Stream: topology.IntakeIntegrations.Stream, Durable: topology.IntakeIntegrations.Durable,
		FilterSubjects: []string{topology.IntegrationRequests("*")}}
}

// Handle handles one delivery: a refusal is answered and dead-lettered; a transient failure is retried.
func (h *Handler) Handle(ctx context.Context, msg jetstream.Msg) error {
	name, ok := topology.RequestingIntegration(msg.Subject())
	if !ok {
		return consumer.Permanent(fmt.Errorf("%q is not an integration's request subject", msg.Subject()))
	}
	ce, id, err := h.accept(ctx, name, msg.Headers(), msg.Data())
	log := h.Log.With("integration", name, "cloudevent_id", ce.ID, "request_id", id)
	var refused refusal
	switch {
	case errors.As(err, &refused):
		if perr := h.answer(ctx, name, ce.ID, TypeRefused, refused.outcome()); perr != nil {
			return fmt.Errorf("answer refusal: %w", perr)
		}
		log.Info("integration request refused", "reason", refused.Error())
		if errors.Is(refused, throttle.ErrLimited) {
			// Nothing is wrong with the request, the integration only has to slow down: a dead letter
			// per refusal would copy a flood into GRANTLINE_DLQ, where nothing needs replaying.
			return nil
		}
		return consumer.Permanent(refused)
	case err != nil:
		return err
	}
	if err := h.answer(ctx, name, ce.ID, TypeAccepted, Outcome{RequestID: id, Status: events.StatusSubmitted}); err != nil {
		return fmt.Errorf("answer acceptance: %w", err)
	}
	log.Info("integration request accepted")
	return nil
}

// refusal is a request no retry will make acceptable.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }
func (r refusal) outcome() Outcome {
	o := Outcome{Reason: r.err.Error()}
	var inv *intake.InvalidError
	if errors.As(r.err, &inv) {
		o.Errors = inv.Fields
	}
	return o
}

func (h *Handler) accept(ctx context.Context, name string, header nats.Header, data []byte) (cloudEvent, string, error) {
	if len(data) > events.MaxEventSize {
		return cloudEvent{}, "", refusal{fmt.Errorf("CloudEvent of %d bytes is over the %d byte limit", len(data), events.MaxEventSize)}
	}
	ce, err := decode(header, data)
	if err != nil {
		return ce, "", refusal{fmt.Errorf("malformed CloudEvent: %v", err)}
	}
	switch {
	case ce.SpecVersion != "1.0" || ce.ID == "" || ce.Source == "":
		return ce, "", refusal{errors.New("a CloudEvent 1.0 with id and source is required")}
	case ce.Type != TypeRequest:
		return ce, "", refusal{fmt.Errorf("type %q, want %s", ce.Type, TypeRequest)}
	case ce.DataContentType != "" && !strings.HasPrefix(ce.DataContentType, "application/json"):
		return ce, "", refusal{fmt.Errorf("datacontenttype %q, want application/json", ce.DataContentType)}
	}
	integ, ok := h.Integrations.Find(name)
	if !ok {
		return ce, "", refusal{fmt.Errorf("integration %q is not configured", name)}
	}
	if err := h.Submissions.Allow("integration:" + name); err != nil {
		return ce, "", refusal{err}
	}
	var body intake.IntegrationBody
	if err := events.UnmarshalStrict(ce.Data, &body); err != nil {
		return ce, "", refusal{fmt.Errorf("malformed data: %v", err)}
	}
	requester, err := integ.Authorize(body)
	if err != nil {
		return ce, "", refusal{err}
	}
	now := h.Now()
	sub, err := intake.Validate(body.Body, requester, "integration:"+name, h.Catalogue, now)
	if err != nil {
		return ce, "", refusal{err}
	}
	sub, err = intake.ExtendFromStore(ctx, h.Store, body.Extends, sub, h.Catalogue, now)
	if errors.Is(err, intake.ErrInvalid) {
		return ce, "", refusal{err}
	}
	if err != nil {
		return ce, "", err
	}
	// One request per CloudEvent id, however often it is delivered or republished.
	id, err := h.Idempotency.Claim(ctx, "integration:"+name, ce.ID, sub.RequestDigest)
	if err != nil {
		if errors.Is(err, idempotency.ErrReused) {
			return ce, "", refusal{fmt.Errorf("CloudEvent id %q was already used for a different request", ce.ID)}
		}
		return ce, "", err
	}
	// Decided on the request with no events, without a read: a redelivery whose first attempt landed is
	// caught by the compare-and-set, which reloads.
	_, err = h.Store.Create(ctx, id, func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusNone {
			return nil, nil
		}
		return []events.Draft{{Payload: sub, Actor: requester.ID, CausationID: "cloudevent:" + name + ":" + ce.ID,
			CorrelationID: ce.CorrelationID, TraceParent: ce.TraceParent}}, nil
	})
	return ce, id, err
}

// answer publishes the outcome CloudEvent for the integration; its message ID makes a repeated answer
// to the same CloudEvent one message.
func (h *Handler) answer(ctx context.Context, name, ceID, typ string, o Outcome) error {
	data, _ := json.Marshal(o)
	out := cloudEvent{SpecVersion: "1.0", ID: events.NewID(), Source: "/grantline/intake", Type: typ, Subject: ceID,
		Time: h.Now().UTC().Format(time.RFC3339Nano), DataContentType: "application/json", Data: data}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(topology.IntegrationOutcomes(name))
	msg.Data = body
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = h.JS.PublishMsg(ctx, msg, jetstream.WithMsgID("outcome:"+name+":"+ceID))
	return err
}
