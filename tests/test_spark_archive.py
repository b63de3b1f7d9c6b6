"""The Spark driver's class archive: used only when whole, written only by a JVM that exited cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from resources import spark as spark_module
from resources.spark import (
    CDS_DIR_ENV,
    CDS_DUMP_ENV,
    CDS_ENV,
    build_class_archive,
    class_archive_options,
    class_archive_path,
    spark_config,
)


@pytest.fixture()
def archive_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CDS_DIR_ENV, str(tmp_path / "cds"))
    monkeypatch.delenv(CDS_ENV, raising=False)
    monkeypatch.delenv(CDS_DUMP_ENV, raising=False)
    return tmp_path / "cds"


def test_no_archive_no_option(archive_dir):
    assert class_archive_options() == ""
    assert "-XX:" not in spark_config()["spark.driver.extraJavaOptions"]


def test_an_archive_in_place_is_handed_to_the_driver_jvm_quietly(archive_dir):
    archive = class_archive_path()
    assert archive.parent == archive_dir and archive.suffix == ".jsa"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"archive")
    options = spark_config()["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={archive}" in options
    assert "-Xlog:cds=off" in options and options.startswith("-Dderby.system.home=")


def test_the_archive_can_be_turned_off(archive_dir, monkeypatch):
    class_archive_path().parent.mkdir(parents=True)
    class_archive_path().write_bytes(b"archive")
    monkeypatch.setenv(CDS_ENV, "0")
    assert class_archive_options() == ""


def test_the_archive_is_named_by_pyspark_and_java(archive_dir, monkeypatch, tmp_path):
    import pyspark

    name = class_archive_path().name
    assert name.startswith(f"spark-{pyspark.__version__}-")
    other_java = tmp_path / "jdk" / "bin"
    other_java.mkdir(parents=True)
    (other_java / "java").write_text("#!/bin/sh\n")
    (other_java / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert class_archive_path().name != name


def test_the_dumping_jvm_is_told_where_to_write(archive_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(CDS_DUMP_ENV, str(tmp_path / "partial.tmp"))
    assert class_archive_options().startswith(f"-XX:ArchiveClassesAtExit={tmp_path / 'partial.tmp'} ")


def fake_warmup(returncode: int, writes: bytes | None):
    """subprocess.run standing in for churn_assets.spark_warmup: writes the dump file, exits."""

    def run(command, env, **kwargs):
        assert command == [sys.executable, "-m", "churn_assets.spark_warmup"]
        if writes is not None:
            with open(env[CDS_DUMP_ENV], "wb") as handle:
                handle.write(writes)
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr="JVM said no")

    return run


def test_a_clean_exit_puts_the_archive_in_place(archive_dir, monkeypatch):
    monkeypatch.setattr(spark_module.subprocess, "run", fake_warmup(0, b"classes"))
    archive = build_class_archive()
    assert archive == class_archive_path() and archive.read_bytes() == b"classes"
    assert [p.name for p in archive_dir.iterdir()] == [archive.name]  # no partial file left


@pytest.mark.parametrize(("returncode", "writes"), [(1, b"half an arch"), (0, None), (0, b"")])
def test_a_failed_or_empty_dump_leaves_no_archive(archive_dir, monkeypatch, returncode, writes):
    monkeypatch.setattr(spark_module.subprocess, "run", fake_warmup(returncode, writes))
    with pytest.raises(RuntimeError, match=rf"class archive was not written \(exit {returncode}\): JVM said no"):
        build_class_archive()
    assert list(archive_dir.iterdir()) == []
    assert class_archive_options() == ""


def test_the_warmup_refuses_to_run_on_its_own(monkeypatch):
    monkeypatch.delenv(CDS_DUMP_ENV, raising=False)
    done = subprocess.run([sys.executable, "-m", "churn_assets.spark_warmup"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != CDS_DUMP_ENV})
    assert done.returncode == 1 and "run by resources.spark.build_class_archive" in done.stderr
