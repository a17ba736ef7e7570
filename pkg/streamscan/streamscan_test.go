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

// TestRequestsFromASequence: a scan from a sequence sees the events of its type stored there and later,
// none before, and says it has covered the stream up to its last sequence, events of other types
// after the last of its own included; from the beginning it sees them all, and from past the end,
// none.
func TestRequestsFromASequence(t *testing.T) {
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	var granted []uint64
	var last uint64
	for _, ty := range []events.Type{events.TypeGranted, events.TypeRevoked, events.TypeGranted, events.TypeGranted, events.TypeRevoked} {
		ack, err := js.Publish(ctx, events.NATSSubject(events.NewID(), ty), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if ty == events.TypeGranted {
			granted = append(granted, ack.Sequence)
		}
		last = ack.Sequence
	}
	for _, c := range []struct {
		name string
		from uint64
		want []uint64
	}{
		{"from the beginning", 0, granted},
		{"from the first sequence", 1, granted},
		{"from the second grant's sequence", granted[1], granted[1:]},
		{"from just after the second grant", granted[1] + 1, granted[2:]},
		{"from past the end", last + 1, nil},
	} {
		var got []uint64
		through, err := streamscan.RequestsFrom(ctx, js, events.TypeGranted, c.from, func(_ string, seq uint64) error {
			got = append(got, seq)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(got, c.want) || through != last {
			t.Errorf("%s: saw %v through %d, want %v through %d", c.name, got, through, c.want, last)
		}
	}
}
