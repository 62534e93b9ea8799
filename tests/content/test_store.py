"""The content store: blobs verified before they are visible, atomic and idempotent writes,
nothing left behind by a failed write, references by owner, and collection."""

from __future__ import annotations

import gc
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from simulator.content import (
    BlobInfo,
    BlobNotFound,
    ContentError,
    ContentStore,
    DigestMismatch,
    InvalidDigest,
    SizeMismatch,
    digest_bytes,
    parse_digest,
)

HELLO_DIGEST = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MISSING_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def assert_nothing_stored(store: ContentStore) -> None:
    assert files_under(store.root / "blobs") == []
    assert files_under(store.root / "ingest") == []


# Digests


def test_digest_bytes_is_sha256_with_its_prefix() -> None:
    assert digest_bytes(b"hello") == HELLO_DIGEST
    assert digest_bytes(b"") == EMPTY_DIGEST


def test_parse_digest_returns_the_hex() -> None:
    assert parse_digest(HELLO_DIGEST) == HELLO_DIGEST.removeprefix("sha256:")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:zz",
        "sha256:" + "A" * 64,  # uppercase hex
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 128,  # the store addresses sha256 only
        "a" * 64,  # no algorithm
        "sha256:../../etc/passwd",
        "sha256:" + "a" * 64 + "\n",
        "",
    ],
)
def test_malformed_digests_are_refused_with_the_digest_in_the_message(
    store: ContentStore, digest: str
) -> None:
    with pytest.raises(InvalidDigest) as caught:
        parse_digest(digest)
    assert str(caught.value) == f'invalid digest "{digest}"'
    for call in (store.exists, store.info, store.path, store.open, store.read, store.delete):
        with pytest.raises(InvalidDigest):
            call(digest)
    with pytest.raises(InvalidDigest):
        store.add_ref(digest, "owner")


def test_a_digest_that_is_not_a_string_is_invalid() -> None:
    with pytest.raises(InvalidDigest):
        parse_digest(None)  # type: ignore[arg-type]


def test_every_error_is_a_content_error() -> None:
    for error in (InvalidDigest, DigestMismatch, SizeMismatch, BlobNotFound):
        assert issubclass(error, ContentError)


# Layout and reading


def test_a_new_store_creates_its_layout(tmp_path: Path) -> None:
    ContentStore(tmp_path / "new" / "root")
    root = tmp_path / "new" / "root"
    assert (root / "blobs" / "sha256").is_dir()
    assert (root / "ingest").is_dir()
    assert (root / "refs").is_dir()


def test_put_stores_a_read_only_blob_under_its_digest(store: ContentStore) -> None:
    info = store.put(b"hello")
    assert info == BlobInfo(HELLO_DIGEST, 5)
    path = store.root / "blobs" / "sha256" / parse_digest(HELLO_DIGEST)
    assert store.path(HELLO_DIGEST) == path
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.exists(HELLO_DIGEST)
    assert store.info(HELLO_DIGEST) == info
    assert store.read(HELLO_DIGEST) == b"hello"
    assert files_under(store.root / "ingest") == []


def test_open_gives_a_seekable_file(store: ContentStore) -> None:
    store.put(b"0123456789")
    with store.open(digest_bytes(b"0123456789")) as blob:
        blob.seek(4)
        assert blob.read(3) == b"456"
        blob.seek(-2, os.SEEK_END)
        assert blob.read() == b"89"


def test_the_empty_blob_can_be_stored(store: ContentStore) -> None:
    assert store.put(b"") == BlobInfo(EMPTY_DIGEST, 0)
    assert store.read(EMPTY_DIGEST) == b""


def test_a_missing_blob_is_unknown_in_every_read(store: ContentStore) -> None:
    assert not store.exists(MISSING_DIGEST)
    for call in (store.info, store.path, store.open, store.read, store.delete):
        with pytest.raises(BlobNotFound) as caught:
            call(MISSING_DIGEST)
        assert str(caught.value) == f"blob unknown: {MISSING_DIGEST}"


# Writing


def test_put_is_idempotent_and_does_not_rewrite_the_blob(store: ContentStore) -> None:
    first = store.put(b"hello")
    inode = store.path(HELLO_DIGEST).stat().st_ino
    second = store.put(b"hello", expected=HELLO_DIGEST)
    assert first == second
    assert store.path(HELLO_DIGEST).stat().st_ino == inode
    assert files_under(store.root / "blobs") == ["sha256/" + parse_digest(HELLO_DIGEST)]


def test_put_with_the_wrong_expected_digest_stores_nothing(store: ContentStore) -> None:
    with pytest.raises(DigestMismatch) as caught:
        store.put(b"hellO", expected=HELLO_DIGEST)
    assert str(caught.value) == (
        f"digest mismatch: expected {HELLO_DIGEST}, got {digest_bytes(b'hellO')}"
    )
    assert_nothing_stored(store)


def test_put_with_an_invalid_expected_digest_stores_nothing(store: ContentStore) -> None:
    with pytest.raises(InvalidDigest):
        store.put(b"hello", expected="sha256:zz")
    assert_nothing_stored(store)


def test_a_writer_tracks_the_size_and_digest_of_what_was_written(store: ContentStore) -> None:
    with store.writer() as writer:
        assert (writer.size, writer.digest) == (0, EMPTY_DIGEST)
        assert writer.write(b"hel") == 3
        assert writer.write(memoryview(b"lo")) == 2
        assert (writer.size, writer.digest) == (5, HELLO_DIGEST)
        info = writer.commit(HELLO_DIGEST, 5)
    assert info == BlobInfo(HELLO_DIGEST, 5)
    assert store.read(HELLO_DIGEST) == b"hello"
    assert files_under(store.root / "ingest") == []


def test_a_write_in_progress_lives_in_ingest_and_is_not_visible(store: ContentStore) -> None:
    with store.writer() as writer:
        writer.write(b"hello")
        assert len(files_under(store.root / "ingest")) == 1
        assert not store.exists(HELLO_DIGEST)
        assert list(store.walk()) == []
        writer.commit()
    assert store.exists(HELLO_DIGEST)


def test_a_corrupted_write_is_refused_and_leaves_nothing(store: ContentStore) -> None:
    layer = os.urandom(256 * 1024)
    expected = digest_bytes(layer)
    corrupted = bytearray(layer)
    corrupted[1000] ^= 0xFF
    writer = store.writer()
    writer.write(bytes(corrupted))
    with pytest.raises(DigestMismatch) as caught:
        writer.commit(expected, len(layer))
    assert str(caught.value) == (
        f"digest mismatch: expected {expected}, got {digest_bytes(bytes(corrupted))}"
    )
    assert_nothing_stored(store)
    assert not store.exists(expected)


def test_a_truncated_write_is_refused_for_its_size(store: ContentStore) -> None:
    with store.writer() as writer:
        writer.write(b"hell")
        with pytest.raises(SizeMismatch) as caught:
            writer.commit(HELLO_DIGEST, 5)
    assert str(caught.value) == "size mismatch: expected 5 bytes, got 4"
    assert_nothing_stored(store)


def test_commit_with_an_invalid_expected_digest_leaves_nothing(store: ContentStore) -> None:
    writer = store.writer()
    writer.write(b"hello")
    with pytest.raises(InvalidDigest):
        writer.commit("md5:5d41402abc4b2a76b9719d911017c592")
    assert_nothing_stored(store)


def test_a_write_that_fails_aborts_and_leaves_no_ingest(store: ContentStore) -> None:
    writer = store.writer()
    writer.write(b"some bytes")
    with pytest.raises(TypeError):
        writer.write("text, not bytes")  # type: ignore[arg-type]
    assert_nothing_stored(store)
    with pytest.raises(ContentError):
        writer.commit()


def test_leaving_a_writer_block_without_commit_aborts(store: ContentStore) -> None:
    with store.writer() as writer:
        writer.write(b"hello")
    assert_nothing_stored(store)


def test_an_exception_inside_a_writer_block_aborts(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"hello")
        raise RuntimeError("the upload broke off")
    assert_nothing_stored(store)


def test_a_writer_dropped_without_commit_or_abort_leaves_no_ingest(store: ContentStore) -> None:
    writer = store.writer()
    writer.write(b"forgotten")
    del writer
    gc.collect()
    assert_nothing_stored(store)


def test_abort_is_safe_to_repeat_and_closes_the_writer(store: ContentStore) -> None:
    writer = store.writer()
    writer.write(b"hello")
    writer.abort()
    writer.abort()
    assert_nothing_stored(store)
    with pytest.raises(ContentError):
        writer.write(b"more")


def test_a_committed_writer_cannot_be_written_or_committed_again(store: ContentStore) -> None:
    writer = store.writer()
    writer.write(b"hello")
    writer.commit()
    with pytest.raises(ContentError):
        writer.write(b"more")
    with pytest.raises(ContentError):
        writer.commit()
    writer.abort()  # a no-op once committed: the blob stays
    assert store.read(HELLO_DIGEST) == b"hello"


def test_committing_a_blob_that_exists_keeps_the_original(store: ContentStore) -> None:
    store.put(b"hello")
    inode = store.path(HELLO_DIGEST).stat().st_ino
    with store.writer() as writer:
        writer.write(b"hello")
        assert writer.commit(HELLO_DIGEST) == BlobInfo(HELLO_DIGEST, 5)
    assert store.path(HELLO_DIGEST).stat().st_ino == inode
    assert files_under(store.root / "ingest") == []


def test_concurrent_writers_of_the_same_content_end_with_one_blob(store: ContentStore) -> None:
    data = os.urandom(512 * 1024)
    expected = digest_bytes(data)
    writers = 12
    ready = threading.Barrier(writers)
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def write_in_chunks() -> None:
        try:
            with store.writer() as writer:
                for start in range(0, len(data), 64 * 1024):
                    writer.write(data[start : start + 64 * 1024])
                ready.wait(timeout=10)  # every writer commits at the same moment
                results.append(writer.commit(expected, len(data)))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write_in_chunks) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == [BlobInfo(expected, len(data))] * writers
    assert files_under(store.root / "blobs") == ["sha256/" + parse_digest(expected)]
    assert files_under(store.root / "ingest") == []
    assert hashlib.sha256(store.read(expected)).hexdigest() == parse_digest(expected)


def test_concurrent_puts_of_different_content_all_land(store: ContentStore) -> None:
    payloads = [f"blob {i}".encode() * 1000 for i in range(20)]
    threads = [threading.Thread(target=store.put, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert {info.digest for info in store.walk()} == {digest_bytes(p) for p in payloads}
    assert files_under(store.root / "ingest") == []


def test_stale_ingests_are_removed_and_live_ones_kept(store: ContentStore) -> None:
    stale = store.root / "ingest" / "left-by-a-crash"
    stale.write_bytes(b"half a layer")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    with store.writer() as live:
        live.write(b"still uploading")
        assert store.remove_stale_ingests(older_than_seconds=600) == ["left-by-a-crash"]
        assert len(files_under(store.root / "ingest")) == 1
        live.commit()
    assert store.read(digest_bytes(b"still uploading")) == b"still uploading"


# Walking and deleting


def test_walk_lists_every_blob_with_its_size_in_digest_order(store: ContentStore) -> None:
    payloads = [b"a", b"bb", b"ccc", b"dddd"]
    for payload in payloads:
        store.put(payload)
    (store.root / "blobs" / "sha256" / "not-a-digest").write_bytes(b"stray")
    expected = sorted(
        (BlobInfo(digest_bytes(p), len(p)) for p in payloads), key=lambda info: info.digest
    )
    assert list(store.walk()) == expected


def test_delete_removes_the_blob_and_its_references(store: ContentStore) -> None:
    store.put(b"hello")
    store.add_ref(HELLO_DIGEST, "image/one")
    store.delete(HELLO_DIGEST)
    assert not store.exists(HELLO_DIGEST)
    assert store.refs(HELLO_DIGEST) == set()
    assert files_under(store.root / "refs" / "sha256") == []
    with pytest.raises(BlobNotFound):
        store.delete(HELLO_DIGEST)


# References and collection


def test_references_are_counted_by_owner(store: ContentStore) -> None:
    store.put(b"hello")
    assert store.refs(HELLO_DIGEST) == set()
    store.add_ref(HELLO_DIGEST, "image/sha256:" + "1" * 64)
    store.add_ref(HELLO_DIGEST, "hub/library/redis")
    store.add_ref(HELLO_DIGEST, "hub/library/redis")  # twice is once
    assert store.refs(HELLO_DIGEST) == {"image/sha256:" + "1" * 64, "hub/library/redis"}
    store.remove_ref(HELLO_DIGEST, "hub/library/redis")
    store.remove_ref(HELLO_DIGEST, "hub/library/redis")  # removing a missing ref is harmless
    assert store.refs(HELLO_DIGEST) == {"image/sha256:" + "1" * 64}


@pytest.mark.parametrize(
    "owner",
    [
        "image/sha256:" + "ab" * 32,
        "hub/docker.io/library/redis:7.0",
        ".",
        "..",
        "../../../../etc/passwd",
        ".hidden",
        "~tilde",
        "100% sure",
        "snapshots/ünïcødé/名前",
        "x" * 1000,  # longer than a file name can be
        "/" * 300,
    ],
)
def test_any_owner_string_is_stored_under_one_safe_file_name(
    store: ContentStore, owner: str
) -> None:
    store.put(b"hello")
    store.add_ref(HELLO_DIGEST, owner)
    directory = store.root / "refs" / "sha256" / parse_digest(HELLO_DIGEST)
    names = os.listdir(directory)
    assert len(names) == 1
    assert "/" not in names[0] and names[0] not in (".", "..") and not names[0].startswith(".")
    assert len(names[0].encode()) <= 255
    assert store.refs(HELLO_DIGEST) == {owner}
    store.remove_ref(HELLO_DIGEST, owner)
    assert store.refs(HELLO_DIGEST) == set()
    assert not directory.exists()


def test_an_empty_owner_is_refused(store: ContentStore) -> None:
    store.put(b"hello")
    with pytest.raises(ValueError):
        store.add_ref(HELLO_DIGEST, "")


def test_a_reference_needs_the_blob(store: ContentStore) -> None:
    with pytest.raises(BlobNotFound):
        store.add_ref(MISSING_DIGEST, "image/one")
    assert files_under(store.root / "refs" / "sha256") == []


def test_references_survive_reopening_the_store(store: ContentStore) -> None:
    store.put(b"hello")
    store.add_ref(HELLO_DIGEST, "image/one")
    reopened = ContentStore(store.root)
    assert reopened.refs(HELLO_DIGEST) == {"image/one"}
    assert reopened.collect() == []


def test_collect_deletes_only_blobs_nobody_holds(store: ContentStore) -> None:
    held, shared, loose = b"held", b"shared", b"loose"
    for payload in (held, shared, loose):
        store.put(payload)
    store.add_ref(digest_bytes(held), "image/a")
    store.add_ref(digest_bytes(shared), "image/a")
    store.add_ref(digest_bytes(shared), "image/b")

    assert store.collect() == [digest_bytes(loose)]
    assert {info.digest for info in store.walk()} == {digest_bytes(held), digest_bytes(shared)}

    store.remove_ref(digest_bytes(shared), "image/a")
    assert store.collect() == []  # image/b still holds it
    store.remove_ref(digest_bytes(shared), "image/b")
    store.remove_ref(digest_bytes(held), "image/a")
    assert sorted(store.collect()) == sorted([digest_bytes(held), digest_bytes(shared)])
    assert list(store.walk()) == []
    assert files_under(store.root / "refs" / "sha256") == []


def test_collect_clears_references_left_without_their_blob(store: ContentStore) -> None:
    store.put(b"hello")
    store.add_ref(HELLO_DIGEST, "image/one")
    store.path(HELLO_DIGEST).unlink()  # as if a delete was interrupted half-way
    assert store.collect() == []
    assert files_under(store.root / "refs" / "sha256") == []


def test_collect_racing_reference_changes_never_loses_a_held_blob(store: ContentStore) -> None:
    kept = b"always held"
    store.put(kept)
    store.add_ref(digest_bytes(kept), "image/keeper")
    churn = [f"churn {i}".encode() for i in range(8)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn_references(payload: bytes) -> None:
        digest = digest_bytes(payload)
        try:
            while not stop.is_set():
                store.put(payload)
                try:
                    store.add_ref(digest, "image/churn")
                except BlobNotFound:
                    continue  # collected between put and add_ref: the documented race
                assert store.exists(digest)  # a held blob is never collected
                store.remove_ref(digest, "image/churn")
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    def collect_repeatedly() -> None:
        try:
            while not stop.is_set():
                store.collect()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=churn_references, args=(p,)) for p in churn]
    threads.append(threading.Thread(target=collect_repeatedly))
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert store.read(digest_bytes(kept)) == kept
    store.collect()
    assert [info.digest for info in store.walk()] == [digest_bytes(kept)]
    assert os.listdir(store.root / "refs" / "sha256") == [parse_digest(digest_bytes(kept))]
    assert files_under(store.root / "ingest") == []
