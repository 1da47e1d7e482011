package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/balidx/balidx/query"
)

// status prints /v1/status of a running query node.
func status(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("balidx status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("BALIDX_HTTP")
	if def == "" {
		def = "127.0.0.1:8080"
	}
	addr := fs.String("http", def, "query listener of the node to ask")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	url := *addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := fmt.Fprintln(stdout, string(body))
		return err
	}
	var st query.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("status of %s: %w", url, err)
	}
	fmt.Fprintf(stdout, "chain        %d\n", st.ChainID)
	fmt.Fprintf(stdout, "trusted      %d  %s  (%s)\n", st.Trusted.Number, st.Trusted.Hash, time.Unix(int64(st.Trusted.Timestamp), 0).UTC().Format(time.RFC3339))
	if st.Head != nil {
		fmt.Fprintf(stdout, "head         %d  (seen %s)  lag %d blocks\n", st.Head.Number, st.Head.SeenAt.Format(time.RFC3339), st.LagBlocks)
	}
	fmt.Fprintf(stdout, "coverage     from block %d, full %v\n", st.Coverage.FromBlock, st.Coverage.Full)
	fmt.Fprintf(stdout, "snapshot     %d accounts, %d token balances, digest %s\n", st.Snapshot.Accounts, st.Snapshot.TokenBalances, st.Snapshot.Digest)
	fmt.Fprintf(stdout, "stale        %v\n", st.Stale)
	if st.TrustViolation != nil {
		v := st.TrustViolation
		fmt.Fprintf(stdout, "TRUST VIOLATION at block %d: chain has %s on %s, we published %s (detected %s)\n",
			v.Number, v.Hash, v.ParentHash, v.PublishedHash, v.DetectedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "violation    none\n")
	}
	return nil
}
