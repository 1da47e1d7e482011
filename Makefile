# balidx — see README.md. `make run` shows it working; `make test` is what CI runs.
GO      ?= go
BIN     := bin/balidx
# geth, at the version the tool directive in go.mod pins (3.5–4 min to build cold).
# Built with -pgo=off: its default.pgo is a 53 ms profile of the EVM
# interpreter, and with it only core/vm.(*EVM).execUntraced compiles
# differently (compared symbol by symbol), but no package geth compiles
# would be shared with our binaries, which then take ~3 min more to build.
# Built without cgo: its C (libsecp256k1, whose pure-Go fallback geth
# ships; zstd, for pebble v1 databases; USB HID, for hardware wallets) took
# ~80 s of a cold build (223 against 304 s) and runs in none of our uses.
GETH    := bin/geth
# nats-server, at the version the tool directive in go.mod pins: the
# cluster tests run three of them, and deploy/nats configures them.
NATS    := bin/nats-server
RACE    ?= -race

.PHONY: all build run test vet lint e2e crash chaos fuzz bench bench-seed clean image

all: build

build:
	$(GO) build -o $(BIN) ./cmd/balidx

# Everything in one process: embedded NATS, a simulated chain making a block
# a second, the indexer, the applier and the HTTP tier on 127.0.0.1:8080.
run: build
	./$(BIN) dev

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@! grep -rqE '"github.com/ethereum/go-ethereum/(ethclient|rpc)' query/ || { echo "query/ must not import a chain client"; exit 1; }

$(GETH): export CGO_ENABLED := 0
$(GETH): go.mod go.sum
	$(GO) build -pgo=off -o $(GETH) github.com/ethereum/go-ethereum/cmd/geth

$(NATS): export CGO_ENABLED := 0
$(NATS): go.mod go.sum
	$(GO) build -o $(NATS) github.com/nats-io/nats-server/v2

# The wallet libraries of the JSON-RPC conformance test: ethers and viem at
# the versions rpc-conformance/package-lock.json pins, run by Node (both
# from Debian when missing).
WALLETS := rpc-conformance/node_modules/.package-lock.json
$(WALLETS): rpc-conformance/package.json rpc-conformance/package-lock.json
	command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd rpc-conformance && npm ci --no-audit --no-fund
	touch $@

# What CI runs: vet and every test with the race detector, the end-to-end
# tests against a real geth --dev (ethers and viem among them), the cluster
# tests against three real nats-server processes, and a seed killed with
# SIGKILL (the binary, as a process) included.
test: vet build $(GETH) $(NATS) $(WALLETS)
	BALIDX_GETH=$(abspath $(GETH)) BALIDX_NATS_SERVER=$(abspath $(NATS)) BALIDX_WALLETS=$(abspath rpc-conformance) BALIDX_BIN=$(abspath $(BIN)) \
		$(GO) test $(RACE) -count=1 -timeout 20m ./...
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

# Chaos: the whole deployment as processes (3 nats-server, geth --dev, 2
# indexers, 3 query replicas, a client load) under BALIDX_CHAOS_ROUNDS
# rounds of every fault (make test runs one round).
chaos: build $(GETH) $(NATS)
	BALIDX_GETH=$(abspath $(GETH)) BALIDX_NATS_SERVER=$(abspath $(NATS)) BALIDX_CHAOS_ROUNDS=$${BALIDX_CHAOS_ROUNDS:-5} \
		$(GO) test -count=1 -timeout 15m -run TestChaos -v ./cmd/balidx/

# The container image as an OCI archive, built without a container engine
# (deploy/image; `docker load -i bin/balidx-image.tar`). deploy/Dockerfile
# builds the same with an engine.
image:
	cd deploy && $(GO) run ./image -repo .. -o ../bin/balidx-image.tar

lint: vet

# End-to-end against a real `geth --dev` only.
e2e: $(GETH)
	BALIDX_GETH=$(abspath $(GETH)) $(GO) test -count=1 -timeout 30m -run TestGethE2E -v ./cmd/balidx/

# Benchmarks (results and timings: BENCHMARKS.md): the Go micro-benchmarks
# (pipeline, query tier, storage) into bin/bench-go.txt, then the HTTP
# comparisons with wrk (installed from Debian if missing) of balidx against
# a bare echo handler and geth (a tiny dev chain and a 1M-account genesis),
# each server in a process of its own, the attack run and the latency plot;
# ends with one summary table of every ratio against its target. geth and
# balidx-bench are built in one go command: its two workers then fill each
# other's gaps (both took as long as geth alone, from an empty cache). The Go benchmarks skip vet (make vet runs it): vet's facts for
# every package geth's code imports took ~45 s on a fresh machine. Every
# command runs without cgo, as geth is built, so that they share packages.
bench: export CGO_ENABLED := 0
bench:
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(GO) build -pgo=off -o bin/ github.com/ethereum/go-ethereum/cmd/geth ./cmd/balidx-bench ./cmd/balidx
	$(GO) test -vet=off -run XXX -bench Pipeline -benchtime=1x -count=3 ./cmd/balidx/ > bin/bench-go.txt
	$(GO) test -vet=off -run XXX -bench 'BareEcho|^BenchmarkBalance|RPCGetBalance$$|Verify|ParseAddress|Write' -benchtime=100000x -count=3 ./query/ ./query/accesslog/ >> bin/bench-go.txt
	$(GO) test -vet=off -run XXX -bench 'RPCGetBalanceBatch100' -benchtime=2000x -count=3 ./query/ >> bin/bench-go.txt
	$(GO) test -vet=off -run XXX -bench 'BloomRebuild|NonceCache' -benchtime=1x ./query/ >> bin/bench-go.txt
	$(GO) test -vet=off -run XXX -bench 'Apply$$' -benchtime=10x -count=3 ./storage/ >> bin/bench-go.txt
	cat bin/bench-go.txt
	./bin/balidx-bench -geth $(GETH) -balidx $(BIN) -plot docs/latency-vs-load.svg -go-bench bin/bench-go.txt

# The rate of a token seed: BALIDX_SEED_HOLDERS holders of one token on a
# geth --dev, seeded through Multicall3 and in JSON-RPC batches (~2 min).
bench-seed: $(GETH)
	BALIDX_GETH=$(abspath $(GETH)) BALIDX_SEED_HOLDERS=$${BALIDX_SEED_HOLDERS:-50000} $(GO) test -count=1 -timeout 60m -run TestSeedHoldersRate -v ./cmd/balidx/

# Crash safety: SIGKILL `balidx run` 100 times while geth makes blocks, then
# compare with the chain and with a clean rebuild from the stream (~4 min).
crash: build $(GETH)
	BALIDX_GETH=$(abspath $(GETH)) BALIDX_BIN=$(abspath $(BIN)) BALIDX_CRASH_KILLS=$${BALIDX_CRASH_KILLS:-100} $(GO) test -count=1 -timeout 30m -run TestCrashLoop -v ./cmd/balidx/

# Each fuzz target for FUZZTIME (seeds in query/testdata/fuzz/).
FUZZTIME ?= 60s
fuzz:
	for f in FuzzParseAddress FuzzVerifySignature FuzzParseBatch FuzzParseQuery FuzzRPC; do \
		$(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./query/ || exit 1; \
	done

clean:
	rm -rf bin rpc-conformance/node_modules
