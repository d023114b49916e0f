"""Files: text, binary, upload (file, directory, archive safety), download."""

from __future__ import annotations

import base64
import io
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from rocklet.testing import error_of


def test_write_and_read_text(http: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "f.txt"
    assert http.post("/write_file", json={"path": str(path), "content": "héllo\n"}).json()["success"] is True
    assert path.read_text() == "héllo\n"
    assert http.post("/read_file", json={"path": str(path)}).json() == {"content": "héllo\n"}
    http.post("/write_file", json={"path": str(path), "content": "é", "encoding": "latin-1"})
    assert path.read_bytes() == b"\xe9"
    assert http.post("/read_file", json={"path": str(path), "encoding": "latin-1"}).json()["content"] == "é"
    err = error_of(http.post("/read_file", json={"path": str(path)}))
    assert err["class_path"] == "builtins.UnicodeDecodeError"
    assert (
        http.post("/read_file", json={"path": str(path), "errors": "replace"}).json()["content"] == "\ufffd"
    )


def test_read_one_megabyte(http: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 1_000_000)
    assert len(http.post("/read_file", json={"path": str(path)}).json()["content"]) == 1_000_000


def test_missing_paths(http: httpx.Client, tmp_path: Path) -> None:
    err = error_of(http.post("/read_file", json={"path": str(tmp_path / "missing")}))
    assert err["class_path"] == "builtins.FileNotFoundError"
    err = error_of(http.get("/download", params={"path": str(tmp_path / "missing")}))
    assert err["class_path"] == "builtins.FileNotFoundError"
    err = error_of(http.post("/read_file_bytes", json={"path": str(tmp_path / "missing")}))
    assert err["class_path"] == "builtins.FileNotFoundError"


def test_binary_roundtrip(http: httpx.Client, tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    path = tmp_path / "bin" / "blob"
    r = http.post(
        "/write_file_bytes", json={"path": str(path), "content_base64": base64.b64encode(data).decode()}
    )
    assert r.json() == {"success": True, "size": len(data)}
    http.post(
        "/write_file_bytes",
        json={"path": str(path), "content_base64": base64.b64encode(b"END").decode(), "append": True},
    )
    r = http.post("/read_file_bytes", json={"path": str(path)}).json()
    assert base64.b64decode(r["content_base64"]) == data + b"END"
    r = http.post("/read_file_bytes", json={"path": str(path), "offset": 2560, "length": 3}).json()
    assert base64.b64decode(r["content_base64"]) == b"END"
    assert r["size"] == len(data) + 3
    assert http.post("/write_file_bytes", json={"path": str(path), "content_base64": "!!"}).status_code == 511


def test_download_file_and_directory(http: httpx.Client, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4000
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "blob").write_bytes(blob)
    (tmp_path / "d" / "sub" / "a.txt").write_text("a")
    r = http.get("/download", params={"path": str(tmp_path / "d" / "blob")})
    assert r.status_code == 200
    assert r.content == blob
    r = http.get("/download", params={"path": str(tmp_path / "d")})
    assert r.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        names = set(tf.getnames())
        assert {"./blob", "./sub/a.txt"} <= names


def _upload(
    http: httpx.Client, data: bytes, target: Path, unzip: bool, name: str = "up.bin"
) -> httpx.Response:
    return http.post(
        "/upload",
        files={"file": (name, data)},
        data={"target_path": str(target), "unzip": "true" if unzip else "false"},
    )


def test_upload_file(http: httpx.Client, tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "file.bin"
    r = _upload(http, b"\x00\x01payload", target, unzip=False)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert target.read_bytes() == b"\x00\x01payload"
    # An existing directory as target keeps the uploaded file's name.
    r = _upload(http, b"x", tmp_path / "new", unzip=False, name="named.txt")
    assert (tmp_path / "new" / "named.txt").read_bytes() == b"x"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_upload_directory_archives(http: httpx.Client, tmp_path: Path) -> None:
    r = _upload(http, _zip({"a.txt": b"A", "sub/b.txt": b"B"}), tmp_path / "z", unzip=True)
    assert r.status_code == 200, r.text
    assert (tmp_path / "z" / "sub" / "b.txt").read_bytes() == b"B"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("t/c.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"C"))
    r = _upload(http, buf.getvalue(), tmp_path / "tgz", unzip=True)
    assert r.status_code == 200, r.text
    assert (tmp_path / "tgz" / "t" / "c.txt").read_bytes() == b"C"


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/absolute-evil.txt", "ok/../../escaped2.txt"])
def test_zip_traversal_rejected(http: httpx.Client, tmp_path: Path, evil: str) -> None:
    target = tmp_path / "target"
    r = _upload(http, _zip({"fine.txt": b"ok", evil: b"evil"}), target, unzip=True)
    err = error_of(r)
    assert err["class_path"] == "rock.exceptions.UnsafeArchiveError"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "escaped2.txt").exists()
    assert not (target / "fine.txt").exists()  # nothing was written


def test_tar_link_escape_rejected(http: httpx.Client, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        tf.addfile(link)
        f = tarfile.TarInfo("link/owned")
        f.size = 1
        tf.addfile(f, io.BytesIO(b"x"))
    err = error_of(_upload(http, buf.getvalue(), tmp_path / "t", unzip=True))
    assert err["class_path"] == "rock.exceptions.UnsafeArchiveError"
    assert not Path("/etc/owned").exists()


def test_upload_bad_form(http: httpx.Client, tmp_path: Path) -> None:
    err = error_of(http.post("/upload", data={"target_path": str(tmp_path)}))
    assert "file" in err["message"]
    err = error_of(_upload(http, b"not an archive", tmp_path / "x", unzip=True))
    assert "neither a zip nor a tar" in err["message"]
