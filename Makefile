# vcsledger — build, test, lint, bench, demo.
# Needs Go, gcc (cgo for SQLite) and git. Nothing else is downloaded but Go modules.

GO      ?= go
BIN     ?= bin
PKGS    := ./...
BENCHOUT ?= bench/results.txt
# Benchmarks: -bench regexp, count and time per benchmark.
BENCH     ?= .
BENCHTIME ?= 1x

export CGO_ENABLED := 1

.PHONY: all build test test-short soak lint fuzz bench demo clean-bin

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test:
	$(GO) test -race -timeout 20m $(PKGS)

# The network tests at full scale (30 s partitions, a node down for 1,000
# blocks, a 5,000-block sync); about half an hour on two cores.
soak:
	$(GO) test -race -tags soak -timeout 90m -run 'TestNetwork' -v ./node

test-short:
	$(GO) test -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Benchmarks print their figures (custom metrics per line) and the whole
# output is kept in $(BENCHOUT).
bench:
	@mkdir -p $(dir $(BENCHOUT))
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -timeout 60m $(PKGS) | tee $(BENCHOUT)

# The README's first command: a local ledger node, a real repository,
# check/append, and a moved tag caught.
demo: build
	BIN=$(BIN) bash scripts/demo.sh

clean-bin:
	rm -rf $(BIN)
