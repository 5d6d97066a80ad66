# muxrpc: the two commands a new user needs are `make demo` and `make test`.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 15s
BENCHTIME   ?= 2s
BENCHCOUNT  ?= 3

# toxiproxy's server, for the fault tests (internal/faulttest), built from
# the Go module proxy; the tests find it through MUXRPC_TOXIPROXY.
TOXIPROXY_VERSION ?= v2.12.0
TOXIPROXY         := $(CURDIR)/.bin/toxiproxy-server
export MUXRPC_TOXIPROXY := $(TOXIPROXY)

.PHONY: demo test vet fmt-check bench fuzz lint toxiproxy toxiproxy-or-skip

## demo: run the stress demo (700 callers over an in-process OS pipe)
demo:
	$(GO) run ./cmd/muxdemo

## test: vet, gofmt check, every test under the race detector, once more
## without it (allocation and memory budgets only run there), once with
## released buffers poisoned (a use after release fails), every benchmark once;
## it builds toxiproxy first, and the fault tests skip if that fails
test: vet fmt-check toxiproxy-or-skip
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -tags muxrpc_poison -count=1 -timeout 10m ./...
	$(GO) test -run='^$$' -bench=. -benchtime=1x -timeout 10m ./...

vet:
	$(GO) vet ./...

## toxiproxy: build toxiproxy's server $(TOXIPROXY_VERSION) into .bin/toxiproxy-server (go install, so a rebuild is cached)
toxiproxy:
	@mkdir -p $(CURDIR)/.bin/toxiproxy-gobin
	GOBIN=$(CURDIR)/.bin/toxiproxy-gobin $(GO) install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(CURDIR)/.bin/toxiproxy-gobin/server $(TOXIPROXY)
	@rmdir $(CURDIR)/.bin/toxiproxy-gobin

# toxiproxy-or-skip builds toxiproxy but lets make test go on without it;
# a binary left from an earlier build is removed, so that no stale version runs.
toxiproxy-or-skip:
	@$(MAKE) --no-print-directory toxiproxy || { \
		rm -rf $(TOXIPROXY) $(CURDIR)/.bin/toxiproxy-gobin; \
		echo "!!!!!!!! toxiproxy could not be built: the fault tests will skip !!!!!!!!"; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the in-tree benchmarks, muxrpc against net/rpc on the same transports
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(BENCHCOUNT) ./internal/rpcbench/

## fuzz: a short run of every fuzz target (FUZZTIME each) in every package that has one
FUZZPKGS ?= ./frame/ ./demux/ ./mux/
fuzz:
	@for pkg in $(FUZZPKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzzing $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## lint: staticcheck, on the library and on the bench/ module
lint: vet
	$(GO) run $(STATICCHECK) ./...
	cd bench && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

## bench-peers: muxrpc against other Go RPC systems over one connection, whole matrix (bench/, its own module)
.PHONY: bench-peers bench-peers-quick
bench-peers:
	cd bench && $(GO) run ./cmd/peerbench -out ../docs/peers

## bench-peers-quick: the key cells only, under two minutes; writes docs/peers/results.md
bench-peers-quick:
	cd bench && $(GO) run ./cmd/peerbench -quick -out ../docs/peers

## bench-nvim: muxrpc in the msgpack-rpc dialect against nvim --embed, and Go to Go (native and msgpack-rpc) over a child's stdio, at 1, 16 and 256 callers (needs nvim; bench/README.md)
.PHONY: bench-nvim
bench-nvim:
	cd bench && $(GO) run ./cmd/nvimbench

## bench-pool: a pool.Pool of one endpoint (1, 2, 4 connections) against a plain mux.Mux, 16 B × 256 callers over TCP (bench/, ~25 s)
.PHONY: bench-pool
bench-pool:
	cd bench && $(GO) run ./cmd/poolbench

## bench-flow-quick: head-of-line blocking: 16 B calls beside 4 callers echoing 1 MiB over one TCP
## loopback connection, and beside one 1 MiB echo over a 100 KB/s toxiproxy link (~4 min; builds
## toxiproxy first); writes docs/flow/results.md and its SVG charts
.PHONY: bench-flow-quick
bench-flow-quick: toxiproxy
	cd bench && $(GO) run ./cmd/holbench -out ../docs/flow

## bench-stream: streamed throughput, 1 GiB in 64 KiB items over one TCP loopback connection,
## muxrpc streams against gRPC server streaming; writes docs/flow/stream.md
.PHONY: bench-stream
bench-stream:
	@mkdir -p docs/flow
	cd bench && $(GO) run ./cmd/streambench -out ../docs/flow/stream.md
