package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/services/approval"
)

// problems is the approval API's table from errors to problems: its own rows; httpjson adds the shared
// ones. A self-approval is refused with its own type and logged as a warning (DESIGN §5).
var problems = httpjson.NewTable(
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-review", Title: "The review is not valid", Errs: []error{approval.ErrInvalid}},
	httpjson.Row{Status: http.StatusForbidden, Slug: "separation-of-duties", Title: "Separation of duties forbids this reviewer",
		Errs: []error{approval.ErrSeparationOfDuties}, Warning: "separation of duties", Attrs: dutyAttrs},
	httpjson.Row{Status: http.StatusForbidden, Slug: "not-a-reviewer", Title: "Not a reviewer of this request", Errs: []error{approval.ErrNotReviewer}},
	httpjson.NotFound.For(approval.ErrNotFound),
	httpjson.Row{Status: http.StatusConflict, Slug: "not-pending", Title: "The request no longer awaits this review", Errs: []error{approval.ErrNotPending}},
	httpjson.Row{Status: http.StatusForbidden, Slug: "not-a-campaign-admin", Title: "Not allowed to open access reviews", Errs: []error{approval.ErrNotCampaignAdmin}},
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "nothing-to-review", Title: "No active grant matches the filter", Errs: []error{approval.ErrNothingToReview}},
	httpjson.Row{Status: http.StatusConflict, Slug: "stale-digest", Title: "The request changed since it was reviewed", Errs: []error{approval.ErrStaleDigest}},
)

// dutyAttrs names the reviewer a separation-of-duties refusal refused, and why (an approval.Duty reason).
func dutyAttrs(err error) []any {
	var duty *approval.DutyError
	if !errors.As(err, &duty) {
		return nil
	}
	return []any{"reviewer", duty.Reviewer, "reason", duty.Reason}
}
