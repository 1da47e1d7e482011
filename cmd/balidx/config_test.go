package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/balidx/balidx/query"
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
		{"bad log level", "query", []string{"--log-level", "loud"}, "", "--log-level"},
		{"unknown key in file", "run", []string{"--rpc", "ws://x"}, "rpcc: ws://typo\n", `unknown key "rpcc"`},
		{"flag of another command in file", "query", nil, "rpc: ws://x\n", `unknown key "rpc"`},
		{"bad value in file", "run", []string{"--rpc", "ws://x"}, "confirmations: many\n", "confirmations"},
		{"stray argument", "run", []string{"--rpc", "ws://x", "extra"}, "", "unexpected argument"},
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
	clients, err := query.LoadClients("../../deploy/clients.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(clients.Clients) != 1 || clients.Anonymous.Enabled {
		t.Fatalf("got %+v", clients)
	}
}
