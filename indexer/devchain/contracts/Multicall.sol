// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Multicall is the part of Multicall3's interface that wallets read balances
// with — getEthBalance and aggregate3, with Multicall3's ABI — for the dev
// chain, where Multicall3 is not deployed: viem's batch.multicall, and
// balidx's POST /rpc answering it, are tested against it.
contract Multicall {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function aggregate3(Call3[] calldata calls) public payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            require(ok || calls[i].allowFailure, "Multicall3: call failed");
            returnData[i] = Result(ok, ret);
        }
    }

    function getEthBalance(address addr) public view returns (uint256) {
        return addr.balance;
    }
}
