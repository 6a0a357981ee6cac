"""One install layout for the image, the package and the stand-in guest."""

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

from agent import __version__

REPO = Path(__file__).resolve().parents[2]


def installed(tmp_path):
    subprocess.run(["make", "-s", "-C", str(REPO), "install", f"DESTDIR={tmp_path}", f"PYTHON={sys.executable}"],
                   check=True)
    out = []
    for p in sorted(tmp_path.rglob("*")):
        if "__pycache__" in p.parts:
            continue  # bytecode: checked on its own below
        if p.is_file() or p.is_symlink() or (p.is_dir() and not any(p.iterdir())):
            out.append("/" + str(p.relative_to(tmp_path)))
    return sorted(out)


def test_make_install_lays_out_exactly_the_listed_files(tmp_path):
    listed = (REPO / "packaging" / "files.txt").read_text().split()
    assert installed(tmp_path) == listed, "update packaging/files.txt with the new layout"
    assert (tmp_path / "etc" / "init.d" / "moby-agent").stat().st_mode & 0o111
    assert (tmp_path / "usr" / "bin" / "mobyconfig").stat().st_mode & 0o111


def test_make_install_byte_compiles_the_agent_for_the_installed_path(tmp_path):
    installed(tmp_path)
    lib = tmp_path / "usr" / "lib" / "moby-agent" / "agent"
    sources = sorted(lib.rglob("*.py"))
    assert sources
    for source in sources:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        data = pyc.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(data[4:8], "little") == 0b11, f"{pyc}: not checked-hash"
        assert data[8:16] == importlib.util.source_hash(source.read_bytes()), f"{pyc}: stale"
        assert marshal.loads(data[16:]).co_filename == f"/usr/lib/moby-agent/agent/{source.relative_to(lib)}"


def apkbuild(var):
    script = f'. "{REPO}/packaging/alpine/APKBUILD"; printf %s "${var}"'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                          cwd=REPO / "packaging" / "alpine").stdout


def subpackage(function, var):
    """A variable as the subpackage function sets it (abuild's amove stubbed)."""
    script = (f'amove() {{ :; }}; . "{REPO}/packaging/alpine/APKBUILD"; pkgdir=/nonexistent; '
              f'subpkgname=moby-agent-{function}; {function} >/dev/null 2>&1; printf %s "${var}"')
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                          cwd=REPO / "packaging" / "alpine").stdout


# What Alpine's hvtools-openrc installs (aports main/hvtools/APKBUILD: every
# *.initd source into /etc/init.d).
HVTOOLS_OPENRC = ["/etc/init.d/hv_kvp_daemon", "/etc/init.d/hv_vss_daemon", "/etc/init.d/hv_fcopy_daemon"]


def test_apkbuild_matches_the_project():
    assert apkbuild("pkgname") == "moby-agent"
    assert apkbuild("pkgver") == __version__
    depends = apkbuild("depends").split()
    for dep in ("python3", "py3-inotify-simple", "py3-pyroute2", "py3-requests", "py3-tomli", "cifs-utils",
                "hvtools"):
        assert dep in depends
    assert apkbuild("subpackages").split() == ["moby-agent-pyc", "moby-agent-openrc"]
    assert subpackage("openrc", "depends") == "openrc"
    post_install = REPO / "packaging" / "alpine" / subpackage("openrc", "install")
    assert post_install.stat().st_mode & 0o111
    assert "rc-update add moby-agent default" in post_install.read_text()
    assert subpackage("pyc", "install_if") == "moby-agent=0.1.0-r0 pyc".replace("0.1.0", __version__)
    body = (REPO / "packaging" / "alpine" / "APKBUILD").read_text()
    # The Alpine way: a wheel built by gpep517, installed by installer; the
    # bytecode and /etc from the same Makefile targets `make install` runs.
    assert "gpep517 build-wheel --wheel-dir .dist --output-fd 3 3>&1 >&2" in body
    assert 'python3 -m installer -d "$pkgdir" --no-compile-bytecode .dist/*.whl' in body
    assert 'make -C "$builddir" install-pyc install-etc DESTDIR="$pkgdir"' in body
    makedepends = apkbuild("makedepends").split()
    backend = pyproject()["build-system"]["build-backend"]
    assert backend == "setuptools.build_meta" and {"py3-setuptools", "py3-wheel"} <= set(makedepends)
    assert {"py3-gpep517", "py3-installer", "make"} <= set(makedepends)


def pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_wheel_lays_out_what_make_install_does():
    """The wheel puts no `agent` in site-packages: every source as data into
    /usr/lib/moby-agent (the path `make install` uses) and the two commands
    as scripts into /usr/bin; no console script (it would not find the
    private directory)."""
    conf = pyproject()
    tool = conf["tool"]["setuptools"]
    assert tool["packages"] == [] and "scripts" not in conf["project"]
    assert sorted(tool["script-files"]) == ["packaging/moby-agent", "packaging/mobyconfig"]
    data = tool["data-files"]
    dirs = sorted({str(p.parent.relative_to(REPO)) for p in (REPO / "agent").rglob("*.py")
                   if "__pycache__" not in p.parts})
    assert data == {f"lib/moby-agent/{d}": [f"{d}/*.py"] for d in dirs}, "a new agent folder needs its data-files line"
    listed = (REPO / "packaging" / "files.txt").read_text().split()
    assert "/usr/bin/moby-agent" in listed and "/usr/bin/mobyconfig" in listed


def test_files_shared_with_hvtools_openrc_are_replaced_in_the_openrc_subpackage():
    """apk refuses to overwrite another package's file unless the package
    says it replaces that package: our supervised hv_kvp_daemon script is
    also hvtools-openrc's file."""
    ours = set((REPO / "packaging" / "files.txt").read_text().split())
    shared = ours & set(HVTOOLS_OPENRC)
    assert shared == {"/etc/init.d/hv_kvp_daemon"}
    assert all(path.startswith(("/etc/init.d/", "/etc/conf.d/")) for path in shared)  # moved to -openrc
    assert "hvtools-openrc" in subpackage("openrc", "replaces").split()


def test_image_and_guest_install_with_make_install():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "make -C /src/moby-agent install" in dockerfile
    assert dockerfile.startswith("#") and "FROM alpine:3.20" in dockerfile
    for pkg in ("py3-inotify-simple", "py3-pyroute2", "py3-requests", "py3-tomli", "cifs-utils", "hvtools",
                "openrc"):
        assert pkg in dockerfile
    assert 'make -s -C "$repo" install DESTDIR="$stage"' in (REPO / "tests" / "vm" / "build-guest").read_text()
