package balidx

import "time"

// IndexerStatus is what the indexer tells every query node about the chain
// beyond the trusted block: the head it has seen, its trust policy, and a
// trust violation if it stopped on one. It is kept in a JetStream key-value
// bucket, one key per chain, so that a query node never asks the chain.
type IndexerStatus struct {
	ChainID        uint64          `json:"chain_id"`
	Head           uint64          `json:"head"`
	HeadSeenAt     time.Time       `json:"head_seen_at"`
	Policy         Policy          `json:"policy"`
	TrustViolation *TrustViolation `json:"trust_violation"`
	// ActiveIndexer names the indexer that publishes (of those following
	// the chain, the one holding the publishing lease), and ActiveSince
	// when it took over.
	ActiveIndexer string    `json:"active_indexer,omitempty"`
	ActiveSince   time.Time `json:"active_since,omitzero"`
}

// Policy is the indexer's trust policy: Confirmations, or a block Tag.
type Policy struct {
	Confirmations uint64 `json:"confirmations,omitempty"`
	Tag           string `json:"tag,omitempty"` // "safe" or "finalized"
}

// TrustViolation names the block at which the chain no longer continues what
// was published: a reorganisation deeper than the trust policy.
type TrustViolation struct {
	Number        uint64    `json:"number"`         // the block that does not fit
	Hash          string    `json:"hash"`           // its hash on the chain now
	ParentHash    string    `json:"parent_hash"`    // what it builds on
	PublishedHash string    `json:"published_hash"` // what was published at Number-1
	DetectedAt    time.Time `json:"detected_at"`
}
