package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/balidx/balidx/query"
)

// A signal re-reads the clients file; a broken file leaves the old one.
func TestReloadOnSignal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clients.yaml")
	// Each version is renamed into place, as an operator's tools do: the
	// second of two signals is taken before its reload has read the file,
	// and that reload must read one whole version or the next, not a
	// truncated one (an empty file is a valid one, without clients).
	write := func(s string) {
		tmp := file + ".new"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("anonymous: {enabled: false}\n")
	_, snap := emptySnapshot(t)
	clients, _ := query.LoadClients(file)
	srv, err := query.New(query.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Snapshot: snap, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	signals := make(chan os.Signal)
	go reloadOn(ctx, signals, file, srv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	status := func() int {
		resp, err := http.Get("http://" + srv.Addr() + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusUnauthorized {
		t.Fatalf("before reload: got %d, want 401", got)
	}
	write("anonymous: {enabled: true, rate: 100, burst: 100}\n")
	signals <- syscall.SIGHUP
	signals <- syscall.SIGHUP                                  // the first is handled once the second is taken
	if got := status(); got != http.StatusServiceUnavailable { // anonymous now; no snapshot yet
		t.Fatalf("after reload: got %d, want 503 (past authentication)", got)
	}
	write("clients: [{id: broken}]\n")
	signals <- syscall.SIGHUP
	signals <- syscall.SIGHUP
	if got := status(); got != http.StatusServiceUnavailable {
		t.Fatalf("after a broken file: got %d, want the previous clients in force", got)
	}
}
