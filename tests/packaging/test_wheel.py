"""The wheel users install: one abi3 wheel for CPython >= 3.11, repaired to a manylinux tag,
carrying msquic's and quictls' license texts, installing and running with no compiler reachable.

Builds the wheel once per run from this checkout, repairs it with auditwheel, installs it into
fresh virtualenvs of every supported Python found on the machine (pyenv's 3.11, 3.12, 3.13),
and runs the documented quickstart plus a stream/datagram smoke test from each. The sdist is
built and installed from scratch too.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# shared/ sits beside the clone (as in CI); PYWEBTRANSPORT_SHARED_DIR points elsewhere.
ACCEPTANCE = Path(os.environ.get("PYWEBTRANSPORT_SHARED_DIR", ROOT.parent / "shared")) / "acceptance" / "run.sh"
SMOKE = Path(__file__).with_name("smoke_installed.py")
SUPPORTED = ("3.11", "3.12", "3.13")
NOTICES = (
    "MSQUIC-LICENSE.txt",
    "MSQUIC-THIRD-PARTY-NOTICES.txt",
    "QUICTLS-LICENSE.txt",
    "THIRD_PARTY_NOTICES.txt",
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="wheel repair is tested on Linux only"),
    pytest.mark.timeout(900),
]


def _missing(what: str) -> None:
    # CI must have every supported Python; a developer machine may lack some.
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must provide it)")
    pytest.skip(what)


def find_python(version: str) -> str | None:
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / "python3")))
    if candidates:
        return candidates[-1]
    found = shutil.which(f"python{version}")
    # pyenv's shims exist for every version but fail for those not selected.
    return found if found and "/shims/" not in found else None


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def no_compiler_env(venv: Path) -> dict[str, str]:
    """An environment whose PATH holds only the venv and the basic system tools, no compiler."""
    tools = venv / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("sh", "bash", "env", "mktemp", "cp", "rm", "sleep", "seq", "grep", "kill", "timeout",
                 "tail", "dirname", "cat"):
        path = shutil.which(name)
        if path and not (tools / name).exists():
            (tools / name).symlink_to(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CC", "CXX"))}
    env["PATH"] = f"{venv / 'bin'}:{tools}"
    env["CC"] = env["CXX"] = "/bin/false"
    return env


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    out = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(raw)])
    built = list(raw.glob("*.whl"))
    assert len(built) == 1, built
    run([sys.executable, "-m", "auditwheel", "repair", "-w", str(out), str(built[0])])
    return out


def the_wheel(wheelhouse: Path) -> Path:
    wheels = list(wheelhouse.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_abi3_manylinux_with_notices(wheelhouse: Path) -> None:
    wheel = the_wheel(wheelhouse)
    # name-version-cp311-abi3-manylinux_X_Y_arch[.manylinux...].whl
    python_tag, abi_tag, platform_tag = wheel.name[: -len(".whl")].split("-")[2:5]
    assert (python_tag, abi_tag) == ("cp311", "abi3")
    assert platform_tag.startswith("manylinux_"), platform_tag
    assert platform_tag.endswith(sysconfig.get_platform().split("-")[-1]), platform_tag
    names = zipfile.ZipFile(wheel).namelist()
    assert "pywebtransport/_native/_msquic.abi3.so" in names
    assert "pywebtransport/_native/libmsquic.so.2" in names
    for notice in NOTICES:
        assert f"pywebtransport/_native/licenses/{notice}" in names
    text = zipfile.ZipFile(wheel).read("pywebtransport/_native/licenses/THIRD_PARTY_NOTICES.txt").decode()
    assert "msquic 2.5.1-beta" in text and "quictls 3.1.7+quic" in text


@pytest.mark.parametrize("version", SUPPORTED)
def test_wheel_installs_and_runs_without_a_compiler(wheelhouse: Path, tmp_path: Path, version: str) -> None:
    python = find_python(version)
    if python is None:
        _missing(f"Python {version} is not installed")
    venv = tmp_path / "venv"
    run([python, "-m", "venv", str(venv)])
    env = no_compiler_env(venv)
    assert shutil.which("cc", path=env["PATH"]) is None and shutil.which("gcc", path=env["PATH"]) is None
    vpy = str(venv / "bin" / "python")
    run([vpy, "-m", "pip", "install", "-q", "--only-binary=:all:", str(the_wheel(wheelhouse))], env=env)
    out = run([vpy, "-c", "import pywebtransport, pywebtransport._native as n; print(n.library_path())"],
              env=env, cwd=tmp_path).stdout
    assert str(venv) in out, f"native library not loaded from the venv: {out}"
    smoke = run([vpy, str(SMOKE)], env=env, cwd=tmp_path, timeout=120)
    assert "smoke: ok" in smoke.stdout
    if not ACCEPTANCE.exists():
        _missing(f"the acceptance quickstart is not at {ACCEPTANCE}")
    quick = run(["bash", str(ACCEPTANCE)], env={**env, "PYTHON": vpy}, cwd=tmp_path, timeout=120)
    assert "quickstart: ok" in quick.stdout


def test_sdist_builds_and_installs_from_scratch(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--sdist", "-o", str(dist), str(ROOT)])
    sdists = list(dist.glob("pywebtransport-*.tar.gz"))
    assert len(sdists) == 1, sdists
    import tarfile

    members = tarfile.open(sdists[0]).getnames()
    top = members[0].split("/")[0]
    for needed in ("build_ffi.py", "vendor/build_msquic.py", "vendor/msquic/Cargo.lock",
                   "pywebtransport/_native/pwt_shim.c", "pywebtransport/_native/pwt_api.h",
                   *(f"pywebtransport/_native/licenses/{n}" for n in NOTICES)):
        assert f"{top}/{needed}" in members, needed
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    vpy = str(venv / "bin" / "python")
    run([vpy, "-m", "pip", "install", "-q", str(sdists[0])], cwd=tmp_path, timeout=600)
    smoke = run([vpy, str(SMOKE)], cwd=tmp_path, timeout=120)
    assert "smoke: ok" in smoke.stdout
    installed = run([vpy, "-c", "import pywebtransport._native as n, pathlib; "
                     "print(sorted(p.name for p in (pathlib.Path(n.__file__).parent / 'licenses').iterdir()))"],
                    cwd=tmp_path).stdout
    for notice in NOTICES:
        assert notice in installed
