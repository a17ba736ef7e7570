package consoled_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/consoled"
)

func keyFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "session.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfig: what the console adds to the shared configuration (pkg/config tests the rest): where
// people reach it and where the services are, its catalogue, its session key, lifetime and bucket
// replicas; and the refusals, each naming its variable.
func TestConfig(t *testing.T) {
	hexKey := keyFile(t, strings.Repeat("ab", 32)+"\n")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline",
		"GRANTLINE_CATALOGUE=catalogue.yaml"}
	c := consoled.Defaults()
	if err := config.Parse(&c, append(shared, "GRANTLINE_CONSOLE_PUBLIC_URL=https://grantline.example.com", "GRANTLINE_API_URL=http://gateway:8080",
		"GRANTLINE_QUERY_URL=http://query:8086", "GRANTLINE_CONSOLE_SESSION_KEY_FILE="+hexKey)); err != nil {
		t.Fatal(err)
	}
	api := c.API()
	if c.HTTPAddr != ":8087" || c.SessionTTL != 8*time.Hour || c.Replicas != 1 || api.BaseURL != "http://gateway:8080" ||
		len(api.ServiceURLs) != 1 || api.ServiceURLs[apiclient.Query] != "http://query:8086" {
		t.Fatalf("config %+v, API %+v", c, api)
	}
	if key, err := consoled.ReadSessionKey(hexKey); err != nil || len(key) != 32 || key[0] != 0xab {
		t.Fatalf("session key %x, %v", key, err)
	}
	if raw, err := consoled.ReadSessionKey(keyFile(t, strings.Repeat("k", 32))); err != nil || string(raw) != strings.Repeat("k", 32) {
		t.Fatalf("raw session key %q, %v", raw, err)
	}

	short := keyFile(t, "short")
	c = consoled.Defaults()
	err := config.Parse(&c, append(shared, "GRANTLINE_CONSOLE_PUBLIC_URL=http://grantline.example.com", "GRANTLINE_INTAKE_URL=http://intake:8081",
		"GRANTLINE_CONSOLE_SESSION_KEY_FILE="+short, "GRANTLINE_CONSOLE_SESSION_TTL=0s"))
	want := "GRANTLINE_CONSOLE_SESSION_TTL must be above zero, not 0s\n" +
		`GRANTLINE_CONSOLE_PUBLIC_URL: the console's public URL "http://grantline.example.com" is plain http on a network: use https (plain http is for localhost only)` + "\n" +
		"GRANTLINE_API_URL or the per-service URLs: " + `the approval service's URL "" is not an absolute http(s) URL` + "\n" +
		`the fulfilment service's URL "" is not an absolute http(s) URL` + "\n" +
		`the revoker service's URL "" is not an absolute http(s) URL` + "\n" +
		`the query service's URL "" is not an absolute http(s) URL` + "\n" +
		"GRANTLINE_CONSOLE_SESSION_KEY_FILE: " + short + " holds neither 32 bytes nor 64 hex digits"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	c = consoled.Defaults()
	err = config.Parse(&c, shared)
	want = "GRANTLINE_CONSOLE_PUBLIC_URL is required\nGRANTLINE_CONSOLE_SESSION_KEY_FILE is required\n" +
		"GRANTLINE_API_URL is required (or each service's own URL, such as GRANTLINE_INTAKE_URL)"
	if err == nil || err.Error() != want {
		t.Errorf("Parse without the console's own variables = %v, want\n%s", err, want)
	}
}
