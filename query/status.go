package query

import (
	"net/http"
	"time"

	"github.com/balidx/balidx"
	"github.com/labstack/echo/v4"
)

// Status is the answer of GET /v1/status (API.md).
type Status struct {
	ChainID        uint64                 `json:"chain_id"`
	Trusted        StatusBlock            `json:"trusted"`
	Head           *StatusHead            `json:"head"`
	Policy         balidx.Policy          `json:"policy"`
	LagBlocks      uint64                 `json:"lag_blocks"`
	Coverage       StatusCoverage         `json:"coverage"`
	Snapshot       StatusSnapshot         `json:"snapshot"`
	Stale          bool                   `json:"stale"`
	TrustViolation *balidx.TrustViolation `json:"trust_violation"`
	WithheldTokens []StatusWithheld       `json:"withheld_tokens"`
	// ActiveIndexer is the indexer publishing the chain's blocks, of those
	// following it, and when it took over; null before it has said so.
	ActiveIndexer *StatusActive `json:"active_indexer"`
}

// StatusActive names the active indexer.
type StatusActive struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// StatusWithheld is a token whose balances are not served.
type StatusWithheld struct {
	Contract   string        `json:"contract"`
	Reason     balidx.Reason `json:"reason"`
	SinceBlock uint64        `json:"since_block"`
}

// StatusBlock is the trusted block.
type StatusBlock struct {
	Number    uint64 `json:"number"`
	Hash      string `json:"hash"`
	Timestamp uint64 `json:"timestamp"`
}

// StatusHead is the chain head the indexer saw last.
type StatusHead struct {
	Number uint64    `json:"number"`
	SeenAt time.Time `json:"seen_at"`
}

// StatusCoverage says which blocks the snapshot covers, and for which
// assets an absent amount is a zero: the native coin's when Full, the
// FullTokensCount tokens whose coverage is full (the first
// maxStatusFullTokens of them, by contract, in FullTokens), and no other
// token's.
type StatusCoverage struct {
	FromBlock       uint64            `json:"from_block"`
	Full            bool              `json:"full"`
	FullTokens      []StatusFullToken `json:"full_tokens"`
	FullTokensCount uint64            `json:"full_tokens_count"`
}

// maxStatusFullTokens bounds the full tokens the status lists: a chain
// indexed from genesis may have hundreds of thousands (an answer filtered
// by token says whether each one asked for is).
const maxStatusFullTokens = 1000

// StatusFullToken is a token whose coverage is full, from FromBlock on.
type StatusFullToken struct {
	Contract  string `json:"contract"`
	FromBlock uint64 `json:"from_block"`
}

// StatusSnapshot describes the snapshot's contents.
type StatusSnapshot struct {
	Accounts      uint64 `json:"accounts"`
	TokenBalances uint64 `json:"token_balances"`
	Digest        string `json:"digest"`
}

// status assembles the status at the published view.
func (s *Server) status() (*Status, bool) {
	v := s.snap.current()
	if v == nil {
		return nil, false
	}
	return s.statusAt(v), true
}

// statusAt is the status at view v.
func (s *Server) statusAt(v *view) *Status {
	m := v.meta
	st := &Status{
		ChainID:        m.ChainID,
		Trusted:        StatusBlock{Number: m.Trusted.Number, Hash: m.Trusted.Hash.Hex(), Timestamp: m.Trusted.Timestamp},
		Coverage:       StatusCoverage{FromBlock: m.CoverageFrom, Full: m.CoverageFull, FullTokens: make([]StatusFullToken, min(len(v.fullTokens), maxStatusFullTokens)), FullTokensCount: uint64(len(v.fullTokens))},
		Snapshot:       StatusSnapshot{Accounts: m.Accounts, TokenBalances: m.TokenBalances, Digest: m.Digest.Hex()},
		Stale:          age(s.cfg.Now(), v) > s.cfg.StaleAfter,
		WithheldTokens: make([]StatusWithheld, len(v.withheld)),
	}
	for i, t := range v.fullTokens[:len(st.Coverage.FullTokens)] {
		st.Coverage.FullTokens[i] = StatusFullToken{Contract: t.Contract.Hex(), FromBlock: t.Since}
	}
	for i, w := range v.withheld {
		st.WithheldTokens[i] = StatusWithheld{Contract: w.Contract.Hex(), Reason: w.Reason, SinceBlock: w.Since}
	}
	if ix := s.cfg.IndexerStatus(); ix != nil && ix.ChainID == m.ChainID {
		st.Head = &StatusHead{Number: ix.Head, SeenAt: ix.HeadSeenAt}
		st.Policy = ix.Policy
		st.TrustViolation = ix.TrustViolation
		if ix.ActiveIndexer != "" {
			st.ActiveIndexer = &StatusActive{Name: ix.ActiveIndexer, Since: ix.ActiveSince}
		}
		if ix.Head > m.Trusted.Number {
			st.LagBlocks = ix.Head - m.Trusted.Number
		}
	}
	return st
}

func (s *Server) getStatus(c echo.Context) error {
	if c.Request().URL.RawQuery != "" {
		return invalidRequest("/v1/status takes no parameters")
	}
	v := s.snap.current()
	if v == nil {
		return errUnavailable
	}
	h := c.Response().Header()
	h[HeaderBlock], h[HeaderBlockHash] = v.blockHeader, v.hashHeader
	return c.JSON(http.StatusOK, s.statusAt(v))
}
