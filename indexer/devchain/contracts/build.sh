#!/usr/bin/env bash
# Regenerates the compiled demo contracts (*.bin, *.abi) from Demo.sol and
# Multicall.sol with solcjs from the npm registry. The outputs are committed;
# run this only after editing them.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm install --silent --prefix "$work" solc@0.8.28 >/dev/null
"$work/node_modules/.bin/solcjs" --bin --abi --optimize -o "$work/out" Demo.sol
for c in Token Splitter RebaseToken CollectorToken InterestToken QuietMintToken BrokenToken; do
  cp "$work/out/Demo_sol_$c.bin" "$c.bin"
  cp "$work/out/Demo_sol_$c.abi" "$c.abi"
done
"$work/node_modules/.bin/solcjs" --bin --abi --optimize -o "$work/out" Multicall.sol
cp "$work/out/Multicall_sol_Multicall.bin" Multicall.bin
cp "$work/out/Multicall_sol_Multicall.abi" Multicall.abi
