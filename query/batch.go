package query

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/balidx/balidx/storage"
	"github.com/ethereum/go-ethereum/common"
	"github.com/labstack/echo/v4"
)

// postBalances answers up to MaxBatchAddresses addresses at one block.
func (s *Server) postBalances(c echo.Context) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxBatchBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	if err != nil {
		return invalidRequest("body could not be read")
	}
	req, err := parseBatch(body)
	if err != nil {
		return err
	}
	p, _, err := parseQuery(c.Request().URL.RawQuery, false)
	if err != nil {
		return err
	}
	res, err := s.snap.batch(req)
	if err != nil {
		return err
	}
	countReads(c, res.reads)
	if res.view == nil {
		return errUnavailable
	}
	if err := s.checkStaleness(res.view); err != nil {
		return err
	}
	b := make([]byte, 0, 256*len(req))
	b = append(b, '{')
	b = appendHeader(b, res.view.meta.ChainID, res.view.block)
	b = append(b, `,"balances":[`...)
	for i, raw := range req {
		if i > 0 {
			b = append(b, ',')
		}
		switch r := res.entries[i]; {
		case !r.valid:
			b = appendEntryError(b, raw, errInvalidAddress)
		case !r.balances.Known && !res.view.meta.CoverageFull:
			b = appendEntryError(b, r.address.Hex(), errNotIndexed)
		default:
			b = append(b, `{"address":"`...)
			b = append(b, r.address.Hex()...)
			b = append(b, `",`...)
			b = appendBalances(b, &r.balances, p)
			b = append(b, '}')
		}
	}
	b = append(b, ']')
	b = appendWithheld(b, res.view.withheld, p)
	b = append(b, '}')
	return c.JSONBlob(http.StatusOK, b)
}

func appendEntryError(b []byte, address string, e *Error) []byte {
	if len(address) > addressLen {
		address = address[:addressLen] + "…"
	}
	var one struct {
		Address string `json:"address"`
		Error   struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	one.Address = address
	one.Error.Code, one.Error.Message = e.Code, e.Message
	j, _ := json.Marshal(one)
	return append(b, j...)
}

// batchEntry is one address of a batch.
type batchEntry struct {
	valid    bool
	address  common.Address
	balances storage.Balances
}

type batchResult struct {
	view    *view
	entries []batchEntry
	reads   int // addresses read from bbolt
}

// batch reads every valid address of raw in one transaction. Addresses the
// Bloom filter has never seen are not read, unless the store has committed a
// block the filter does not reflect yet; then all are read.
func (s *Snapshot) batch(raw []string) (batchResult, error) {
	res := batchResult{entries: make([]batchEntry, len(raw))}
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := s.view.Load()
	if cur == nil {
		return res, nil
	}
	var known, all []common.Address
	var knownIdx, allIdx []int
	for i, r := range raw {
		a, _, ok := parseAddress(r)
		res.entries[i] = batchEntry{valid: ok, address: a}
		if !ok {
			continue
		}
		all, allIdx = append(all, a), append(allIdx, i)
		if s.bloom.Test(a[:]) {
			known, knownIdx = append(known, a), append(knownIdx, i)
		}
	}
	out := make([]storage.Balances, len(all))
	v, err := s.readMany(known, out[:len(known)])
	if err != nil {
		return res, err
	}
	idx := knownIdx
	res.reads = len(known)
	if v.meta.Trusted.Number != cur.meta.Trusted.Number {
		if v, err = s.readMany(all, out); err != nil {
			return res, err
		}
		idx = allIdx
		res.reads += len(all)
	}
	for j, i := range idx {
		res.entries[i].balances = out[j]
	}
	res.view = v
	return res, nil
}
