package console

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// signers are the keys of the test chain: intake's and policy's, which the trust file names, and a key
// of intake's that it does not.
type signers struct{ intake, policy, stranger *events.Signer }

func newSigners() signers {
	intake, _ := events.GenerateSigner(events.Intake, "intake-2030")
	policy, _ := events.GenerateSigner(events.Policy, "policy-2030")
	stranger, _ := events.GenerateSigner(events.Intake, "intake-unknown")
	return signers{intake, policy, stranger}
}

func (k signers) trust(t *testing.T) *events.Verifier {
	t.Helper()
	v, err := events.NewVerifier(events.NewTrustFile(t0.Add(-time.Hour), k.intake, k.policy))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// chain seals a submission by intake and a decision by policy for request id, signed, as the store
// would store them.
func chain(t *testing.T, k signers, id string) []StoredEvent {
	t.Helper()
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
		{Seq: 7, Subject: events.NATSSubject(id, events.TypeSubmitted), StoredAt: t0, Signature: k.intake.Sign(first), Body: first},
		{Seq: 9, Subject: events.NATSSubject(id, events.TypePolicyDecided), StoredAt: t0.Add(time.Second), Signature: k.policy.Sign(second), Body: second},
	}
}

// TestEvidence: what an auditor reads of each event (type, actor, signer, chain link), the console's
// own check of it against the trust file, and where the read side's verdict applies.
func TestEvidence(t *testing.T) {
	id := events.NewID()
	k := newSigners()
	verified := Verdict{Verified: true}
	tests := []struct {
		name     string
		stored   func([]StoredEvent) []StoredEvent
		readSide Verdict
		// want per event: "type actor signer link-holds result | read side"
		want []string
		// own is the console's verdict: its kind and position, or "" for verified.
		own string
		// agrees: the two verdicts found the same.
		agrees bool
	}{
		{name: "a verified chain", readSide: verified, agrees: true,
			want: []string{"submitted alice intake-2030 true verified | ", "policy_decided service:policy policy-2030 true verified | "}},
		{name: "the read side found what only the request's rules catch, at the second event",
			readSide: Verdict{Kind: "invariant", Position: 2, Detail: "no decision for a withdrawn request"},
			want: []string{"submitted alice intake-2030 true verified | ",
				"policy_decided service:policy policy-2030 true verified | invariant: no decision for a withdrawn request"}},
		{name: "the first event was altered: its signature fails here too, and its successor's link no longer holds",
			stored: func(s []StoredEvent) []StoredEvent {
				s[0].Body = []byte(strings.Replace(string(s[0].Body), "weekly", "yearly", 1))
				return s
			},
			readSide: Verdict{Kind: "bad_signature", Position: 1},
			want: []string{`submitted alice intake-2030 true bad_signature: signature by key "intake-2030" does not match the body | bad_signature`,
				"policy_decided service:policy policy-2030 false not verified (after the violation above) | "},
			own: "bad_signature 1", agrees: true},
		{name: "a body that is not JSON, handed over in base64, is not what was signed",
			stored: func(s []StoredEvent) []StoredEvent {
				s[1].Body, s[1].BodyBase64 = nil, base64.StdEncoding.EncodeToString([]byte{0xff, 0x00})
				return s
			},
			readSide: Verdict{Kind: "bad_signature", Position: 2},
			want: []string{"submitted alice intake-2030 true verified | ",
				`  policy-2030 false bad_signature: signature by key "policy-2030" does not match the body | bad_signature`},
			own: "bad_signature 2", agrees: true},
		{name: "the read side says verified, but a key the trust file does not name signed the decision",
			stored: func(s []StoredEvent) []StoredEvent {
				s[1].Signature = k.stranger.Sign(s[1].Body)
				return s
			},
			readSide: verified,
			want: []string{"submitted alice intake-2030 true verified | ",
				`policy_decided service:policy intake-unknown true unknown_key: key "intake-unknown" is not in the trust file | `},
			own: "unknown_key 2"},
		{name: "intake's own key signed policy's decision",
			stored: func(s []StoredEvent) []StoredEvent {
				s[1].Signature = k.intake.Sign(s[1].Body)
				return s
			},
			readSide: Verdict{Kind: "type_not_allowed", Position: 2},
			want: []string{"submitted alice intake-2030 true verified | ",
				`policy_decided service:policy intake-2030 true type_not_allowed: key "intake-2030" of service intake may not emit policy_decided | type_not_allowed`},
			own: "type_not_allowed 2", agrees: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := chain(t, k, id)
			if tt.stored != nil {
				stored = tt.stored(stored)
			}
			got, own := Evidence(id, stored, tt.readSide, k.trust(t))
			if len(got) != len(tt.want) {
				t.Fatalf("%d entries, want %d", len(got), len(tt.want))
			}
			for i, e := range got {
				line := strings.Join([]string{e.Type, e.Actor, e.Signer, strconv.FormatBool(e.LinkHolds), e.Result, "|", e.ReadSide}, " ")
				if line != tt.want[i] {
					t.Errorf("event %d:\n got %q\nwant %q", i+1, line, tt.want[i])
				}
				if e.OK != (e.Result == "verified") || e.Seq != stored[i].Seq || (e.Type != "" && e.Algorithm != "ed25519") {
					t.Errorf("event %d: ok %v, seq %d, algorithm %q", i+1, e.OK, e.Seq, e.Algorithm)
				}
			}
			ownLine := ""
			if !own.Verified {
				ownLine = own.Kind + " " + strconv.Itoa(own.Position)
			}
			if ownLine != tt.own {
				t.Errorf("the console's verdict %q, want %q", ownLine, tt.own)
			}
			if agrees := own.Agrees(tt.readSide); agrees != tt.agrees {
				t.Errorf("the console's verdict agrees with the read side's: %v, want %v", agrees, tt.agrees)
			}
		})
	}
}
