package web

import (
	"testing"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
)

// TestAskAgainIsOfferedOnAFailedRequestToItsRequester: a request that ended failed offers its
// requester to ask again; nobody else, and no request that did not fail.
func TestAskAgainIsOfferedOnAFailedRequestToItsRequester(t *testing.T) {
	cases := []struct {
		name   string
		status events.Status
		viewer string
		offer  bool
	}{
		{"alice's failed request, to alice", events.StatusFailed, "alice", true},
		{"alice's failed request, to a reviewer", events.StatusFailed, "bob", false},
		{"alice's approved request, still being granted", events.StatusApproved, "alice", false},
		{"alice's revoked request", events.StatusRevoked, "alice", false},
	}
	for _, tc := range cases {
		l := liveRegion{View: requestview.View{Status: tc.status, Requester: events.Principal{ID: "alice"}}, Viewer: tc.viewer}
		if l.AskAgain() != tc.offer {
			t.Errorf("%s: offered %v, want %v", tc.name, l.AskAgain(), tc.offer)
		}
	}
}
