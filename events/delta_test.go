package events

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/balidx/balidx"
	"github.com/ethereum/go-ethereum/common"
	"github.com/holiman/uint256"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleDelta() BlockDelta {
	max := new(uint256.Int).SetAllOne()
	return BlockDelta{
		Version: deltaVersion, ChainID: 1337,
		Block: balidx.Block{
			Number:     42,
			Hash:       common.HexToHash("0x00000000000000000000000000000000000000000000000000000000000000aa"),
			ParentHash: common.HexToHash("0x00000000000000000000000000000000000000000000000000000000000000a9"),
			Timestamp:  1700000000,
		},
		Part: 1, Parts: 1,
		Withheld: []balidx.Withheld{{Asset: common.HexToAddress("0x00000000000000000000000000000000000000e1"), Reason: balidx.TimeDependent}},
		Changes: []balidx.Change{
			{Account: common.HexToAddress("0x742d35Cc6634C0532925a3b844Bc454e4438f44e"), Asset: balidx.NativeAsset, Pre: *uint256.NewInt(1000), Post: *uint256.NewInt(0)},
			{Account: common.HexToAddress("0x00000000000000000000000000000000000000ff"), Asset: common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3"), Pre: *uint256.NewInt(0), Post: *max},
		},
	}
}

// checkGolden compares d's encoding with testdata/name (rewritten with
// -update) and returns the golden file decoded.
func checkGolden(t *testing.T, name string, d *BlockDelta) *BlockDelta {
	t.Helper()
	got, err := Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSpace(want)) {
		t.Fatalf("encoding changed (run with -update if intended, and bump Version if readers break):\ngot  %s\nwant %s", got, want)
	}
	back, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func TestGolden(t *testing.T) {
	d := sampleDelta()
	back := checkGolden(t, "delta-v2.golden.json", &d)
	if back.Number != d.Number || back.Hash != d.Hash || len(back.Changes) != 2 || back.Changes[1].Post != d.Changes[1].Post || back.Changes[0].Asset != balidx.NativeAsset || back.From != nil ||
		len(back.Withheld) != 1 || back.Withheld[0] != d.Withheld[0] {
		t.Fatalf("round trip: got %+v, want %+v", back, d)
	}
}

// TestReadsVersion1 decodes what a version 1 writer published: streams
// written before withheld tokens existed stay readable.
func TestReadsVersion1(t *testing.T) {
	for _, name := range []string{"delta-v1.golden.json", "correction-v1.golden.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(bytes.TrimSpace(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.Version != 1 || d.Number != 42 || len(d.Changes) != 2 || d.Withheld != nil {
			t.Fatalf("%s: got %+v", name, d)
		}
	}
}

func TestGoldenCorrection(t *testing.T) {
	d := sampleDelta()
	d.From = &balidx.BlockRef{Number: 44, Hash: common.HexToHash("0x00000000000000000000000000000000000000000000000000000000000000ac")}
	back := checkGolden(t, "correction-v2.golden.json", &d)
	if back.From == nil || *back.From != *d.From {
		t.Fatalf("round trip: %+v", back)
	}
	if plain := sampleDelta(); back.MsgID() == plain.MsgID() {
		t.Fatal("a correction shares its message id with the block's own delta")
	}
}

// seedPage is sampleDelta as a seed page: its changes of asset (pre 0).
func seedPage(asset common.Address, page *balidx.SeedPage) BlockDelta {
	d := sampleDelta()
	d.Version, d.Withheld, d.Changes = SeedVersion, nil, d.Changes[:1]
	d.Changes[0].Pre, d.Changes[0].Asset = uint256.Int{}, asset
	d.Seed = page
	return d
}

func TestGoldenSeedPage(t *testing.T) {
	next := common.HexToHash("0x8000000000000000000000000000000000000000000000000000000000000001").Bytes()
	d := seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next})
	back := checkGolden(t, "seed-v3.golden.json", &d)
	if back.Seed == nil || back.Seed.Page != 7 || !bytes.Equal(back.Seed.Next, d.Seed.Next) || back.Seed.Last || back.Seed.Token != nil {
		t.Fatalf("round trip: %+v", back.Seed)
	}
	if plain := sampleDelta(); back.MsgID() == plain.MsgID() || back.MsgID() != "1337:42:0x00000000000000000000000000000000000000000000000000000000000000aa:seed:7" {
		t.Fatalf("a seed page's message id: %s", back.MsgID())
	}
	token, list := common.HexToAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3"), common.Hash{0xee}
	total := uint256.NewInt(1e18)
	d = seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 43, Tokens: list, TotalSupply: total, Last: true})
	back = checkGolden(t, "seed-token-v3.golden.json", &d)
	if back.Seed == nil || back.Seed.Token == nil || *back.Seed.Token != token || back.Seed.Tokens != list || !back.Seed.TokenDone(42) || !back.Seed.Last || back.Seed.TotalSupply == nil || *back.Seed.TotalSupply != *total {
		t.Fatalf("round trip: %+v", back.Seed)
	}
	for name, bad := range map[string]BlockDelta{
		"version 2": func() BlockDelta {
			d := seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next})
			d.Version = 2
			return d
		}(),
		"a pre": func() BlockDelta {
			d := seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next})
			d.Changes[0].Pre = *uint256.NewInt(1)
			return d
		}(),
		"two parts": func() BlockDelta {
			d := seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next})
			d.Parts = 2
			return d
		}(),
		"a correction": func() BlockDelta {
			d := seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next})
			d.From = &balidx.BlockRef{Number: 1, Hash: common.Hash{1}}
			return d
		}(),
		"page 0":                        seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 0, Next: next}),
		"last with a next":              seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next, Last: true}),
		"no next, no tokens after":      seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7}),
		"a short next":                  seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next[:31]}),
		"accounts with logs_from":       seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Next: next, LogsFrom: 3}),
		"a token on an accounts page":   seedPage(token, &balidx.SeedPage{Page: 7, Next: next}),
		"the coin on a token page":      seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 3, Tokens: list}),
		"a token page without list":     seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 3}),
		"a token page with a next":      seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 3, Tokens: list, Next: next}),
		"logs past the block":           seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 44, Tokens: list}),
		"last before the token ends":    seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 42, Tokens: list, Last: true}),
		"a total before the token ends": seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 42, Tokens: list, TotalSupply: total}),
		"withheld with changes": func() BlockDelta {
			d := seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 43, Tokens: list})
			d.Withheld = []balidx.Withheld{{Asset: token, Reason: balidx.TimeDependent}}
			return d
		}(),
	} {
		if _, err := Encode(&bad); !errors.Is(err, ErrInvalidDelta) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: encoded (%v)", name, err)
		}
	}
	for name, good := range map[string]BlockDelta{
		"the accounts' last page, tokens after": seedPage(balidx.NativeAsset, &balidx.SeedPage{Page: 7, Tokens: list}),
		"a token page mid-scan":                 seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, Tokens: list}),
		"a token withheld by its last page": func() BlockDelta {
			d := seedPage(token, &balidx.SeedPage{Page: 9, Token: &token, LogsFrom: 43, Tokens: list})
			d.Changes, d.Withheld = nil, []balidx.Withheld{{Asset: token, Reason: balidx.TimeDependent}}
			return d
		}(),
	} {
		if _, err := Encode(&good); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A block naming the tokens fully covered from it is version 4 (FullFrom);
// one without stays version 2.
func TestGoldenFullTokens(t *testing.T) {
	token := common.HexToAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3")
	parts := Split(1337, sampleDelta().Block, sampleDelta().Changes, nil)
	FullFrom(parts, nil)
	if parts[0].Version != deltaVersion || parts[0].FullTokens != nil {
		t.Fatalf("no full token: version %d", parts[0].Version)
	}
	FullFrom(parts, []common.Address{token})
	back := checkGolden(t, "full-v4.golden.json", &parts[0])
	if back.Version != 4 || len(back.FullTokens) != 1 || back.FullTokens[0] != token {
		t.Fatalf("round trip: %+v", back)
	}
	for name, mut := range map[string]func(d *BlockDelta){
		"version 3":        func(d *BlockDelta) { d.Version = 3 },
		"the native coin":  func(d *BlockDelta) { d.FullTokens = []common.Address{{}} },
		"twice":            func(d *BlockDelta) { d.FullTokens = []common.Address{token, token} },
		"on a second part": func(d *BlockDelta) { d.Part, d.Parts = 2, 2 },
		"on a correction":  func(d *BlockDelta) { d.From = &balidx.BlockRef{Number: 1, Hash: common.Hash{1}} },
	} {
		bad := parts[0]
		bad.FullTokens = []common.Address{token}
		mut(&bad)
		if _, err := Encode(&bad); !errors.Is(err, ErrInvalidDelta) {
			t.Errorf("%s: encoded (%v)", name, err)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(ptr(sampleDelta()))
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := []struct {
		name string
		data string
		want error
	}{
		{"not json", "nope", ErrInvalidDelta},
		{"no version", `{"chain_id":1}`, ErrInvalidDelta},
		{"future version", strings.Replace(s, `"version":2`, `"version":5`, 1), ErrUnsupportedVersion},
		{"version 0", strings.Replace(s, `"version":2`, `"version":0`, 1), ErrUnsupportedVersion},
		{"withheld in version 1", strings.Replace(s, `"version":2`, `"version":1`, 1), ErrInvalidDelta},
		{"withheld on part 2", strings.Replace(strings.Replace(s, `"parts":1`, `"parts":2`, 1), `"part":1`, `"part":2`, 1), ErrInvalidDelta},
		{"withheld native", strings.Replace(s, `"asset":"0x00000000000000000000000000000000000000e1"`, `"asset":"0x0000000000000000000000000000000000000000"`, 1), ErrInvalidDelta},
		{"withheld inconsistent", strings.Replace(s, `"reason":"time_dependent"`, `"reason":"inconsistent"`, 1), ErrInvalidDelta},
		{"withheld unknown reason", strings.Replace(s, `"reason":"time_dependent"`, `"reason":"stale"`, 1), ErrInvalidDelta},
		{"unknown field", strings.Replace(s, `"part":1`, `"part":1,"extra":true`, 1), ErrInvalidDelta},
		{"hex amount", strings.Replace(s, `"pre":"1000"`, `"pre":"0x3e8"`, 1), ErrInvalidDelta},
		{"negative amount", strings.Replace(s, `"pre":"1000"`, `"pre":"-1"`, 1), ErrInvalidDelta},
		{"leading zero", strings.Replace(s, `"pre":"1000"`, `"pre":"01000"`, 1), ErrInvalidDelta},
		{"overflow", strings.Replace(s, `"pre":"1000"`, `"pre":"`+strings.Repeat("9", 78)+`"`, 1), ErrInvalidDelta},
		{"zero token", strings.Replace(s, `"asset":"native"`, `"asset":"0x0000000000000000000000000000000000000000"`, 1), ErrInvalidDelta},
		{"bad asset", strings.Replace(s, `"asset":"native"`, `"asset":"eth"`, 1), ErrInvalidDelta},
		{"part beyond parts", strings.Replace(s, `"part":1`, `"part":2`, 1), ErrInvalidDelta},
		{"too many parts", strings.Replace(s, `"parts":1`, `"parts":70000`, 1), ErrTooLarge},
		{"chain 0", strings.Replace(s, `"chain_id":1337`, `"chain_id":0`, 1), ErrInvalidDelta},
		{"too big", strings.Repeat(" ", MaxMessageBytes+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	changes := make([]balidx.Change, 2*MaxChangesPerPart+1)
	parts := Split(1, balidx.Block{Number: 7, Hash: common.Hash{1}}, changes, nil)
	if len(parts) != 3 {
		t.Fatalf("got %d parts, want 3", len(parts))
	}
	total := 0
	for i, p := range parts {
		if p.Part != i+1 || p.Parts != 3 {
			t.Fatalf("part %d: got %d/%d", i, p.Part, p.Parts)
		}
		total += len(p.Changes)
		if _, err := Encode(&p); err != nil {
			t.Fatal(err)
		}
	}
	if total != len(changes) {
		t.Fatalf("got %d changes, want %d", total, len(changes))
	}
	if empty := Split(1, balidx.Block{Number: 8, Hash: common.Hash{2}}, nil, nil); len(empty) != 1 || empty[0].Parts != 1 {
		t.Fatalf("empty block: got %+v, want one part", empty)
	}
}

func TestFullPartFitsMessageLimit(t *testing.T) {
	max := new(uint256.Int).SetAllOne()
	changes := make([]balidx.Change, MaxChangesPerPart)
	for i := range changes {
		changes[i] = balidx.Change{Account: common.Address{0xff}, Asset: common.Address{0xee}, Pre: *max, Post: *max}
	}
	p := Split(1, balidx.Block{Number: 1, Hash: common.Hash{1}}, changes, nil)[0]
	if _, err := Encode(&p); err != nil {
		t.Fatalf("a full part of maximal amounts must fit: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
