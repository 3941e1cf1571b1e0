"""The node image: built from the Dockerfile on a Debian base that is pulled, or bootstrapped.

Where a registry answers, the base is debian:bookworm-slim as usual. Where none does, the base is
made once with debootstrap from the host's own Debian mirror and `docker import`ed as
natlab-base:bookworm, then reused. The node image is rebuilt only when the Dockerfile changes
(its hash is kept as a label); the lab's code is mounted, not baked in.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from lab.engines.docker.compose_file import NODE_IMAGE
from lab.engines.host_packages import ensure_packages
from lab.errors import LabError, Progress

PULLED_BASE = "debian:bookworm-slim"
BOOTSTRAPPED_BASE = "natlab-base:bookworm"
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
FINGERPRINT_LABEL = "org.natlab.dockerfile-sha256"


def dockerfile_fingerprint(project_dir: Path) -> str:
    return hashlib.sha256((project_dir / "Dockerfile").read_bytes()).hexdigest()


def host_debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror the host's apt uses (deb822 or one-line format), for debootstrap."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return FALLBACK_MIRROR


def _image_exists(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def bootstrap_base(client, progress: Progress) -> str:
    """debootstrap a minimal bookworm and import it as an image. Takes a minute or two, once."""
    ensure_packages({"debootstrap": "debootstrap"}, progress)
    mirror = host_debian_mirror()
    progress(f"no registry: bootstrapping {BOOTSTRAPPED_BASE} with debootstrap from {mirror} (once, ~1-3 min)")
    with tempfile.TemporaryDirectory(prefix="natlab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise LabError(f"debootstrap failed:\n{proc.stdout[-2000:]}{proc.stderr[-1000:]}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", BOOTSTRAPPED_BASE], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0:
            raise LabError(f"docker import failed: {imported.stderr.decode(errors='replace')}")
    return BOOTSTRAPPED_BASE


def choose_base(client, progress: Progress) -> str:
    """NATLAB_BASE_IMAGE if set; else a local or pullable debian:bookworm-slim; else bootstrap."""
    import docker

    forced = os.environ.get("NATLAB_BASE_IMAGE")
    if forced:
        return forced
    for candidate in (PULLED_BASE, BOOTSTRAPPED_BASE):
        if _image_exists(client, candidate):
            return candidate
    progress(f"pulling {PULLED_BASE}")
    try:
        client.images.pull(PULLED_BASE)
        return PULLED_BASE
    except docker.errors.APIError as exc:
        progress(f"pull failed ({str(exc).splitlines()[0][:120]})")
    return bootstrap_base(client, progress)


def ensure_node_image(client, project_dir: Path, progress: Progress) -> None:
    _ensure_built(client, project_dir, NODE_IMAGE, lambda: {"BASE_IMAGE": choose_base(client, progress)},
                  "Debian packages only", progress)


def _ensure_built(client, context: Path, tag: str, buildargs, what: str, progress: Progress) -> None:
    """Build `tag` from context/Dockerfile unless the image there was built from this very Dockerfile
    (its hash is the image's label). `buildargs` is called only when a build is needed."""
    import docker

    fingerprint = dockerfile_fingerprint(context)
    try:
        if client.images.get(tag).labels.get(FINGERPRINT_LABEL) == fingerprint:
            return
    except docker.errors.ImageNotFound:
        pass
    args = buildargs()
    progress(f"building {tag} from {context / 'Dockerfile'} ({what})")
    try:
        client.images.build(
            path=str(context),
            dockerfile="Dockerfile",
            tag=tag,
            buildargs=args,
            labels={FINGERPRINT_LABEL: fingerprint},
            rm=True,
            forcerm=True,
            nocache=os.environ.get("NATLAB_BUILD_NO_CACHE") == "1",  # `make bench`'s cold lab-up
        )
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") for chunk in exc.build_log)[-3000:]
        raise LabError(f"building {tag} failed: {exc.msg}\n{log}") from None


def user_image_tag(setting: str) -> str:
    """The image NODE_IMAGE= names: an image's own name, or for a directory with a Dockerfile the tag
    the lab builds it as (natlab-user-<directory>)."""
    path = Path(setting)
    if (path / "Dockerfile").is_file():
        name = re.sub(r"[^a-z0-9_.-]+", "-", path.resolve().name.lower()).strip("-.") or "image"
        return f"natlab-user-{name}:latest"
    return setting


def ensure_user_image(client, setting: str, progress: Progress) -> str:
    """NODE_IMAGE=: the user's image for the program nodes, built FROM the node image. A directory with
    a Dockerfile is built here (again only when its Dockerfile changes); an image name must exist."""
    import docker

    tag = user_image_tag(setting)
    if tag != setting:
        _ensure_built(client, Path(setting), tag, dict, f"your image, FROM {NODE_IMAGE}", progress)
        return tag
    try:
        client.images.get(setting)
    except docker.errors.ImageNotFound:
        raise LabError(f"NODE_IMAGE={setting}: no such image here, nor a directory with a Dockerfile; build one "
                       f"FROM {NODE_IMAGE} (docs/recipes/n2n/Dockerfile is an example)") from None
    except docker.errors.APIError as exc:
        raise LabError(f"NODE_IMAGE={setting}: {exc.explanation or exc}") from None
    return setting
