package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadDirectory: which directory files `grantline dev` starts with, and what it says about
// the ones it refuses.
func TestLoadDirectory(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantUsers int
		wantErr   string
	}{
		{name: "the test directory", yaml: testDirectoryYAML, wantUsers: 3},
		{name: "a typo in the top-level key", yaml: "user:\n  - id: alice\n", wantErr: "field user not found"},
		{name: "a typo in a user's key", yaml: "users:\n  - id: alice\n    group: [engineers]\n", wantErr: "field group not found"},
		{name: "two users with the same id", yaml: "users:\n  - id: alice\n  - id: bob\n  - id: alice\n", wantErr: `user 3: duplicate id "alice"`},
		{name: "a user without an id", yaml: "users:\n  - name: Nobody\n", wantErr: "user 1: id is empty"},
		{name: "an id that is not in normal form", yaml: "users:\n  - id: Alice\n", wantErr: `not in normal form, write "alice"`},
		{name: "an id with a space", yaml: "users:\n  - id: alice smith\n", wantErr: "disallowed rune"},
		{name: "an empty group name", yaml: "users:\n  - id: alice\n    groups: [engineers, '']\n", wantErr: "empty group name"},
		{name: "no users", yaml: "users: []\n", wantErr: "no users"},
		{name: "an e-mail address", yaml: "users:\n  - id: alice\n    email: alice@example.test\n", wantUsers: 1},
		{name: "an e-mail with a display name", yaml: "users:\n  - id: alice\n    email: Alice <alice@example.test>\n", wantErr: "not a plain address"},
		{name: "an e-mail that is no address", yaml: "users:\n  - id: alice\n    email: alice\n", wantErr: "not a plain address"},
		{name: "an empty file", yaml: "", wantErr: "file is empty"},
		{name: "a second YAML document", yaml: "users:\n  - id: alice\n---\nusers:\n  - id: bob\n", wantErr: "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "directory.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := LoadDirectory(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadDirectory error = %v, want one saying %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadDirectory: %v", err)
			}
			if got := len(d.Users()); got != tt.wantUsers {
				t.Errorf("%d users, want %d", got, tt.wantUsers)
			}
		})
	}
}

// TestExampleDirectoryLoads keeps the shipped demo directory loadable.
func TestExampleDirectoryLoads(t *testing.T) {
	d, err := LoadDirectory(filepath.Join("..", "..", "examples", "directory.yaml"))
	if err != nil {
		t.Fatalf("LoadDirectory(examples/directory.yaml): %v", err)
	}
	if _, ok := d.User("alice"); !ok {
		t.Error("examples/directory.yaml has no alice")
	}
}

func TestDirectoryUser(t *testing.T) {
	d := testDirectory(t)
	tests := []struct {
		name   string
		lookup string
		wantID string // empty: not found
	}{
		{name: "alice by her id", lookup: "alice", wantID: "alice"},
		{name: "alice typed with a capital", lookup: "Alice", wantID: "alice"},
		{name: "alice typed full-width", lookup: "ａｌｉｃｅ", wantID: "alice"},
		{name: "someone not in the directory", lookup: "mallory"},
		{name: "an id PRECIS refuses", lookup: "ali\u200bce"},
		{name: "the empty id", lookup: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := d.User(tt.lookup)
			if ok != (tt.wantID != "") || u.ID != tt.wantID {
				t.Fatalf("User(%q) = %+v, %v; want id %q", tt.lookup, u, ok, tt.wantID)
			}
		})
	}

	u, _ := d.User("alice")
	u.Groups[0] = "admins"
	if again, _ := d.User("alice"); again.Groups[0] != "engineers" {
		t.Errorf("changing a returned user changed the directory: groups now %v", again.Groups)
	}
}
