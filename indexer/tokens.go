package indexer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/balidx/balidx"

	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

// Token balances can change only through the token's storage (or the
// storage of contracts its balanceOf reads), or through what balanceOf
// reads of the block itself (its time, its number…). The indexer learns,
// per token, what balanceOf depends on by tracing one call of it
// (erc7562Tracer: the slots it reads, the KECCAK256 preimages of the slots
// it computes, the opcodes it runs):
//   - a holder's own slots: keccak256(holder ‖ base) + offset (or base ‖
//     holder, as Vyper lays mappings out) in some account's storage;
//   - shared slots: every other slot it reads (a rebase index, a total of
//     shares, a proxy's implementation);
//   - the block's environment (TIMESTAMP, NUMBER, BALANCE…): balances that
//     change with no write at all. Such a token is withheld.
//
// Then, for every block, the prestateTracer diff lists each account's
// changed slots. A changed shared slot means every holder's balance may
// have changed: all known holders are re-read (up to a ceiling, else the
// token is withheld). A changed holder slot names its holder: directly for
// the holders of the block's Transfer logs, and through the block's
// KECCAK256 preimages for the others (a fee collector, a mint without a
// log). Every holder so named is read with balanceOf at the block and at
// its parent: the published amounts are the chain's, never sums of logs.

// maxSlotOffset bounds the offset of a holder's slot within a struct
// that a mapping holds (balance fields beyond it are not recognised).
const maxSlotOffset = 8

// maxIndexedHolders bounds, per token, the holders whose own slots are
// indexed; a changed slot of a holder beyond it is named through the
// block's preimages instead, at one more call to the node.
const maxIndexedHolders = 100_000

// maxFixedSlots bounds the changed slots remembered, per token, as no
// holder's (slots that no KECCAK256 computed: totals, counters).
const maxFixedSlots = 4096

// DefaultMaxRefresh is the most holders re-read when a token's shared
// state changes, unless Config says otherwise.
const DefaultMaxRefresh = 10_000

// storageSlot is one slot of one account's storage.
type storageSlot struct {
	account common.Address
	slot    common.Hash
}

// token is what the indexer knows of one ERC-20.
type token struct {
	holders  map[common.Address]struct{} // every holder published
	withheld balidx.Reason               // "" while it is served
	profile  *profile                    // nil until traced (again)
	fixed    map[common.Hash]struct{}    // changed slots of the token's own storage that are no holder's
	// owners maps the own slots of known holders (up to
	// maxIndexedHolders) to them, under the current profile.
	owners map[storageSlot]common.Address
}

// setProfile makes p the token's profile and indexes its holders' slots.
func (tok *token) setProfile(p *profile) {
	tok.profile, tok.owners = p, map[storageSlot]common.Address{}
	for a := range tok.holders {
		tok.index(a)
	}
}

// index adds holder's own slots to the index, while it has room.
func (tok *token) index(holder common.Address) {
	if tok.profile == nil || len(tok.owners) >= maxIndexedHolders*len(tok.profile.holderSlots) {
		return
	}
	for _, hs := range tok.profile.holderSlots {
		tok.owners[storageSlot{hs.account, hs.of(holder)}] = holder
	}
}

// tokenBook is the indexer's record of every token it has seen, rebuilt
// from the stream at start (holders and withheld tokens are all there).
type tokenBook struct {
	tokens map[common.Address]*token
}

func newTokenBook() *tokenBook { return &tokenBook{tokens: map[common.Address]*token{}} }

func (b *tokenBook) get(t common.Address) *token {
	tok := b.tokens[t]
	if tok == nil {
		tok = &token{holders: map[common.Address]struct{}{}, fixed: map[common.Hash]struct{}{}}
		b.tokens[t] = tok
	}
	return tok
}

// record adds what one whole published block says to the book.
func (b *tokenBook) record(changes []balidx.Change, withheld []balidx.Withheld) {
	for _, c := range changes {
		if c.Asset == balidx.NativeAsset {
			continue
		}
		tok := b.get(c.Asset)
		if _, known := tok.holders[c.Account]; !known {
			tok.holders[c.Account] = struct{}{}
			tok.index(c.Account)
		}
	}
	for _, w := range withheld {
		tok := b.get(w.Asset)
		tok.withheld, tok.profile, tok.owners = w.Reason, nil, nil
	}
}

// tokenStats counts what the token rules cost, for the metrics and the
// benchmarks.
type tokenStats struct {
	profiles, preimageTraces, refreshes, refreshedHolders int
}

// blockTokens is one block's token work in progress.
type blockTokens struct {
	d        *deriver
	h        *NodeBlock
	changed  map[common.Address]map[common.Hash]struct{} // from the prestate diff
	named    map[common.Address][]common.Address         // token → holders of its Transfer logs, in log order
	pre      map[common.Hash][]byte                      // the block's KECCAK256 preimages, fetched at most once
	withheld []balidx.Withheld
}

// tokens returns the balances of every holder whose balance of a token
// may have changed in block h, read with balanceOf at the block and at its
// parent, the tokens withheld from this block on, and the tokens first
// seen here whose coverage is full from here (born.go).
func (d *deriver) tokens(ctx context.Context, h *NodeBlock, changed map[common.Address]map[common.Hash]struct{}) (map[TokenQuery]*amounts, []balidx.Withheld, []common.Address, error) {
	logs, err := d.node.TransferLogs(ctx, h.Hash)
	if err != nil {
		return nil, nil, nil, err
	}
	bt := &blockTokens{d: d, h: h, changed: changed, named: map[common.Address][]common.Address{}}
	for _, l := range logs {
		// ERC-20 Transfer has two indexed addresses and the value as data;
		// ERC-721's has the token id indexed too and is skipped.
		if l.Address == systemAddress || len(l.Topics) != 3 || len(l.Data) != 32 {
			continue
		}
		for _, t := range l.Topics[1:] {
			holder := common.BytesToAddress(t[:])
			if holder != (common.Address{}) && !slices.Contains(bt.named[l.Address], holder) {
				bt.named[l.Address] = append(bt.named[l.Address], holder)
			}
		}
	}
	// Every token of the book, and every new one, in address order: the
	// same block always derives the same delta.
	candidates := slices.Collect(maps.Keys(bt.named))
	for t := range d.book.tokens {
		if bt.named[t] == nil {
			candidates = append(candidates, t)
		}
	}
	candidates = slices.DeleteFunc(candidates, func(t common.Address) bool {
		tok := d.book.tokens[t]
		return tok != nil && tok.withheld != ""
	})
	slices.SortFunc(candidates, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
	var qs []TokenQuery
	var born []common.Address // no holder of it published before this block
	for _, t := range candidates {
		tok := d.book.tokens[t]
		isNew := tok == nil || len(tok.holders) == 0
		holders, reason, err := bt.holders(ctx, t)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("token %s: %w", t.Hex(), err)
		}
		if reason != "" {
			bt.withhold(t, reason)
			continue
		}
		if isNew {
			born = append(born, t)
		}
		for _, a := range holders {
			qs = append(qs, TokenQuery{Token: t, Holder: a})
		}
	}
	out, unreadable, err := d.read(ctx, h, qs)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, t := range unreadable {
		bt.withhold(t, balidx.Unreadable)
		born = slices.DeleteFunc(born, func(b common.Address) bool { return b == t })
		for q := range out {
			if q.Token == t {
				delete(out, q)
			}
		}
	}
	full, err := d.bornFull(ctx, h, born, out)
	if err != nil {
		return nil, nil, nil, err
	}
	return out, bt.withheld, full, nil
}

func (bt *blockTokens) withhold(t common.Address, reason balidx.Reason) {
	if !slices.ContainsFunc(bt.withheld, func(w balidx.Withheld) bool { return w.Asset == t }) {
		bt.withheld = append(bt.withheld, balidx.Withheld{Asset: t, Reason: reason})
		bt.d.log.Warn("token withheld: its balances are no longer served", "block", uint64(bt.h.Number), "token", t.Hex(), "reason", reason)
	}
}

// holders returns the holders of t whose balance may have changed in the
// block, or the reason t must be withheld from it on.
func (bt *blockTokens) holders(ctx context.Context, t common.Address) ([]common.Address, balidx.Reason, error) {
	tok := bt.d.book.get(t)
	if tok.profile == nil {
		p, reason, err := bt.d.profile(ctx, bt.h, t, bt.sampleHolder(t, tok))
		if err != nil || reason != "" {
			return nil, reason, err
		}
		tok.setProfile(p)
	}
	p := tok.profile
	named := bt.named[t]
	set := map[common.Address]struct{}{}
	for _, a := range named {
		set[a] = struct{}{}
	}
	// Which of the slots balanceOf reads did the block change?
	refresh := false
	var unexplained []storageSlot
	for account := range p.accounts {
		for slot := range bt.changed[account] {
			ss := storageSlot{account, slot}
			owner, known := tok.owners[ss]
			_, fixed := tok.fixed[slot]
			switch {
			case p.shared[ss]:
				refresh = true
			case known:
				set[owner] = struct{}{}
			case account == t && fixed:
			default:
				unexplained = append(unexplained, ss)
			}
		}
	}
	// The holders of the logs explain their own slots.
	if len(unexplained) > 0 && len(named) > 0 {
		theirs := map[storageSlot]bool{}
		for _, hs := range p.holderSlots {
			for _, a := range named {
				theirs[storageSlot{hs.account, hs.of(a)}] = true
			}
		}
		unexplained = slices.DeleteFunc(unexplained, func(ss storageSlot) bool { return theirs[ss] })
	}
	// The others, through the preimages of the slots the block computed.
	if len(unexplained) > 0 {
		if bt.pre == nil {
			pre, err := bt.d.node.Preimages(ctx, bt.h.Hash)
			if err != nil {
				return nil, "", err
			}
			bt.pre = pre
			bt.d.stats.preimageTraces++
		}
		for _, ss := range unexplained {
			holder, computed := holderOf(ss, p.holderSlots, bt.pre)
			switch {
			case holder != nil:
				set[*holder] = struct{}{}
			case !computed && ss.account == t && len(tok.fixed) < maxFixedSlots:
				tok.fixed[ss.slot] = struct{}{} // a total or a counter: no holder's, ever
			}
		}
	}
	if refresh {
		for a := range tok.holders {
			set[a] = struct{}{}
		}
		if len(set) > bt.d.maxRefresh {
			return nil, balidx.TooManyHolders, nil
		}
		bt.d.stats.refreshes++
		bt.d.stats.refreshedHolders += len(set)
		tok.profile, tok.owners = nil, nil // traced again at its next block: a proxy may have changed what it reads
	}
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
	return out, "", nil
}

// sampleHolder is the holder whose balanceOf call is traced: the last
// recipient of the block's logs (who likely holds some), else the lowest
// known holder — a choice the block and the book fix, so that deriving a
// block again gives the same delta.
func (bt *blockTokens) sampleHolder(t common.Address, tok *token) common.Address {
	if named := bt.named[t]; len(named) > 0 {
		return named[len(named)-1]
	}
	var low common.Address
	first := true
	for a := range tok.holders {
		if first || bytes.Compare(a[:], low[:]) < 0 {
			low, first = a, false
		}
	}
	return low
}

// holderOf finds the holder whose own slot ss is, among the preimages;
// computed says whether any KECCAK256 of the block produced a slot at or
// just below ss (if none did, ss is a fixed variable, no mapping entry).
func holderOf(ss storageSlot, patterns []holderSlot, pre map[common.Hash][]byte) (holder *common.Address, computed bool) {
	var s, base uint256.Int
	s.SetBytes32(ss.slot[:])
	for k := range uint64(maxSlotOffset) {
		base.SubUint64(&s, k)
		p, ok := pre[base.Bytes32()]
		if !ok {
			continue
		}
		computed = true
		if len(p) != 64 {
			continue
		}
		for _, hs := range patterns {
			if hs.account != ss.account || hs.offset != k {
				continue
			}
			key, other := p[:32], p[32:]
			if !hs.baseLast {
				key, other = p[32:], p[:32]
			}
			if bytes.Equal(other, hs.base[:]) && isAddressWord(key) {
				a := common.BytesToAddress(key)
				return &a, true
			}
		}
	}
	return nil, computed
}

// isAddressWord reports whether w is a 32-byte word holding an address
// (its first 12 bytes zero).
func isAddressWord(w []byte) bool { return len(w) == 32 && bytes.Equal(w[:12], addressPad[:]) }

// addressPad is the zero padding before an address in a 32-byte word.
var addressPad [32 - common.AddressLength]byte

// read reads balanceOf of every query at block h and at its parent. A
// token whose balanceOf cannot be read at the block (or at the parent,
// when it existed then) is returned as unreadable.
func (d *deriver) read(ctx context.Context, h *NodeBlock, qs []TokenQuery) (map[TokenQuery]*amounts, []common.Address, error) {
	out := make(map[TokenQuery]*amounts, len(qs))
	if len(qs) == 0 {
		return out, nil, nil
	}
	post, postErrs, err := d.node.TokenBalances(ctx, qs, h.Hash)
	if err != nil {
		return nil, nil, err
	}
	pre, preErrs, err := d.node.TokenBalances(ctx, qs, h.ParentHash)
	if err != nil {
		return nil, nil, err
	}
	var unreadable []common.Address
	for i, q := range qs {
		bad := postErrs[i] != nil || (preErrs[i] != nil && !errors.Is(preErrs[i], errNoCode))
		if bad && !slices.Contains(unreadable, q.Token) {
			unreadable = append(unreadable, q.Token)
		}
		if bad {
			continue
		}
		out[q] = &amounts{pre: pre[i], post: post[i]} // pre is zero where the contract did not exist yet
	}
	return out, unreadable, nil
}
