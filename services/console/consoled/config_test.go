package consoled

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/services/console/apiclient"
)

func keyFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "session.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFromEnv(t *testing.T) {
	hexKey := keyFile(t, strings.Repeat("ab", 32)+"\n")
	env := map[string]string{
		"GRANTLINE_CONSOLE_URL": "https://grantline.example.com", "GRANTLINE_API_URL": "http://gateway:8080",
		"GRANTLINE_QUERY_URL": "http://query:8086", "GRANTLINE_CATALOGUE": "catalogue.yaml",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example.com", "GRANTLINE_OIDC_AUDIENCE": "grantline",
		"GRANTLINE_CONSOLE_SESSION_KEY_FILE": hexKey,
	}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8087" || c.SessionTTL != 8*time.Hour || c.Replicas != 1 || len(c.SessionKey) != 32 || c.SessionKey[0] != 0xab ||
		c.ServiceURLs[apiclient.Query] != "http://query:8086" || c.APIURL != "http://gateway:8080" {
		t.Fatalf("config %+v", c)
	}
	if strings.Contains(c.LogValue().String(), strings.Repeat("ab", 8)) {
		t.Fatal("the log line shows the session key")
	}

	for _, tc := range []struct {
		name, key, value, wantErr string
	}{
		{"no public URL", "GRANTLINE_CONSOLE_URL", "", "GRANTLINE_CONSOLE_URL is required"},
		{"plain http on a network", "GRANTLINE_CONSOLE_URL", "http://grantline.example.com", "plain http"},
		{"no API URL for four services", "GRANTLINE_API_URL", "", "the intake service's URL"},
		{"no session key", "GRANTLINE_CONSOLE_SESSION_KEY_FILE", "", "GRANTLINE_CONSOLE_SESSION_KEY_FILE: is required"},
		{"a short session key", "GRANTLINE_CONSOLE_SESSION_KEY_FILE", keyFile(t, "short"), "neither 32 bytes"},
		{"a session lifetime that is no duration", "GRANTLINE_CONSOLE_SESSION_TTL", "a day", "GRANTLINE_CONSOLE_SESSION_TTL"},
		{"no issuer", "GRANTLINE_OIDC_ISSUER", "", "GRANTLINE_OIDC_ISSUER is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromEnv(func(k string) string {
				if k == tc.key {
					return tc.value
				}
				return env[k]
			})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
