package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/query/client"
)

// callerFlags are the flags of the commands that call a query node.
type callerFlags struct {
	http, clientID, secret string
	json                   bool
}

func parseCaller(name string, args []string, getenv func(string) string, stderr io.Writer) (*callerFlags, []string, error) {
	fs := flag.NewFlagSet("balidx "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &callerFlags{}
	def := getenv("BALIDX_HTTP")
	if def == "" {
		def = query.DefaultAddr
	}
	fs.StringVar(&c.http, "http", def, "query listener of the node to ask (env BALIDX_HTTP)")
	fs.StringVar(&c.clientID, "client-id", getenv("BALIDX_CLIENT_ID"), "client id to sign with (env BALIDX_CLIENT_ID); empty: anonymous")
	fs.StringVar(&c.secret, "secret", getenv("BALIDX_CLIENT_SECRET"), "client secret (prefer env BALIDX_CLIENT_SECRET: flags show in ps)")
	fs.BoolVar(&c.json, "json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return c, fs.Args(), nil
}

func (c *callerFlags) client() (*client.Client, error) {
	base := c.http
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return client.New(client.Config{BaseURL: base, ClientID: c.clientID, Secret: c.secret})
}

// status prints /v1/status of a running query node.
func status(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, rest, err := parseCaller("status", args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return json.NewEncoder(stdout).Encode(st)
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st *query.Status) {
	fmt.Fprintf(w, "chain        %d\n", st.ChainID)
	fmt.Fprintf(w, "trusted      %d  %s  (%s)\n", st.Trusted.Number, st.Trusted.Hash, time.Unix(int64(st.Trusted.Timestamp), 0).UTC().Format(time.RFC3339))
	if st.Head != nil {
		fmt.Fprintf(w, "head         %d  (seen %s)  lag %d blocks\n", st.Head.Number, st.Head.SeenAt.Format(time.RFC3339), st.LagBlocks)
	}
	fmt.Fprintf(w, "coverage     from block %d, native full %v\n", st.Coverage.FromBlock, st.Coverage.Full)
	for _, t := range st.Coverage.FullTokens {
		fmt.Fprintf(w, "full token   %s from block %d\n", t.Contract, t.FromBlock)
	}
	fmt.Fprintf(w, "snapshot     %d accounts, %d token balances, digest %s\n", st.Snapshot.Accounts, st.Snapshot.TokenBalances, st.Snapshot.Digest)
	fmt.Fprintf(w, "stale        %v\n", st.Stale)
	if v := st.TrustViolation; v != nil {
		fmt.Fprintf(w, "TRUST VIOLATION at block %d: chain has %s on %s, we published %s (detected %s)\n",
			v.Number, v.Hash, v.ParentHash, v.PublishedHash, v.DetectedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "violation    none\n")
	}
}

// get prints the balances of one address, signed with the client package.
func get(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, rest, err := parseCaller("get", args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("usage: balidx get [flags] ADDRESS")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := cl.Balance(ctx, rest[0])
	if err != nil {
		return err
	}
	if c.json {
		return json.NewEncoder(stdout).Encode(b)
	}
	fmt.Fprintf(stdout, "%s at block %d (%s) of chain %d\n  native  %s\n", b.Address, b.Block.Number, b.Block.Hash, b.ChainID, b.Native)
	for _, t := range b.Tokens {
		fmt.Fprintf(stdout, "  %s  %s\n", t.Contract, t.Amount)
	}
	return nil
}
