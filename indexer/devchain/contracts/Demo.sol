// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Token is a minimal ERC-20 for the demo chain and the pipeline tests.
// With feeBps > 0 it charges a fee on transfer and burns it while its Transfer
// log still carries the gross amount: balances summed from logs drift from
// balanceOf, which is exactly what the indexer must not be fooled by.
contract Token {
    event Transfer(address indexed from, address indexed to, uint256 value);

    string public name;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    uint256 public immutable feeBps;
    address public immutable owner;
    mapping(address => uint256) public balanceOf;

    constructor(string memory name_, uint256 feeBps_) {
        name = name_;
        feeBps = feeBps_;
        owner = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function burn(uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        totalSupply -= amount;
        emit Transfer(msg.sender, address(0), amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        uint256 fee = (amount * feeBps) / 10000;
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount - fee;
        totalSupply -= fee;
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}

// Splitter forwards the ETH it receives to two accounts through internal
// calls, so that balance changes happen without a transaction of their own.
contract Splitter {
    function split(address payable a, address payable b) external payable {
        uint256 half = msg.value / 2;
        (bool okA, ) = a.call{value: half}("");
        (bool okB, ) = b.call{value: msg.value - half}("");
        require(okA && okB, "forward failed");
    }
}
