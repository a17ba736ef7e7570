package synthetic

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
)

// TestGeneratedHistoryVerifiesClean: a generated history of a few hundred requests, written into a
// fresh store, passes the auditor's verification with nothing found, holds every story, and its
// requests end in every terminal state and through every lifecycle event the stories promise.
func TestGeneratedHistoryVerifiesClean(t *testing.T) {
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	signers, all := newSigners(t)
	trust, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), all...))
	if err != nil {
		t.Fatal(err)
	}
	const requests = 400
	res, err := Write(ctx, js, Config{Requests: requests, Signers: signers, End: time.Now().Add(-24 * time.Hour), Seed: 7, InFlight: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != requests {
		t.Fatalf("wrote %d requests, want %d", res.Requests, requests)
	}
	for _, w := range weights {
		if res.Stories[w.story] == 0 {
			t.Errorf("no %s request among %d: %v", w.story, requests, res.Stories)
		}
	}

	v := audit.NewVerifier(trust, audit.Options{Now: time.Now(), ExpectFirstSeq: 1})
	types := map[events.Type]bool{}
	var ids []string
	report, err := v.Run(func(fn func(events.Record) error) error {
		return audit.ReadStream(ctx, js, audit.Range{}, func(rec events.Record) error {
			id, typ, _ := events.ParseNATSSubject(rec.Subject)
			if typ == events.TypeSubmitted {
				ids = append(ids, id)
			}
			types[typ] = true
			return fn(rec)
		})
	}, runtime.GOMAXPROCS(0))
	if err != nil {
		t.Fatal(err)
	}
	if !report.Clean() || report.Events != res.Events || report.Requests != requests {
		t.Fatalf("verification: %d events (wrote %d), %d requests, findings %+v", report.Events, res.Events, report.Requests, report.Findings)
	}
	for _, typ := range []events.Type{events.TypeSubmitted, events.TypePolicyDecided, events.TypeReviewed, events.TypeApproved,
		events.TypeRejected, events.TypePostReviewed, events.TypeGranted, events.TypeFulfilmentFailed, events.TypeRevocationRequested,
		events.TypeExpired, events.TypeRevocationFailed, events.TypeRevoked} {
		if !types[typ] {
			t.Errorf("no %s event in the history", typ.Name())
		}
	}
	statuses := map[events.Status]bool{}
	for _, id := range ids {
		statuses[v.Request(id).Status()] = true
	}
	for _, want := range []events.Status{events.StatusRevoked, events.StatusDenied, events.StatusRejected, events.StatusFailed} {
		if !statuses[want] {
			t.Errorf("no request ends %s", want)
		}
	}
	if open := slices.DeleteFunc(slices.Collect(maps.Keys(statuses)), events.Status.Terminal); len(open) > 0 {
		t.Errorf("requests left open in a history that has ended: %v", open)
	}
}

func newSigners(tb testing.TB) (map[events.Service]*events.Signer, []*events.Signer) {
	tb.Helper()
	signers := map[events.Service]*events.Signer{}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-1")
		if err != nil {
			tb.Fatal(err)
		}
		signers[svc], all = s, append(all, s)
	}
	return signers, all
}

// BenchmarkWrite prints the requests/s and events/s at which a history is generated into a node that
// does not fsync each write, as grantline bench history runs it.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	ns, err := natsembed.Start(natsembed.Options{Dir: b.TempDir(), Port: -1, LazySync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(b, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		b.Fatal(err)
	}
	signers, _ := newSigners(b)
	var requests, evs int
	for b.Loop() {
		res, err := Write(ctx, js, Config{Requests: 5000, Signers: signers, End: time.Now().Add(-24 * time.Hour), Seed: uint64(requests)})
		if err != nil {
			b.Fatal(err)
		}
		requests, evs = requests+res.Requests, evs+res.Events
	}
	b.ReportMetric(float64(requests)/b.Elapsed().Seconds(), "requests/s")
	b.ReportMetric(float64(evs)/b.Elapsed().Seconds(), "events/s")
}
