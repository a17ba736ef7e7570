package checkpointer_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/checkpointer"
)

// position is where (counted from 1) the stored message of request id's event number nth sits.
func position(msgs []*jetstream.RawStreamMsg, id string, nth int) int {
	seen := 0
	for i, m := range msgs {
		if strings.HasPrefix(m.Subject, "grantline.events."+id+".") {
			if seen == nth {
				return i + 1
			}
			seen++
		}
	}
	return -1
}

func first(t *testing.T, r *audit.Report) audit.Finding {
	t.Helper()
	if r.Clean() {
		t.Fatal("the tampered history verified clean against the checkpoints")
	}
	return r.Findings[0]
}

func hasKind(r *audit.Report, kind audit.FindingKind) bool {
	return slices.ContainsFunc(r.Findings, func(f audit.Finding) bool { return f.Kind == kind })
}

// TestTamperingThroughTheBroker: an operator with every right on the broker rewrites the evidence
// stream after it was checkpointed and witnessed. Per-request chains alone see none of these
// rewrites; the checkpoints show each one at the position where the stream departs from them.
func TestTamperingThroughTheBroker(t *testing.T) {
	w := singleNode(t)
	js := w.js
	w.requestsOf(0, 8)
	stop := w.runCheckpointer(js, 7)
	older := w.awaitCheckpoint()
	olderCopy := w.stored()
	w.requestsOf(8, 12)
	w.awaitCheckpoint()
	stop()
	original := w.stored()

	if r := w.verify("stream", "dir"); !r.Clean() || r.Checkpoints.Covered != uint64(len(original)) {
		t.Fatalf("the untouched history against its checkpoints: %+v", r)
	}

	t.Run("the last events of several requests cut by recreating the stream from a filtered copy", func(t *testing.T) {
		// The last event (granted) of three requests is dropped: each request still chains, so the
		// stream alone verifies clean.
		var cut []int
		for _, i := range []int{2, 5, 9} {
			cut = append(cut, position(original, w.requests[i], 2))
		}
		var filtered []*jetstream.RawStreamMsg
		for i, m := range original {
			if !slices.Contains(cut, i+1) {
				filtered = append(filtered, m)
			}
		}
		w.recreate(filtered)
		t.Cleanup(func() { w.recreate(original) })
		if r := w.verify(); !r.Clean() {
			t.Fatalf("without checkpoints the cut was expected to go unseen, found %+v", r.Findings)
		}
		r := w.verify("stream", "dir")
		if f := first(t, r); f.Kind != audit.FindingCheckpointDiverged || f.Position != cut[0] {
			t.Fatalf("first finding %s at %d (%s), want %s at %d", f.Kind, f.Position, f.Detail, audit.FindingCheckpointDiverged, cut[0])
		}
		if !hasKind(r, audit.FindingCheckpointTail) || !hasKind(r, audit.FindingStreamRecreated) {
			t.Fatalf("the shorter, recreated stream was not reported: %+v", r.Findings)
		}
		// With the witness's directory alone (the checkpoint stream lost too), the checkpoint whose root
		// no longer matches names the span the first cut lies in.
		r = w.verify("dir")
		f := first(t, r)
		if f.Kind != audit.FindingCheckpointDiverged || f.Position > cut[0] || !strings.Contains(f.Detail, "witness-test") {
			t.Fatalf("from the directory witness: %s at %d (%s), want a span containing %d", f.Kind, f.Position, f.Detail, cut[0])
		}
	})

	t.Run("an older copy restored", func(t *testing.T) {
		w.recreate(olderCopy)
		t.Cleanup(func() { w.recreate(original) })
		r := w.verify("stream", "dir")
		if f := first(t, r); f.Kind != audit.FindingCheckpointTail || f.Position != int(older)+1 {
			t.Fatalf("first finding %s at %d (%s), want %s at %d", f.Kind, f.Position, f.Detail, audit.FindingCheckpointTail, older+1)
		}
		if !hasKind(r, audit.FindingStreamRecreated) {
			t.Fatalf("the recreated stream was not reported: %+v", r.Findings)
		}
	})

	t.Run("two events of different requests reordered", func(t *testing.T) {
		// The last event of one request and the first of the next: each request's own chain is intact.
		i := position(original, w.requests[6], 2)
		if position(original, w.requests[7], 0) != i+1 {
			t.Fatalf("requests 6 and 7 are not adjacent in the stream")
		}
		swapped := slices.Clone(original)
		swapped[i-1], swapped[i] = swapped[i], swapped[i-1]
		w.recreate(swapped)
		t.Cleanup(func() { w.recreate(original) })
		r := w.verify("stream")
		if f := first(t, r); f.Kind != audit.FindingCheckpointDiverged || f.Position != i {
			t.Fatalf("first finding %s at %d (%s), want %s at %d", f.Kind, f.Position, f.Detail, audit.FindingCheckpointDiverged, i)
		}
	})

	t.Run("the checkpointer refuses to resume on a rewritten stream", func(t *testing.T) {
		w.recreate(olderCopy)
		t.Cleanup(func() { w.recreate(original) })
		_, err := checkpointer.New(context.Background(), checkpointer.Deps{JS: js, Signer: w.signer, Trust: w.trust, Every: 7, Interval: time.Second})
		if !errors.Is(err, checkpointer.ErrWrongStream) {
			t.Fatalf("resuming on a recreated stream: %v", err)
		}
	})
}

// TestCheckpointsAcrossALeaderChange: on a 3-node cluster with R3 streams, the checkpointer keeps
// signing while the evidence stream's leader is stopped and another takes over, and the whole
// history then verifies clean against every checkpoint and the witness's copies.
func TestCheckpointsAcrossALeaderChange(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.ClientURLs())
	w := newWorld(t, js, embedded(c.Nodes...), eventstore.StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30})
	_, cjs := natstest.Connect(t, c.ClientURLs())
	w.runCheckpointer(cjs, 5)
	w.requestsOf(0, 6)
	leader := streamLeader(t, js)
	c.Stop(leader)
	poll.Until(t, 30*time.Second, "a new leader of the evidence stream", func() bool {
		l, ok := tryLeader(js)
		return ok && l != leader
	})
	w.requestsOf(6, 12)
	w.awaitCheckpoint()
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	r := w.verify("stream", "dir")
	if !r.Clean() || r.Checkpoints.Covered != w.events() || r.Checkpoints.Count < 2 {
		t.Fatalf("the history across a leader change: %+v", r)
	}
}

func tryLeader(js jetstream.JetStream) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return "", false
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		return "", false
	}
	return info.Cluster.Leader, true
}

func streamLeader(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	var leader string
	poll.Until(t, 30*time.Second, "a leader of the evidence stream", func() bool {
		var ok bool
		leader, ok = tryLeader(js)
		return ok
	})
	return leader
}
