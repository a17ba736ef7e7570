package signin

import "testing"

// TestLocalPath: after signing in, the console goes only to one of its own pages.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/reviews":                   "/reviews",
		"/audit?q=requests&status=x": "/audit?q=requests&status=x",
		"":                           "/",
		"reviews":                    "/",
		"//evil.example/x":           "/",
		"https://evil.example/":      "/",
		`/\evil.example`:             "/",
		"javascript:alert(1)":        "/",
	} {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}
