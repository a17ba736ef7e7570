package auth

import (
	"context"
	"strings"
	"testing"
)

// TestNormalizeSubject: which spellings are one person, and which subjects are refused because
// they could impersonate someone or are not printable identifiers.
func TestNormalizeSubject(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "an already normal id", in: "alice", want: "alice"},
		{name: "capitals fold to lower case", in: "Alice", want: "alice"},
		{name: "full-width letters fold to ASCII", in: "ａｌｉｃｅ", want: "alice"},
		{name: "IdP-style ids keep their punctuation", in: "auth0|5f3a", want: "auth0|5f3a"},
		{name: "an email-style id", in: "Alice@Example.com", want: "alice@example.com"},
		{name: "non-Latin letters are kept, case-folded", in: "ΣΑΣ", want: "σασ"},
		{name: "a zero-width space hides inside a name", in: "ali\u200bce", wantErr: "disallowed rune"},
		{name: "a zero-width joiner outside its script", in: "ali\u200dce", wantErr: "contextual rule"},
		{name: "a right-to-left override reverses how it displays", in: "\u202eecila", wantErr: "Bidi"},
		{name: "a space", in: "alice smith", wantErr: "disallowed rune"},
		{name: "a control character", in: "alice\n", wantErr: "disallowed rune"},
		{name: "the empty string", in: "", wantErr: "empty"},
		{name: "longer than OIDC allows", in: strings.Repeat("a", 256), wantErr: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeSubject(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NormalizeSubject(%q) = %q, %v; want error saying %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeSubject(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := NormalizeSubject(got); err != nil || again != got {
				t.Fatalf("NormalizeSubject is not idempotent on %q: %q, %v", got, again, err)
			}
		})
	}
}

func TestIdentityContext(t *testing.T) {
	ctx := context.Background()
	if id, ok := FromContext(ctx); ok {
		t.Fatalf("empty context has identity %+v", id)
	}
	want := Identity{Subject: "alice", Groups: []string{"engineers"}}
	got, ok := FromContext(WithIdentity(ctx, want))
	if !ok || got.Subject != want.Subject || len(got.Groups) != 1 || got.Groups[0] != "engineers" {
		t.Fatalf("FromContext = %+v, %v; want %+v", got, ok, want)
	}
}
