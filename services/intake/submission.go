// Package intake captures access requests: it turns what a person (over HTTP) or an integration (as a
// CloudEvent) submitted into a `submitted` event, after checking it against the catalogue. It decides
// nothing about whether the request is allowed; policy does.
//
// This file holds the rules, which are pure: no I/O, time is a parameter.
package intake

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
)

// Limits on free text, so a request stays something a reviewer reads.
const (
	MaxJustification = 2000
	MinJustification = 10
	MaxTicket        = 128
	// MaxStartAhead is how far in the future a request may ask access to begin.
	MaxStartAhead = 30 * 24 * time.Hour
)

// Body is what a requester submits. The requester is never part of it: it is always the caller's
// verified identity. Unknown members (a "requester", an "approved" flag, a "state") are refused by
// strict decoding before any rule runs.
type Body struct {
	Entitlement   string `json:"entitlement"`
	Justification string `json:"justification"`
	// Duration is "2h", "30m", "5s" or ISO 8601 ("PT2H").
	Duration  string       `json:"duration"`
	Subject   *SubjectBody `json:"subject,omitempty"`
	Ticket    string       `json:"ticket,omitempty"`
	Start     string       `json:"start,omitempty"`
	Emergency bool         `json:"emergency,omitempty"`
	// Extends is the ID of the request whose active grant this one continues without a gap.
	Extends string `json:"extends,omitempty"`
}

// SubjectBody names who will hold the entitlement when it is not the requester.
type SubjectBody struct {
	Kind events.SubjectKind `json:"kind"`
	ID   string             `json:"id"`
}

// FieldError says what is wrong with one field of a submission.
type FieldError = httpjson.FieldError

// ErrInvalid is wrapped by *InvalidError.
var ErrInvalid = errors.New("invalid request")

// InvalidError lists every problem found in a submission, so the caller can fix them all at once.
type InvalidError struct{ Fields []FieldError }

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// FieldErrors lists the problems, which an HTTP answer carries field by field.
func (e *InvalidError) FieldErrors() []FieldError { return e.Fields }

// Requester is the verified caller: the identity provider's subject (normalised) and groups.
type Requester struct {
	ID     string
	Groups []string
}

// Validate checks b against the catalogue at time now and returns the submitted event for requester
// through channel ("http" or "integration:<name>"), or an *InvalidError naming every bad field.
func Validate(b Body, requester Requester, channel string, cat *catalogue.Catalogue, now time.Time) (events.Submitted, error) {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	ent, known := cat.Entitlement(b.Entitlement)
	switch {
	case b.Entitlement == "":
		bad("entitlement", "is required")
	case !catalogue.ValidID(b.Entitlement):
		bad("entitlement", "must be a catalogue name (lower-case letters, digits, dashes)")
	case !known:
		bad("entitlement", "%q is not in the catalogue", b.Entitlement)
	}

	subject := events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID}
	if s := b.Subject; s != nil {
		switch {
		case s.Kind == events.SubjectHuman && s.ID == requester.ID:
		case s.Kind == events.SubjectHuman:
			bad("subject", "a request for another person needs a delegation, which Grantline does not support")
		case s.Kind != events.SubjectServiceAccount && s.Kind != events.SubjectWorkload:
			bad("subject.kind", "must be human, service_account or workload")
		case !catalogue.ValidID(s.ID):
			bad("subject.id", "must be a catalogue name (lower-case letters, digits, dashes)")
		default:
			sa, ok := cat.ServiceAccount(s.ID)
			switch {
			case !ok:
				bad("subject.id", "%q is not a known service account", s.ID)
			case sa.Kind != s.Kind:
				bad("subject.kind", "%q is a %s", s.ID, sa.Kind)
			default:
				subject = events.RequestSubject{Kind: sa.Kind, ID: sa.ID, Owner: sa.Owner}
			}
		}
	}
	if known && !ent.AllowsSubject(subject.Kind) {
		bad("subject", "%s cannot be held by a %s", ent.ID, subject.Kind)
	}

	justification := strings.TrimSpace(b.Justification)
	switch n := utf8.RuneCountInString(justification); {
	case n == 0:
		bad("justification", "is required")
	case n < MinJustification:
		bad("justification", "must say why, in at least %d characters", MinJustification)
	case n > MaxJustification:
		bad("justification", "must be at most %d characters", MaxJustification)
	case hasControl(justification):
		bad("justification", "must not contain control or invisible formatting characters")
	}
	if len(b.Ticket) > MaxTicket || hasControl(b.Ticket) || strings.TrimSpace(b.Ticket) != b.Ticket {
		bad("ticket", "must be at most %d printable characters without surrounding spaces", MaxTicket)
	}

	duration, err := ParseDuration(b.Duration)
	switch {
	case err != nil:
		bad("duration", "%v", err)
	case known && duration > ent.MaxDuration.Std():
		bad("duration", "%s is longer than the %s allowed for %s", duration, ent.MaxDuration.Std(), ent.ID)
	case known && duration < ent.MinDuration.Std():
		bad("duration", "%s is shorter than the %s minimum for %s", duration, ent.MinDuration.Std(), ent.ID)
	}

	var start *time.Time
	if b.Start != "" {
		t, err := ParseStart(b.Start)
		switch {
		case err != nil:
			bad("start", "%v", err)
		case !t.After(now):
			bad("start", "must be in the future")
		case t.Sub(now) > MaxStartAhead:
			bad("start", "must be within %s from now", MaxStartAhead)
		default:
			utc := t.UTC()
			start = &utc
		}
	}

	if len(errs) > 0 {
		return events.Submitted{}, &InvalidError{Fields: errs}
	}
	s := events.Submitted{
		Requester: events.Principal{ID: requester.ID, Groups: requester.Groups}, Subject: subject,
		Entitlement: ent.ID, Justification: justification, Ticket: b.Ticket,
		DurationSeconds: int64(duration / time.Second), StartAt: start, Emergency: b.Emergency, Channel: channel,
	}
	s.RequestDigest = s.Digest()
	return s, nil
}

// Extend makes sub, validated from a body with extends, the extension of orig (the request it names,
// as loaded at now; a request with no events when there is none): it records the extended grant in
// sub.Extends and binds the digest to it. A request that does not exist, or a grant that may not be
// extended this way (events.Request.MayExtend), is an *InvalidError on the field extends.
func Extend(sub events.Submitted, orig *events.Request, cat *catalogue.Catalogue, now time.Time) (events.Submitted, error) {
	refuse := func(msg string) (events.Submitted, error) {
		return events.Submitted{}, &InvalidError{Fields: []FieldError{{Field: "extends", Message: msg}}}
	}
	if orig.Status() == events.StatusNone {
		return refuse(fmt.Sprintf("there is no request %s", orig.ID()))
	}
	// Validate found the entitlement; an extension of another one is refused by MayExtend.
	ent, _ := cat.Entitlement(sub.Entitlement)
	x, err := orig.MayExtend(sub, now, ent.HeldAtMost())
	var refused *events.ExtensionError
	if errors.As(err, &refused) {
		return refuse(refused.Reason)
	}
	if err != nil {
		return events.Submitted{}, err
	}
	sub.Extends = &x
	sub.RequestDigest = sub.Digest()
	return sub, nil
}

var isoDuration = regexp.MustCompile(`^P(?:(\d{1,4})D)?(?:T(?:(\d{1,5})H)?(?:(\d{1,6})M)?(?:(\d{1,7})S)?)?$`)

// maxDuration bounds any requested duration well below int64 nanoseconds (about 292 years), so no
// arithmetic on it can overflow; the catalogue's maximum is far lower anyway.
const maxDuration = 366 * 24 * time.Hour

// ParseDuration reads "2h", "30m", "5s", "1h30m", or ISO 8601 "PT2H", "P1DT2H". It refuses zero,
// negative, fractional-second and absurdly long durations.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("is required (for example \"2h\" or \"PT2H\")")
	}
	var d time.Duration
	if strings.HasPrefix(s, "P") {
		m := isoDuration.FindStringSubmatch(s)
		if m == nil || s == "P" || strings.HasSuffix(s, "T") {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT2H", s)
		}
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
			if m[i+1] != "" {
				n, _ := strconv.Atoi(m[i+1])
				d += time.Duration(n) * unit
			}
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 2h, 30m or 5s", s)
		}
	}
	switch {
	case d <= 0:
		return 0, errors.New("must be positive")
	case d%time.Second != 0:
		return 0, errors.New("must be whole seconds")
	case d > maxDuration:
		return 0, fmt.Errorf("must be at most %s", maxDuration)
	}
	return d, nil
}

// ParseStart reads an RFC 3339 timestamp with an explicit zone; anything looser is ambiguous about
// when access begins.
func ParseStart(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time with a zone, such as 2026-12-01T09:00:00Z", s)
	}
	return t, nil
}

// hasControl reports control characters and the invisible formatting ones (zero-width, bidi controls)
// that make text read differently from what it says.
func hasControl(s string) bool {
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return true
		case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
			return true
		}
	}
	return false
}
