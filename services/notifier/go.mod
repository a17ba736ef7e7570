module github.com/grantline/grantline/services/notifier

go 1.27.3

require (
	github.com/google/go-cmp v0.7.0
	github.com/grantline/grantline/pkg/events v0.0.0
)

require github.com/oklog/ulid/v2 v2.1.2 // indirect

replace github.com/grantline/grantline/pkg => ../../pkg

replace github.com/grantline/grantline/pkg/events => ../../pkg/events
