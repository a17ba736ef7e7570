package events

import "github.com/hdevalence/ed25519consensus"

// signatureBatch is how many signatures CheckBatch verifies together. Batch verification costs about
// half a single verification per signature from a few dozen on; a batch that fails is verified again one
// signature at a time to name the culprit, so a smaller batch wastes less on a tampered history.
const signatureBatch = 64

// CheckBatch is Check for consecutive stored events, recs[i] at position first+i, into out[i] (out is
// at least as long as recs), verifying their signatures in batches (ed25519consensus, the ZIP 215
// rules). A batch that verifies vouches for each of its signatures; one that does not, or an event whose
// signature header names no trusted key, is checked one event at a time with crypto/ed25519, exactly as
// Check would, so every verdict is Check's. The rules differ only for signatures the key's holder
// crafted with small-order components, which ZIP 215 accepts: that is no forgery, as only the holder of
// the signing key can make one. It is safe to call from many goroutines at once.
func (v *Verifier) CheckBatch(recs []Record, first int, out []Checked) {
	signed := make([]bool, signatureBatch)
	for lo := 0; lo < len(recs); lo += signatureBatch {
		hi := min(lo+signatureBatch, len(recs))
		batch := ed25519consensus.NewPreallocatedBatchVerifier(hi - lo)
		batched := false
		for i := lo; i < hi; i++ {
			pub, sig, ok := v.Signature(recs[i])
			if signed[i-lo] = ok; ok {
				batch.Add(pub, recs[i].Body, sig)
				batched = true
			}
		}
		valid := batched && batch.Verify()
		for i := lo; i < hi; i++ {
			if valid && signed[i-lo] {
				out[i] = v.CheckSigned(recs[i], first+i)
			} else {
				out[i] = v.Check(recs[i], first+i)
			}
		}
	}
}
