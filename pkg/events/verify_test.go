package events

import (
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

type testKeys struct {
	signers  map[Service]*Signer
	verifier *Verifier
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	k := testKeys{signers: map[Service]*Signer{}}
	var all []*Signer
	for _, svc := range Services {
		s, err := GenerateSigner(svc, string(svc)+"-2026")
		if err != nil {
			t.Fatal(err)
		}
		k.signers[svc] = s
		all = append(all, s)
	}
	v, err := ParseTrustFile(NewTrustFile(t0.Add(-time.Hour), all...).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	k.verifier = v
	return k
}

// history seals a clean lifecycle: submitted, auto-approved, granted. Each record is signed by the
// service that owns its type.
func (k testKeys) history(t *testing.T) []Record {
	t.Helper()
	drafts := []Draft{{Payload: submittedPayload(false), Actor: "alice"}, {Payload: autoDecision()}, {Payload: grantAt(t0.Add(time.Minute), time.Hour)}}
	prev := GenesisHash(testRequestID)
	var recs []Record
	for i, d := range drafts {
		svc, _ := Emitter(d.Payload.EventType())
		recs = append(recs, k.seal(t, d, svc, prev, uint64(10+i)))
		prev = ChainHash(recs[i].Body)
	}
	return recs
}

func (k testKeys) seal(t *testing.T, d Draft, svc Service, prev string, seq uint64) Record {
	t.Helper()
	env, body, err := d.Seal(testRequestID, svc, t0.Add(time.Minute), prev)
	if err != nil {
		t.Fatal(err)
	}
	return Record{Seq: seq, Subject: NATSSubject(testRequestID, env.Type), Body: body, Signature: k.signers[svc].Sign(body), StoredAt: t0.Add(time.Minute)}
}

func TestVerifyCleanHistory(t *testing.T) {
	k := newTestKeys(t)
	evs, err := k.verifier.VerifyAll(k.history(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fold(testRequestID, evs); err != nil {
		t.Fatalf("a verified clean history does not fold: %v", err)
	}
}

// TestVerifyDetects: each row tampers with a clean history in one way and names the position and kind
// the verifier must report.
func TestVerifyDetects(t *testing.T) {
	k := newTestKeys(t)
	cases := []struct {
		name     string
		tamper   func([]Record) []Record
		position int
		kind     ViolationKind
	}{
		{"a body byte changed", func(r []Record) []Record {
			r[1].Body = []byte(strings.Replace(string(r[1].Body), "low risk", "low rizk", 1))
			return r
		}, 2, ViolationBadSignature},
		{"a signature removed", func(r []Record) []Record { r[2].Signature = ""; return r }, 3, ViolationMissingSignature},
		{"signed by a key not in the trust file", func(r []Record) []Record {
			rogue, _ := GenerateSigner(Fulfilment, "rogue")
			r[2].Signature = rogue.Sign(r[2].Body)
			return r
		}, 3, ViolationUnknownKey},
		{"an approval signed with intake's own valid key", func(r []Record) []Record {
			forged := k.seal(t, Draft{Payload: Approved{}}, Intake, ChainHash(r[1].Body), 12)
			return []Record{r[0], r[1], forged}
		}, 3, ViolationTypeNotAllowed},
		{"intake's key claiming to be the approval service", func(r []Record) []Record {
			forged := k.seal(t, Draft{Payload: Withdrawn{}, Actor: "alice"}, Approval, ChainHash(r[1].Body), 12)
			forged.Signature = k.signers[Intake].Sign(forged.Body)
			return []Record{r[0], r[1], forged}
		}, 3, ViolationSourceMismatch},
		{"a wrong prevhash", func(r []Record) []Record {
			bad := k.seal(t, Draft{Payload: grantAt(t0.Add(time.Minute), time.Hour)}, Fulfilment, "sha256:0000", 12)
			return []Record{r[0], r[1], bad}
		}, 3, ViolationChainBroken},
		{"an event deleted from the middle", func(r []Record) []Record { return []Record{r[0], r[2]} }, 2, ViolationChainBroken},
		{"two events swapped", func(r []Record) []Record { return []Record{r[0], r[2], r[1]} }, 2, ViolationChainBroken},
		{"an append that skipped the compare-and-set (a fork)", func(r []Record) []Record {
			// Both writers saw the submitted event as the head, so both link to it.
			fork := k.seal(t, Draft{Payload: Withdrawn{}, Actor: "alice"}, Intake, ChainHash(r[0].Body), 13)
			return []Record{r[0], r[1], fork}
		}, 3, ViolationChainBroken},
		{"stored under another request's subject", func(r []Record) []Record {
			r[1].Subject = NATSSubject("01KB0000000000000000000001", TypePolicyDecided)
			return r
		}, 2, ViolationSubjectMismatch},
		{"stream sequence going backwards", func(r []Record) []Record { r[2].Seq = 5; return r }, 3, ViolationSequence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.verifier.VerifyAll(tc.tamper(k.history(t)))
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("VerifyAll = %v, want a *Violation", err)
			}
			if v.Position != tc.position || v.Kind != tc.kind {
				t.Fatalf("reported %s at position %d, want %s at %d (%v)", v.Kind, v.Position, tc.kind, tc.position, err)
			}
		})
	}
}

func TestKeyValidityWindow(t *testing.T) {
	old, _ := GenerateSigner(Policy, "policy-2025")
	tf := NewTrustFile(t0.Add(-48*time.Hour), old)
	tf.Keys[0].NotAfter = t0.Add(-time.Hour) // rotated out an hour before the event was stored
	v, err := NewVerifier(tf)
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := Draft{Payload: autoDecision()}.Seal(testRequestID, Policy, t0, GenesisHash(testRequestID))
	rec := Record{Seq: 1, Subject: NATSSubject(testRequestID, TypePolicyDecided), Body: body, Signature: old.Sign(body), StoredAt: t0}
	_, err = v.NewChain().Next(rec)
	var viol *Violation
	if !errors.As(err, &viol) || viol.Kind != ViolationKeyNotValid {
		t.Fatalf("a retired key was accepted: %v", err)
	}
}

func TestTrustFileRefusesCrossServiceTypes(t *testing.T) {
	tf := NewTrustFile(t0)
	tf.Services[Intake] = append(tf.Services[Intake], TypeApproved)
	if _, err := NewVerifier(tf); err == nil {
		t.Fatal("a trust file letting intake emit approved was accepted")
	}
}

func TestSignerKeyFileRoundTrip(t *testing.T) {
	s, err := GenerateSigner(Revoker, "revoker-1")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSigner(s.MarshalKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if back.Sign([]byte("x")) != s.Sign([]byte("x")) || back.Service() != Revoker {
		t.Fatal("key file does not round trip")
	}
	if _, err := ParseSigner([]byte(`{"key_id":"k","service":"root","seed":"AAAA"}`)); err == nil {
		t.Fatal("unknown service accepted")
	}
}

func TestSignerFromEnv(t *testing.T) {
	s, _ := GenerateSigner(Approval, "approval-1")
	path := t.TempDir() + "/approval.key"
	if err := os.WriteFile(path, s.MarshalKeyFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	cases := []struct {
		name    string
		vars    map[string]string
		want    Service
		wantErr bool
	}{
		{"key contents", map[string]string{EnvSigningKey: string(s.MarshalKeyFile())}, Approval, false},
		{"key file", map[string]string{EnvSigningKeyFile: path}, Approval, false},
		{"another service's key", map[string]string{EnvSigningKeyFile: path}, Fulfilment, true},
		{"nothing set", map[string]string{}, Approval, true},
		{"a missing file", map[string]string{EnvSigningKeyFile: path + ".missing"}, Approval, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SignerFromEnv(env(tc.vars), tc.want)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got.KeyID() != s.KeyID() {
				t.Fatalf("loaded %s", got.KeyID())
			}
		})
	}
}

// TestKeyRotation: the trust file's steps of a rotation, as scenarios. Each step either keeps every
// event verifiable or is refused.
func TestKeyRotation(t *testing.T) {
	start := t0.Add(-48 * time.Hour)
	old, _ := GenerateSigner(Revoker, "revoker-2025")
	next, _ := GenerateSigner(Revoker, "revoker-2026")
	policy, _ := GenerateSigner(Policy, "policy-2025")
	fresh := func() TrustFile { return NewTrustFile(start, old, policy) }
	for _, tc := range []struct {
		name string
		step func(tf *TrustFile) error
		ok   bool
	}{
		{"retiring a key before its successor is trusted is refused", func(tf *TrustFile) error { return tf.RetireKey(old.KeyID(), t0) }, false},
		{"adding the successor, then retiring the old key at the end of the rollout", func(tf *TrustFile) error {
			if err := tf.AddKey(next, t0.Add(-time.Hour)); err != nil {
				return err
			}
			return tf.RetireKey(old.KeyID(), t0)
		}, true},
		{"a successor valid only after the close leaves a gap", func(tf *TrustFile) error {
			if err := tf.AddKey(next, t0.Add(time.Hour)); err != nil {
				return err
			}
			return tf.RetireKey(old.KeyID(), t0)
		}, false},
		{"another service's key is no successor", func(tf *TrustFile) error { return tf.RetireKey(old.KeyID(), t0) }, false},
		{"the same key cannot be added twice", func(tf *TrustFile) error { return tf.AddKey(old, t0) }, false},
		{"an unknown key cannot be retired", func(tf *TrustFile) error { return tf.RetireKey("nobody", t0) }, false},
		{"a close before the key's start is refused", func(tf *TrustFile) error {
			if err := tf.AddKey(next, start); err != nil {
				return err
			}
			return tf.RetireKey(old.KeyID(), start.Add(-time.Hour))
		}, false},
		{"a retired key's window is not moved", func(tf *TrustFile) error {
			if err := tf.AddKey(next, start); err != nil {
				return err
			}
			if err := tf.RetireKey(old.KeyID(), t0); err != nil {
				return err
			}
			return tf.RetireKey(old.KeyID(), t0.Add(-time.Hour))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tf := fresh()
			err := tc.step(&tf)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrRotation)) {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}

	// After the rotation, an event the old key signed before the close verifies, one after does not,
	// and the new key's does.
	tf := fresh()
	if err := tf.AddKey(next, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := tf.RetireKey(old.KeyID(), t0); err != nil {
		t.Fatal(err)
	}
	v, err := ParseTrustFile(tf.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := Draft{Payload: RevocationRequested{By: "alice", Reason: "early"}}.Seal(testRequestID, Revoker, t0, GenesisHash(testRequestID))
	for _, c := range []struct {
		signer *Signer
		stored time.Time
		ok     bool
	}{
		{old, t0.Add(-time.Minute), true},
		{old, t0, false},
		{next, t0.Add(-time.Minute), true},
		{next, t0.Add(time.Hour), true},
	} {
		rec := Record{Seq: 1, Subject: NATSSubject(testRequestID, TypeRevocationRequested), Body: body, Signature: c.signer.Sign(body), StoredAt: c.stored}
		if _, err := v.NewChain().Next(rec); c.ok != (err == nil) {
			t.Errorf("%s stored at %s: %v, want ok=%v", c.signer.KeyID(), c.stored.Format(time.RFC3339), err, c.ok)
		}
	}
}

// TestCheckSignedSkipsOnlyTheSignature: a batch verifier asks Signature for what to verify, then
// CheckSigned checks everything else exactly as Check does. Each row is a stored event and whether
// Signature offers it for a batch.
func TestCheckSignedSkipsOnlyTheSignature(t *testing.T) {
	k := newTestKeys(t)
	cases := []struct {
		name      string
		rec       func([]Record) Record
		batchable bool
		kind      ViolationKind // what CheckSigned reports; "" for nothing
	}{
		{"a clean event", func(r []Record) Record { return r[1] }, true, ""},
		{"no signature header", func(r []Record) Record { r[1].Signature = ""; return r[1] }, false, ViolationMissingSignature},
		{"a malformed header", func(r []Record) Record { r[1].Signature = "ed25519;policy-2026"; return r[1] }, false, ViolationBadSignature},
		{"a key not in the trust file", func(r []Record) Record {
			rogue, _ := GenerateSigner(Policy, "rogue")
			r[1].Signature = rogue.Sign(r[1].Body)
			return r[1]
		}, false, ViolationUnknownKey},
		{"a type the key's service may not emit", func(r []Record) Record {
			return k.seal(t, Draft{Payload: Approved{}}, Intake, ChainHash(r[1].Body), 12)
		}, true, ViolationTypeNotAllowed},
		{"stored under another request's subject", func(r []Record) Record {
			r[1].Subject = NATSSubject("01KB0000000000000000000001", TypePolicyDecided)
			return r[1]
		}, true, ViolationSubjectMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec(k.history(t))
			pub, sig, ok := k.verifier.Signature(rec)
			if ok != tc.batchable {
				t.Fatalf("Signature offers it for a batch: %v, want %v", ok, tc.batchable)
			}
			if ok && !ed25519.Verify(pub, rec.Body, sig) {
				t.Fatal("Signature returned a key and signature that do not verify the body")
			}
			signed, checked := k.verifier.CheckSigned(rec, 2), k.verifier.Check(rec, 2)
			var v *Violation
			switch {
			case tc.kind == "" && (signed.Err != nil || checked.Err != nil):
				t.Fatalf("CheckSigned: %v, Check: %v; want neither to find anything", signed.Err, checked.Err)
			case tc.kind != "" && (!errors.As(signed.Err, &v) || v.Kind != tc.kind || v.Position != 2):
				t.Fatalf("CheckSigned: %v, want %s at position 2", signed.Err, tc.kind)
			case tc.kind != "" && checked.Err.Error() != signed.Err.Error():
				t.Fatalf("Check found %v, CheckSigned %v", checked.Err, signed.Err)
			case signed.Hash != ChainHash(rec.Body):
				t.Fatalf("hash %s, want the chain hash of the body", signed.Hash)
			}
		})
	}

	t.Run("a changed body is left to the caller's signature check", func(t *testing.T) {
		rec := k.history(t)[1]
		rec.Body = []byte(strings.Replace(string(rec.Body), "low risk", "low rizk", 1))
		var v *Violation
		if ck := k.verifier.Check(rec, 2); !errors.As(ck.Err, &v) || v.Kind != ViolationBadSignature {
			t.Fatalf("Check: %v, want a bad signature", ck.Err)
		}
		if ck := k.verifier.CheckSigned(rec, 2); ck.Err != nil {
			t.Fatalf("CheckSigned: %v; it must not verify the signature again", ck.Err)
		}
	})
}
