"""The Ray internals meow uses (meow/ray_internals.py) are all in the installed Ray; if an upgrade
removed one, this fails naming the Ray version and what is gone."""

import pytest

from meow import ray_internals


def test_the_installed_ray_has_every_internal_meow_uses():
    ray_internals.check()  # RayInternalsChanged names the Ray version and what is gone


def test_a_removed_internal_is_named_with_the_ray_version(monkeypatch):
    import ray
    import ray._raylet

    monkeypatch.delattr(ray._raylet, "AuthenticationTokenLoader")
    with pytest.raises(ray_internals.RayInternalsChanged) as error:
        ray_internals.reread_settings(enable_cluster=False)
    message = str(error.value)
    assert f"Ray {ray.__version__} lacks ray._raylet.AuthenticationTokenLoader.instance" in message
    assert "meow/ray_internals.py" in message


def test_the_version_it_was_written_for_is_the_pinned_one():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert f"ray[train,serve,data]=={ray_internals.RAY_VERSION}" in pyproject["project"]["dependencies"]
