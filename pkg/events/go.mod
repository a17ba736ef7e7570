module github.com/grantline/grantline/pkg/events

go 1.27.3

require (
	github.com/google/jsonschema-go v0.4.3
	github.com/hdevalence/ed25519consensus v0.2.0
	github.com/oklog/ulid/v2 v2.1.2
	pgregory.net/rapid v1.3.0
)

require filippo.io/edwards25519 v1.0.0 // indirect
