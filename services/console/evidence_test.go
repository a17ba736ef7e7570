package console

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// chain seals a submission by intake and a decision by policy for request id, signed, as the store
// would store them.
func chain(t *testing.T, id string) []StoredEvent {
	t.Helper()
	intake, _ := events.GenerateSigner(events.Intake, "intake-2030")
	policy, _ := events.GenerateSigner(events.Policy, "policy-2030")
	sub := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "analytics-read", Justification: "weekly revenue report", DurationSeconds: 3600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	_, first, err := events.Draft{Payload: sub, Actor: "alice"}.Seal(id, events.Intake, t0, events.GenesisHash(id))
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
		EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:abc", InputDigest: "sha256:def"}}.Seal(id, events.Policy, t0.Add(time.Second), events.ChainHash(first))
	if err != nil {
		t.Fatal(err)
	}
	return []StoredEvent{
		{Seq: 7, StoredAt: t0, Signature: intake.Sign(first), Body: first},
		{Seq: 9, StoredAt: t0.Add(time.Second), Signature: policy.Sign(second), Body: second},
	}
}

// TestEvidence: what an auditor reads of each event (type, actor, signer, chain link) and which
// verification result applies to it.
func TestEvidence(t *testing.T) {
	id := events.NewID()
	tests := []struct {
		name    string
		stored  func([]StoredEvent) []StoredEvent
		verdict Verdict
		// want per event: "type actor signer link-holds result"
		want []string
	}{
		{name: "a verified chain", verdict: Verdict{Verified: true},
			want: []string{"submitted alice intake-2030 true verified", "policy_decided service:policy policy-2030 true verified"}},
		{name: "the read side found the second event's signature bad", verdict: Verdict{Kind: "bad_signature", Position: 1, Detail: "signature does not verify"},
			want: []string{"submitted alice intake-2030 true verified", "policy_decided service:policy policy-2030 true bad_signature: signature does not verify"}},
		{name: "the first event was altered: its successor's link no longer holds",
			stored: func(s []StoredEvent) []StoredEvent {
				s[0].Body = []byte(strings.Replace(string(s[0].Body), "weekly", "yearly", 1))
				return s
			},
			verdict: Verdict{Kind: "bad_signature", Position: 0},
			want:    []string{"submitted alice intake-2030 true bad_signature", "policy_decided service:policy policy-2030 false not verified (after the violation above)"}},
		{name: "a body that is not JSON, handed over in base64",
			stored: func(s []StoredEvent) []StoredEvent {
				s[1].Body, s[1].BodyBase64 = nil, base64.StdEncoding.EncodeToString([]byte{0xff, 0x00})
				return s
			},
			verdict: Verdict{Kind: "malformed", Position: 1},
			want:    []string{"submitted alice intake-2030 true verified", "  policy-2030 false malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := chain(t, id)
			if tt.stored != nil {
				stored = tt.stored(stored)
			}
			got := Evidence(id, stored, tt.verdict)
			if len(got) != len(tt.want) {
				t.Fatalf("%d entries, want %d", len(got), len(tt.want))
			}
			for i, e := range got {
				line := strings.Join([]string{e.Type, e.Actor, e.Signer, map[bool]string{true: "true", false: "false"}[e.LinkHolds], e.Result}, " ")
				if line != tt.want[i] {
					t.Errorf("event %d: %q, want %q", i, line, tt.want[i])
				}
				if e.Seq != stored[i].Seq || (e.Type != "" && e.Algorithm != "ed25519") {
					t.Errorf("event %d: seq %d, algorithm %q", i, e.Seq, e.Algorithm)
				}
			}
		})
	}
}
