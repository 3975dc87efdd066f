"""Requirements from where projects keep them: pip requirements files (with ``-r`` includes)
and a pyproject's ``[project]`` dependencies and extras, for ``ascend images build``.

Options a requirements file may carry that decide where packages come from are refused with
the setting that does it for images, since the image's lock, not the file, is what installs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ascend.errors import ImageBuildError

# pip options that name where packages come from, and the setting that does it for images.
_INDEX_OPTIONS = {
    "-i": "images.index_url",
    "--index-url": "images.index_url",
    "--extra-index-url": "images.extra_index_urls",
    "-f": "images.find_links",
    "--find-links": "images.find_links",
    "--no-index": "images.no_index",
}
_COMMENT = re.compile(r"(^|\s+)#.*$")  # pip's rule: '#' at the start or after whitespace
_USERINFO = re.compile(r"(://)[^/@\s]+@")  # credentials in an index URL never reach a message
_OPTION_IN_LINE = re.compile(r"\s(--?[A-Za-z][\w-]*)")
_REQUIREMENT_FLAGS = ("--requirement", "-r")


def _shown(line: str) -> str:
    return _USERINFO.sub(r"\1***@", line)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, text)`` with backslash continuations joined and comments gone."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.search(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        line = _COMMENT.sub("", " ".join(pending)).strip()
        pending = []
        if line:
            lines.append((start, line))
    if pending:
        line = _COMMENT.sub("", " ".join(pending)).strip()
        if line:
            lines.append((start, line))
    return lines


def _included(line: str) -> str | None:
    """The file a ``-r`` / ``--requirement`` line names, else ``None``."""
    for flag in _REQUIREMENT_FLAGS:
        if line.startswith(flag):
            rest = line[len(flag) :]
            if flag == "--requirement" and rest[:1] not in ("", "=", " ", "\t"):
                return None
            return rest.lstrip(" \t=").strip()
    return None


def _refuse_option(where: str, line: str, option: str) -> ImageBuildError:
    setting = _INDEX_OPTIONS.get(option)
    message = (
        f"{where}: {_shown(line)!r}: ascend cannot honour the pip option {option} in a "
        "requirements file; images resolve with uv, and where packages come from is set by "
        "the images.* settings"
    )
    if setting is not None:
        env = "ASCEND_" + setting.upper().replace(".", "_")
        fix = f"remove the line and set {setting} instead ({env}, or in .ascend.yaml)"
    elif option == "--hash":
        fix = (
            "remove the --hash options (pin versions with ==): the image's lock takes its "
            "hashes from the index and its install checks them"
        )
    else:
        fix = (
            "remove the line; list requirements by name (pip format), and set the package "
            "index with images.index_url, images.extra_index_urls, images.find_links or "
            "images.no_index"
        )
    return ImageBuildError(message, fix=fix)


def read_requirements_file(path: Path, _stack: tuple[Path, ...] = ()) -> list[str]:
    """Requirements of a pip-format file: comments and blank lines skipped, ``-r other.txt``
    read relative to the file that names it, every other option refused (an option ascend
    silently dropped would build another image than the file describes)."""
    from ascend.images.spec import normalize_requirement

    resolved = path.resolve()
    if resolved in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, resolved))
        raise ImageBuildError(
            f"requirements file {path} includes itself ({chain})",
            fix="remove the -r line that closes the loop",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        where = f"{_stack[-1]}: -r {path}" if _stack else str(path)
        raise ImageBuildError(
            f"{where}: cannot read the requirements file: {error.strerror or error}",
            fix="check the path; -r paths are relative to the file that names them",
        ) from None
    found: list[str] = []
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        if line.startswith("-"):
            include = _included(line)
            if include is None:
                raise _refuse_option(where, line, line.split()[0].split("=", 1)[0])
            if not include:
                raise ImageBuildError(f"{where}: -r names no file", fix="write -r other.txt")
            found += read_requirements_file(path.parent / include, (*_stack, resolved))
            continue
        option = _OPTION_IN_LINE.search(line)
        if option is not None:
            raise _refuse_option(where, line, option.group(1).split("=", 1)[0])
        try:
            found.append(normalize_requirement(line))
        except ImageBuildError as error:
            raise ImageBuildError(f"{where}: {error.message}", fix=error.fix) from None
    return found


def read_pyproject(path: Path, extras: tuple[str, ...]) -> list[str]:
    """``[project].dependencies`` plus ``[project.optional-dependencies]`` of each extra (PEP
    621); an extra that names the project itself (``all = ["me[a,b]"]``) is expanded here,
    since the project is not on the index."""
    import tomllib

    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if path.is_dir():
        path = path / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ImageBuildError(
            f"{path}: cannot be read: {error.strerror or error}", fix="check the --pyproject path"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ImageBuildError(f"{path}: not valid TOML: {error}", fix="fix the syntax") from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise ImageBuildError(
            f"{path} has no [project] table, so it declares no dependencies (PEP 621)",
            fix="name the requirements with -r FILE or as arguments instead",
        )
    dynamic = set(project.get("dynamic") or ())
    optional = project.get("optional-dependencies") or {}
    by_extra = {canonicalize_name(name): list(reqs) for name, reqs in optional.items()}
    own_name = canonicalize_name(str(project.get("name", "")))

    def dynamic_error(field: str) -> ImageBuildError:
        return ImageBuildError(
            f"{path} declares {field} as dynamic (its build backend computes them), so they "
            "cannot be read from the file",
            fix="name the requirements with -r FILE or as arguments instead",
        )

    if "dependencies" in dynamic and project.get("dependencies") is None:
        raise dynamic_error("dependencies")
    found: list[str] = []
    seen_extras: set[str] = set()

    def add(requirements: list[Any], marker: Marker | None, origin: str) -> None:
        for text in requirements:
            try:
                parsed = Requirement(str(text))
            except InvalidRequirement as error:
                raise ImageBuildError(
                    f"{path}: {origin}: {text!r} is not a pip requirement: {error}",
                    fix="write requirements as pip does, for example 'numpy>=1.26'",
                ) from None
            combined = marker
            if parsed.marker is not None:
                combined = Marker(f"({marker}) and ({parsed.marker})") if marker else parsed.marker
            if own_name and canonicalize_name(parsed.name) == own_name:
                for extra in sorted(parsed.extras):
                    add_extra(extra, combined)
                continue
            parsed.marker = combined
            found.append(str(parsed))

    def add_extra(extra: str, marker: Marker | None) -> None:
        key = canonicalize_name(extra)
        if key in seen_extras:
            return
        seen_extras.add(key)
        if key not in by_extra:
            if "optional-dependencies" in dynamic:
                raise dynamic_error("optional-dependencies")
            known = ", ".join(sorted(optional)) or "none"
            raise ImageBuildError(
                f"{path} has no extra {extra!r} in [project.optional-dependencies] "
                f"(extras: {known})",
                fix="name one of its extras with --extra",
            )
        add(by_extra[key], marker, f"extra {extra!r}")

    add(list(project.get("dependencies") or ()), None, "dependencies")
    for extra in extras:
        add_extra(extra, None)
    return found
