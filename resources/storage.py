"""The storage root: where raw tables are read from and every output is written.

`CHURN_DATA_ROOT` is a local folder (the embedded default) or `s3://bucket/prefix` (production).
Assets write what must persist (tables, artefacts, metrics, predictions) through this resource
themselves, so a run of one asset a day later finds its inputs here, whatever IO manager is bound.

Every write is atomic from a reader's view. Locally the bytes go to a hidden temporary name in the
same folder (Spark, Hive and Athena skip names starting with `.`), then replace the final name at
once. On S3 every object is one PUT, which S3 makes visible whole or not at all, so nothing
half-written is ever under a final key.

S3 goes through dagster-aws's `S3Resource` client: endpoint, region and credentials come only from
the standard AWS environment (AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an instance role), and boto3 retries transient
errors (throttling, 5xx, dropped connections) `s3_max_attempts` times before the call fails with
a `StorageError` that names the operation and the key.

Code that needs a real file (pyarrow reading Parquet footers, Spark in local mode) asks for
`local_path(...)`: the file itself on a local root, a staged copy on S3 (downloaded once per
process and object version).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

S3_SCHEME = "s3://"
# EMR, Glue and Databricks ship Spark with the S3A connector: there Spark reads s3a:// itself.
SPARK_S3A_ENV = "CHURN_SPARK_S3A"


class StorageError(RuntimeError):
    """A storage operation failed after its retries; the message names the operation and the key."""


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


class LocalFiles:
    """A folder on this machine."""

    def __init__(self, base: Path):
        self.base = base

    def path(self, relative: str) -> Path:
        return self.base / relative

    def uri(self, relative: str) -> str:
        return str(self.path(relative))

    def exists(self, relative: str) -> bool:
        return self.path(relative).exists()

    def list_names(self, relative: str) -> list[str]:
        folder = self.path(relative)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not _hidden(p.name))

    def read_bytes(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def write_bytes(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def append_line(self, relative: str, line: str) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        # One write() of a short line in append mode: other appenders never interleave within it.
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line)

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def local_path(self, relative: str) -> Path:
        return self.path(relative)

    def local_folder(self, relative: str) -> Path:
        return self.path(relative)


class S3Objects:
    """Objects under `s3://bucket/prefix`, with a per-process staging folder for local readers."""

    def __init__(self, bucket: str, prefix: str, client: Any, max_attempts: int):
        self.bucket, self.prefix, self.client, self.max_attempts = bucket, prefix.strip("/"), client, max_attempts
        self.staging = Path(tempfile.mkdtemp(prefix="churn-s3-staging-"))
        self._staged: dict[str, str] = {}  # relative key -> ETag of the staged copy

    def key(self, relative: str) -> str:
        relative = relative.strip("/")
        return f"{self.prefix}/{relative}" if self.prefix and relative else (self.prefix or relative)

    def uri(self, relative: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key(relative)}".rstrip("/")

    def _call(self, operation: str, relative: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(self.uri(relative)) from exc
            raise self._error(operation, relative, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, relative, exc) from exc

    def _error(self, operation: str, relative: str, exc: Exception) -> StorageError:
        return StorageError(
            f"S3 {operation} {self.uri(relative)} failed after {self.max_attempts} attempt(s): "
            f"{type(exc).__name__}: {exc}"
        )

    def _list(self, relative: str, delimiter: bool) -> tuple[list[str], list[str]]:
        """(object keys, sub-folder prefixes) directly under (or, without delimiter, below) a folder."""
        prefix = self.key(relative) + "/" if self.key(relative) else ""
        keys, folders, token = [], [], None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix}
            if delimiter:
                kwargs["Delimiter"] = "/"
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", relative, **kwargs)
            keys += [item["Key"] for item in page.get("Contents", [])]
            folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return keys, folders
            token = page["NextContinuationToken"]

    def exists(self, relative: str) -> bool:
        try:
            self._call("head_object", relative, Key=self.key(relative))
            return True
        except FileNotFoundError:
            keys, folders = self._list(relative, delimiter=True)
            return bool(keys or folders)

    def list_names(self, relative: str) -> list[str]:
        keys, folders = self._list(relative, delimiter=True)
        names = {k.rsplit("/", 1)[-1] for k in keys} | {f.rstrip("/").rsplit("/", 1)[-1] for f in folders}
        return sorted(n for n in names if n and not _hidden(n))

    def read_bytes(self, relative: str) -> bytes:
        return self._call("get_object", relative, Key=self.key(relative))["Body"].read()

    def write_bytes(self, relative: str, data: bytes) -> None:
        self._call("put_object", relative, Key=self.key(relative), Body=data)

    def append_line(self, relative: str, line: str) -> None:
        # S3 has no append: read, extend, put back. One writer (the alerts sensor) appends here.
        try:
            current = self.read_bytes(relative)
        except FileNotFoundError:
            current = b""
        self.write_bytes(relative, current + line.encode("utf-8"))

    def delete(self, relative: str) -> None:
        self._call("delete_object", relative, Key=self.key(relative))

    def local_path(self, relative: str) -> Path:
        """A staged copy of one object, downloaded again only when the object changed."""
        relative = relative.strip("/")
        head = self._call("head_object", relative, Key=self.key(relative))
        target = self.staging / relative
        if self._staged.get(relative) != head["ETag"] or not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(self.read_bytes(relative))
            os.replace(tmp, target)
            self._staged[relative] = head["ETag"]
        return target

    def local_folder(self, relative: str) -> Path:
        """A staged copy of every object below a folder (names starting with `.`/`_` skipped)."""
        relative = relative.strip("/")
        base = self.key(relative) + "/"
        keys, _ = self._list(relative, delimiter=False)
        wanted = set()
        for key in keys:
            below = key[len(base):]
            if not any(_hidden(part) for part in below.split("/")):
                wanted.add(self.local_path(f"{relative}/{below}"))
        folder = self.staging / relative
        folder.mkdir(parents=True, exist_ok=True)
        for staged in folder.rglob("*"):  # objects deleted since an earlier staging
            if staged.is_file() and staged not in wanted:
                staged.unlink()
                self._staged.pop(staged.relative_to(self.staging).as_posix(), None)
        return folder


class StorageRoot(dg.ConfigurableResource):
    """The contract's layout (`raw/`, `models/`, `alerts/`, ...) in a local folder or under s3://."""

    root: str
    s3_max_attempts: int = 5  # boto3's attempts per S3 request, the first one included

    _backend: LocalFiles | S3Objects | None = PrivateAttr(default=None)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith(S3_SCHEME)

    @property
    def backend(self) -> LocalFiles | S3Objects:
        if self._backend is None:
            if self.is_s3:
                from dagster_aws.s3 import S3Resource

                bucket, _, prefix = self.root[len(S3_SCHEME):].partition("/")
                if not bucket:
                    raise ValueError(f"storage root {self.root!r} names no bucket (s3://bucket/prefix)")
                # No endpoint, region or keys here: boto3 reads them from the AWS environment.
                client = S3Resource(max_attempts=self.s3_max_attempts).get_client()
                self._backend = S3Objects(bucket, prefix, client, self.s3_max_attempts)
            else:
                self._backend = LocalFiles(Path(self.root).expanduser().resolve())
        return self._backend

    @property
    def base(self) -> Path:
        return self.path("")

    def path(self, relative: str) -> Path:
        """The file itself; local roots only (on S3 ask for `local_path`, a staged copy)."""
        if self.is_s3:
            raise StorageError(f"{self.uri(relative)} is in S3: read it with read_bytes or local_path")
        return self.backend.path(relative)

    def uri(self, relative: str) -> str:
        """The address a person or a SQL engine uses for `relative`."""
        return self.backend.uri(relative)

    def spark_uri(self, relative: str, stage: bool = True) -> str:
        """Where Spark reads a folder: s3a:// where the runtime has S3A, else a local (staged) copy.

        `stage=False` only names the local folder (Spark's `basePath`), downloading nothing.
        """
        if not self.is_s3:
            return str(self.path(relative))
        if os.environ.get(SPARK_S3A_ENV, "").lower() in ("1", "true", "yes"):
            return "s3a://" + self.uri(relative)[len(S3_SCHEME):]
        if not stage:
            return str(self.backend.staging / relative.strip("/"))
        return str(self.backend.local_folder(relative))

    def exists(self, relative: str) -> bool:
        return self.backend.exists(relative)

    def list_names(self, relative: str) -> list[str]:
        """Names directly under a folder, hidden and temporary ones excluded; [] when it is absent."""
        return self.backend.list_names(relative)

    def read_bytes(self, relative: str) -> bytes:
        return self.backend.read_bytes(relative)

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode("utf-8")

    def write_bytes(self, relative: str, data: bytes) -> str:
        self.backend.write_bytes(relative, data)
        return self.uri(relative)

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def append_line(self, relative: str, line: str) -> str:
        """Append one line (a JSON record); a line is written whole or not at all."""
        self.backend.append_line(relative, line.rstrip("\n") + "\n")
        return self.uri(relative)

    def write_csv(self, relative: str, frame: pd.DataFrame) -> str:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        return self.write_text(relative, buffer.getvalue())

    def read_csv(self, relative: str, **kwargs) -> pd.DataFrame:
        if self.is_s3:
            return pd.read_csv(io.BytesIO(self.read_bytes(relative)), **kwargs)
        return pd.read_csv(self.path(relative), **kwargs)

    def delete(self, relative: str) -> None:
        self.backend.delete(relative)

    def local_path(self, relative: str) -> Path:
        """A local file with the object's bytes: the file itself, or a staged copy of the S3 object."""
        return self.backend.local_path(relative)

    def local_folder(self, relative: str) -> Path:
        """A local folder with everything below `relative` (staged from S3 when the root is there)."""
        return self.backend.local_folder(relative)

    def upload_folder(self, local: str | Path, relative: str = "") -> list[str]:
        """Copy a local tree under `relative`, replacing each folder's previous files; returns the keys.

        Each file is one atomic write; then names that the local folder no longer has are deleted,
        so re-uploading a re-simulated week replaces it rather than adding to it.
        """
        local = Path(local)
        written = []
        for folder, _, files in sorted(os.walk(local)):
            names = sorted(f for f in files if not _hidden(f))
            if not names:
                continue
            below = Path(folder).relative_to(local).as_posix()
            target = "/".join(part for part in (relative.strip("/"), "" if below == "." else below) if part)
            for name in names:
                self.write_bytes(f"{target}/{name}", (Path(folder) / name).read_bytes())
                written.append(f"{target}/{name}")
            for stale in set(self.list_names(target)) - set(names):
                if not self.list_names(f"{target}/{stale}"):  # a file: a folder lists names
                    self.delete(f"{target}/{stale}")
        return written

