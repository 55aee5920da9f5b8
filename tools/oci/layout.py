"""Deterministic OCI layers and image layouts, written streaming.

Why this exists: rules_oci cannot be had here, and the image digest is the
identity of a build (docs/architecture.md, decisions 3 and 5). So every byte that
goes into a layer is a function of the declared entries only: sorted paths,
a fixed mtime, owners per entry, normalised modes, no user/group names, PAX
format, gzip without name or timestamp through the deflate pinned in the lock
(zlib-ng). A layer is streamed from its sources to disk while both hashes are
computed, so a multi-GB torch layer is never held in memory.

Public API (kept stable; other tools import it):

    Entry.file(path, source=... | data=..., mode=None, uid=0, gid=0)
    Entry.dir(path, mode=None, uid=0, gid=0)
    Entry.symlink(path, target)
    write_layer(entries, out_path, *, refuse_top=LATER_LAYER_REFUSED_TOP) -> LayerInfo
    describe_blob(path) -> LayerInfo            # for layers made elsewhere
    write_image_layout(out_dir, layers, *, entrypoint, cmd, env, workdir,
                       user, labels, architecture, os, created) -> "sha256:<hex>"
"""

from __future__ import annotations

import dataclasses
import gzip as _stdlib_gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO

# The lock pins zlib-ng so gzip bytes do not depend on the host's zlib, and its
# threaded writer compresses on every core: fixed-size blocks, each deflated with
# the previous block's last 32 KiB as dictionary (pigz's scheme), so the bytes
# depend on the block size and level only, never on the thread count.
from zlib_ng import gzip_ng_threaded as _gzip_threaded

from tools.oci import binary_guard

# 2000-01-01T00:00:00Z would also do; 0 is what most reproducible builders use.
FIXED_MTIME = 0
FIXED_CREATED = "1970-01-01T00:00:00Z"
GZIP_LEVEL = 6  # zlib-ng's default: level 9 costs 3x the time for ~2 % on wheels.
CHUNK = 1 << 20
# Measured on 441 MB of torch's libraries (docs/image.md): 128 KiB to 4 MiB blocks
# differ by 0.1 % in size and not measurably in CPU time; 1 MiB matches the tar
# stream's write size. Changing it changes every layer digest.
GZIP_BLOCK = 1 << 20

MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

# In the base these are links into usr/ (merged /usr); a later layer that
# carries them would replace the links with directories and break the ELF
# interpreter path /lib64/ld-linux-x86-64.so.2.
LATER_LAYER_REFUSED_TOP = frozenset({"bin", "lib", "lib64", "sbin"})

# Never ship these: build-host VCS data, bytecode caches and credentials.
EXCLUDED_COMPONENTS = frozenset({".git", ".hg", ".svn", ".DS_Store"})
SECRET_NAMES = frozenset({
    ".env", ".netrc", ".pypirc", ".npmrc", ".git-credentials", ".dockercfg",
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519",
    "credentials.json", "application_default_credentials.json",
    "service-account.json", "service_account.json",
})

FILE, DIR, SYMLINK = "file", "dir", "symlink"


class LayerError(ValueError):
    """Raised when the entries of a layer would make a non-reproducible or
    unsafe layer (duplicates, forbidden paths, paths below a symlink)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tar member. `mode=None` means "normalise": 0755 for directories and
    files with any exec bit (source on disk or explicit), 0644 otherwise."""

    path: str
    kind: str
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    source: str | None = None
    data: bytes | None = None
    target: str | None = None

    @classmethod
    def file(cls, path, source=None, data=None, mode=None, uid=0, gid=0):
        if (source is None) == (data is None):
            raise LayerError(f"{path}: give exactly one of source= or data=")
        return cls(normalize_path(path), FILE, mode, uid, gid,
                   source=None if source is None else os.fspath(source), data=data)

    @classmethod
    def dir(cls, path, mode=None, uid=0, gid=0):
        return cls(normalize_path(path), DIR, mode, uid, gid)

    @classmethod
    def symlink(cls, path, target, uid=0, gid=0):
        if not target:
            raise LayerError(f"{path}: empty symlink target")
        return cls(normalize_path(path), SYMLINK, 0o777, uid, gid, target=target)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """What a manifest needs to know about one layer blob."""

    path: str
    digest: str
    diff_id: str
    size: int
    media_type: str = MEDIA_LAYER_GZIP

    def to_json(self) -> str:
        """Sidecar form, so the image action need not re-read a 5 GB blob."""
        fields = dataclasses.asdict(self)
        fields.pop("path")
        return json.dumps(fields, sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, path: str, text: str) -> LayerInfo:
        return cls(path=os.fspath(path), **json.loads(text))


def normalize_path(path: str) -> str:
    """Tar member names without './' or '/' prefix; refuse '..' and empties,
    which would write outside the root or be ambiguous."""
    raw = os.fspath(path)
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise LayerError(f"bad layer path {raw!r}")
    return "/".join(parts)


def is_deterministic_pyc(header: bytes) -> bool:
    """True for unchecked-hash .pyc (PEP 552 flags == 0b01): their bytes do not
    depend on source mtimes, unlike the timestamp .pyc a build host writes."""
    return len(header) >= 16 and int.from_bytes(header[4:8], "little") == 1


def exclusion_reason(path: str, head: bytes | None = None) -> str | None:
    """Why `path` must not ship (None when it may). `head` is the first 16
    bytes of a .pyc, needed to tell deterministic bytecode from host caches."""
    parts = path.split("/")
    name = parts[-1]
    for part in parts:
        if part in EXCLUDED_COMPONENTS:
            return f"VCS/host metadata component {part!r}"
    if name in SECRET_NAMES or name.endswith((".env.local",)):
        return "looks like a credential"
    if name.endswith((".pyc", ".pyo")):
        if head is None or not is_deterministic_pyc(head):
            return "bytecode that is not unchecked-hash"
    elif "__pycache__" in parts[:-1]:
        return "__pycache__ content that is not bytecode"
    return None


def _entry_head(entry: Entry) -> bytes | None:
    if entry.kind != FILE or not entry.path.endswith((".pyc", ".pyo")):
        return None
    if entry.data is not None:
        return entry.data[:16]
    with open(entry.source, "rb") as f:
        return f.read(16)


def filter_entries(entries: Iterable[Entry]) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Split entries into (kept, [(path, reason)]): collectors drop host
    litter here; write_layer refuses anything that slips through."""
    kept, dropped = [], []
    for entry in entries:
        reason = exclusion_reason(entry.path, _entry_head(entry))
        if reason is None:
            kept.append(entry)
        else:
            dropped.append((entry.path, reason))
    return kept, dropped


def normalized_mode(entry: Entry) -> int:
    """Fixed modes: a layer must not depend on the build host's umask."""
    if entry.kind == SYMLINK:
        return 0o777
    if entry.mode is not None:
        return entry.mode & 0o7777
    if entry.kind == DIR:
        return 0o755
    executable = entry.source is not None and os.stat(entry.source).st_mode & 0o111
    return 0o755 if executable else 0o644


def with_parent_dirs(entries: Iterable[Entry]) -> list[Entry]:
    """Add root-owned 0755 parents that were not declared, so extraction never
    invents directories with tool-dependent modes."""
    by_path = {}
    for entry in entries:
        if entry.path in by_path:
            raise LayerError(f"path shipped twice: {entry.path}")
        by_path[entry.path] = entry
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = Entry.dir(parent)
            parent = posixpath.dirname(parent)
    return [by_path[p] for p in sorted(by_path)]


def validate_entries(entries: Sequence[Entry], refuse_top: Iterable[str]) -> None:
    """Refuse what would make the layer unsafe: forbidden top-level names,
    entries below a symlink of the same layer, excluded files, non-directory
    parents."""
    refuse_top = frozenset(refuse_top)
    kinds = {e.path: e.kind for e in entries}
    for entry in entries:
        top = entry.path.split("/", 1)[0]
        if top in refuse_top:
            raise LayerError(f"{entry.path}: a later layer must not carry /{top}")
        parent = posixpath.dirname(entry.path)
        if parent and kinds.get(parent) != DIR:
            raise LayerError(f"{entry.path}: parent is a {kinds.get(parent)}, not a directory")
        reason = exclusion_reason(entry.path, _entry_head(entry))
        if reason:
            raise LayerError(f"{entry.path}: {reason}")


class _HashingWriter(io.RawIOBase):
    """Counts and hashes bytes on their way to `sink` (one pass, no buffering
    of the layer)."""

    def __init__(self, sink: BinaryIO | None):
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)


def _tarinfo(entry: Entry, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mtime = FIXED_MTIME
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mode = normalized_mode(entry)
    info.type = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE}[entry.kind]
    info.linkname = entry.target or ""
    info.size = size
    return info


def _add(tar: tarfile.TarFile, entry: Entry) -> None:
    if entry.kind != FILE:
        tar.addfile(_tarinfo(entry, 0))
    elif entry.data is not None:
        tar.addfile(_tarinfo(entry, len(entry.data)), io.BytesIO(entry.data))
    else:
        with open(entry.source, "rb") as f:
            tar.addfile(_tarinfo(entry, os.fstat(f.fileno()).st_size), f)


def file_heads(entries: Iterable[Entry]):
    """(path, first bytes) of every file entry: what the binary guard judges."""
    for entry in entries:
        if entry.kind != FILE:
            continue
        if entry.data is not None:
            yield entry.path, entry.data[:binary_guard.HEAD_BYTES]
        else:
            with open(entry.source, "rb") as f:
                yield entry.path, f.read(binary_guard.HEAD_BYTES)


def write_tar_stream(entries: Iterable[Entry], sink: BinaryIO, *,
                     refuse_top: Iterable[str] = LATER_LAYER_REFUSED_TOP,
                     architecture: str | None = None, copy_size: int = CHUNK) -> None:
    """Write the deterministic tar of `entries` to a writable stream.

    With ARCHITECTURE (an OCI architecture, e.g. amd64), binaries for any other
    machine are refused before a byte is written (tools/oci/binary_guard.py).
    COPY_SIZE (file bodies are read in pieces of it) changes CPU, never bytes."""
    ordered = with_parent_dirs(entries)
    validate_entries(ordered, refuse_top)
    if architecture is not None:
        binary_guard.check(file_heads(ordered), architecture)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", bufsize=CHUNK) as tar:
        # tarfile copies file bodies in 16 KiB reads by default, and its stream
        # appends each one to a 1 MiB bytes buffer: 12 of the torch layer's 19
        # tar CPU-seconds (tools/oci/bench_gzip.py). CHUNK reads drop the copies.
        tar.copybufsize = copy_size
        for entry in ordered:
            _add(tar, entry)


def gzip_threads(environ=os.environ) -> int:
    """Compression threads: ARR_OCI_GZIP_THREADS, else every core this process may use."""
    if environ.get("ARR_OCI_GZIP_THREADS"):
        return max(1, int(environ["ARR_OCI_GZIP_THREADS"]))
    return max(1, len(os.sched_getaffinity(0)))


def gzip_writer(sink: BinaryIO, *, level: int = GZIP_LEVEL, threads: int | None = None) -> BinaryIO:
    """A gzip stream onto SINK whose bytes are the same for any thread count and machine
    (name and mtime empty, OS byte 255); close it to write the trailer."""
    return _gzip_threaded.open(sink, "wb", compresslevel=level, threads=threads or gzip_threads(),
                               block_size=GZIP_BLOCK)


def write_layer(entries: Iterable[Entry], out_path: str, *,
                refuse_top: Iterable[str] = LATER_LAYER_REFUSED_TOP,
                level: int = GZIP_LEVEL, threads: int | None = None,
                architecture: str | None = None) -> LayerInfo:
    """Stream entries into `out_path` (.tar.gz) and return its LayerInfo.

    digest = sha256 of the gzip blob, diff_id = sha256 of the tar, both taken
    in the same pass. Pass `refuse_top=()` only for the base layer, which owns
    the merged-/usr links."""
    with open(out_path, "wb") as raw:
        blob = _HashingWriter(raw)
        gz = gzip_writer(blob, level=level, threads=threads)
        tar_bytes = _HashingWriter(gz)
        write_tar_stream(entries, tar_bytes, refuse_top=refuse_top, architecture=architecture)
        gz.close()
    return LayerInfo(path=os.fspath(out_path), digest="sha256:" + blob.sha.hexdigest(),
                     diff_id="sha256:" + tar_bytes.sha.hexdigest(), size=blob.size)


def _sha256_file(path: str) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


def describe_blob(path: str) -> LayerInfo:
    """LayerInfo of a layer made elsewhere: a sidecar `<path>.json` when one
    exists, else hashes computed by streaming (gzip blobs are decompressed to
    get the diff_id; plain tars are their own diff_id)."""
    sidecar = os.fspath(path) + ".json"
    if os.path.exists(sidecar):
        with open(sidecar) as f:
            return LayerInfo.from_json(path, f.read())
    digest, size = _sha256_file(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if not gzipped:
        return LayerInfo(os.fspath(path), digest, digest, size, MEDIA_LAYER_TAR)
    sha = hashlib.sha256()
    with _stdlib_gzip.open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return LayerInfo(os.fspath(path), digest, "sha256:" + sha.hexdigest(), size)


def canonical_json(obj) -> bytes:
    """One byte form per object: sorted keys, no whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def env_list(env: Mapping[str, str] | Sequence[str] | None) -> list[str]:
    """OCI wants ["K=V", ...]; a mapping is sorted so dict order cannot leak."""
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [f"{k}={env[k]}" for k in sorted(env)]
    for item in env:
        if "=" not in item:
            raise ValueError(f"env entry {item!r} is not KEY=VALUE")
    return list(env)


def image_config(diff_ids: Sequence[str], *, entrypoint=None, cmd=None, env=None,
                 workdir=None, user=None, labels=None, architecture="amd64",
                 os="linux", created=FIXED_CREATED) -> dict:
    """The OCI image config; empty fields are left out rather than nulled."""
    config = {
        "Entrypoint": list(entrypoint) if entrypoint else None,
        "Cmd": list(cmd) if cmd else None,
        "Env": env_list(env) or None,
        "WorkingDir": workdir or None,
        "User": user or None,
        "Labels": dict(labels) if labels else None,
    }
    return {
        "architecture": architecture,
        "os": os,
        "created": created,
        "config": {k: v for k, v in config.items() if v is not None},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }


def _descriptor(media_type: str, digest: str, size: int) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size}


def blob_path(out_dir: str, digest: str) -> str:
    """Where a layout keeps the blob DIGEST ("sha256:<hex>")."""
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(out_dir, "blobs", algo, hexdigest)


def _write_blob(out_dir: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(out_dir, digest), "wb") as f:
        f.write(data)
    return {"digest": digest, "size": len(data)}


BLOB_MODES = ("symlink", "link", "move", "copy")


def place_blob(src: str, dst: str, mode: str = "link") -> None:
    """Put a layer into the layout without storing it twice: an absolute
    symlink to the file (symlink), a hardlink (link) or a move where the
    filesystem allows, a copy only as the last resort."""
    if os.path.lexists(dst):
        return
    real = os.path.realpath(src)
    if mode == "symlink":
        os.symlink(real, dst)
        return
    if mode == "move":
        try:
            os.replace(real, dst)
            return
        except OSError:
            pass
    if mode in ("link", "move"):
        try:
            os.link(real, dst)
            return
        except OSError:
            pass
    shutil.copyfile(real, dst)


def write_image_layout(out_dir: str, layers: Sequence[LayerInfo], *, entrypoint=None,
                       cmd=None, env=None, workdir=None, user=None, labels=None,
                       architecture="amd64", os="linux", created=FIXED_CREATED,
                       tag: str | None = "latest", blob_mode: str = "link") -> str:
    """Write an OCI image layout (oci-layout, index.json, blobs/sha256/*) for
    one single-platform image and return its manifest digest "sha256:<hex>".
    `tag` becomes the index's ref.name annotation (for `umoci unpack --image
    dir:tag`); it is not part of the manifest, so not of the digest."""
    import os as _os  # the `os` keyword shadows the module, as in the OCI field name
    _os.makedirs(_os.path.join(out_dir, "blobs", "sha256"), exist_ok=True)
    for layer in layers:
        place_blob(layer.path, blob_path(out_dir, layer.digest), blob_mode)
    config = image_config([l.diff_id for l in layers], entrypoint=entrypoint, cmd=cmd,
                          env=env, workdir=workdir, user=user, labels=labels,
                          architecture=architecture, os=os, created=created)
    config_desc = _write_blob(out_dir, canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _descriptor(MEDIA_CONFIG, config_desc["digest"], config_desc["size"]),
        "layers": [_descriptor(l.media_type, l.digest, l.size) for l in layers],
    }
    manifest_desc = _write_blob(out_dir, canonical_json(manifest))
    entry = _descriptor(MEDIA_MANIFEST, manifest_desc["digest"], manifest_desc["size"])
    if tag:
        entry["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry]}
    with open(_os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(canonical_json(index))
    with open(_os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc["digest"]


@dataclasses.dataclass(frozen=True)
class LayoutImage:
    """One image of an OCI image layout, as read back: the one reader every
    tool and test uses, so the layout's shape is known in one place."""
    root: str
    digest: str       # the manifest digest
    descriptor: dict  # its entry in index.json
    manifest: dict
    config: dict      # empty when the manifest is an index (multi-platform)

    def blob_path(self, digest: str) -> str:
        return blob_path(self.root, digest)

    @property
    def layer_paths(self) -> list[str]:
        return [self.blob_path(d["digest"]) for d in self.manifest["layers"]]

    @property
    def layers(self) -> list[LayerInfo]:
        """Each layer's blob path, digest, diff_id, size and media type."""
        return [LayerInfo(self.blob_path(d["digest"]), d["digest"], diff_id, d["size"], d["mediaType"])
                for d, diff_id in zip(self.manifest["layers"], self.config["rootfs"]["diff_ids"])]


def read_layout(root: str, digest: str | None = None, *, only: bool = False) -> LayoutImage:
    """The image DIGEST of the layout at ROOT (the first one when None; with
    ONLY, the layout must hold exactly one image).

    Raises LayerError naming what to fix when ROOT is not a layout or lacks DIGEST."""
    try:
        with open(os.path.join(root, "index.json")) as f:
            manifests = json.load(f)["manifests"]
    except (OSError, ValueError, KeyError) as e:
        raise LayerError(f"{root} is not an OCI image layout (index.json: {e})") from None
    if only and len(manifests) != 1:
        raise LayerError(f"{root}: expected one image manifest, found {len(manifests)}")
    if digest is None and manifests:
        digest = manifests[0]["digest"]
    descriptor = next((m for m in manifests if m["digest"] == digest), None)
    if descriptor is None:
        raise LayerError(f"{root}/index.json does not list {digest}: a stale digest file? rebuild the image")
    try:
        with open(blob_path(root, digest), "rb") as f:
            manifest = json.load(f)
    except OSError as e:
        raise LayerError(f"{root}: manifest blob {digest} missing ({e.strerror})") from None
    config = {}
    if "config" in manifest:
        with open(blob_path(root, manifest["config"]["digest"]), "rb") as f:
            config = json.load(f)
    return LayoutImage(root, digest, descriptor, manifest, config)
