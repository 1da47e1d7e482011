package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/balidx/balidx"
	"github.com/balidx/balidx/indexer/devchain"
	"github.com/balidx/balidx/internal/testaddr"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/goleak"
)

// A start that fails at any step returns having started no goroutine, and
// releases every port and file it took: serve builds and binds everything
// before it runs anything.
func TestFailedStartLeavesNothingBehind(t *testing.T) {
	demo, err := devchain.StartDemo(context.Background(), devchain.DemoConfig{Accounts: 3, Seed: 31, Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0") // a port another process holds
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()

	tests := []struct {
		name string
		cmd  string
		args []string // over the defaults below
		prep func(t *testing.T, data string)
		want string
	}{
		{"node unreachable", "run", []string{"--rpc", "ws://" + testaddr.Free(t)}, nil, "dial node"},
		{"NATS port taken", "run", []string{"--nats-listen", busy}, nil, "embedded nats"},
		{"snapshot of another chain", "run", nil, func(t *testing.T, data string) {
			s, err := storage.Open(storage.Config{Path: filepath.Join(data, "snapshot.db"), ChainID: 2})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Apply([]balidx.Delta{{ChainID: 2, Block: balidx.Block{Hash: common.Hash{1}}, LastSeq: 1}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, "another chain"},
		{"query listener taken", "run", []string{"--http", busy}, nil, "query listener"},
		{"admin listener taken", "run", []string{"--admin", busy}, nil, "admin listener"},
		{"indexer's admin listener taken", "indexer", []string{"--admin", busy}, nil, "admin listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			if tt.prep != nil {
				tt.prep(t, data)
			}
			natsAddr, httpAddr, adminAddr := testaddr.Free(t), testaddr.Free(t), testaddr.Free(t)
			args := []string{tt.cmd, "--rpc", demo.Chain.WSEndpoint(), "--data", data, "--nats-listen", natsAddr,
				"--admin", adminAddr, "--confirmations", "1", "--log-level", "error"}
			if tt.cmd != "indexer" {
				args = append(args, "--http", httpAddr)
			}
			args = append(args, tt.args...) // the last of a repeated flag wins
			before := goleak.IgnoreCurrent()
			err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
			goleak.VerifyNone(t, before)
			for _, addr := range []string{natsAddr, httpAddr, adminAddr} {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("%s is still taken after the failed start: %v", addr, err)
				}
				l.Close()
			}
			s, err := storage.Open(storage.Config{Path: filepath.Join(data, "snapshot.db")})
			if err != nil {
				t.Fatalf("the snapshot is still held after the failed start: %v", err)
			}
			s.Close()
		})
	}
}
