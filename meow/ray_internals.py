"""The Ray internals meow uses, in one place: `ray._private` and `ray._raylet` are not Ray's public
API and may change in any release. Written for the Ray that pyproject.toml pins (`RAY_VERSION`).

Ray reads its loopback switch and its auth settings once, at import: the switch into a Python
constant, the auth settings into its C++ core, which has to be told to read them again (what
`ray.init` itself does when it turns token auth on). `reread_settings` makes a Ray imported before
the environment was set see them (`meow.cluster`).

`missing()` lists what of this a Ray upgrade removed; tests/test_ray_internals.py fails on it,
naming the Ray version, and `reread_settings` raises `RayInternalsChanged` the same way, instead of
an AttributeError deep inside a run.
"""

from __future__ import annotations

import importlib

RAY_VERSION = "2.60.0"

# (module, attribute path) of everything used below.
USED = (
    ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER"),
    ("ray._raylet", "Config.initialize"),
    ("ray._raylet", "AuthenticationTokenLoader.instance"),
    ("ray._raylet", "AuthenticationTokenLoader.reset_cache"),
)


class RayInternalsChanged(RuntimeError):
    """The installed Ray lacks an internal that meow relies on."""


def missing() -> list[str]:
    """`module.attribute` for each internal in `USED` that the installed Ray does not have."""
    gone = []
    for module_name, path in USED:
        try:
            found: object = importlib.import_module(module_name)
            for part in path.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            gone.append(f"{module_name}.{path}")
    return gone


def check() -> None:
    """Raise `RayInternalsChanged` naming the Ray version and what is gone, if anything is."""
    import ray

    gone = missing()
    if gone:
        raise RayInternalsChanged(
            f"Ray {ray.__version__} lacks {', '.join(gone)}, which meow/ray_internals.py uses "
            f"(written for Ray {RAY_VERSION}): adapt that module to this Ray, or install ray=={RAY_VERSION}"
        )


def reread_settings(enable_cluster: bool) -> None:
    """Make this process's Ray use the loopback switch and the auth settings now in the environment."""
    check()
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    ray_constants.ENABLE_RAY_CLUSTER = enable_cluster
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
