package query

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// HeaderBlock and HeaderBlockHash name, on every balance answer, the block
// it is true at (canonical form): a client behind several replicas asks
// for at least it next (min_block), and never sees the height go back.
const (
	HeaderBlock     = "X-Balidx-Block"
	HeaderBlockHash = "X-Balidx-Block-Hash"
)

// The balance routes' handlers. Each parses its input (input.go), asks the
// snapshot (snapshot.go: Bloom → cache → bbolt) and has the answer rendered
// (render.go); errors go to the one error handler (errors.go).

func (s *Server) getBalance(c echo.Context) error {
	return s.answerBalance(c, c.Param("address"), false)
}

func (s *Server) getWalletBalance(c echo.Context) error { return s.answerBalance(c, "", true) }

// answerBalance answers one address: pathAddress, or the query's address
// parameter on the wallet route.
func (s *Server) answerBalance(c echo.Context, pathAddress string, wallet bool) error {
	q, err := parseBalanceQuery(c.Request().URL.RawQuery, pathAddress, wallet)
	if err != nil {
		return err
	}
	r := requestOf(c)
	key := r.cacheKey(q.address)
	b := s.bounds
	b.minBlock = q.minBlock
	e, v, src, err := s.snap.lookup(q.address, key, b)
	if err != nil {
		return err
	}
	s.metrics.lookups[src].Inc()
	if src == fromSnapshot {
		r.reads++
	}
	h := c.Response().Header()
	h[HeaderBlock], h[HeaderBlockHash] = v.blockHeader, v.hashHeader
	return writeAnswer(c, q, e, v)
}

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
	q, err := parseQuery(c.Request().URL.RawQuery, false)
	if err != nil {
		return err
	}
	b := s.bounds
	b.minBlock = q.minBlock
	res, err := s.snap.batch(req, b)
	requestOf(c).reads += res.reads
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h[HeaderBlock], h[HeaderBlockHash] = res.view.blockHeader, res.view.hashHeader
	return c.JSONBlob(http.StatusOK, appendBatch(make([]byte, 0, 256*len(req)), req, &res, q.page))
}
