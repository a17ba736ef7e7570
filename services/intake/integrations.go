package intake

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
)

// Integration is what one integration (ServiceNow, an HR system, a CI pipeline) may assert when it
// submits requests as CloudEvents. Its NATS user may publish only under grantline.intake.<name>., so
// the subject identifies it; this says on whose behalf it may speak.
type Integration struct {
	Name string `yaml:"name"`
	// Requesters are the people it may submit for.
	Requesters []string `yaml:"requesters"`
	// Groups are the requester groups it may assert (its view of the directory); others are refused.
	Groups []string `yaml:"groups"`
	// ServiceAccounts are the non-human subjects it may request for.
	ServiceAccounts []string `yaml:"service_accounts"`
}

// Integrations is the per-integration configuration.
type Integrations struct {
	Integrations []Integration `yaml:"integrations"`
}

// LoadIntegrations reads the integrations file strictly.
func LoadIntegrations(path string) (*Integrations, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read integrations: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var in Integrations
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("integrations %s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, i := range in.Integrations {
		if !catalogue.ValidID(i.Name) || seen[i.Name] {
			return nil, fmt.Errorf("integrations %s: name %q must be a unique lower-case name", path, i.Name)
		}
		seen[i.Name] = true
	}
	return &in, nil
}

// Names lists the integrations' names, in file order: one NATS user and one outcomes consumer each.
func (in *Integrations) Names() []string {
	names := make([]string, 0, len(in.Integrations))
	for _, i := range in.Integrations {
		names = append(names, i.Name)
	}
	return names
}

// Find returns the integration called name.
func (in *Integrations) Find(name string) (Integration, bool) {
	i := slices.IndexFunc(in.Integrations, func(x Integration) bool { return x.Name == name })
	if i < 0 {
		return Integration{}, false
	}
	return in.Integrations[i], true
}

// IntegrationBody is the data of an integration's request CloudEvent: a Body plus the requester the
// integration asserts, which only an integration may name.
type IntegrationBody struct {
	Requester events.Principal `json:"requester"`
	Body
}

// ErrNotPermitted means an integration asserted something its configuration does not allow.
var ErrNotPermitted = errors.New("not permitted for this integration")

// Authorize checks what the integration asserts against its configuration and returns the requester.
func (i Integration) Authorize(b IntegrationBody) (Requester, error) {
	if !slices.Contains(i.Requesters, b.Requester.ID) {
		return Requester{}, fmt.Errorf("%w: %s may not submit for requester %q", ErrNotPermitted, i.Name, b.Requester.ID)
	}
	for _, g := range b.Requester.Groups {
		if !slices.Contains(i.Groups, g) {
			return Requester{}, fmt.Errorf("%w: %s may not assert group %q", ErrNotPermitted, i.Name, g)
		}
	}
	if s := b.Subject; s != nil && s.Kind != events.SubjectHuman && !slices.Contains(i.ServiceAccounts, s.ID) {
		return Requester{}, fmt.Errorf("%w: %s may not request for %q", ErrNotPermitted, i.Name, s.ID)
	}
	return Requester{ID: b.Requester.ID, Groups: b.Requester.Groups}, nil
}
