"""Checks the distributions that scripts/wheels.sh built; exits non-zero naming each problem.

For each wheel: its name must claim manylinux_2_17 (manylinux2014) and `auditwheel show` must
find it consistent with a platform tag its name claims; it must hold LICENSE, the README as its long description (Markdown), the project URLs,
and an extension without a symbol table or debug sections. For the sdist: LICENSE, README and
the same metadata.

    python scripts/check_dist.py dist/*
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

COPYRIGHT = "Copyright (c) 2026 The event_engine authors"
#: What every wheel must run on: manylinux2014, glibc 2.17.
PLATFORM = "manylinux_2_17_x86_64"
EXPECTED_TAGS = {
    # python tag, abi tag of each wheel that wheels.sh builds
    "cp39-abi3": "the abi3 wheel for CPython 3.9+",
    "pp311-pypy311_pp73": "the PyPy 3.11 wheel",
}


def elf_section_names(data: bytes) -> set[str]:
    """Names of the sections of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        (name,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    _, str_off, str_size = header(shstrndx)
    strtab = data[str_off : str_off + str_size]
    names = set()
    for i in range(shnum):
        name, _, _ = header(i)
        names.add(strtab[name : strtab.index(b"\0", name)].decode())
    return names


def check_metadata(meta_text: str, where: str) -> list[str]:
    problems = []
    meta = Parser().parsestr(meta_text)
    if meta.get("License-Expression") != "MIT":
        problems.append(f"{where}: License-Expression is {meta.get('License-Expression')!r}, not 'MIT'")
    if not (meta.get("Description-Content-Type") or "").startswith("text/markdown"):
        problems.append(f"{where}: the long description is not Markdown")
    if not meta.get_payload().lstrip().startswith("# event_engine"):
        problems.append(f"{where}: the long description is not the README")
    if not meta.get_all("Project-URL"):
        problems.append(f"{where}: no Project-URL")
    return problems


def auditwheel_tag(wheel: Path) -> str | None:
    out = subprocess.run(["auditwheel", "show", str(wheel)], check=False, capture_output=True, text=True)
    text = " ".join((out.stdout + out.stderr).split())
    m = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    return m.group(1) if m else None


def check_wheel(wheel: Path) -> list[str]:
    problems = []
    # name-version-pythontag-abitag-platformtags.whl
    _, _, py_tag, abi_tag, platforms = wheel.name[: -len(".whl")].split("-")
    kind = EXPECTED_TAGS.get(f"{py_tag}-{abi_tag}")
    if kind is None:
        problems.append(f"{wheel.name}: unexpected python/abi tag {py_tag}-{abi_tag}")
    claimed = platforms.split(".")
    if PLATFORM not in claimed:
        problems.append(f"{wheel.name}: not tagged {PLATFORM} (glibc 2.17), but {platforms}")
    audited = auditwheel_tag(wheel)
    if audited is None or audited not in claimed:
        problems.append(f"{wheel.name}: auditwheel says {audited!r}, the file name claims {platforms}")

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        licenses = [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
        if not licenses or COPYRIGHT not in z.read(licenses[0]).decode():
            problems.append(f"{wheel.name}: no LICENSE with '{COPYRIGHT}'")
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        problems += check_metadata(z.read(meta).decode(), wheel.name)
        exts = [n for n in names if n.endswith(".so")]
        if len(exts) != 1:
            problems.append(f"{wheel.name}: expected one extension module, found {exts}")
        for ext in exts:
            sections = elf_section_names(z.read(ext))
            unstripped = sorted(s for s in sections if s == ".symtab" or s.startswith(".debug"))
            if unstripped:
                problems.append(f"{wheel.name}: {ext} is not stripped (has {', '.join(unstripped)})")
    if not problems:
        print(f"ok  {wheel.name}: {kind}, auditwheel: {audited}")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    problems = []
    with tarfile.open(sdist) as t:
        top = sdist.name[: -len(".tar.gz")]
        names = set(t.getnames())
        for needed in ("LICENSE", "README.md", "pyproject.toml", "Cargo.lock"):
            if f"{top}/{needed}" not in names:
                problems.append(f"{sdist.name}: no {needed}")
        pkg_info = t.extractfile(f"{top}/PKG-INFO")
        if pkg_info is None:
            problems.append(f"{sdist.name}: no PKG-INFO")
        else:
            problems += check_metadata(pkg_info.read().decode(), sdist.name)
    if not problems:
        print(f"ok  {sdist.name}: sdist")
    return problems


def main(paths: list[str]) -> int:
    problems = []
    kinds = set()
    for p in map(Path, paths):
        if p.name.endswith(".whl"):
            problems += check_wheel(p)
            kinds.add("-".join(p.name.split("-")[2:4]))
        elif p.name.endswith(".tar.gz"):
            problems += check_sdist(p)
            kinds.add("sdist")
    if "sdist" not in kinds:
        problems.append("no sdist")
    if "cp39-abi3" not in kinds:
        problems.append("no abi3 wheel")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
