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

// TestLiveGrantsFromASequence: a scan from a sequence sees the grants from there on, less those a
// revoked event after them ended (and ignores a revocation of a grant before it), and says it read the
// stream through its last grant or revocation.
func TestLiveGrantsFromASequence(t *testing.T) {
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	a, b, c, d := events.NewID(), events.NewID(), events.NewID(), events.NewID()
	seq := map[string]uint64{}
	var last uint64 // the last grant or revocation
	for _, e := range []struct {
		id string
		ty events.Type
	}{{a, events.TypeGranted}, {b, events.TypeGranted}, {a, events.TypeRevoked}, {c, events.TypeGranted},
		{d, events.TypeGranted}, {b, events.TypeRevoked}, {d, events.TypeSubmitted}} {
		ack, err := js.Publish(ctx, events.NATSSubject(e.id, e.ty), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if e.ty == events.TypeGranted {
			seq[e.id] = ack.Sequence
		}
		if e.ty != events.TypeSubmitted {
			last = ack.Sequence
		}
	}
	grant := func(id string) streamscan.Grant { return streamscan.Grant{RequestID: id, Seq: seq[id]} }
	for _, tc := range []struct {
		name    string
		from    uint64
		want    []streamscan.Grant
		through uint64
	}{
		{"from the beginning", 0, []streamscan.Grant{grant(c), grant(d)}, last},
		{"from the first sequence", 1, []streamscan.Grant{grant(c), grant(d)}, last},
		{"from b's grant, with a's revocation after it", seq[b], []streamscan.Grant{grant(c), grant(d)}, last},
		{"from just after b's grant, with b's revocation after it", seq[b] + 1, []streamscan.Grant{grant(c), grant(d)}, last},
		{"from d's grant", seq[d], []streamscan.Grant{grant(d)}, last},
		{"from past the end", last + 2, nil, 0},
	} {
		got, through, err := streamscan.LiveGrantsFrom(ctx, js, tc.from)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) || through != tc.through {
			t.Errorf("%s: %v through %d, want %v through %d", tc.name, got, through, tc.want, tc.through)
		}
	}
}
