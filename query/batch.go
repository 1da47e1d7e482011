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
	return c.JSONBlob(http.StatusOK, appendBatch(make([]byte, 0, 256*len(req)), req, &res, p))
}
