package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"

	"gopkg.in/yaml.v3"
)

// User is one person in a dev Directory.
type User struct {
	// ID is the token's sub; it must already be in NormalizeSubject form.
	ID     string   `yaml:"id"`
	Name   string   `yaml:"name"`
	Groups []string `yaml:"groups"`
	// Email is where the notifier mails the person; optional.
	Email string `yaml:"email,omitempty"`
}

// Directory is the set of users a DevIssuer can mint tokens for, loaded from YAML.
type Directory struct {
	users []User
	byID  map[string]int
}

// LoadDirectory reads and validates a directory file of the form
//
//	users:
//	  - id: alice
//	    name: Alice Engineer
//	    groups: [engineers]
//	    email: alice@example.test
//
// It returns an error if the file cannot be read, has unknown keys or more than one YAML document,
// lists no users, or has a user whose id is empty, duplicated or not equal to NormalizeSubject(id)
// (so the sub minted is the subject services see), who has an empty group name, or whose email is
// not a plain address.
func LoadDirectory(path string) (*Directory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load directory: %w", err)
	}
	d, err := parseDirectory(b)
	if err != nil {
		return nil, fmt.Errorf("load directory %s: %w", path, err)
	}
	return d, nil
}

func parseDirectory(b []byte) (*Directory, error) {
	var file struct {
		Users []User `yaml:"users"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(file.Users) == 0 {
		return nil, errors.New("no users")
	}
	d := &Directory{users: file.Users, byID: make(map[string]int, len(file.Users))}
	for i, u := range file.Users {
		if err := validateUser(u); err != nil {
			return nil, fmt.Errorf("user %d: %w", i+1, err)
		}
		if _, dup := d.byID[u.ID]; dup {
			return nil, fmt.Errorf("user %d: duplicate id %q", i+1, u.ID)
		}
		d.byID[u.ID] = i
	}
	return d, nil
}

func validateUser(u User) error {
	if u.ID == "" {
		return errors.New("id is empty")
	}
	norm, err := NormalizeSubject(u.ID)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if norm != u.ID {
		return fmt.Errorf("id %q is not in normal form, write %q", u.ID, norm)
	}
	for _, g := range u.Groups {
		if g == "" {
			return fmt.Errorf("id %q: empty group name", u.ID)
		}
	}
	if u.Email != "" {
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			return fmt.Errorf("id %q: email %q is not a plain address such as alice@example.test", u.ID, u.Email)
		}
	}
	return nil
}

// User returns the user whose id equals NormalizeSubject(id), so "Alice" finds alice, and false if
// there is none.
func (d *Directory) User(id string) (User, bool) {
	norm, err := NormalizeSubject(id)
	if err != nil {
		return User{}, false
	}
	i, ok := d.byID[norm]
	if !ok {
		return User{}, false
	}
	u := d.users[i]
	u.Groups = append([]string(nil), u.Groups...)
	return u, true
}

// Users returns every user in file order, for listing valid ids in CLI errors and dev pages.
func (d *Directory) Users() []User {
	out := make([]User, len(d.users))
	for i, u := range d.users {
		u.Groups = append([]string(nil), u.Groups...)
		out[i] = u
	}
	return out
}
