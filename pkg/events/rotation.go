package events

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A key rotation keeps every event verifiable: the new key is trusted before any replica signs with
// it (AddKey), both keys are valid while replicas restart onto the new one, and the old key's window is
// closed only after the last replica stopped signing with it (RetireKey). A window is judged by the time
// the broker stored each event, so closing it later than needed is safe and closing it too early is not.

// ErrRotation is the class of a rotation step that would leave stored or future events unverifiable.
var ErrRotation = errors.New("key rotation refused")

// AddKey trusts s's key from notBefore on, beside the keys already listed. It refuses a key ID that is
// already listed.
func (tf *TrustFile) AddKey(s *Signer, notBefore time.Time) error {
	if slices.ContainsFunc(tf.Keys, func(k TrustedKey) bool { return k.ID == s.KeyID() }) {
		return fmt.Errorf("%w: key %q is already in the trust file", ErrRotation, s.KeyID())
	}
	tf.Keys = append(tf.Keys, trustedKey(s, notBefore))
	return nil
}

// trustedKey is s's public key, trusted from notBefore on.
func trustedKey(s *Signer, notBefore time.Time) TrustedKey {
	return TrustedKey{ID: s.KeyID(), Service: s.Service(), NotBefore: notBefore.UTC(),
		PublicKey: base64.StdEncoding.EncodeToString(s.PublicKey())}
}

// RetireKey closes key id's window at notAfter: events stored from then on with that key no longer
// verify. It refuses an unknown key, a window closed already (moving it could strand events it
// covers), a close before the key's own start, and one that would leave its service without a key
// valid at notAfter and after: retire a key only once its successor is trusted.
func (tf *TrustFile) RetireKey(id string, notAfter time.Time) error {
	i := slices.IndexFunc(tf.Keys, func(k TrustedKey) bool { return k.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: key %q is not in the trust file", ErrRotation, id)
	}
	k := &tf.Keys[i]
	switch {
	case !k.NotAfter.IsZero():
		return fmt.Errorf("%w: key %q was retired already, at %s", ErrRotation, id, k.NotAfter.Format(time.RFC3339))
	case !notAfter.After(k.NotBefore):
		return fmt.Errorf("%w: key %q would close at %s, before it became valid at %s", ErrRotation, id,
			notAfter.Format(time.RFC3339), k.NotBefore.Format(time.RFC3339))
	}
	successor := slices.ContainsFunc(tf.Keys, func(o TrustedKey) bool {
		return o.ID != id && o.Service == k.Service && !o.NotBefore.After(notAfter) && o.NotAfter.IsZero()
	})
	if !successor {
		return fmt.Errorf("%w: no other key of %s is valid from %s on; add its successor first", ErrRotation, k.Service,
			notAfter.Format(time.RFC3339))
	}
	k.NotAfter = notAfter.UTC()
	return nil
}
