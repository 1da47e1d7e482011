package query

import (
	"errors"
	"io"
	"net/http"

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
