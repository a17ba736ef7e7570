package policyd

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/natstest"
)

// TestOpenReviewsPastTheDirectGetLimit: a direct get answers at most 1024 keys, and markers are never
// deleted, so a requester with more still has their open reviews found (by the watch it falls back to).
func TestOpenReviewsPastTheDirectGetLimit(t *testing.T) {
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	state, err := openReviews(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
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
