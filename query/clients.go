package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"

	"sigs.k8s.io/yaml"
)

// Clients is the operator's clients file (API.md "Clients file").
type Clients struct {
	Clients   []Client  `json:"clients"`
	Anonymous Anonymous `json:"anonymous"`
}

// Client is one issued client. Secrets are never logged or echoed.
type Client struct {
	ID      string   `json:"id"`
	Secrets []string `json:"secrets"`
	Rate    float64  `json:"rate"`
	Burst   int      `json:"burst"`
}

// Anonymous is the tier for unsigned requests, off unless enabled.
type Anonymous struct {
	Enabled bool    `json:"enabled"`
	Rate    float64 `json:"rate"`
	Burst   int     `json:"burst"`
}

// Limits of the clients file.
const (
	maxClientsFile   = 4 << 20
	maxClients       = 100_000
	maxSecrets       = 8
	minSecretLen     = 32
	maxSecretLen     = 1024
	maxRatePerSecond = 1_000_000
)

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// LoadClients reads and validates a clients file (YAML, or JSON).
func LoadClients(path string) (*Clients, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("clients file: %w", err)
	}
	if fi.Size() > maxClientsFile {
		return nil, fmt.Errorf("clients file %s is larger than %d bytes", path, maxClientsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("clients file: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("clients file %s: %w", path, err)
	}
	var c Clients
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("clients file %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("clients file %s: %w", path, err)
	}
	return &c, nil
}

func (c *Clients) validate() error {
	if len(c.Clients) > maxClients {
		return fmt.Errorf("%d clients: at most %d", len(c.Clients), maxClients)
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		switch {
		case !clientIDPattern.MatchString(cl.ID):
			return fmt.Errorf("client %d: id must be 1..64 of [A-Za-z0-9_.-]", i+1)
		case seen[cl.ID]:
			return fmt.Errorf("client %q appears twice", cl.ID)
		case len(cl.Secrets) == 0 || len(cl.Secrets) > maxSecrets:
			return fmt.Errorf("client %q: 1..%d secrets", cl.ID, maxSecrets)
		case cl.Rate <= 0 || cl.Rate > maxRatePerSecond || cl.Burst < 1 || cl.Burst > maxRatePerSecond:
			return fmt.Errorf("client %q: rate must be in (0, %d] and burst in [1, %d]", cl.ID, maxRatePerSecond, maxRatePerSecond)
		}
		for j, s := range cl.Secrets {
			if len(s) < minSecretLen || len(s) > maxSecretLen {
				return fmt.Errorf("client %q: secret %d must be %d..%d characters", cl.ID, j+1, minSecretLen, maxSecretLen)
			}
		}
		seen[cl.ID] = true
	}
	if a := c.Anonymous; a.Enabled && (a.Rate <= 0 || a.Rate > maxRatePerSecond || a.Burst < 1 || a.Burst > maxRatePerSecond) {
		return fmt.Errorf("anonymous: rate must be in (0, %d] and burst in [1, %d]", maxRatePerSecond, maxRatePerSecond)
	}
	return nil
}
