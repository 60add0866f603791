"""docker/Dockerfile: every COPY source exists, and it installs the same requirements file as the Makefile."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def _instructions(name: str) -> list[list[str]]:
    return [line.split()[1:] for line in DOCKERFILE.splitlines() if line.strip().upper().startswith(name + " ")]


def test_every_copied_path_exists():
    copies = _instructions("COPY")
    assert copies, "the Dockerfile copies nothing"
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies '{src}', which is not in the repository"


def test_installs_the_makefile_requirements():
    makefile = (ROOT / "Makefile").read_text()
    make_req = re.search(r"^REQUIREMENTS\s*:?=\s*(\S+)", makefile, re.M).group(1)
    assert re.search(r"\$\(PIP\) install .*-r \$\(REQUIREMENTS\)", makefile)
    runs = " ".join(" ".join(a) for a in _instructions("RUN"))
    assert f"pip install -r {make_req}" in runs
    copied = {Path(s).name for args in _instructions("COPY") for s in args[:-1]}
    assert make_req in copied
    for needed in ("braintune/", "configs/", "train.py", "evaluate.py", "pyproject.toml"):
        assert needed.rstrip("/") in {s.rstrip("/") for args in _instructions("COPY") for s in args[:-1]}


def test_entrypoint_is_train():
    assert 'ENTRYPOINT ["python", "train.py"]' in DOCKERFILE
    assert re.search(r"^FROM pytorch/pytorch:\S+-cuda12\.\d+-cudnn9-runtime", DOCKERFILE, re.M)
