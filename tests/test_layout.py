"""The repository's shape: one namespace over four distributions, and what each pulls in."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("protocol", "agent", "server", "simulators")


def test_farebox_is_a_namespace_package_with_no_init_anywhere() -> None:
    for part in PARTS:
        namespace = ROOT / part / "src" / "farebox"
        assert namespace.is_dir(), namespace
        assert not (namespace / "__init__.py").exists(), f"{part} must not own the namespace"
        assert (namespace / part / "__init__.py").is_file()
    assert not list(ROOT.glob("**/src/farebox/__init__.py"))


def runtime_closure(distribution: str) -> set[str]:
    """Every distribution `distribution` installs, without optional extras."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_a_validator_image_pulls_in_no_server_code_and_no_postgresql_driver() -> None:
    closure = runtime_closure("farebox-agent")
    assert "farebox-protocol" in closure
    assert not closure & {"farebox-server", "farebox-simulators", "asyncpg", "psycopg", "psycopg2"}


def test_the_protocol_pulls_in_only_encoding_cryptography_and_time_zones() -> None:
    direct = {Requirement(r).name for r in metadata.requires("farebox-protocol") or []}
    assert direct == {"cbor2", "cryptography", "tzdata"}


def test_a_server_image_pulls_in_no_reader_libraries() -> None:
    closure = runtime_closure("farebox-server")
    assert not closure & {"farebox-agent", "nfcpy", "pyserial"}
