# Grantline's build. The go command fetches Go 1.27.3 itself; the machine's own Go may be older.
export GOTOOLCHAIN := go1.27.3

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every module of the workspace (go.work) but the end-to-end suite (make e2e), as package patterns.
# (make 4.3 does not export to $(shell).)
PKGS         = $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) list -m -f '{{.Dir}}/...' | grep -v '/e2e/\.\.\.$$')
FUZZTIME    ?= 10s
BENCHTIME   ?= 2s

.PHONY: dev test e2e fuzz lint bench build binaries images compose-up compose-down deps helm-check observability-check bench-system

## dev: run Grantline on this machine (embedded NATS JetStream on 127.0.0.1:4222, HTTP on localhost:8080)
dev:
	$(GO) run ./cmd/grantline dev

## test: unit, rule-table, property and integration tests on real NATS and PostgreSQL, then a short fuzz run
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory fuzz

## e2e: the end-to-end suites (e2e/) on the images (IMAGE_TAG) in Docker, started with testcontainers-go;
## its reaper (Ryuk) cannot be pulled, so the suites remove their own containers; one package at a time
## (-p 1), since each starts a deployment of its own
e2e: images
	export TESTCONTAINERS_RYUK_DISABLED=true IMAGE_TAG=$(IMAGE_TAG); cd e2e && $(GO) test -count=1 -p 1 -timeout 45m -v ./...

## fuzz: fuzz the strict event decoder for FUZZTIME (seed corpus in pkg/events/testdata/fuzz)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/events

## lint: gofmt, go vet and staticcheck (built from its module) over every module, the e2e suite's too
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS) ./e2e/...
	$(GO) run $(STATICCHECK) $(PKGS) ./e2e/...

## bench: the event store benchmarks, each beside the raw JetStream publish rate of the same run
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count 1 ./pkg/eventstore

## build: the grantline binary into bin/
build:
	$(GO) build -o bin/grantline ./cmd/grantline

## binaries: static linux binaries of every service, the CLI and nats-server (built from its Go module) into bin/
SERVICES := intake policy approval fulfilment revoker query console notifier checkpointer
binaries:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/grantline ./cmd/grantline
	@for s in $(SERVICES); do \
		echo "CGO_ENABLED=0 $(GO) build -o bin/grantline-$$s ./services/$$s/cmd/grantline-$$s"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/grantline-$$s ./services/$$s/cmd/grantline-$$s || exit 1; \
	done
	cd pkg && CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o ../bin/nats-server github.com/nats-io/nats-server/v2

## images: container images FROM scratch around the static binaries (nothing is pulled); IMAGE_TAG=dev
IMAGE_TAG ?= dev
images: binaries
	scripts/build-images.sh $(IMAGE_TAG)

## compose-up: the whole system in containers (deploy/compose.yaml): 3 NATS nodes, PostgreSQL, the
## services, and the gateway on http://localhost:8080
COMPOSE := docker-compose -p grantline -f deploy/compose.yaml
compose-up: images
	scripts/compose-secrets.sh
	IMAGE_TAG=$(IMAGE_TAG) $(COMPOSE) up -d
	@echo "Grantline is starting on http://localhost:8080 (docker-compose -p grantline -f deploy/compose.yaml ps)"

## compose-down: stop the compose deployment, keeping its volumes
compose-down:
	$(COMPOSE) down

## deps: install what the tests need from Debian's packages (the PostgreSQL server binaries, Chromium)
deps:
	scripts/install-deps.sh

## helm-check: lint the Helm chart (deploy/helm/grantline) with its default values and ci/values-scaled.yaml,
## render both and check the manifests (deploy/helm/tools); helm is built from its Go module into bin/helm
## once, and again only when deploy/helm/tools/go.mod pins another version
HELM_TOOLS := deploy/helm/tools
HELM_CHART := deploy/helm/grantline
helm-check:
	@want=$$(cd $(HELM_TOOLS) && GOWORK=off $(GO) list -m -f '{{.Version}}' helm.sh/helm/v3) || exit 1; \
	have=$$($(GO) version -m bin/helm 2>/dev/null | awk '$$1 == "mod" && $$2 == "helm.sh/helm/v3" {print $$3}'); \
	if [ "$$have" = "$$want" ]; then echo "helm-check: bin/helm is helm $$want"; else \
		echo "helm-check: building helm $$want from its Go module into bin/helm (first run: a few minutes)"; \
		mkdir -p bin && cd $(HELM_TOOLS) && GOWORK=off $(GO) build -o $(CURDIR)/bin/helm helm.sh/helm/v3/cmd/helm; fi
	@echo "helm-check: helm lint --strict, default values"
	bin/helm lint --strict $(HELM_CHART)
	@echo "helm-check: helm lint --strict, ci/values-scaled.yaml"
	bin/helm lint --strict $(HELM_CHART) --values $(HELM_CHART)/ci/values-scaled.yaml
	@echo "helm-check: helm template with both, and the checks of the rendered manifests"
	cd $(HELM_TOOLS) && GOWORK=off $(GO) vet ./...
	cd $(HELM_TOOLS) && GOWORK=off HELM=$(CURDIR)/bin/helm $(GO) test -count=1 -v ./...

## observability-check: evaluate each Prometheus alerting rule of deploy/observability with Prometheus's own rule
## engine over synthetic series, and check every metric the rules and the Grafana dashboard read is one the services
## define; a module of its own, so that Prometheus stays out of the services' builds
observability-check:
	cd deploy/observability && GOWORK=off $(GO) vet ./...
	cd deploy/observability && GOWORK=off $(GO) test -count=1 ./...

## bench-system: the whole system as separate processes (nats-server fsyncing every write, PostgreSQL, the
## six services): CPU per granted request of every process, the highest requests/s at which every consumer
## keeps up and latencies at half of it, beside the raw ceiling of the same run (docs/benchmarks.md); a few
## minutes on 2 cores. More options: BENCH_SYSTEM_FLAGS='--connector postgres' (or '--profile policy')
BENCH_SYSTEM_FLAGS ?=
bench-system: binaries
	bin/grantline bench --bin-dir bin $(BENCH_SYSTEM_FLAGS)
