"""Secrets stay secret (issue 11): nothing Ascend shows or records reveals a credential.

Each test plants canaries (unique strings nothing else contains) where users put credentials:
``storage_options`` (in the user config file or ``ASCEND_STORAGE_OPTIONS``), a setting
declared ``secret=True``, a package index URL, and a git remote with a token in its user
part, its query and its fragment. Then it searches for every canary in what users and other
readers of the storage see: ``ascend config show`` (table and ``--json``), ``ascend config
validate``, configuration errors, the job's files (metadata.json, status.json...), ``ascend
jobs status`` (and ``--json``) and ``ascend plugins`` (and ``--json``).

The unit tests at the end pin the rules of :mod:`ascend.secrets` themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ascend import ascend
from ascend.config import AscendConfig
from ascend.errors import ConfigError
from ascend.job_ids import parse_job_id
from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Setting
from ascend.secrets import MASK, looks_secret, mask, mask_mapping, redact_url, scrub

WIDE = "4000"  # no table cell is folded, so a leaked canary would be found whole


def canary(label: str) -> str:
    return f"canary-{label}-{uuid.uuid4().hex}"


@pytest.fixture
def canaries() -> dict[str, str]:
    names = (
        "account_key",
        "sas_token",
        "password",
        "client_secret",
        "aws_secret_access_key",
        "connection_string",
        "index_password",
        "env_token",
        "setting",
        "git_password",
        "git_query",
        "git_fragment",
    )
    return {name: canary(name) for name in names}


def storage_options(c: dict[str, str]) -> dict[str, Any]:
    """Options as users write them: secrets at the top, nested, in lists, in any spelling."""
    return {
        "account_name": "ascenddata",  # not a secret: shown
        "account_key": c["account_key"],
        "SasToken": c["sas_token"],
        "nested": {"password": c["password"], "client": [{"client_secret": c["client_secret"]}]},
        "client_kwargs": {"aws_secret_access_key": c["aws_secret_access_key"]},
        "connection-string": c["connection_string"],
        "anon": False,
    }


def assert_no_canary(text: str, c: dict[str, str], where: str) -> None:
    leaked = [name for name, value in c.items() if value in text]
    assert not leaked, f"{where} reveals {leaked}:\n{text}"


class VaultPlugin:
    """A plugin with a secret setting whose validator quotes the value (as many do)."""

    @hookimpl
    def ascend_settings(self) -> list[Setting]:
        return [Setting("vault.token", str, secret=True, validate=_check_token, fix="renew it")]


def _check_token(value: str) -> None:
    if not value.startswith("hvs."):
        raise ValueError(f"{value!r} is not a vault token (they start with 'hvs.')")


class PickyOptionsPlugin:
    """A plugin with a dict setting whose validator quotes the whole mapping."""

    @hookimpl
    def ascend_settings(self) -> list[Setting]:
        return [Setting("picky.options", dict, default={}, validate=_check_options)]


def _check_options(value: dict[str, Any]) -> None:
    if "region" not in value:
        raise ValueError(f"no region in {value}")


class LeakyStoragePlugin:
    """A storage plugin whose error quotes the options it was given."""

    @hookimpl(tryfirst=True)
    def ascend_storage(self, config: Any) -> Any:
        raise ConfigError(f"cannot open storage with {config.get('storage_options')}")


@pytest.fixture
def user_config(ascend_env: Path) -> Path:
    path = Path(os.environ["ASCEND_CONFIG_DIR"]) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(params=["file", "env"])
def planted(
    request: pytest.FixtureRequest,
    user_config: Path,
    canaries: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """storage_options with canaries in the user config file or ASCEND_STORAGE_OPTIONS, plus a
    secret in kubernetes.env and a package index URL with a password."""
    options = storage_options(canaries)
    index = f"https://ci:{canaries['index_password']}@pypi.example.com/simple"
    env = {"API_TOKEN": canaries["env_token"], "LOG_LEVEL": "debug"}
    if request.param == "file":
        user_config.write_text(
            yaml.safe_dump(
                {
                    "storage_options": options,
                    "images": {"index_url": index},
                    "kubernetes": {"env": env},
                }
            )
        )
    else:
        monkeypatch.setenv("ASCEND_STORAGE_OPTIONS", json.dumps(options))
        monkeypatch.setenv("ASCEND_IMAGES_INDEX_URL", index)
        monkeypatch.setenv("ASCEND_KUBERNETES_ENV", json.dumps(env))
    monkeypatch.setenv("COLUMNS", WIDE)
    return canaries


# -- ascend config show / validate ---------------------------------------------------------------


def test_config_show_json_masks_storage_options_env_and_urls(planted, ascend_cli) -> None:
    result = ascend_cli("config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert_no_canary(result.output, planted, "ascend config show --json")
    values = {e["key"]: e["value"] for e in json.loads(result.stdout)["values"]}
    assert values["storage_options"] == {
        "account_name": "ascenddata",
        "account_key": MASK,
        "SasToken": MASK,
        "nested": {"password": MASK, "client": [{"client_secret": MASK}]},
        "client_kwargs": {"aws_secret_access_key": MASK},
        "connection-string": MASK,
        "anon": False,
    }
    assert values["kubernetes.env"] == {"API_TOKEN": MASK, "LOG_LEVEL": "debug"}
    assert values["images.index_url"] == f"https://{MASK}@pypi.example.com/simple"


def test_config_show_table_masks_storage_options(planted, ascend_cli) -> None:
    result = ascend_cli("config", "show")
    assert result.exit_code == 0, result.output
    assert_no_canary(result.output, planted, "ascend config show")
    assert "'account_name': 'ascenddata'" in result.output  # the rest is still shown
    assert f"'account_key': '{MASK}'" in result.output


def test_config_show_and_validate_mask_a_secret_setting(
    canaries, register_plugin, ascend_cli, monkeypatch
) -> None:
    register_plugin(VaultPlugin(), name="vault")
    monkeypatch.setenv("ASCEND_VAULT_TOKEN", "hvs." + canaries["setting"])
    monkeypatch.setenv("COLUMNS", WIDE)
    shown = ascend_cli("config", "show", "--json")
    assert_no_canary(shown.output, canaries, "ascend config show --json")
    [token] = [e for e in json.loads(shown.stdout)["values"] if e["key"] == "vault.token"]
    assert token["value"] == MASK
    assert_no_canary(ascend_cli("config", "show").output, canaries, "ascend config show")
    assert_no_canary(ascend_cli("config", "validate").output, canaries, "ascend config validate")


# -- configuration errors ------------------------------------------------------------------------


def test_config_error_for_a_bad_secret_value_does_not_quote_it(
    canaries, register_plugin, ascend_pm, ascend_cli, monkeypatch
) -> None:
    register_plugin(VaultPlugin(), name="vault")
    monkeypatch.setenv("ASCEND_VAULT_TOKEN", canaries["setting"])  # no 'hvs.': rejected
    with pytest.raises(ConfigError) as caught:
        AscendConfig.load(pm=ascend_pm)
    message = str(caught.value)
    assert "ASCEND_VAULT_TOKEN: vault.token" in message
    assert "is not a vault token" in message  # the validator's reason survives, without the value
    assert_no_canary(message, canaries, "the ConfigError")
    assert_no_canary(repr(caught.value.problems), canaries, "the ConfigError's problems")
    for command in (("config", "show", "--json"), ("config", "show"), ("config", "validate")):
        assert_no_canary(ascend_cli(*command).output, canaries, "ascend " + " ".join(command))


def test_config_error_for_unparsable_storage_options_does_not_quote_them(
    canaries, ascend_pm, monkeypatch
) -> None:
    broken = json.dumps(storage_options(canaries))[:-1]  # the closing brace is missing
    monkeypatch.setenv("ASCEND_STORAGE_OPTIONS", broken)
    with pytest.raises(ConfigError) as caught:
        AscendConfig.load(pm=ascend_pm)
    message = str(caught.value)
    assert "ASCEND_STORAGE_OPTIONS: storage_options" in message
    assert "expected a JSON object" in message
    assert_no_canary(message, canaries, "the ConfigError")


def test_config_error_from_a_dict_validator_masks_secret_keys(
    canaries, register_plugin, ascend_pm, monkeypatch
) -> None:
    register_plugin(PickyOptionsPlugin(), name="picky")
    monkeypatch.setenv(
        "ASCEND_PICKY_OPTIONS", json.dumps({"zone": "a", "password": canaries["password"]})
    )
    with pytest.raises(ConfigError) as caught:
        AscendConfig.load(pm=ascend_pm)
    message = str(caught.value)
    assert "no region in" in message and "'zone': 'a'" in message
    assert_no_canary(message, canaries, "the ConfigError")


# -- ascend plugins --------------------------------------------------------------------------


def test_plugins_output_hides_secrets_a_plugin_error_quotes(
    planted, register_plugin, ascend_cli, monkeypatch
) -> None:
    register_plugin(LeakyStoragePlugin(), name="leaky")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "file:///nowhere")
    as_json = ascend_cli("plugins", "--json")
    assert_no_canary(as_json.output, planted, "ascend plugins --json")
    storage = json.loads(as_json.stdout)["backend"]["ascend_storage"]
    assert "cannot open storage with" in storage["error"] and "ascenddata" in storage["error"]
    assert_no_canary(ascend_cli("plugins").output, planted, "ascend plugins")


# -- a real job from a git repository whose remote carries a token -------------------------------


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs the git binary")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.resolve()))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo_with_token_remote(
    isolated_git: None, tmp_path: Path, canaries: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A clean repository, the working directory, whose origin has a token in three places."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "commit.gpgsign", "false")
    (repo / "README").write_text("hello\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    remote = (
        f"https://user:{canaries['git_password']}@github.com/org/repo.git"
        f"?access_token={canaries['git_query']}#{canaries['git_fragment']}"
    )
    git(repo, "remote", "add", "origin", remote)
    monkeypatch.chdir(repo)
    return repo


@ascend(timeout=60, stream_logs=False, git_check=True, project=True)
def add(a: int, b: int) -> int:
    return a + b


def test_job_records_and_cli_reveal_no_secret(
    planted, local: Path, repo_with_token_remote: Path, ascend_cli
) -> None:
    handle = add.submit(2, 3)
    assert handle.result() == 5
    job_dir = local / "users" / parse_job_id(handle.job_id).user / "jobs" / handle.job_id
    files = sorted(path for path in job_dir.rglob("*") if path.is_file())
    assert {"metadata.json", "status.json"} <= {path.name for path in files}
    for path in files:  # every file the job left in the storage, not only the JSON records
        assert_no_canary(path.read_bytes().decode("latin-1"), planted, str(path))
    record = json.loads((job_dir / "metadata.json").read_text())
    assert record["git"]["remote_url"] == "https://github.com/org/repo.git"
    assert record["git"]["repository"] == "repo"
    assert record["project"] == "repo"

    status = ascend_cli("jobs", "status", handle.job_id, "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["git"]["remote_url"] == "https://github.com/org/repo.git"
    assert_no_canary(status.output, planted, "ascend jobs status --json")
    for command in (
        ("jobs", "status", handle.job_id),
        ("jobs", "list", "--json"),
        ("plugins",),
        ("plugins", "--json"),
        ("config", "show"),
        ("config", "show", "--json"),
    ):
        result = ascend_cli(*command)
        assert result.exit_code == 0, result.output
        assert_no_canary(result.output, planted, "ascend " + " ".join(command))


# -- the rules (ascend.secrets) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "key",
        "account_key",
        "AccountKey",
        "accountKey",
        "sas",
        "sas_token",
        "SAS-URL",
        "token",
        "password",
        "PASSWORD",
        "passwd",
        "secret",
        "client_secret",
        "aws_secret_access_key",
        "aws_session_token",
        "credential",
        "credentials",
        "connection_string",
        "ConnectionString",
        "Authorization",
        "api_key",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert looks_secret(key)


@pytest.mark.parametrize(
    "key",
    [
        "account_name",
        "anon",
        "endpoint_url",
        "client_id",
        "tenant_id",
        "region_name",
        "use_ssl",
        "blocksize",
        "client_kwargs",
        "default_cache_type",
        "version_aware",
        "LOG_LEVEL",
    ],
)
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not looks_secret(key)


_WORDS = ("key", "secret", "token", "password", "sas", "credential", "connection_string")


@given(
    word=st.sampled_from(_WORDS),
    prefix=st.from_regex(r"[a-z]{0,8}", fullmatch=True),
    suffix=st.from_regex(r"[a-z]{0,8}", fullmatch=True),
    separator=st.sampled_from(["", "_", "-", ".", " "]),
    upper=st.booleans(),
)
def test_any_spelling_of_a_secret_word_looks_secret(
    word: str, prefix: str, suffix: str, separator: str, upper: bool
) -> None:
    key = separator.join(part for part in (prefix, word, suffix) if part)
    assert looks_secret(key.upper() if upper else key)


def test_mask_is_a_fixed_marker() -> None:
    assert mask("x") == mask("a much longer secret value") == MASK
    assert mask(None) is None  # unset stays visibly unset


def test_mask_mapping_masks_at_any_depth_and_leaves_the_input_alone() -> None:
    options = {
        "account_name": "acct",
        "account_key": "k1",
        "nested": {"sas_token": "k2", "deeper": {"Password": "k3", "region": "eu"}},
        "listed": [{"client_secret": "k4"}, "plain"],
        "credential": {"type": "whole mapping hidden"},
        "token": None,
        "endpoint_url": "https://user:k5@minio.local:9000/?X-Amz-Signature=k6",
    }
    before = json.dumps(options)
    masked = mask_mapping(options)
    assert masked == {
        "account_name": "acct",
        "account_key": MASK,
        "nested": {"sas_token": MASK, "deeper": {"Password": MASK, "region": "eu"}},
        "listed": [{"client_secret": MASK}, "plain"],
        "credential": MASK,
        "token": None,
        "endpoint_url": f"https://{MASK}@minio.local:9000/?{MASK}",
    }
    assert json.dumps(options) == before


def test_scrub_removes_quoted_and_bare_secrets_and_url_credentials() -> None:
    text = "bad 'abc' and hunter2 at https://u:pw@host/x?sig=s; also abc-def"
    assert scrub(text, ["abc", "hunter2"]) == (
        f"bad {MASK} and {MASK} at https://{MASK}@host/x?{MASK}; also abc-def"
    )


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://user:tok@github.com/org/repo.git?access_token=t2#frag",
            "https://github.com/org/repo.git",
        ),
        ("https://ghp_tok@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p%40ss@host:8080/org/repo", "http://host:8080/org/repo"),
        ("https://host?token=t", "https://host"),
        ("https://host/path#t", "https://host/path"),
        ("https://u:p#a?b@host/org/repo", "https://host/org/repo"),  # unescaped ? and # in it
        ("ssh://git:pw@host:2222/org/repo.git", "ssh://host:2222/org/repo.git"),
        ("ssh://git@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"),  # a login
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # scp-like: no secret
        ("/srv/git/repo.git", "/srv/git/repo.git"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


_TEXT = st.from_regex(r"[A-Za-z0-9._~%!$&'()*+,;=:-]{1,20}", fullmatch=True)


@given(
    scheme=st.sampled_from(["https", "http", "ssh", "git+ssh", "ftp"]),
    user=_TEXT,
    password=_TEXT,
    host=st.from_regex(r"[a-z][a-z0-9.-]{0,15}(:[0-9]{2,5})?", fullmatch=True),
    path=st.from_regex(r"(/[A-Za-z0-9._-]{1,10}){0,3}", fullmatch=True),
    query=_TEXT,
    fragment=_TEXT,
)
def test_redacted_url_keeps_the_location_and_drops_every_credential(
    scheme: str, user: str, password: str, host: str, path: str, query: str, fragment: str
) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}?q={query}#{fragment}"
    assert redact_url(url) == f"{scheme}://{host}{path}"
    marked = redact_url(url, mark=True)
    assert marked == f"{scheme}://{MASK}@{host}{path}?{MASK}#{MASK}"


def test_storage_repr_and_errors_do_not_repeat_credentials_in_the_url() -> None:
    from ascend.storage.base import storage_error
    from ascend.storage.fsspec_storage import FsspecStorage

    canary = "canary-" + uuid.uuid4().hex
    url = f"memory://user:{canary}@bucket/root"
    assert canary not in repr(FsspecStorage(url))
    error = storage_error(f"az://container/x.pkl?sig={canary}", "write", OSError("refused"))
    assert canary not in str(error)
    assert "az://container/x.pkl" in str(error)
