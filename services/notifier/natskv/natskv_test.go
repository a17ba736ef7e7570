package natskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/natskv"
)

func open(t *testing.T) *natskv.Buckets {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	b, err := natskv.Open(context.Background(), js, natskv.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClaims: one claim per notification; a second claimant is told it is busy while the claim is
// live and that it was sent once it was; a claim whose holder died is taken over after the lease; a
// released claim can be taken at once.
func TestClaims(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	now := time.Now()
	lease := time.Minute
	steps := []struct {
		name  string
		key   string
		owner string
		at    time.Time
		then  func(c natskv.Claim)
		want  natskv.ClaimStatus
	}{
		{name: "replica A claims k1", key: "k1", owner: "A", at: now, want: natskv.Claimed},
		{name: "replica B finds k1 busy", key: "k1", owner: "B", at: now.Add(time.Second), want: natskv.Busy},
		{name: "replica B takes k1 over once A's lease ran out", key: "k1", owner: "B", at: now.Add(2 * lease), want: natskv.Claimed,
			then: func(c natskv.Claim) {
				if err := b.Sent.MarkSent(ctx, c, "B", now, "D0BOB/1.2"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "anyone after that finds k1 sent", key: "k1", owner: "A", at: now.Add(3 * lease), want: natskv.AlreadySent},
		{name: "replica A claims k2 and gives it up", key: "k2", owner: "A", at: now, want: natskv.Claimed,
			then: func(c natskv.Claim) {
				if err := b.Sent.Release(ctx, c); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "replica B claims the released k2 at once", key: "k2", owner: "B", at: now, want: natskv.Claimed},
	}
	for _, s := range steps {
		c, err := b.Sent.Claim(ctx, s.key, s.owner, s.at, lease)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if c.Status != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, c.Status, s.want)
		}
		if s.then != nil {
			s.then(c)
		}
	}
	if sent, _ := b.Sent.IsSent(ctx, "k1"); !sent {
		t.Error("k1 is not recorded as sent")
	}
	if ref, _ := b.Sent.Ref(ctx, "k1"); ref != "D0BOB/1.2" {
		t.Errorf("k1's ref %q", ref)
	}
	if sent, _ := b.Sent.IsSent(ctx, "k2"); sent {
		t.Error("k2 is recorded as sent")
	}
}

// TestWaiting: the outbox lists what waits for one recipient on one channel, oldest first, and
// nothing of anyone else's.
func TestWaiting(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	bob := notifier.Person{ID: "bob", Email: "bob@example.test"}
	note := func(cause string, to notifier.Person, c notifier.Channel) notifier.Notification {
		return notifier.Notification{Cause: cause, Kind: notifier.Granted, To: to, Channel: c, Address: to.Email}
	}
	for _, n := range []notifier.Notification{note("e1", bob, notifier.Email), note("e2", bob, notifier.Email),
		note("e1", notifier.Person{ID: "frank", Email: "frank@example.test"}, notifier.Email), note("e3", bob, notifier.Slack)} {
		if err := b.Outbox.Put(ctx, natskv.Entry{Notification: n}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Outbox.Waiting(ctx, note("e2", bob, notifier.Email))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Entry.Notification.Cause != "e1" || got[1].Entry.Notification.Cause != "e2" {
		t.Fatalf("waiting for bob by e-mail: %+v", got)
	}
	if err := b.Outbox.Remove(ctx, got[0].Key); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Outbox.Waiting(ctx, note("e2", bob, notifier.Email)); len(got) != 1 {
		t.Fatalf("after removing one: %d waiting", len(got))
	}
}

// TestReplay: a callback is seen first once.
func TestReplay(t *testing.T) {
	b := open(t)
	ctx := context.Background()
	for i, want := range []bool{true, false, false} {
		if first, err := b.Replay.First(ctx, "v0=abc"); err != nil || first != want {
			t.Fatalf("sighting %d: first %v, %v", i+1, first, err)
		}
	}
	if first, _ := b.Replay.First(ctx, "v0=def"); !first {
		t.Fatal("another callback taken for a replay")
	}
}
