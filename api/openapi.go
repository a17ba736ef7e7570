// Package api is Grantline's HTTP contract: openapi.yaml (OpenAPI 3.1), embedded, with what keeps it
// true. CompareRoutes says whether a service registers exactly the routes the contract gives it, and
// Client (or Transport) checks every exchange a test makes against the contract.
//
// The contract refers to the event schemas published in pkg/events/schema by their path in the
// repository, so tools reading the checkout resolve them; Load reads them from pkg/events instead.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/grantline/grantline/pkg/events"
)

//go:embed openapi.yaml
var spec []byte

// specLocation is where openapi.yaml stands in the repository; the event schemas' references are
// relative to it.
var specLocation = &url.URL{Path: "api/openapi.yaml"}

// eventSchemas is the directory of pkg/events' published schemas, as the contract's references name it.
const eventSchemas = "pkg/events/schema/"

// Spec returns the contract as written (YAML).
func Spec() []byte { return spec }

// Load parses the contract, resolves its references (the event schemas from events.Schemas, never the
// network) and validates it as an OpenAPI 3.1 document. It fails on a reference to any other file and
// on any problem the validation finds.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		p := path.Clean(u.Path)
		name, ok := strings.CutPrefix(p, eventSchemas)
		if !ok || strings.Contains(name, "/") {
			return nil, fmt.Errorf("the contract may refer only to %s*.json, not %s", eventSchemas, u)
		}
		return fs.ReadFile(events.Schemas, "schema/"+name)
	}
	doc, err := loader.LoadFromDataWithPath(spec, specLocation)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// contract is the loaded document with a mux of its routes, which finds the operation a request
// calls as the services' own muxes would.
type contract struct {
	doc *openapi3.T
	mux *http.ServeMux
}

// loaded is the contract loaded once per process: every check shares it.
var loaded = sync.OnceValues(func() (*contract, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	c := &contract{doc: doc, mux: http.NewServeMux()}
	for _, r := range routesOf(doc) {
		c.mux.Handle(r.Pattern, http.NotFoundHandler())
	}
	return c, nil
})
