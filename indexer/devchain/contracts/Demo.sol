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

// RebaseToken keeps shares per holder and one shared index: rebase() changes
// every holder's balance at once with a single storage write and no log, as
// stETH and AMPL do. Balances round down (shares × index / 1e18).
contract RebaseToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    uint256 public index = 1e18;
    uint256 public totalShares;
    address public immutable owner;
    mapping(address => uint256) public sharesOf;

    constructor() {
        owner = msg.sender;
    }

    function balanceOf(address a) external view returns (uint256) {
        return (sharesOf[a] * index) / 1e18;
    }

    function totalSupply() external view returns (uint256) {
        return (totalShares * index) / 1e18;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        uint256 shares = (amount * 1e18) / index;
        totalShares += shares;
        sharesOf[to] += shares;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        uint256 shares = (amount * 1e18) / index;
        sharesOf[msg.sender] -= shares;
        sharesOf[to] += shares;
        emit Transfer(msg.sender, to, amount);
        return true;
    }

    // rebase grows (or shrinks) every balance by bps basis points.
    function rebase(int256 bps) external {
        require(msg.sender == owner, "not owner");
        index = (index * uint256(10000 + bps)) / 10000;
    }
}

// CollectorToken charges a fee on transfer and credits it to a collector;
// its Transfer log names only the sender and the recipient (with the net
// amount), so the collector never appears in any log.
contract CollectorToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    uint256 public totalSupply;
    uint256 public immutable feeBps;
    address public immutable owner;
    address public immutable collector;
    mapping(address => uint256) public balanceOf;

    constructor(uint256 feeBps_, address collector_) {
        feeBps = feeBps_;
        collector = collector_;
        owner = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        uint256 fee = (amount * feeBps) / 10000;
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount - fee;
        balanceOf[collector] += fee;
        emit Transfer(msg.sender, to, amount - fee);
        return true;
    }
}

// InterestToken's balances grow with block.timestamp without any storage
// write, as Aave's aTokens do: nothing on the chain says when they change.
contract InterestToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    uint256 public immutable start;
    address public immutable owner;
    mapping(address => uint256) public principalOf;

    constructor() {
        start = block.timestamp;
        owner = msg.sender;
    }

    // balanceOf adds 1 basis point of the principal per second since start.
    function balanceOf(address a) public view returns (uint256) {
        return principalOf[a] + (principalOf[a] * (block.timestamp - start)) / 10000;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        principalOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 principal) external returns (bool) {
        principalOf[msg.sender] -= principal;
        principalOf[to] += principal;
        emit Transfer(msg.sender, to, principal);
        return true;
    }
}

// QuietMintToken mints without a Transfer log (as some tokens' admin mints
// do); its transfers log as usual.
contract QuietMintToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    uint256 public totalSupply;
    address public immutable owner;
    mapping(address => uint256) public balanceOf;

    constructor() {
        owner = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "not owner");
        totalSupply += amount;
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}

// BrokenToken logs ERC-20 transfers but has no balanceOf: its balances are
// unreadable, and it must be withheld, never guessed.
contract BrokenToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function transfer(address to, uint256 amount) external returns (bool) {
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}
