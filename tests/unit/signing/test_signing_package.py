"""Package rules: signing/ imports only the stdlib and itsdangerous."""

from __future__ import annotations

import ast
import pickle
import sys
from pathlib import Path

import signing
from signing import InvalidToken

PACKAGE_DIR = Path(signing.__file__).parent
ALLOWED = set(sys.stdlib_module_names) | {"itsdangerous", "signing", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import stays inside the package
                continue
            roots.add(node.module.split(".")[0])
    return roots


def test_signing_imports_nothing_of_the_project():
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        foreign = imported_roots(module) - ALLOWED
        assert not foreign, f"{module.name} imports {sorted(foreign)}"


def test_public_api_is_exported():
    for name in signing.__all__:
        assert hasattr(signing, name), name


def test_invalid_token_reason_codes_are_checked():
    try:
        InvalidToken("typo")
    except ValueError:
        pass
    else:
        raise AssertionError("unknown reason accepted")
    assert repr(InvalidToken("revoked")) == "InvalidToken(reason='revoked')"


def test_invalid_token_survives_pickling():
    copy = pickle.loads(pickle.dumps(InvalidToken("cidr")))
    assert copy.reason == "cidr"
    assert str(copy) == "invalid token"
