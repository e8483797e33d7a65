"""One place that turns an archive URI into something that can be listed and read.

Two readers touch an archive: fsspec (listing folders, reading ``scene.json``,
STAC items and Landsat MTL files, writing the manifest) and GDAL through
rasterio (opening rasters without downloading them). For local paths both are
plain paths. For ``s3://bucket/key`` fsspec uses s3fs and GDAL uses
``/vsis3/bucket/key``; both must agree on the endpoint and the credentials:

* the endpoint comes from ``StorageOptions.endpoint_url`` or the standard
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables; for GDAL it becomes
  ``AWS_S3_ENDPOINT=host:port`` with ``AWS_HTTPS=NO`` for ``http://`` and
  ``AWS_VIRTUAL_HOSTING=FALSE`` (path-style requests, which MinIO/moto need);
* credentials come from botocore's standard chain (environment, profile,
  container/instance roles), are resolved once, and are handed to both
  readers, so a missing key fails early with :class:`MissingCredentialsError`
  instead of as an obscure HTTP 403 deep inside GDAL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class MissingCredentialsError(RuntimeError):
    """No AWS credentials could be found for an ``s3://`` URI."""


@dataclasses.dataclass(frozen=True)
class StorageOptions:
    """How to reach object storage; everything else comes from the AWS environment.

    Attributes:
        endpoint_url: S3-compatible endpoint, e.g. ``http://127.0.0.1:9000``
            (MinIO, moto, Ceph); None uses ``AWS_ENDPOINT_URL_S3`` /
            ``AWS_ENDPOINT_URL`` or, failing those, AWS itself.
        profile: AWS shared-credentials profile; None uses ``AWS_PROFILE`` or the default.
        anon: unsigned requests, for public buckets only.
        region: AWS region; None uses the environment/profile or ``us-east-1``.
    """

    endpoint_url: str | None = None
    profile: str | None = None
    anon: bool = False
    region: str | None = None

    def resolved_endpoint(self) -> str | None:
        env = os.environ
        return self.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b.tif`` -> ``("bucket", "a/b.tif")``."""
    if not is_s3(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}; write s3://bucket/prefix")
    return bucket, key


def normalize_uri(uri: str | os.PathLike) -> str:
    """Canonical form used everywhere in the manifest: ``s3://b/k`` or an absolute local path."""
    uri = os.fspath(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return f"s3://{bucket}/{key.strip('/')}" if key.strip("/") else f"s3://{bucket}"
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        raise ValueError(f"unsupported URI scheme in {uri!r}; use a local path or s3://bucket/prefix")
    # abspath, not resolve(): symlinked scenes keep their archive paths.
    return os.path.abspath(os.path.expanduser(uri))


def join_uri(base: str, *parts: str) -> str:
    """Join path parts under a URI (both kinds use '/' separators)."""
    if is_s3(base):
        return posixpath.join(base, *parts)
    return str(Path(base, *parts))


def parent_uri(uri: str) -> str:
    return posixpath.dirname(uri) if is_s3(uri) else str(Path(uri).parent)


def relative_uri(root: str, uri: str) -> str:
    """``uri`` relative to ``root`` with '/' separators ('.' when equal)."""
    rel = posixpath.relpath(uri, root) if is_s3(uri) else Path(uri).relative_to(root).as_posix()
    return rel


def resolve_href(href: str, base_dir: str) -> str:
    """Resolve a file reference found in ``scene.json`` or a STAC item against its folder."""
    if is_s3(href) or href.startswith("file://") or os.path.isabs(href):
        return normalize_uri(href)
    if "://" in href:
        raise ValueError(f"unsupported href {href!r}; use a relative path, an absolute path or s3://")
    if is_s3(base_dir):
        bucket, key = split_s3(base_dir)
        key = posixpath.normpath(posixpath.join(key, href))
        if key == ".." or key.startswith("../"):
            raise ValueError(f"href {href!r} leaves bucket {bucket!r}")
        return f"s3://{bucket}/{key}"
    return normalize_uri(Path(base_dir, href))


def resolve_credentials(options: StorageOptions, uri: str = "s3://") -> dict[str, str] | None:
    """AWS credentials from the standard chain, or None for anonymous access.

    Raises:
        MissingCredentialsError: nothing in the environment, the profile or an
            instance role, and ``anon`` is not set.
    """
    if options.anon:
        return None
    import botocore.session

    try:
        session = botocore.session.Session(profile=options.profile)
        creds = session.get_credentials()
    except Exception as exc:  # a named profile that does not exist, a broken config file
        raise MissingCredentialsError(f"cannot load AWS credentials for {uri}: {exc}") from exc
    frozen = creds.get_frozen_credentials() if creds is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise MissingCredentialsError(
            f"no AWS credentials found for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE (a profile in ~/.aws/credentials), or use --anon for a public bucket")
    out = {"key": frozen.access_key, "secret": frozen.secret_key}
    if frozen.token:
        out["token"] = frozen.token
    out["region"] = options.region or session.get_config_variable("region") or "us-east-1"
    return out


def get_filesystem(uri: str, options: StorageOptions | None = None) -> tuple[Any, str]:
    """An fsspec filesystem and the path it expects for ``uri``.

    Local URIs give ``LocalFileSystem`` and an absolute path; ``s3://b/k`` gives
    ``S3FileSystem`` and ``"b/k"``.
    """
    options = options or StorageOptions()
    uri = normalize_uri(uri)
    if not is_s3(uri):
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), uri
    import s3fs

    creds = resolve_credentials(options, uri)
    kwargs: dict[str, Any] = {"anon": options.anon}
    if creds:
        kwargs.update(key=creds["key"], secret=creds["secret"], token=creds.get("token"),
                      client_kwargs={"region_name": creds["region"]})
    endpoint = options.resolved_endpoint()
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return s3fs.S3FileSystem(**kwargs), uri[len("s3://"):]


def gdal_path(uri: str) -> str:
    """The path GDAL opens: ``/vsis3/bucket/key`` for S3, the path itself otherwise."""
    uri = normalize_uri(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return f"/vsis3/{bucket}/{key}"
    return uri


def gdal_options(uri: str, options: StorageOptions | None = None) -> dict[str, str]:
    """GDAL configuration options (not credentials) that reading ``uri`` needs."""
    opts = {
        # Opening one file must not list its whole prefix (thousands of objects).
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.ovr,.msk",
        "GDAL_HTTP_MAX_RETRY": "2",
        "GDAL_HTTP_RETRY_DELAY": "0.5",
    }
    endpoint = (options or StorageOptions()).resolved_endpoint()
    if is_s3(normalize_uri(uri)) and endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        opts["AWS_HTTPS"] = "NO" if parsed.scheme == "http" else "YES"
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return opts


@contextlib.contextmanager
def raster_env(uri: str, options: StorageOptions | None = None) -> Iterator[None]:
    """A ``rasterio.Env`` in which ``gdal_path(uri)`` (and its neighbours) can be opened.

    Raises:
        MissingCredentialsError: an ``s3://`` URI without credentials.
    """
    import rasterio
    from rasterio.session import AWSSession

    options = options or StorageOptions()
    config = gdal_options(uri, options)
    if not is_s3(normalize_uri(uri)):
        with rasterio.Env(**config):
            yield
        return
    endpoint = options.resolved_endpoint()
    host = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}").netloc if endpoint else None
    creds = resolve_credentials(options, uri)
    if creds is None:
        session = AWSSession(aws_unsigned=True, region_name=options.region or "us-east-1", endpoint_url=host)
    else:
        session = AWSSession(aws_access_key_id=creds["key"], aws_secret_access_key=creds["secret"],
                             aws_session_token=creds.get("token"), region_name=creds["region"],
                             endpoint_url=host)
    with rasterio.Env(session=session, **config):
        yield


@contextlib.contextmanager
def open_raster(uri: str, options: StorageOptions | None = None) -> Iterator[Any]:
    """Open a raster by URI inside the right GDAL environment (header only until read)."""
    import rasterio

    with raster_env(uri, options), rasterio.open(gdal_path(uri)) as src:
        yield src


def read_text(uri: str, options: StorageOptions | None = None) -> str:
    """A small text object (scene.json, STAC item, MTL) as a string."""
    fs, path = get_filesystem(uri, options)
    return fs.cat_file(path).decode("utf-8")


def read_texts(uris: list[str], options: StorageOptions | None = None) -> dict[str, str | Exception]:
    """Many small text objects at once (s3fs fetches them concurrently); failures are returned, not raised."""
    if not uris:
        return {}
    fs, _ = get_filesystem(uris[0], options)
    paths = {(u[len("s3://"):] if is_s3(u) else normalize_uri(u)): u for u in uris}
    raw = fs.cat(list(paths), on_error="return")
    out: dict[str, str | Exception] = {}
    for path, uri in paths.items():
        value = raw.get(path, FileNotFoundError(uri))
        out[uri] = value if isinstance(value, Exception) else value.decode("utf-8")
    return out


def list_files(root: str, options: StorageOptions | None = None) -> list[str]:
    """Every file under ``root`` as normalized URIs, sorted (one recursive listing on S3)."""
    root = normalize_uri(root)
    fs, path = get_filesystem(root, options)
    if not fs.exists(path):
        raise FileNotFoundError(f"archive {root} does not exist")
    found = fs.find(path, withdirs=False)
    prefix = "s3://" if is_s3(root) else ""
    return sorted(prefix + p if prefix else normalize_uri(p) for p in found)
