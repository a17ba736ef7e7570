// Package lookup gives the notifier's rules their directory and catalogue: the people of a directory
// file (pkg/auth, with their e-mail addresses) and the entries of the entitlement catalogue
// (pkg/catalogue), in the shapes notifier.Directory and notifier.Catalogue ask for.
package lookup

import (
	"slices"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/services/notifier"
)

// Directory is a directory file as the rules read it.
type Directory struct {
	dir *auth.Directory
}

// NewDirectory wraps dir.
func NewDirectory(dir *auth.Directory) Directory { return Directory{dir: dir} }

// Person returns the person whose subject is id (compared after normalisation), or false.
func (d Directory) Person(id string) (notifier.Person, bool) {
	u, ok := d.dir.User(id)
	if !ok {
		return notifier.Person{}, false
	}
	return person(u), true
}

// Members returns the people of group in file order.
func (d Directory) Members(group string) []notifier.Person {
	var out []notifier.Person
	for _, u := range d.dir.Users() {
		if slices.Contains(u.Groups, group) {
			out = append(out, person(u))
		}
	}
	return out
}

func person(u auth.User) notifier.Person {
	return notifier.Person{ID: u.ID, Name: u.Name, Email: u.Email}
}

// Catalogue is the entitlement catalogue as the rules read it.
type Catalogue struct {
	cat *catalogue.Catalogue
}

// NewCatalogue wraps cat.
func NewCatalogue(cat *catalogue.Catalogue) Catalogue { return Catalogue{cat: cat} }

// Entitlement returns the entry named id, or false.
func (c Catalogue) Entitlement(id string) (notifier.Entitlement, bool) {
	e, ok := c.cat.Entitlement(id)
	if !ok {
		return notifier.Entitlement{}, false
	}
	return notifier.Entitlement{ID: e.ID, Description: e.Description, System: e.System, Resource: e.Resource,
		OwnerGroups: slices.Clone(e.OwnerGroups)}, true
}
