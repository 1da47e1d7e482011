// Package client is a Go client of balidx's query tier for wallet backends.
// It signs every request (API.md "Authentication"), retries 429 and 503
// honouring Retry-After with jittered exponential backoff, and never retries
// what retrying cannot fix (any other 4xx). Given several query replicas, it
// fails over to the next on a connection error or a 503, and asks each for
// at least the highest block it has been answered at (min_block), so that
// the height it sees never goes back.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/balidx/balidx/query"
)

// Config configures a Client.
type Config struct {
	// BaseURL of the query listener, e.g. http://127.0.0.1:8080; or
	// BaseURLs, several replicas (a load balancer is one).
	BaseURL  string
	BaseURLs []string
	// ClientID and Secret as issued by the operator; both empty: anonymous.
	ClientID string
	Secret   string
	// HTTP is the transport; default: a client with a 10 s timeout.
	HTTP *http.Client
	// MaxAttempts per call, the first included; default 4.
	MaxAttempts int
	// MaxWait caps one wait between attempts; default 30 s.
	MaxWait time.Duration
	// Now is the clock requests are stamped with; default time.Now.
	Now func() time.Time
}

// Client calls balidx query replicas. It is safe for concurrent use.
type Client struct {
	cfg   Config
	bases []*url.URL
	cur   atomic.Uint64 // the replica calls go to, modulo len(bases)
	seen  atomic.Uint64 // the highest block an answer was true at
}

// New validates cfg.
func New(cfg Config) (*Client, error) {
	raw := cfg.BaseURLs
	if cfg.BaseURL != "" {
		raw = append([]string{cfg.BaseURL}, raw...)
	}
	if len(raw) == 0 {
		return nil, errors.New("client: no base URL")
	}
	var bases []*url.URL
	for _, r := range raw {
		base, err := url.Parse(strings.TrimRight(r, "/"))
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", r)
		}
		bases = append(bases, base)
	}
	if (cfg.ClientID == "") != (cfg.Secret == "") {
		return nil, errors.New("client: give both the client id and the secret, or neither")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, bases: bases}, nil
}

// APIError is an error answer of the query tier.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("balidx: %d %s: %s", e.Status, e.Code, e.Message)
}

// Block is the trusted block an answer is true at.
type Block struct {
	Number    uint64 `json:"number"`
	Hash      string `json:"hash"`
	Timestamp uint64 `json:"timestamp"`
}

// Token is one ERC-20 balance.
type Token struct {
	Contract string `json:"contract"`
	Amount   string `json:"amount"`
}

// Balance is the answer of GET /v1/balances/{address}. Amounts are base-10
// strings of wei or token base units.
type Balance struct {
	Address    string  `json:"address"`
	ChainID    uint64  `json:"chain_id"`
	Block      Block   `json:"block"`
	Native     string  `json:"native"`
	Tokens     []Token `json:"tokens"`
	NextCursor string  `json:"next_cursor"`
}

// Balance returns the balances of address.
func (c *Client) Balance(ctx context.Context, address string) (*Balance, error) {
	var b Balance
	if err := c.do(ctx, http.MethodGet, "/v1/balances/"+url.PathEscape(address), true, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*query.Status, error) {
	var s query.Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", false, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// HighestBlock is the highest block an answer was true at, which later
// balance calls ask every replica for at least (min_block).
func (c *Client) HighestBlock() uint64 { return c.seen.Load() }

// do sends one call, retrying what may succeed later: at once on the next
// replica after a connection error or a 503 while some replica of this
// round is untried, else after a wait. monotonic asks for min_block.
func (c *Client) do(ctx context.Context, method, path string, monotonic bool, body []byte, into any) error {
	var last, lastAnswer error
	tried := 0 // replicas tried since the last wait
	for attempt := 1; ; attempt++ {
		base := c.bases[c.cur.Load()%uint64(len(c.bases))]
		wait, failover, err := c.once(ctx, base, method, path, monotonic, body, into)
		if err == nil {
			return nil
		}
		if last = err; errors.As(err, new(*APIError)) {
			lastAnswer = err
		}
		if wait < 0 || attempt == c.cfg.MaxAttempts*len(c.bases) {
			if lastAnswer != nil {
				return lastAnswer // what a replica said, rather than that another was down
			}
			return last
		}
		if failover && len(c.bases) > 1 {
			c.cur.Add(1)
			if tried++; tried < len(c.bases) {
				continue
			}
		}
		tried = 0
		wait = max(wait, backoff(attempt))
		wait = min(wait, c.cfg.MaxWait)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(wait):
		}
	}
}

// backoff is the jittered exponential wait after attempt n: uniform in
// [b/2, b) with b = 100 ms · 2ⁿ⁻¹, so that clients refused together do not
// come back together.
func backoff(n int) time.Duration {
	b := 100 * time.Millisecond << min(n-1, 10)
	return b/2 + rand.N(b/2)
}

// once sends one attempt to base. wait ≥ 0 means the error may pass
// (Retry-After or a transport error); wait < 0 means retrying cannot help.
// failover means another replica may answer now (a connection error, a 503).
func (c *Client) once(ctx context.Context, base *url.URL, method, path string, monotonic bool, body []byte, into any) (wait time.Duration, failover bool, err error) {
	u := *base
	u.Path += path
	if seen := c.seen.Load(); monotonic && seen > 0 {
		u.RawQuery = "min_block=" + strconv.FormatUint(seen, 10)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return -1, false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.ClientID != "" {
		if err := c.sign(req, body); err != nil {
			return -1, false, err
		}
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, false, err
		}
		return 0, true, err // the network, or this replica: try again
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, true, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, into); err != nil {
			return -1, false, fmt.Errorf("balidx: decode answer: %w", err)
		}
		if n, err := strconv.ParseUint(resp.Header.Get(query.HeaderBlock), 10, 64); err == nil {
			for seen := c.seen.Load(); n > seen && !c.seen.CompareAndSwap(seen, n); seen = c.seen.Load() {
			}
		}
		return 0, false, nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		apiErr.Code, apiErr.Message = e.Error.Code, e.Error.Message
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return time.Duration(max(secs, 0)) * time.Second, resp.StatusCode == http.StatusServiceUnavailable, apiErr
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusInternalServerError:
		return 0, true, apiErr // a gateway's 502 or 504: the node may be back
	default:
		return -1, false, apiErr // a 4xx that the same request will get again
	}
}

// sign sets the four headers of a signed request, with a fresh nonce.
func (c *Client) sign(req *http.Request, body []byte) error {
	return sign(req, c.cfg.ClientID, c.cfg.Secret, c.cfg.Now(), body)
}
