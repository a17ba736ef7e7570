package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Ops tags the routes every service serves (health and metrics, from pkg/ops) rather than one
// service's API.
const Ops = "ops"

// Route is one documented operation.
type Route struct {
	// Pattern is its method and path in net/http ServeMux syntax ("GET /v1/requests/{id}"), the way
	// the services register it.
	Pattern string
	// Services are the operation's tags: the services that serve it, or Ops.
	Services []string
}

// Routes lists every route the contract documents, sorted by pattern, or why the contract does not
// load (Load).
func Routes() ([]Route, error) {
	c, err := loaded()
	if err != nil {
		return nil, err
	}
	return routesOf(c.doc), nil
}

func routesOf(doc *openapi3.T) []Route {
	var out []Route
	for p, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, Route{Pattern: method + " " + p, Services: op.Tags})
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Pattern, b.Pattern) })
	return out
}

// Documented lists the patterns of the routes the contract gives service (tagged with it), sorted.
func Documented(service string) ([]string, error) {
	routes, err := Routes()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range routes {
		if slices.Contains(r.Services, service) {
			out = append(out, r.Pattern)
		}
	}
	return out, nil
}

// CompareRoutes says whether service serves exactly the routes the contract gives it: nil when the
// patterns it registers (served) are those, else one error naming every route served but not
// documented for it and every route documented for it but not served.
func CompareRoutes(service string, served []string) error {
	documented, err := Documented(service)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range served {
		if !slices.Contains(documented, p) {
			errs = append(errs, fmt.Errorf("%s serves %q, which api/openapi.yaml does not document for it", service, p))
		}
	}
	for _, p := range documented {
		if !slices.Contains(served, p) {
			errs = append(errs, fmt.Errorf("api/openapi.yaml documents %q for %s, which does not serve it", p, service))
		}
	}
	if len(documented) == 0 && len(served) == 0 {
		errs = append(errs, fmt.Errorf("api/openapi.yaml documents no route for %q and it serves none: not a service", service))
	}
	return errors.Join(errs...)
}

// Recorder is a mux that only lists the patterns registered on it, so a service's Routes(mux) can be
// compared with the contract (CompareRoutes) without running anything.
type Recorder struct{ patterns []string }

// HandleFunc records pattern.
func (r *Recorder) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, pattern)
}

// Handle records pattern.
func (r *Recorder) Handle(pattern string, _ http.Handler) { r.patterns = append(r.patterns, pattern) }

// Patterns lists what was registered, in order.
func (r *Recorder) Patterns() []string { return slices.Clone(r.patterns) }
