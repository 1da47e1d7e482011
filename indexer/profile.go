package indexer

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/vm"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/holiman/uint256"
)

// environmentOpcodes are the opcodes whose value can change from one
// block to the next without any storage write.
var environmentOpcodes = map[vm.OpCode]bool{
	vm.BLOCKHASH: true, vm.COINBASE: true, vm.TIMESTAMP: true, vm.NUMBER: true, vm.PREVRANDAO: true,
	vm.GASLIMIT: true, vm.SELFBALANCE: true, vm.BASEFEE: true, vm.BLOBHASH: true, vm.BLOBBASEFEE: true,
	vm.BALANCE: true, vm.ORIGIN: true, vm.GASPRICE: true, vm.GAS: true,
}

// holderSlot says where a holder's own slot is: in account's storage, at
// keccak256(holder ‖ base) + offset, or keccak256(base ‖ holder) + offset.
type holderSlot struct {
	account  common.Address
	base     common.Hash
	baseLast bool // holder ‖ base (Solidity); false: base ‖ holder (Vyper)
	offset   uint64
}

func (p holderSlot) of(holder common.Address) common.Hash {
	key := common.BytesToHash(holder[:])
	var h []byte
	if p.baseLast {
		h = crypto.Keccak256(key[:], p.base[:])
	} else {
		h = crypto.Keccak256(p.base[:], key[:])
	}
	var s uint256.Int
	s.SetBytes(h).AddUint64(&s, p.offset)
	return s.Bytes32()
}

// profile is what one token's balanceOf depends on.
type profile struct {
	holderSlots []holderSlot
	shared      map[storageSlot]bool
	accounts    map[common.Address]bool // whose storage balanceOf reads
}

// profile traces balanceOf(holder) on token at block h and says what it
// depends on, or why the token must be withheld.
func (d *deriver) profile(ctx context.Context, h *NodeBlock, t, holder common.Address) (*profile, balidx.Reason, error) {
	d.stats.profiles++
	f, err := d.node.TraceBalanceOf(ctx, t, holder, h.Hash)
	var answered rpc.Error
	switch {
	case errors.Is(err, ErrHistoricalState):
		return nil, "", err
	case errors.As(err, &answered):
		// The node has the tracer (CheckTracers) but could not trace this
		// call (an execution timeout…): one token must not stop the rest.
		d.log.Warn("balanceOf could not be traced", "block", uint64(h.Number), "token", t.Hex(), "err", err)
		return nil, balidx.Unreadable, nil
	case err != nil:
		return nil, "", err
	}
	if f.Error != "" || len(f.Output) != 32 {
		return nil, balidx.Unreadable, nil
	}
	pre := make(map[common.Hash][]byte, len(f.Keccak))
	for _, p := range f.Keccak {
		pre[crypto.Keccak256Hash(p)] = p
	}
	key := common.BytesToHash(holder[:])
	p := &profile{shared: map[storageSlot]bool{}, accounts: map[common.Address]bool{}}
	var walk func(f *callFrame, storage common.Address) balidx.Reason
	walk = func(f *callFrame, storage common.Address) balidx.Reason {
		for op := range f.UsedOpcodes {
			if environmentOpcodes[vm.OpCode(op)] {
				return balidx.TimeDependent
			}
		}
		for slot := range f.AccessedSlots.Reads {
			p.accounts[storage] = true
			hs, how := classifySlot(slot, key, pre)
			switch how {
			case slotShared:
				p.shared[storageSlot{storage, slot}] = true
			case slotNested:
				return balidx.UnsupportedLayout
			case slotOfHolder:
				hs.account = storage
				if !slices.Contains(p.holderSlots, hs) {
					p.holderSlots = append(p.holderSlots, hs)
				}
			}
		}
		for i := range f.Calls {
			c := &f.Calls[i]
			inner := c.To
			if c.Type == "DELEGATECALL" || c.Type == "CALLCODE" {
				inner = storage // runs on the caller's storage
			}
			if r := walk(c, inner); r != "" {
				return r
			}
		}
		return ""
	}
	if r := walk(f, t); r != "" {
		return nil, r, nil
	}
	return p, "", nil
}

type slotKind int

const (
	slotShared   slotKind = iota // derived from nothing of the holder's
	slotOfHolder                 // keccak256(holder ‖ base) + offset, or base ‖ holder
	slotNested                   // derived from the holder through more than one hash
)

// classifySlot tells how slot, read by balanceOf(holder), derives from
// the holder (key: its 32-byte word), given the call's preimages.
func classifySlot(slot, key common.Hash, pre map[common.Hash][]byte) (holderSlot, slotKind) {
	var s, base uint256.Int
	s.SetBytes32(slot[:])
	for k := range uint64(maxSlotOffset) {
		base.SubUint64(&s, k)
		p, ok := pre[base.Bytes32()]
		if !ok || len(p) != 64 {
			continue
		}
		switch {
		case bytes.Equal(p[:32], key[:]):
			return holderSlot{base: common.BytesToHash(p[32:]), baseLast: true, offset: k}, slotOfHolder
		case bytes.Equal(p[32:], key[:]):
			return holderSlot{base: common.BytesToHash(p[:32]), offset: k}, slotOfHolder
		case derivesFrom(p, key, pre, 4):
			return holderSlot{}, slotNested
		}
	}
	return holderSlot{}, slotShared
}

// derivesFrom says whether preimage p contains key, directly or through
// the preimages of its halves, within depth hashes.
func derivesFrom(p []byte, key common.Hash, pre map[common.Hash][]byte, depth int) bool {
	if depth == 0 {
		return false
	}
	for i := 0; i+32 <= len(p); i += 32 {
		w := common.BytesToHash(p[i : i+32])
		if w == key {
			return true
		}
		if inner, ok := pre[w]; ok && derivesFrom(inner, key, pre, depth-1) {
			return true
		}
	}
	return false
}
