package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/balidx/balidx/indexer"
	"github.com/balidx/balidx/query"
	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/holiman/uint256"
	"golang.org/x/term"
)

// auditReport is what `balidx audit --json` prints.
type auditReport struct {
	ChainID    uint64             `json:"chain_id"`
	Block      uint64             `json:"block"`
	Hash       string             `json:"hash"`
	Balances   int                `json:"balances"` // non-zero balances in the snapshot
	Checked    int                `json:"checked"`
	Mismatches []indexer.Mismatch `json:"mismatches"`
	// Withheld lists the tokens the snapshot does not serve (not compared:
	// nothing of them is claimed true), and WithheldBalances counts their
	// balances left out of Balances.
	Withheld         []query.StatusWithheld `json:"withheld"`
	WithheldBalances int                    `json:"withheld_balances"`
}

// audit compares the snapshot at its trusted block with the chain.
func audit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("balidx audit", stderr)
	rpcURL := fs.String("rpc", "", "the node to compare with (an archive node if the trusted block is old)")
	data := fs.String("data", string(defaultDataDir), "data directory of a stopped node (its snapshot.db)")
	admin := fs.String("admin", "", "admin listener of a running node: audit a consistent copy of its snapshot")
	sample := fs.Int("sample", 0, "check a random sample of N balances instead of all")
	concurrency := fs.Int("concurrency", 4, "JSON-RPC batches in flight")
	perSecond := fs.Float64("rate", 20, "JSON-RPC batches per second at most")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args, getenv); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if *rpcURL == "" {
		return errors.New("--rpc is required: the node to compare with")
	}
	if *sample < 0 || *concurrency < 1 || *concurrency > 64 || *perSecond <= 0 {
		return errors.New("--sample ≥ 0, --concurrency 1..64 and --rate > 0")
	}
	path := dataDir(*data).snapshot()
	if *admin != "" {
		tmp, err := fetchSnapshot(ctx, *admin)
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		path = tmp
	}
	store, err := storage.Open(storage.Config{Path: path, ReadOnly: true})
	if err != nil {
		return err
	}
	defer store.Close()
	_, withheld, err := store.Withheld()
	if err != nil {
		return err
	}
	served := func(asset common.Address) bool {
		return !slices.ContainsFunc(withheld, func(w storage.WithheldToken) bool { return w.Contract == asset })
	}
	var holdings []indexer.Holding
	withheldBalances := 0
	m, err := store.ForEachBalance(func(account, asset common.Address, amount *uint256.Int) error {
		if !served(asset) {
			withheldBalances++
			return nil
		}
		holdings = append(holdings, indexer.Holding{Account: account, Asset: asset, Amount: *amount})
		return nil
	})
	if err != nil {
		return err
	}
	if !m.HasTrusted {
		return errors.New("the snapshot is empty: nothing to audit")
	}
	total := len(holdings)
	if *sample > 0 && *sample < total {
		rand.Shuffle(total, func(i, j int) { holdings[i], holdings[j] = holdings[j], holdings[i] })
		holdings = holdings[:*sample]
	}

	node, err := indexer.Dial(ctx, *rpcURL)
	if err != nil {
		return err
	}
	defer node.Close()
	if id, err := node.ChainID(ctx); err != nil {
		return err
	} else if id != m.ChainID {
		return fmt.Errorf("the node is chain %d, the snapshot chain %d", id, m.ChainID)
	}
	h, err := node.HeaderByNumber(ctx, rpc.BlockNumber(m.Trusted.Number))
	if err != nil {
		return err
	}
	if h == nil || h.Hash != m.Trusted.Hash {
		return fmt.Errorf("the chain's block %d is not the snapshot's trusted block %s: reorganised deeper than the trust policy (see balidx status)", m.Trusted.Number, m.Trusted.Hash)
	}

	progress := newProgress(stderr, len(holdings))
	mismatches, err := indexer.Audit(ctx, indexer.AuditConfig{
		Node: node, Block: m.Trusted.Hash, Concurrency: *concurrency, BatchesPerSecond: *perSecond, Progress: progress.update,
	}, holdings)
	progress.done()
	if err != nil {
		return err
	}
	report := auditReport{ChainID: m.ChainID, Block: m.Trusted.Number, Hash: m.Trusted.Hash.Hex(), Balances: total, Checked: len(holdings), Mismatches: mismatches,
		Withheld: make([]query.StatusWithheld, len(withheld)), WithheldBalances: withheldBalances}
	if report.Mismatches == nil {
		report.Mismatches = []indexer.Mismatch{}
	}
	for i, w := range withheld {
		report.Withheld[i] = query.StatusWithheld{Contract: w.Contract.Hex(), Reason: w.Reason, SinceBlock: w.Since}
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(report); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "audited %d of %d balances at block %d (%s) of chain %d: %d differ\n", report.Checked, total, report.Block, report.Hash, report.ChainID, len(mismatches))
		for _, mm := range mismatches {
			fmt.Fprintf(stdout, "  %s %s: ours %s, chain %s\n", mm.Account, mm.Asset, mm.Ours, mm.Chain)
		}
		if len(withheld) > 0 {
			fmt.Fprintf(stdout, "not audited: %d balances of %d withheld tokens (not served):\n", withheldBalances, len(withheld))
			for _, w := range report.Withheld {
				fmt.Fprintf(stdout, "  %s withheld since block %d: %s\n", w.Contract, w.SinceBlock, w.Reason)
			}
		}
	}
	if len(mismatches) > 0 {
		return fmt.Errorf("audit: %d balances differ from the chain", len(mismatches))
	}
	return nil
}

// fetchSnapshot downloads a running node's consistent copy into a temporary file.
func fetchSnapshot(ctx context.Context, admin string) (string, error) {
	url := admin
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/snapshot", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: time.Hour}).Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch snapshot from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch snapshot from %s: %s", url, resp.Status)
	}
	f, err := os.CreateTemp("", "balidx-audit-*.db")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("fetch snapshot from %s: %w", url, err)
	}
	return f.Name(), f.Close()
}

// progress shows how far a long job is: a bar with an ETA on a terminal,
// a plain line every 10% otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	total int
	start time.Time
	last  int // last tenth printed (plain mode)
	drawn bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

func (p *progress) update(done int) {
	if p.total == 0 {
		return
	}
	frac := float64(done) / float64(p.total)
	eta := "?"
	if done > 0 {
		eta = (time.Duration(float64(time.Since(p.start)) * (1 - frac) / frac)).Round(time.Second).String()
	}
	if p.tty {
		const width = 30
		bar := strings.Repeat("█", int(frac*width)) + strings.Repeat("·", width-int(frac*width))
		fmt.Fprintf(p.w, "\r%s %5.1f%% %d/%d ETA %s ", bar, 100*frac, done, p.total, eta)
		p.drawn = true
		return
	}
	if tenth := int(frac * 10); tenth > p.last {
		p.last = tenth
		fmt.Fprintf(p.w, "%d/%d done (%d%%), ETA %s\n", done, p.total, tenth*10, eta)
	}
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
