module github.com/grantline/grantline/api

go 1.27.3

require (
	github.com/getkin/kin-openapi v0.153.0
	github.com/grantline/grantline/pkg/events v0.0.0
)

require (
	github.com/go-openapi/jsonpointer v0.22.5 // indirect
	github.com/go-openapi/swag/jsonname v0.25.5 // indirect
	github.com/oklog/ulid/v2 v2.1.2 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	go.yaml.in/yaml/v4 v4.0.0 // indirect
	golang.org/x/text v0.14.0 // indirect
)

replace github.com/grantline/grantline/pkg/events => ../pkg/events
