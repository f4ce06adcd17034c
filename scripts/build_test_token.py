"""Rebuild chain/contracts/TestToken.json (ABI + bytecode) from TestToken.sol with the npm `solc` compiler.

Run: python scripts/build_test_token.py
It installs the pinned compiler under chain/contracts/.solc (git-ignored) when missing, compiles
offline with fixed settings (so the artifact is reproducible), and writes the artifact the tests use.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "chain" / "contracts"
SOLC_PREFIX = CONTRACTS / ".solc"
SOLC_VERSION = "0.8.30"
SOURCE = "TestToken.sol"
CONTRACT = "TestToken"
EVM_VERSION = "shanghai"  # PUSH0; every current local node (anvil, ganache) supports it


def solcjs() -> pathlib.Path:
    binary = SOLC_PREFIX / "node_modules" / ".bin" / "solcjs"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is required to install the solc compiler")
        subprocess.run(
            [npm, "install", "--prefix", str(SOLC_PREFIX), "--no-audit", "--no-fund", f"solc@{SOLC_VERSION}"],
            check=True,
        )
    return binary


def compile_token() -> dict[str, object]:
    standard_input = {
        "language": "Solidity",
        "sources": {SOURCE: {"content": (CONTRACTS / SOURCE).read_text()}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": EVM_VERSION,
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {SOURCE: {CONTRACT: ["abi", "evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        [str(solcjs()), "--standard-json"], input=json.dumps(standard_input), capture_output=True, text=True,
        check=True,
    )
    output = json.loads(done.stdout[done.stdout.index("{"):])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("\n".join(e["formattedMessage"] for e in errors))
    compiled = output["contracts"][SOURCE][CONTRACT]
    return {
        "contractName": CONTRACT,
        "compiler": f"solc {SOLC_VERSION} (npm solc), optimizer 200 runs, evmVersion {EVM_VERSION}",
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
    }


def main() -> int:
    artifact = compile_token()
    target = CONTRACTS / f"{CONTRACT}.json"
    target.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
