package streamscan_test

import (
	"context"
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/streamscan"
)

// TestEventsOfSomeTypesInStreamOrder: a scan of two types sees each of their events once, in stream
// order, with its type and sequence, and nothing of the other types; a scan of an empty stream, nothing.
func TestEventsOfSomeTypesInStreamOrder(t *testing.T) {
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		id  string
		t   events.Type
		seq uint64
	}
	scan := func() []seen {
		var out []seen
		err := streamscan.Events(ctx, js, []events.Type{events.TypeGranted, events.TypeRevoked}, func(id string, ty events.Type, seq uint64) error {
			out = append(out, seen{id, ty, seq})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := scan(); len(got) != 0 {
		t.Fatalf("an empty stream: %v", got)
	}
	// The scan reads subjects and headers only, so the bodies need not be events.
	a, b := events.NewID(), events.NewID()
	var want []seen
	for _, e := range []struct {
		id string
		t  events.Type
	}{{a, events.TypeSubmitted}, {a, events.TypeGranted}, {b, events.TypeGranted}, {b, events.TypeExpired}, {a, events.TypeRevoked}, {b, events.TypeDriftDetected}} {
		ack, err := js.Publish(ctx, events.NATSSubject(e.id, e.t), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if e.t == events.TypeGranted || e.t == events.TypeRevoked {
			want = append(want, seen{e.id, e.t, ack.Sequence})
		}
	}
	if got := scan(); !slices.Equal(got, want) {
		t.Fatalf("scan %v, want %v", got, want)
	}
}
