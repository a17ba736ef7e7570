package auth

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/text/secure/precis"
)

// ErrUnauthenticated is wrapped by every error that Authenticate and Verify return; the wrapping
// message says what was wrong with the credential. Edges map it to 401.
var ErrUnauthenticated = errors.New("unauthenticated")

// maxSubjectBytes bounds the raw sub claim. OIDC Core §2 limits sub to 255 ASCII characters; the
// bound also keeps PRECIS work on hostile input small.
const maxSubjectBytes = 255

// Identity is an authenticated caller: a normalised subject and the groups the issuer asserted.
type Identity struct {
	// Subject is the token's sub after NormalizeSubject.
	Subject string
	// Groups are the values of the configured groups claim, as issued; nil when the claim is absent.
	Groups []string
	// Actor is who acts for the subject (the act claim's sub, RFC 8693): a service that exchanged its
	// credentials for this token, such as the notifier for a review pressed in Slack; empty when the
	// person presents their own token.
	Actor string
}

// NormalizeSubject maps s with the PRECIS UsernameCaseMapped profile (RFC 8265), so width and case
// variants of one identifier ("ＡＬＩＣＥ", "Alice", "alice") compare equal. It returns an error
// for input the profile refuses (spaces, control and zero-width characters, bidi controls, mixed
// directions), for the empty string, for input longer than 255 bytes, and for input whose mapping
// is not stable under a second application, so a stored subject always re-normalises to itself.
func NormalizeSubject(s string) (string, error) {
	if len(s) > maxSubjectBytes {
		return "", fmt.Errorf("subject is %d bytes, longer than %d", len(s), maxSubjectBytes)
	}
	// x/text's profile accepts "" although RFC 8264 §7 requires refusing it.
	if s == "" {
		return "", errors.New("subject is empty")
	}
	out, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", fmt.Errorf("subject %q: %w", s, err)
	}
	if out == "" {
		return "", fmt.Errorf("subject %q normalises to the empty string", s)
	}
	// Subjects are stored and compared later; one that changes again on a second pass would
	// make those comparisons depend on how often it was normalised.
	again, err := precis.UsernameCaseMapped.String(out)
	if err != nil || again != out {
		return "", fmt.Errorf("subject %q does not normalise stably", s)
	}
	return out, nil
}

type identityKey struct{}

// WithIdentity returns a copy of ctx carrying id, for handlers downstream of authentication.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the Identity stored by WithIdentity, and false if there is none.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
