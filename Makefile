# Grantline's build. The go command fetches Go 1.27.3 itself; the machine's own Go may be older.
export GOTOOLCHAIN := go1.27.3

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every module of the workspace (go.work), as package patterns. (make 4.3 does not export to $(shell).)
PKGS         = $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) list -m -f '{{.Dir}}/...')
FUZZTIME    ?= 10s
BENCHTIME   ?= 2s

.PHONY: dev test fuzz lint bench build deps

## dev: run Grantline on this machine (embedded NATS JetStream on 127.0.0.1:4222, HTTP on localhost:8080)
dev:
	$(GO) run ./cmd/grantline dev

## test: unit, rule-table, property and integration tests on real NATS and PostgreSQL, then a short fuzz run
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory fuzz

## fuzz: fuzz the strict event decoder for FUZZTIME (seed corpus in pkg/events/testdata/fuzz)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/events

## lint: gofmt, go vet and staticcheck (built from its module) over every module
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## bench: the event store benchmarks, each beside the raw JetStream publish rate of the same run
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count 1 ./pkg/eventstore

## build: the grantline binary into bin/
build:
	$(GO) build -o bin/grantline ./cmd/grantline

## deps: install what the tests need from Debian's packages (the PostgreSQL server binaries)
deps:
	scripts/install-deps.sh
