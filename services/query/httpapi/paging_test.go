package httpapi

import (
	"errors"
	"testing"

	"github.com/grantline/grantline/pkg/events"
)

// TestPaging: the limit's default and bounds, and cursors that only this API could have given out.
func TestPaging(t *testing.T) {
	id := events.NewID()
	cases := []struct {
		name, limit, cursor string
		n                   int
		after               string
		bad                 bool
	}{
		{"no limit: the default", "", "", DefaultLimit, "", false},
		{"the largest page", "500", "", MaxLimit, "", false},
		{"one more than the largest", "501", "", 0, "", true},
		{"none at all", "0", "", 0, "", true},
		{"not a number", "ten", "", 0, "", true},
		{"a cursor given out", "7", cursor(id), 7, id, false},
		{"a cursor of another format", "", "djI6" + id, 0, "", true},
		{"a cursor naming no request", "", cursor("not-a-request-id"), 0, "", true},
		{"not base64", "", "%%%", 0, "", true},
	}
	for _, c := range cases {
		n, after, err := paging(c.limit, c.cursor)
		if c.bad != errors.Is(err, errBadQuery) || !c.bad && (n != c.n || after != c.after) {
			t.Errorf("%s: %d %q %v", c.name, n, after, err)
		}
	}
	if cursor("") != "" {
		t.Error("the end of a list has a cursor")
	}
}
