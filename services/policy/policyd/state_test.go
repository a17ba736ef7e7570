package policyd

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/natstest"
)

// newState is the policy state over its bucket on a fresh server.
func newState(t *testing.T) *reviews {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	state, err := openReviews(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestOpenReviewsPastTheDirectGetLimit: a direct get answers at most 1024 keys, and markers are never
// deleted, so a requester with more still has their open reviews found (by the watch it falls back to).
func TestOpenReviewsPastTheDirectGetLimit(t *testing.T) {
	ctx := context.Background()
	state := newState(t)
	for _, c := range []struct {
		name    string
		settled int
	}{
		{"a few settled", 3},
		{"more settled than one direct get answers", 1030},
	} {
		t.Run(c.name, func(t *testing.T) {
			requester := "heavy-" + fmt.Sprint(c.settled)
			for i := range c.settled {
				if err := state.settle(ctx, requester, fmt.Sprintf("settled-%04d", i)); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{"open-b", "open-a", "being-decided"} {
				if err := state.reserve(ctx, requester, id); err != nil {
					t.Fatal(err)
				}
			}
			got, err := state.open(ctx, requester, "being-decided")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"open-a", "open-b"}; !slices.Equal(got, want) {
				t.Fatalf("open reviews of %s = %v, want %v", requester, got, want)
			}
		})
	}
}

// TestMarkers is the life of one request's marker, step by step: what each operation leaves, and
// whether the request then counts as an open review.
func TestMarkers(t *testing.T) {
	ctx := context.Background()
	state := newState(t)
	type op func(requester, id string) error
	reserve, release, settle := op(func(r, id string) error { return state.reserve(ctx, r, id) }),
		op(func(r, id string) error { return state.release(ctx, r, id) }), op(func(r, id string) error { return state.settle(ctx, r, id) })
	cases := []struct {
		name string
		ops  []op
		open bool
	}{
		{"reserved before deciding: open", []op{reserve}, true},
		{"reserved twice (a redelivery): still open", []op{reserve, reserve}, true},
		{"set aside undecided: released, owes nothing", []op{reserve, release}, false},
		{"released, then brought back and reserved again: open", []op{reserve, release, reserve}, true},
		{"post-reviewed: settled", []op{reserve, settle}, false},
		{"settled is final: a late release changes nothing", []op{reserve, settle, release}, false},
		{"settled is final: a late reservation does not reopen it", []op{reserve, settle, reserve}, false},
		{"released without a reservation: nothing to release", []op{release}, false},
	}
	for i, c := range cases {
		requester, id := fmt.Sprintf("person-%d", i), "request"
		for _, o := range c.ops {
			if err := o(requester, id); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		got, err := state.open(ctx, requester, "")
		if err != nil {
			t.Fatal(err)
		}
		if (len(got) == 1) != c.open {
			t.Errorf("%s: open reviews %v, want open %v", c.name, got, c.open)
		}
	}
}
