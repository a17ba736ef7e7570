package intake

import (
	"context"
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
)

// RequestLoader reads a request's events folded; *eventstore.Store is one.
type RequestLoader interface {
	Load(ctx context.Context, id string) (*eventstore.Loaded, error)
}

// ExtendFromStore is Extend for the request named extends, read from store; sub unchanged when extends
// is empty. Both edges (HTTP and integrations) run it after Validate.
func ExtendFromStore(ctx context.Context, store RequestLoader, extends string, sub events.Submitted, cat *catalogue.Catalogue, now time.Time) (events.Submitted, error) {
	if extends == "" {
		return sub, nil
	}
	if !events.ValidRequestID(extends) {
		return events.Submitted{}, &InvalidError{Fields: []FieldError{{Field: "extends", Message: "must be a request ID"}}}
	}
	l, err := store.Load(ctx, extends)
	if err != nil {
		return events.Submitted{}, fmt.Errorf("load extended request %s: %w", extends, err)
	}
	return Extend(sub, l.Request, cat, now)
}
