// Package catalogue is the entitlement catalogue: every named entitlement that can be requested (which
// system and resource, how risky, who owns it, who fulfils it by hand, how long it may last, which kinds
// of identity may hold it, and its emergency settings), and the service accounts that can be request
// subjects. It is YAML kept in git; loading refuses unknown keys and inconsistent entries.
package catalogue

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/grantline/grantline/pkg/events"
)

// Catalogue is a loaded, validated catalogue.
type Catalogue struct {
	Entitlements    []Entitlement    `yaml:"entitlements" json:"entitlements"`
	ServiceAccounts []ServiceAccount `yaml:"service_accounts" json:"service_accounts"`
}

// Entitlement is one named entitlement.
type Entitlement struct {
	ID          string `yaml:"id" json:"id"`
	Description string `yaml:"description" json:"description"`
	// System and Resource name the asset, such as "postgres/payments" and "role payments_admin".
	System   string `yaml:"system" json:"system"`
	Resource string `yaml:"resource" json:"resource"`
	// Risk is low, medium or high; policy reads it.
	Risk string `yaml:"risk" json:"risk"`
	// Connector fulfils it: postgres, webhook or manual.
	Connector       string   `yaml:"connector" json:"connector"`
	OwnerGroups     []string `yaml:"owner_groups" json:"owner_groups"`
	FulfillerGroups []string `yaml:"fulfiller_groups,omitempty" json:"fulfiller_groups,omitempty"`
	MaxDuration     Duration `yaml:"max_duration" json:"max_duration_seconds"`
	// MinDuration is the shortest grant allowed (the demo allows seconds so expiry can be watched).
	MinDuration Duration `yaml:"min_duration,omitempty" json:"min_duration_seconds"`
	// MaxTotal bounds how long the entitlement is held without a gap through extensions of a grant;
	// zero means max_duration, so a grant is extended only up to that (see HeldAtMost).
	MaxTotal     Duration             `yaml:"max_total,omitempty" json:"max_total_seconds,omitzero"`
	SubjectKinds []events.SubjectKind `yaml:"subject_kinds" json:"subject_kinds"`
	Emergency    *Emergency           `yaml:"emergency,omitempty" json:"emergency,omitempty"`
}

// Emergency is an entitlement's break-glass path: shorter, and reviewed afterwards.
type Emergency struct {
	MaxDuration  Duration `yaml:"max_duration" json:"max_duration_seconds"`
	ReviewGroups []string `yaml:"review_groups" json:"review_groups"`
	ReviewWithin Duration `yaml:"review_within" json:"review_within_seconds"`
}

// ServiceAccount is a non-human identity that can be a request subject, owned by a team.
type ServiceAccount struct {
	ID    string             `yaml:"id" json:"id"`
	Kind  events.SubjectKind `yaml:"kind" json:"kind"`
	Owner string             `yaml:"owner" json:"owner"`
}

// Duration is a time.Duration written as "8h" or "30m" in YAML and as whole seconds in JSON (the
// policy input).
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes whole seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%d", int64(time.Duration(d)/time.Second)), nil
}

// UnmarshalJSON reads whole seconds, so a catalogue entry survives a JSON round trip.
func (d *Duration) UnmarshalJSON(b []byte) error {
	secs, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || secs < 0 || secs > math.MaxInt64/int64(time.Second) {
		return fmt.Errorf("duration %s is not a whole, non-negative number of seconds", b)
	}
	*d = Duration(time.Duration(secs) * time.Second)
	return nil
}

// Std is the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Load reads and validates the catalogue file at path.
func Load(path string) (*Catalogue, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("catalogue %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a catalogue strictly (unknown keys are errors) and validates it.
func Parse(b []byte) (*Catalogue, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Catalogue
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Entitlement returns the entitlement named id.
func (c *Catalogue) Entitlement(id string) (Entitlement, bool) {
	i := slices.IndexFunc(c.Entitlements, func(e Entitlement) bool { return e.ID == id })
	if i < 0 {
		return Entitlement{}, false
	}
	return c.Entitlements[i], true
}

// ServiceAccount returns the non-human identity named id.
func (c *Catalogue) ServiceAccount(id string) (ServiceAccount, bool) {
	i := slices.IndexFunc(c.ServiceAccounts, func(s ServiceAccount) bool { return s.ID == id })
	if i < 0 {
		return ServiceAccount{}, false
	}
	return c.ServiceAccounts[i], true
}

// AllowsSubject reports whether a subject of kind may hold e.
func (e Entitlement) AllowsSubject(kind events.SubjectKind) bool {
	return slices.Contains(e.SubjectKinds, kind)
}

// HeldAtMost is the longest e may be held without a gap, extensions included: max_total, or
// max_duration when the catalogue sets none.
func (e Entitlement) HeldAtMost() time.Duration {
	if e.MaxTotal == 0 {
		return e.MaxDuration.Std()
	}
	return e.MaxTotal.Std()
}

// idPattern is the strict ASCII grammar of entitlement and service-account names: they become parts
// of subjects, role names and log lines, so nothing that could be confused or escape belongs in them.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID reports whether s fits the grammar of catalogue names.
func ValidID(s string) bool { return idPattern.MatchString(s) }

var connectors = []string{"postgres", "webhook", "manual"}

func (c *Catalogue) validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, e := range c.Entitlements {
		where := fmt.Sprintf("entitlement %d (%s)", i+1, e.ID)
		bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+": "+format, args...)) }
		switch {
		case !ValidID(e.ID):
			bad("id must be lower-case letters, digits and dashes")
		case seen[e.ID]:
			bad("id is listed twice")
		}
		seen[e.ID] = true
		if e.System == "" || e.Resource == "" {
			bad("system and resource are required")
		}
		if !slices.Contains([]string{"low", "medium", "high"}, e.Risk) {
			bad("risk %q is not low, medium or high", e.Risk)
		}
		if !slices.Contains(connectors, e.Connector) {
			bad("connector %q is not one of %v", e.Connector, connectors)
		}
		if e.Connector == "manual" && len(e.FulfillerGroups) == 0 {
			bad("a manual entitlement needs fulfiller_groups")
		}
		if len(e.OwnerGroups) == 0 {
			bad("owner_groups are required")
		}
		if e.MaxDuration <= 0 || e.MinDuration < 0 || e.MinDuration > e.MaxDuration {
			bad("durations must satisfy 0 <= min_duration <= max_duration and max_duration > 0")
		}
		if e.MaxTotal != 0 && e.MaxTotal < e.MaxDuration {
			bad("max_total must be at least max_duration")
		}
		if len(e.SubjectKinds) == 0 {
			bad("subject_kinds are required")
		}
		for _, k := range e.SubjectKinds {
			if k != events.SubjectHuman && k != events.SubjectServiceAccount && k != events.SubjectWorkload {
				bad("unknown subject kind %q", k)
			}
		}
		if em := e.Emergency; em != nil {
			if em.MaxDuration <= 0 || em.MaxDuration > e.MaxDuration {
				bad("emergency max_duration must be positive and at most max_duration")
			}
			if len(em.ReviewGroups) == 0 || em.ReviewWithin <= 0 {
				bad("emergency needs review_groups and review_within")
			}
		}
	}
	accounts := map[string]bool{}
	for i, s := range c.ServiceAccounts {
		where := fmt.Sprintf("service account %d (%s)", i+1, s.ID)
		switch {
		case !ValidID(s.ID):
			errs = append(errs, fmt.Errorf("%s: id must be lower-case letters, digits and dashes", where))
		case accounts[s.ID]:
			errs = append(errs, fmt.Errorf("%s: listed twice", where))
		}
		accounts[s.ID] = true
		if s.Kind != events.SubjectServiceAccount && s.Kind != events.SubjectWorkload {
			errs = append(errs, fmt.Errorf("%s: kind must be service_account or workload", where))
		}
		if s.Owner == "" {
			errs = append(errs, fmt.Errorf("%s: owner team is required", where))
		}
	}
	return errors.Join(errs...)
}
