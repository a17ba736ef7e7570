package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4/jwt"
)

// checkShape refuses tokens that are not a signed compact JWS with an accepted algorithm, before
// go-oidc sees them. go-oidc would refuse them too; this exists so the error names the problem
// ("alg none") instead of a parser message. It returns the three dot-separated parts.
func checkShape(raw string) ([]string, error) {
	if raw == "" {
		return nil, errors.New("empty bearer token")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed token: %d dot-separated parts, want 3 (compact JWS)", len(parts))
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, fmt.Errorf("malformed token header: %w", err)
	}
	switch {
	case strings.EqualFold(header.Alg, "none"):
		return nil, errors.New("unsigned token (alg none) refused")
	case !slices.Contains(acceptedAlgs, header.Alg):
		return nil, fmt.Errorf("signing algorithm %q not accepted, want one of %v", header.Alg, acceptedAlgs)
	case parts[2] == "":
		return nil, errors.New("malformed token: empty signature")
	}
	return parts, nil
}

// explain turns a go-oidc verification failure into a message naming the problem. go-oidc checks
// the signature before issuer and audience but reports them only as text, so the unverified
// claims are compared here. A forged token that also has a wrong issuer is reported as a wrong
// issuer, which is still true; the decision to refuse was go-oidc's either way.
func (v *Verifier) explain(parts []string, err error) error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return fmt.Errorf("token expired at %s: %w", expired.Expiry.UTC().Format(time.RFC3339), err)
	}
	var claims struct {
		Issuer   string       `json:"iss"`
		Audience jwt.Audience `json:"aud"`
	}
	if decodeSegment(parts[1], &claims) != nil {
		return fmt.Errorf("malformed token claims: %w", err)
	}
	if claims.Issuer != v.issuer {
		return fmt.Errorf("token issuer %q is not %q: %w", claims.Issuer, v.issuer, err)
	}
	if !claims.Audience.Contains(v.audience) {
		return fmt.Errorf("token audience %q does not include %q: %w", []string(claims.Audience), v.audience, err)
	}
	return fmt.Errorf("bad signature or claims: %w", err)
}

// decodeSegment decodes one base64url JWS segment as JSON. Trailing padding is tolerated because
// go-jose tolerates it, and refusing here what the library accepts would be a false negative.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}
