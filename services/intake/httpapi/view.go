package httpapi

import (
	"time"

	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/requestview"
)

// View is a request as GET /v1/requests/{id} shows it, folded from its own events.
type View = requestview.View

// NewView shows a loaded request.
func NewView(l *eventstore.Loaded) View {
	var submittedAt time.Time
	if len(l.Events) > 0 {
		submittedAt = l.Events[0].Time
	}
	return requestview.Of(l.ID, l.Request, submittedAt, l.LastSeq)
}
