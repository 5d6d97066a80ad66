# muxrpc: the two commands a new user needs are `make demo` and `make test`.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 15s
BENCHTIME   ?= 2s
BENCHCOUNT  ?= 3

.PHONY: demo test vet fmt-check bench fuzz lint

## demo: run the stress demo (700 callers over an in-process OS pipe)
demo:
	$(GO) run ./cmd/muxdemo

## test: vet, gofmt check, every test under the race detector, once more
## without it (allocation and memory budgets only run there), once with
## released buffers poisoned (a use after release fails), every benchmark once
test: vet fmt-check
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -tags muxrpc_poison -count=1 -timeout 10m ./...
	$(GO) test -run='^$$' -bench=. -benchtime=1x -timeout 10m ./...

vet:
	$(GO) vet ./...

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
