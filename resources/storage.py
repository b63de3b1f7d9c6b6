"""The storage root: where raw tables are read from and every output is written.

Assets write what must persist (tables, artefacts, metrics, predictions) through this resource
themselves, so a run of one asset a day later finds its inputs here, whatever IO manager is bound.
Every write is atomic from a reader's view: the bytes go to a hidden temporary name in the same
folder (Spark, Hive and Athena skip names starting with `.`), then replace the final name at once.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd


class StorageRoot(dg.ConfigurableResource):
    """A local folder that holds the contract's layout (`raw/`, `models/`, `alerts/`, ...)."""

    root: str

    @property
    def base(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def path(self, relative: str) -> Path:
        return self.base / relative

    def uri(self, relative: str) -> str:
        """The address a person or a SQL engine uses for `relative`."""
        return str(self.path(relative))

    def exists(self, relative: str) -> bool:
        return self.path(relative).exists()

    def list_names(self, relative: str) -> list[str]:
        """Names directly under a folder, hidden and temporary ones excluded; [] when it is absent."""
        folder = self.path(relative)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith((".", "_")))

    def read_bytes(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def read_text(self, relative: str) -> str:
        return self.path(relative).read_text(encoding="utf-8")

    def write_bytes(self, relative: str, data: bytes) -> str:
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
        return str(target)

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def append_line(self, relative: str, line: str) -> str:
        """Append one line (a JSON record); a line is written whole or not at all."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
        return str(target)

    def write_csv(self, relative: str, frame: pd.DataFrame) -> str:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        return self.write_text(relative, buffer.getvalue())

    def read_csv(self, relative: str, **kwargs) -> pd.DataFrame:
        return pd.read_csv(self.path(relative), **kwargs)

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)
