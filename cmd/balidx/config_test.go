package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/events/eventstest"
	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("rpc: ws://file\nconfirmations: 3\nhttp: 127.0.0.1:1\nstale-after: 5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BALIDX_CONFIRMATIONS": "4", "BALIDX_HTTP": "127.0.0.1:2"}
	cfg, err := parseConfig("run", []string{"--config", file, "--http", "127.0.0.1:3"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RPC != "ws://file" || cfg.Confirmations != 4 || cfg.HTTP != "127.0.0.1:3" || cfg.StaleAfter != 5*time.Minute {
		t.Fatalf("got %+v: want rpc from the file, confirmations from the environment, http from the flag", cfg)
	}
}

func TestConfigRefuses(t *testing.T) {
	badList := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(badList, []byte("not-an-address\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  string
		args []string
		file string
		want string
	}{
		{"no rpc", "run", nil, "", "--rpc is required"},
		{"bad trust tag", "run", []string{"--rpc", "ws://x", "--trust", "latest"}, "", "--trust"},
		{"bad replicas", "run", []string{"--rpc", "ws://x", "--replicas", "2"}, "", "--replicas"},
		{"no token refresh", "indexer", []string{"--rpc", "ws://x", "--token-refresh-max", "0"}, "", "--token-refresh-max"},
		{"bad log level", "query", []string{"--log-level", "loud"}, "", "--log-level"},
		{"no replay cache", "query", []string{"--max-nonces", "0"}, "", "--max-nonces"},
		{"no balance cache", "run", []string{"--rpc", "ws://x", "--cache-mb", "0"}, "", "--cache-mb"},
		{"balance cache over 64 GiB", "query", nil, "cache-mb: 65537\n", "--cache-mb"},
		{"unknown key in file", "run", []string{"--rpc", "ws://x"}, "rpcc: ws://typo\n", `unknown key "rpcc"`},
		{"flag of another command in file", "query", nil, "rpc: ws://x\n", `unknown key "rpc"`},
		{"bad value in file", "run", []string{"--rpc", "ws://x"}, "confirmations: many\n", "confirmations"},
		{"stray argument", "run", []string{"--rpc", "ws://x", "extra"}, "", "unexpected argument"},
		{"seed tokens without a seed", "run", []string{"--rpc", "ws://x", "--seed-tokens", "/dev/null"}, "", "tokens are seeded with --seed only"},
		{"a seed token list missing", "indexer", []string{"--rpc", "ws://x", "--seed", "--seed-tokens", "/nonexistent/tokens.txt"}, "", "--seed-tokens: bad token list"},
		{"a bad seed token list", "run", []string{"--rpc", "ws://x", "--seed", "--seed-tokens", badList}, "", "line 1: want a 0x address"},
		{"no log span", "run", []string{"--rpc", "ws://x", "--seed-log-span", "0"}, "", "--seed-log-span"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				f := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(f, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", f)
			}
			_, err := parseConfig(tt.cmd, args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// The examples in deploy/ are what operators copy: they must parse.
func TestDeployExamples(t *testing.T) {
	cfg, err := parseConfig("run", []string{"--config", "../../deploy/balidx.example.yaml"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Confirmations != 12 || cfg.RPC == "" {
		t.Fatalf("got %+v", cfg)
	}
	raw, err := os.ReadFile("../../deploy/balidx.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	newFlagSet("run", &config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		if _, ok := keys[f.Name]; !ok && f.Name != "config" {
			t.Errorf("deploy/balidx.example.yaml lacks --%s", f.Name)
		}
	})
	clients, err := query.LoadClients("../../deploy/clients.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(clients.Clients) != 1 || clients.Anonymous.Enabled {
		t.Fatalf("got %+v", clients)
	}
}

// Every metric the alert rules and the dashboard use is one balidx exports.
func TestDeployMonitoring(t *testing.T) {
	reg := prometheus.NewRegistry()
	store, snap := emptySnapshot(t)
	if _, err := query.New(query.Config{Snapshot: snap, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if err := indexer.RegisterMetrics(reg, indexer.NewNode(rpc.DialInProc(rpc.NewServer()))); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.NewApplier(storage.ApplierConfig{Store: store, Source: eventstest.MustLog(t), ChainID: 1, Metrics: reg}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			exported[f.GetName()+"_count"] = true
			exported[f.GetName()+"_bucket"] = true
		}
	}
	// Vectors without observations are not gathered: name them from the code.
	for _, n := range []string{"balidx_http_requests_total", "balidx_http_request_duration_seconds_bucket", "balidx_auth_results_total", "balidx_client_requests_total", "balidx_rate_limited_total"} {
		exported[n] = true
	}
	for _, file := range []string{"../../deploy/prometheus/alerts.yaml", "../../deploy/grafana/balidx.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var parsed any
		if err := yaml.Unmarshal(data, &parsed); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		names := regexp.MustCompile(`balidx_[a-z_]+`).FindAllString(string(data), -1)
		if len(names) < 5 {
			t.Fatalf("%s names only %v", file, names)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s uses %s, which balidx does not export", file, n)
			}
		}
	}
}

// emptySnapshot opens a store of chain 1 with nothing applied and its query
// snapshot, both closed when the test ends.
func emptySnapshot(t *testing.T) (*storage.Store, *query.Snapshot) {
	t.Helper()
	store, err := storage.Open(storage.Config{Path: filepath.Join(t.TempDir(), "s.db"), ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	snap, err := query.NewSnapshot(query.SnapshotConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snap.Close)
	return store, snap
}
