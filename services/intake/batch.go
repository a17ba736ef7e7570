package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
)

// MaxBatch bounds how many entitlements one submission asks for: enough for a role's usual set,
// few enough that reviewers can judge them together.
const MaxBatch = 10

// BatchBody is a submission for several entitlements at once, with one purpose, duration, subject,
// ticket and start for all. It becomes one request per entitlement, each decided, approved and granted
// on its own, linked by a correlation ID. Emergencies and extensions are asked one at a time.
type BatchBody struct {
	Entitlements  []string     `json:"entitlements"`
	Justification string       `json:"justification"`
	Duration      string       `json:"duration"`
	Subject       *SubjectBody `json:"subject,omitempty"`
	Ticket        string       `json:"ticket,omitempty"`
	Start         string       `json:"start,omitempty"`
}

// ValidateBatch checks each entitlement of b as Validate checks one request and returns the submitted
// events, in the order listed, for the edge to link with a correlation ID (which the digests leave
// out, so it may be chosen after them). Any problem refuses the whole submission: an *InvalidError
// names every one, an entitlement's own as entitlements[i], so nothing is created for a list with an
// unknown, duplicated or otherwise invalid entitlement.
func ValidateBatch(b BatchBody, requester Requester, channel string, cat *catalogue.Catalogue, now time.Time) ([]events.Submitted, error) {
	var errs []FieldError
	bad := func(f FieldError) {
		if !slices.Contains(errs, f) {
			errs = append(errs, f)
		}
	}
	switch n := len(b.Entitlements); {
	case n < 2:
		bad(FieldError{Field: "entitlements", Message: "lists at least two entitlements (submit one request for one)"})
	case n > MaxBatch:
		bad(FieldError{Field: "entitlements", Message: fmt.Sprintf("lists at most %d entitlements", MaxBatch)})
	}
	subs := make([]events.Submitted, 0, len(b.Entitlements))
	for i, ent := range b.Entitlements {
		item := fmt.Sprintf("entitlements[%d]", i)
		if slices.Index(b.Entitlements, ent) < i {
			bad(FieldError{Field: item, Message: fmt.Sprintf("%q is listed twice", ent)})
			continue
		}
		s, err := Validate(Body{Entitlement: ent, Justification: b.Justification, Duration: b.Duration, Subject: b.Subject,
			Ticket: b.Ticket, Start: b.Start}, requester, channel, cat, now)
		var inv *InvalidError
		if errors.As(err, &inv) {
			for _, f := range inv.Fields {
				if f.Field == "entitlement" {
					f.Field = item
				}
				bad(f)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	if len(errs) > 0 {
		return nil, &InvalidError{Fields: errs}
	}
	return subs, nil
}

// BatchDigest binds an idempotency key to everything a batch asks: the request digest of each of
// its requests, in order.
func BatchDigest(subs []events.Submitted) string {
	digests := make([]string, len(subs))
	for i, s := range subs {
		digests[i] = s.RequestDigest
	}
	sum := sha256.Sum256([]byte(strings.Join(digests, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}
