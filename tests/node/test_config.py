"""Configuration precedence: arguments > DEPOTDELIVERY_* > /etc file > user file > defaults."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.node import config
from depotdelivery.node.cache import crc32_hex


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_every_key_in_each_layer_wins_in_order(tmp_path):
    system = _write(tmp_path / "etc.toml", 'repo = "/sys"\nchannel = "sys"\nmode = "copy"\nlock_timeout = 5\n')
    user = _write(tmp_path / "user.toml", 'repo = "/user"\nchannel = "user"\ncache = "/user-cache"\nmode = "symlink"\n')
    env = {"DEPOTDELIVERY_CHANNEL": "env", "DEPOTDELIVERY_MICROARCH": "haswell"}
    cfg = config.resolve({"repo": "/arg", "mode": None}, environ=env, files=[system, user])
    assert cfg.repo == "/arg" and cfg.sources["repo"] == "argument"
    assert cfg.channel == "env" and cfg.sources["channel"] == "environment variable DEPOTDELIVERY_CHANNEL"
    assert cfg.mode == "copy" and cfg.sources["mode"] == f"config file {system}"  # /etc beats ~/.config
    assert cfg.cache == "/user-cache" and cfg.sources["cache"] == f"config file {user}"
    assert cfg.lock_timeout == 5.0
    assert cfg.microarch == "haswell"
    assert cfg.release is None and cfg.sources["release"] == "default"
    assert cfg.trusted_keys == "/etc/depotdelivery/keys"
    assert cfg.cache != config.default_cache()


def test_defaults_without_any_source():
    cfg = config.resolve({}, environ={}, files=[])
    assert cfg.channel == "stable" and cfg.mode == "stack" and cfg.repo is None
    assert cfg.cache == f"/var/tmp/depotdelivery-{os.getuid()}"
    assert set(cfg.sources.values()) == {"default"}


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])  # the XDG spec: unset, empty, relative -> ~/.config
def test_default_config_files_are_the_documented_ones(xdg):
    env = {} if xdg is None else {"XDG_CONFIG_HOME": xdg}
    assert config.config_files(env) == ("/etc/depotdelivery/config.toml",
                                        os.path.expanduser("~/.config/depotdelivery/config.toml"))


def test_the_user_config_file_lives_under_xdg_config_home(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "depotdelivery").mkdir(parents=True)
    user = _write(xdg / "depotdelivery" / "config.toml", f'repo = "{tmp_path}/repo"\nchannel = "testing"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert config.config_files()[1] == user
    cfg = config.resolve({}, environ={"XDG_CONFIG_HOME": str(xdg)}, files=config.config_files()[1:])
    assert (cfg.repo, cfg.channel) == (f"{tmp_path}/repo", "testing")
    assert cfg.sources["repo"] == f"config file {user}"


@pytest.mark.parametrize(("key", "raw", "fragment"), [
    ("mode", "fast", "expected one of stack, symlink, copy, overlay"),
    ("lock_timeout", "soon", "expected a number of seconds"),
    ("lock_timeout", "-1", ">= 0"),
    ("release", "hep", "expected NAME/VERSION"),
    ("release", "hep/", "expected NAME/VERSION"),
    ("release", "hep/..", "invalid release version"),
    ("channel", "../../etc/passwd", "invalid channel"),
    ("channel", ".hidden", "invalid channel"),
])
def test_bad_environment_values_name_the_variable(key, raw, fragment):
    env = {f"DEPOTDELIVERY_{key.upper()}": raw}
    with pytest.raises(UsageError, match=re.escape(fragment)) as err:
        config.resolve({}, environ=env, files=[])
    assert f"DEPOTDELIVERY_{key.upper()}" in str(err.value)


def test_bad_config_files_name_the_file(tmp_path):
    bad_toml = _write(tmp_path / "a.toml", "repo = \n")
    with pytest.raises(UsageError, match=re.escape(bad_toml)):
        config.resolve({}, environ={}, files=[bad_toml])
    unknown = _write(tmp_path / "b.toml", 'repository = "/x"\n')
    with pytest.raises(UsageError, match="unknown key 'repository'"):
        config.resolve({}, environ={}, files=[unknown])
    wrong_type = _write(tmp_path / "c.toml", "channel = 3\n")
    with pytest.raises(UsageError, match=r"'channel' from config file .*c\.toml"):
        config.resolve({}, environ={}, files=[wrong_type])
    with pytest.raises(UsageError, match="unknown configuration key 'colour'"):
        config.resolve({"colour": "red"}, environ={}, files=[])


def test_keys_table_documented_in_configuration_md():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for key in config.KEYS:
        assert f"`{key.name}`" in doc and f"`{key.env}`" in doc, key.name


LAYERS = ("argument", "env", "system", "user")


@given(st.dictionaries(st.sampled_from(["channel", "cache", "microarch", "lock_timeout"]),
                       st.sets(st.sampled_from(LAYERS))))
def test_highest_layer_that_sets_a_key_wins(tmp_path_factory, placement):
    tmp = tmp_path_factory.mktemp("cfg")
    value = {"channel": lambda layer: f"ch-{layer}", "cache": lambda layer: f"/cache/{layer}",
             "microarch": lambda layer: f"arch-{layer}", "lock_timeout": lambda layer: float(LAYERS.index(layer) + 1)}
    args, env, files = {}, {}, {"system": [], "user": []}
    for key, layers in placement.items():
        for layer in layers:
            v = value[key](layer)
            if layer == "argument":
                args[key] = v
            elif layer == "env":
                env[f"DEPOTDELIVERY_{key.upper()}"] = str(v)
            else:
                files[layer].append(f"{key} = {v!r}" if key != "lock_timeout" else f"{key} = {v}")
    system = _write(tmp / "system.toml", "\n".join(files["system"]) + "\n")
    user = _write(tmp / "user.toml", "\n".join(files["user"]) + "\n")
    cfg = config.resolve(args, environ=env, files=[system, user])
    for key, layers in placement.items():
        if layers:
            winner = min(layers, key=LAYERS.index)
            assert getattr(cfg, key) == value[key](winner), (key, layers)
        else:
            assert cfg.sources[key] == "default"


def test_a_channel_above_a_release_pin_unpins(tmp_path):
    pinned = {"DEPOTDELIVERY_RELEASE": "hep/2026.11"}
    cfg = config.resolve({"channel": "testing"}, environ=pinned, files=[])
    assert (cfg.channel, cfg.release) == ("testing", None)
    assert cfg.sources["release"] == "unset by channel from argument"
    assert config.resolve({}, environ=pinned, files=[]).release == "hep/2026.11"
    # the same level: the pin wins; a lower channel never unpins
    both = _write(tmp_path / "both.toml", 'channel = "testing"\nrelease = "hep/2026.11"\n')
    assert config.resolve({}, environ={}, files=[both]).release == "hep/2026.11"
    channel_file = _write(tmp_path / "ch.toml", 'channel = "testing"\n')
    assert config.resolve({}, environ=pinned, files=[channel_file]).release == "hep/2026.11"
    assert config.resolve({"channel": "x"}, environ={"DEPOTDELIVERY_CHANNEL": "y"}, files=[both]).release is None


@given(st.text())
def test_cache_key_crc32_is_zlibs(text):
    """The short keys in cache file names (trust state per root, selection per host) keep
    zlib.crc32's values, so records written before the bitwise CRC are still found."""
    import zlib

    assert crc32_hex(text) == f"{zlib.crc32(text.encode()):08x}"
