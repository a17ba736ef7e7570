// Package events is Grantline's event contract: the CloudEvents envelope, the v1 catalogue of request
// events and their payloads, strict decoding, the request digest, signing and chain verification, and
// the request aggregate that every service folds a request's events into.
//
// It imports only the standard library (and a ULID generator), so integrators and auditors can depend
// on it without pulling in NATS, SQL or HTTP.
package events

import (
	"fmt"
	"strings"
)

// Type is a CloudEvents type of the v1 catalogue, such as "io.grantline.request.submitted".
type Type string

// TypePrefix is the common prefix of every Grantline request event type.
const TypePrefix = "io.grantline.request."

// The v1 catalogue (DESIGN §3.3).
const (
	TypeSubmitted           Type = TypePrefix + "submitted"
	TypeWithdrawn           Type = TypePrefix + "withdrawn"
	TypePolicyDecided       Type = TypePrefix + "policy_decided"
	TypeReviewed            Type = TypePrefix + "reviewed"
	TypeApproved            Type = TypePrefix + "approved"
	TypeRejected            Type = TypePrefix + "rejected"
	TypeStartChecked        Type = TypePrefix + "start_checked"
	TypePostReviewed        Type = TypePrefix + "post_reviewed"
	TypePostReviewOverdue   Type = TypePrefix + "post_review_overdue"
	TypeTaskOpened          Type = TypePrefix + "task_opened"
	TypeGranted             Type = TypePrefix + "granted"
	TypeFulfilmentFailed    Type = TypePrefix + "fulfilment_failed"
	TypeRevocationRequested Type = TypePrefix + "revocation_requested"
	TypeExpired             Type = TypePrefix + "expired"
	TypeRevoked             Type = TypePrefix + "revoked"
	TypeRevocationFailed    Type = TypePrefix + "revocation_failed"
	TypeDriftDetected       Type = TypePrefix + "drift_detected"
)

// Name is the short name of the type, the last token of its NATS subject ("submitted", "lock_placed").
func (t Type) Name() string { return string(t)[strings.LastIndex(string(t), ".")+1:] }

// Known reports whether t belongs to the v1 catalogue.
func (t Type) Known() bool { _, ok := emitters[t]; return ok }

// Service is one of Grantline's five event-emitting services.
type Service string

// The services, each the only emitter of its event types.
const (
	Intake     Service = "intake"
	Policy     Service = "policy"
	Approval   Service = "approval"
	Fulfilment Service = "fulfilment"
	Revoker    Service = "revoker"
)

// Services lists every service in pipeline order.
var Services = []Service{Intake, Policy, Approval, Fulfilment, Revoker}

// Source is the CloudEvents source attribute of events this service emits.
func (s Service) Source() string { return "/grantline/" + string(s) }

// ParseService returns the service named by s ("approval") or an error for an unknown name.
func ParseService(s string) (Service, error) {
	for _, svc := range Services {
		if string(svc) == s {
			return svc, nil
		}
	}
	return "", fmt.Errorf("unknown service %q", s)
}

// emitters is the separation-of-duties matrix of DESIGN §3.3: the one service allowed to emit each type.
// The NATS permissions in deploy/ and the trust file generated for development are derived from it.
var emitters = map[Type]Service{
	TypeSubmitted:           Intake,
	TypeWithdrawn:           Intake,
	TypePolicyDecided:       Policy,
	TypeReviewed:            Approval,
	TypeApproved:            Approval,
	TypeRejected:            Approval,
	TypeStartChecked:        Policy,
	TypePostReviewed:        Approval,
	TypePostReviewOverdue:   Approval,
	TypeTaskOpened:          Fulfilment,
	TypeGranted:             Fulfilment,
	TypeFulfilmentFailed:    Fulfilment,
	TypeRevocationRequested: Revoker,
	TypeExpired:             Revoker,
	TypeRevoked:             Revoker,
	TypeRevocationFailed:    Revoker,
	TypeDriftDetected:       Revoker,
	TypeLockPlaced:          Revoker,
	TypeLockRemoved:         Revoker,
	TypeCampaignOpened:      Approval,
	TypeCampaignReminded:    Approval,
	TypeCampaignDecided:     Approval,
	TypeCampaignEscalated:   Approval,
	TypeCampaignClosed:      Approval,
}

// Emitter returns the service that may emit t, and false for a type outside the catalogue.
func Emitter(t Type) (Service, bool) { s, ok := emitters[t]; return s, ok }

// TypesOf returns the event types svc may emit, in catalogue order.
func TypesOf(svc Service) []Type {
	var out []Type
	for _, t := range AllTypes {
		if emitters[t] == svc {
			out = append(out, t)
		}
	}
	return out
}

// AllTypes lists the catalogue in lifecycle order: a request's events, then a lock's, then a campaign's.
var AllTypes = []Type{
	TypeSubmitted, TypeWithdrawn, TypePolicyDecided, TypeReviewed, TypeApproved, TypeRejected, TypeStartChecked,
	TypePostReviewed, TypePostReviewOverdue, TypeTaskOpened, TypeGranted, TypeFulfilmentFailed,
	TypeRevocationRequested, TypeExpired, TypeRevoked, TypeRevocationFailed, TypeDriftDetected,
	TypeLockPlaced, TypeLockRemoved,
	TypeCampaignOpened, TypeCampaignReminded, TypeCampaignDecided, TypeCampaignEscalated, TypeCampaignClosed,
}

// ParseTypeName returns the type whose short name is name ("granted", "lock_placed"), or false.
func ParseTypeName(name string) (Type, bool) {
	for _, t := range AllTypes {
		if t.Name() == name {
			return t, true
		}
	}
	return "", false
}

// SchemaURI is the dataschema attribute for events of type t: the versioned JSON Schema published in
// pkg/events/schema.
func SchemaURI(t Type) string {
	return "https://grantline.dev/schema/v1/" + t.Name() + ".json"
}
