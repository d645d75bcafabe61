"""Tests for tools/verify-format.py against docs/FORMAT.md: the worked examples of §11 (events,
head, block header, block head), the example store built from them (with metadata/current_block),
and the rules the document states: §3.1 tree, §4 content, the report table of §6, §7 head,
§8.5 block head, §8.6 torn block header and the byte-precise tail rule of §10.

Run: python3 -m unittest discover -s tools -p 'test_*.py' -v
Standard library only.
"""

import base64
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
FORMAT_MD = os.path.join(HERE, "..", "docs", "FORMAT.md")
VERIFIER = os.path.join(HERE, "verify-format.py")

_spec = importlib.util.spec_from_file_location("verify_format", VERIFIER)
vf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vf)


def fenced_blocks(path):
    """{name: text} for every fenced block whose info string is `<lang> <name>`."""
    with open(path, encoding="utf-8") as f:
        md = f.read()
    out = {}
    for m in re.finditer(r"^```[A-Za-z0-9]+ ([A-Za-z0-9-]+)\n(.*?)^```\s*$", md, re.M | re.S):
        name = m.group(1)
        if name in out:
            raise AssertionError("fenced block %s appears twice" % name)
        out[name] = m.group(2)
    return out, md


BLOCKS, MD = fenced_blocks(FORMAT_MD)
EVENT_LINES = [l.encode("utf-8") + b"\n" for l in BLOCKS["example-events"].splitlines()]
HEAD = BLOCKS["example-head"].encode("utf-8")
BLOCK_LINES = [l.encode("utf-8") + b"\n" for l in BLOCKS["example-blocks"].splitlines()]
BLOCK_HEAD = BLOCKS["example-block-head"].encode("utf-8")
BLOB_HASH = "bca09f4a757d5571c7d9f3341d4301f3c391c090826acc1a3013c6bcb7c01722"
BLOB = b"x" * 70000


def sha(b):
    return hashlib.sha256(b).hexdigest()


def run(store):
    """Verify in-process; returns the JSON result dict."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = vf.main([store, "--json"])
    res = json.loads(buf.getvalue())
    res["rc"] = rc
    return res


def make_events(dicts):
    """Chain event dicts (without seq/prev/hash) into canonical lines."""
    lines, prev = [], "0" * 64
    for i, d in enumerate(dicts):
        ev = dict(d)
        ev["seq"] = i
        ev["prev"] = prev
        canon = vf.canonical_bytes(ev, vf.EVENT_KEYS)
        h = sha(canon)
        lines.append(vf.stored_line(canon, h))
        prev = h
    return lines, prev


def prov(t, **kw):
    d = {"time": t, "uid": 1000, "gid": 1000, "pid": 42, "proc": "test"}
    d.update(kw)
    return d


GENESIS = prov("2026-01-01T00:00:00.000000000Z", op="genesis", store="s", format="layerfs-events/1")


UNCLEAN = b"pid 4711 (layerfs) on edge-1 since 2026-11-21T09:00:00.000000000Z\n"
AUTO = object()


def block_head_for(blocks):
    """metadata/current_block naming the last complete line of `blocks` (None: no blocks)."""
    complete = [l for l in b"".join(blocks).split(b"\n")[:-1]]
    if not complete:
        return None
    b = json.loads(complete[-1])
    return ("%s %020d\n" % (b["hash"], b["block"])).encode()


class Store:
    """A store in a temp dir, built from the §11 example unless told otherwise.

    block_head: AUTO names the last complete line of `blocks` (absent when there is none),
    None leaves metadata/current_block out, bytes are written as they are."""

    def __init__(self, testcase, events=None, head=None, blocks=None, blob=True, lock=b"",
                 block_head=AUTO):
        self.dir = tempfile.mkdtemp(prefix="layerfs-verify-test-")
        testcase.addCleanup(shutil.rmtree, self.dir)
        os.makedirs(os.path.join(self.dir, "metadata"))
        os.makedirs(os.path.join(self.dir, "objects", BLOB_HASH[:2]))
        blocks = BLOCK_LINES if blocks is None else blocks
        self.write("events.jsonl", b"".join(EVENT_LINES if events is None else events))
        self.write("metadata/current_hash", HEAD if head is None else head)
        self.write("blocks.jsonl", b"".join(blocks))
        self.write("metadata/writer.lock", lock)
        if block_head is AUTO:
            block_head = block_head_for(blocks)
        if block_head is not None:
            self.write("metadata/current_block", block_head)
        if blob:
            self.write("objects/%s/%s" % (BLOB_HASH[:2], BLOB_HASH[2:]), BLOB)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def write(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data)

    def read(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()


def make_block(n, first, last, prev, t, events=None):
    """A header line for events first..last of `events` (default: §11.1) and its hash."""
    hashes = [bytes.fromhex(json.loads(l)["hash"]) for l in (EVENT_LINES if events is None else events)]
    b = {"block": n, "first": first, "last": last, "count": last - first + 1,
         "root": vf.merkle_root(hashes[first:last + 1]).hex(), "prev": prev, "time": t}
    c = vf.canonical_bytes(b, vf.BLOCK_KEYS)
    return vf.stored_line(c, sha(c)), sha(c)


def two_blocks():
    """Blocks 1 (events 0..4) and 2 (5..11) over §11.1, and a block head naming block 2."""
    b1, h1 = make_block(1, 0, 4, "0" * 64, "2026-11-21T09:00:03.000000000Z")
    b2, h2 = make_block(2, 5, 11, h1, "2026-11-21T09:00:11.000000000Z")
    return b1, b2, ("%s %020d\n" % (h2, 2)).encode()


def head_for(lines, seq=None):
    if seq is None:
        seq = len(lines) - 1
    h = json.loads(lines[seq])["hash"]
    return ("%s %020d\n" % (h, seq)).encode()


# --------------------------------------------------------------------------- the document's vectors

class TestVectors(unittest.TestCase):
    def test_all_blocks_present(self):
        for name in ["example-events", "example-head", "example-blocks", "example-block-head",
                     "canonical-0", "hash-0",
                     "canonical-2", "hash-2", "canonical-3", "hash-3", "canonical-4", "hash-4",
                     "canonical-9", "hash-9", "merkle-3", "block-canonical", "block-hash"]:
            self.assertIn(name, BLOCKS)
        self.assertEqual(len(EVENT_LINES), 12)

    def test_canonical_and_hash_vectors(self):
        names = sorted(n for n in BLOCKS if n.startswith("canonical-"))
        self.assertEqual(names, ["canonical-0", "canonical-2", "canonical-3", "canonical-4", "canonical-9"])
        for name in names:
            n = int(name.split("-")[1])
            with self.subTest(event=n):
                expect = BLOCKS[name].rstrip("\n").encode("utf-8")
                ev = vf.parse_json_line(EVENT_LINES[n][:-1])
                canon = vf.canonical_bytes(ev, vf.EVENT_KEYS)
                self.assertEqual(canon, expect)
                self.assertEqual(sha(canon), BLOCKS["hash-%d" % n].strip())
                self.assertEqual(vf.stored_line(canon, sha(canon)), EVENT_LINES[n])

    def test_every_example_line_is_canonical_and_chained(self):
        prev = "0" * 64
        for i, line in enumerate(EVENT_LINES):
            with self.subTest(event=i):
                ev = vf.parse_json_line(line[:-1])
                self.assertEqual(ev["seq"], i)
                self.assertEqual(ev["prev"], prev)
                canon = vf.canonical_bytes(ev, vf.EVENT_KEYS)
                self.assertEqual(ev["hash"], sha(canon))
                self.assertEqual(vf.stored_line(canon, ev["hash"]), line)
                prev = ev["hash"]

    def test_event2_text_is_31_bytes(self):
        ev = vf.parse_json_line(EVENT_LINES[2][:-1])
        self.assertEqual(ev["text"], 'Welcome to "edge-1"\n\tcafé ☕\n')
        self.assertEqual(len(ev["text"].encode("utf-8")), 31)
        self.assertEqual(ev["size"], 31)
        ev3 = vf.parse_json_line(EVENT_LINES[3][:-1])
        self.assertEqual(base64.b64decode(ev3["base64"]), bytes([0x00, 0xFF, 0x10, 0x80, 0x7F]))

    def test_blob_hash(self):
        self.assertEqual(sha(BLOB), BLOB_HASH)
        self.assertIn(BLOB_HASH, MD)

    def test_merkle_3(self):
        vals = dict(l.split() for l in BLOCKS["merkle-3"].strip().splitlines())
        hashes = [bytes.fromhex(vf.parse_json_line(EVENT_LINES[i][:-1])["hash"]) for i in range(3)]
        leaves = [hashlib.sha256(b"\x00" + h).digest() for h in hashes]
        for i in range(3):
            self.assertEqual(leaves[i].hex(), vals["leaf%d" % i])
        node01 = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
        self.assertEqual(node01.hex(), vals["node01"])
        root = hashlib.sha256(b"\x01" + node01 + leaves[2]).digest()
        self.assertEqual(root.hex(), vals["root"])
        self.assertEqual(vf.merkle_root(hashes).hex(), vals["root"])

    def test_merkle_12_and_empty(self):
        hashes = [bytes.fromhex(vf.parse_json_line(l[:-1])["hash"]) for l in EVENT_LINES]
        root12 = vf.merkle_root(hashes).hex()
        m = re.search(r"root of all 12 events .*? is `([0-9a-f]{64})`", MD, re.S)
        self.assertEqual(root12, m.group(1))
        self.assertEqual(root12, "834f03db09ac75f22e3972ac3c5b41f2e7989bcddcaecfe2a92058a371498fa4")
        m = re.search(r"root of no events is\s*`([0-9a-f]{64})`", MD, re.S)
        self.assertEqual(vf.merkle_root([]).hex(), m.group(1))

    def test_block_vectors(self):
        b = vf.parse_json_line(BLOCK_LINES[0][:-1])
        canon = vf.canonical_bytes(b, vf.BLOCK_KEYS)
        self.assertEqual(canon, BLOCKS["block-canonical"].rstrip("\n").encode())
        self.assertEqual(sha(canon), BLOCKS["block-hash"].strip())
        self.assertEqual(vf.stored_line(canon, sha(canon)), BLOCK_LINES[0])
        self.assertIn("block-1-%s" % sha(canon)[:12], MD)

    def test_head_vector(self):
        self.assertEqual(len(HEAD), 86)
        last = vf.parse_json_line(EVENT_LINES[-1][:-1])
        self.assertEqual(HEAD, ("%s %020d\n" % (last["hash"], 11)).encode())


# --------------------------------------------------------------------------- the example store

class TestExampleStore(unittest.TestCase):
    def assertBadEvent(self, res, seq):
        self.assertFalse(res["ok"], res)
        self.assertEqual(res["rc"], 1)
        self.assertEqual(res["first_bad_event"], seq, res)

    def test_ok(self):
        s = Store(self)
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual((res["events"], res["blocks"], res["tail_bytes"]), (12, 1, 0))
        self.assertIsNone(res["first_bad_event"])
        self.assertIsNone(res["first_bad_block"])
        self.assertEqual(res["rc"], 0)

    def test_cli_text_output(self):
        s = Store(self)
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.splitlines()[0], "OK: 12 events, 1 blocks, head "
                         "0da37a95aed4ee67ca35f676758b5681400c1358b0b822e0e48d787dbdc60339")
        p = subprocess.run([sys.executable, VERIFIER, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("STORE", p.stdout)
        s.write("events.jsonl", b"".join(EVENT_LINES[:5] + EVENT_LINES[6:]))
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stdout.startswith("FAILED: event 5: "), p.stdout)

    def test_no_blocks_file_is_ok(self):
        # never sealed: neither blocks.jsonl nor metadata/current_block (§8.5: absent until the first seal)
        s = Store(self, block_head=None)
        os.remove(s.path("blocks.jsonl"))
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["blocks"], 0)
        s = Store(self, blocks=[])
        self.assertFalse(os.path.exists(s.path("metadata/current_block")))
        self.assertTrue(run(s.dir)["ok"])

    def test_blocks_file_deleted_but_block_head_names_block(self):
        s = Store(self)
        os.remove(s.path("blocks.jsonl"))
        res = run(s.dir)
        self.assertEqual(res["first_bad_block"], 1, res)       # the first missing block
        self.assertIsNone(res["first_bad_event"], res)

    def test_change_every_byte_of_every_line(self):
        s = Store(self)
        for i, line in enumerate(EVENT_LINES):
            for pos in range(len(line)):
                for xor in (0x01, 0x20):
                    bad = bytearray(line)
                    bad[pos] ^= xor
                    lines = list(EVENT_LINES)
                    lines[i] = bytes(bad)
                    s.write("events.jsonl", b"".join(lines))
                    res = run(s.dir)
                    with self.subTest(line=i, pos=pos, xor=xor):
                        self.assertBadEvent(res, i)

    def test_delete_middle_line(self):
        for i in range(1, 11):
            with self.subTest(deleted=i):
                s = Store(self, events=EVENT_LINES[:i] + EVENT_LINES[i + 1:])
                self.assertBadEvent(run(s.dir), i)

    def test_delete_first_line(self):
        s = Store(self, events=EVENT_LINES[1:])
        self.assertBadEvent(run(s.dir), 0)

    def test_delete_last_line(self):
        s = Store(self, events=EVENT_LINES[:-1])
        res = run(s.dir)
        self.assertBadEvent(res, 11)
        # with a dirty writer.lock too: the head still names event 11
        s = Store(self, events=EVENT_LINES[:-1], lock=b"pid 1 (layerfs) on h since 2026-11-21T09:00:00.000000000Z\n")
        self.assertBadEvent(run(s.dir), 11)

    def test_delete_last_line_and_head(self):
        lines = EVENT_LINES[:-1]
        s = Store(self, events=lines, head=head_for(lines), blocks=[])
        res = run(s.dir)
        self.assertTrue(res["ok"], res)   # truncating log + head consistently is undetectable
        s = Store(self, events=lines, head=head_for(lines))
        res = run(s.dir)                  # ... unless a block covers the lost event
        self.assertEqual(res["first_bad_event"], 11)     # §6, §8.1: the first missing event
        self.assertIsNone(res["first_bad_block"], res)   # the header itself is fine

    def test_swap_lines(self):
        for i in range(0, 11):
            with self.subTest(swap=(i, i + 1)):
                lines = list(EVENT_LINES)
                lines[i], lines[i + 1] = lines[i + 1], lines[i]
                s = Store(self, events=lines)
                self.assertBadEvent(run(s.dir), i)

    def test_duplicate_line(self):
        for i in range(0, 12):
            with self.subTest(duplicated=i):
                lines = EVENT_LINES[:i + 1] + [EVENT_LINES[i]] + EVENT_LINES[i + 1:]
                s = Store(self, events=lines)
                self.assertBadEvent(run(s.dir), i + 1)

    def test_blob_edited(self):
        s = Store(self)
        s.write("objects/bc/" + BLOB_HASH[2:], b"x" * 69999 + b"y")
        res = run(s.dir)
        self.assertBadEvent(res, 9)
        self.assertIn("hash", res["reason"])

    def test_blob_wrong_size(self):
        s = Store(self)
        s.write("objects/bc/" + BLOB_HASH[2:], b"x" * 70001)
        self.assertBadEvent(run(s.dir), 9)

    def test_blob_deleted(self):
        s = Store(self, blob=False)
        res = run(s.dir)
        self.assertBadEvent(res, 9)
        self.assertIn("missing", res["reason"])

    def test_wrong_head_hash(self):
        h = bytearray(HEAD)
        h[0] ^= 0x01 if h[0] != ord("f") else 0x03   # still lowercase hex
        s = Store(self, head=bytes(h))
        res = run(s.dir)
        self.assertBadEvent(res, 11)
        self.assertIn("head", res["reason"])

    def test_head_names_other_events_hash(self):
        h = json.loads(EVENT_LINES[10])["hash"]
        s = Store(self, head=("%s %020d\n" % (h, 11)).encode())
        self.assertBadEvent(run(s.dir), 11)

    def test_head_beyond_log(self):
        h = json.loads(EVENT_LINES[11])["hash"]
        s = Store(self, head=("%s %020d\n" % (h, 15)).encode())
        self.assertBadEvent(run(s.dir), 12)

    def test_head_lagging_clean_and_unclean(self):
        s = Store(self, head=head_for(EVENT_LINES, 9))
        res = run(s.dir)
        self.assertBadEvent(res, 10)
        s = Store(self, head=head_for(EVENT_LINES, 9),
                  lock=b"pid 4711 (layerfs) on edge-1 since 2026-11-21T09:00:00.000000000Z\n")
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertTrue(res["notes"], res)

    def test_head_malformed_or_missing(self):
        h = HEAD[:64].decode()
        for head in (HEAD[:-1], HEAD + b"\n", HEAD.upper(), HEAD.replace(b" ", b"\t"), b"",
                     ("%s %019d\n" % (h, 11)).encode(), ("%s 11\n" % h).encode(),
                     ("%s %020d\r\n" % (h, 11)).encode(), ("%s  %020d\n" % (h, 11)).encode()):
            with self.subTest(head=head):
                s = Store(self, head=head)
                res = run(s.dir)
                self.assertFalse(res["ok"], res)
                self.assertEqual(res["first_bad_event"], 11, res)   # the last event
        s = Store(self)
        os.remove(s.path("metadata/current_hash"))
        res = run(s.dir)
        self.assertFalse(res["ok"])
        self.assertEqual(res["first_bad_event"], 11, res)
        self.assertIn("missing", res["reason"])

    def test_not_a_store(self):
        s = Store(self)
        os.remove(s.path("events.jsonl"))
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([sys.executable, VERIFIER, os.path.join(s.dir, "nope")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)

    # ---- torn block header (§8.6)

    def test_torn_block_header_is_not_damage(self):
        for torn in (b'{"block":2,"fi', b"\0" * 8, BLOCK_LINES[0][:-1], b"x", b'{"block":2'):
            for lock in (b"", UNCLEAN):
                with self.subTest(torn=torn[-10:], lock=lock):
                    res = run(Store(self, blocks=[BLOCK_LINES[0], torn], block_head=BLOCK_HEAD, lock=lock).dir)
                    self.assertTrue(res["ok"], res)
                    self.assertEqual((res["blocks"], res["block_tail_bytes"]), (1, len(torn)))
        # only a torn header, never sealed before: no blocks, no block head
        res = run(Store(self, blocks=[BLOCK_LINES[0][:-1]]).dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual((res["blocks"], res["block_tail_bytes"]), (0, len(BLOCK_LINES[0]) - 1))

    def test_torn_block_header_named_by_block_head(self):
        # the last header lost its LF, but metadata/current_block names it: damage, clean or not
        for lock in (b"", UNCLEAN):
            with self.subTest(lock=lock):
                res = run(Store(self, blocks=[BLOCK_LINES[0][:-1]], block_head=BLOCK_HEAD, lock=lock).dir)
                self.assertEqual(res["first_bad_block"], 1, res)
                self.assertIsNone(res["first_bad_event"], res)
                self.assertIn("torn", res["reason"])
        b1, b2, bh2 = two_blocks()
        for lock in (b"", UNCLEAN):
            with self.subTest(lock=lock):
                res = run(Store(self, blocks=[b1, b2[:-1]], block_head=bh2, lock=lock).dir)
                self.assertEqual(res["first_bad_block"], 2, res)

    def test_complete_bad_block_line_is_damage(self):
        for line in (b"\0" * 8 + b"\n", b"\n", b"garbage\n", BLOCK_LINES[0]):
            with self.subTest(line=line[:10]):
                res = run(Store(self, blocks=[BLOCK_LINES[0], line], block_head=BLOCK_HEAD).dir)
                self.assertEqual(res["first_bad_block"], 2, res)

    def test_change_every_byte_of_blocks(self):
        line = BLOCK_LINES[0]
        s = Store(self)
        for pos in range(len(line)):
            for xor in (0x01, 0x20):
                bad = bytearray(line)
                bad[pos] ^= xor
                s.write("blocks.jsonl", bytes(bad))
                res = run(s.dir)
                with self.subTest(pos=pos, xor=xor):
                    self.assertFalse(res["ok"], res)
                    self.assertIsNone(res["first_bad_event"], res)
                    self.assertEqual(res["first_bad_block"], 1, res)

    def test_block_time_before_last_event(self):
        # re-seal block 1 with a time before event 11's time, hash recomputed
        b = vf.parse_json_line(BLOCK_LINES[0][:-1])
        b["time"] = "2026-11-21T09:00:09.999999999Z"
        canon = vf.canonical_bytes(b, vf.BLOCK_KEYS)
        s = Store(self, blocks=[vf.stored_line(canon, sha(canon))])
        res = run(s.dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        self.assertIn("time", res["reason"])

    def test_two_blocks(self):
        b1, h1 = make_block(1, 0, 4, "0" * 64, "2026-11-21T09:00:03.000000000Z")
        b2, h2 = make_block(2, 5, 11, h1, "2026-11-21T09:00:11.000000000Z")
        s = Store(self, blocks=[b1, b2])
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["blocks"], 2)
        b2bad, _ = make_block(2, 6, 11, h1, "2026-11-21T09:00:11.000000000Z")   # gap
        self.assertEqual(run(Store(self, blocks=[b1, b2bad]).dir)["first_bad_block"], 2)
        b2bad, _ = make_block(2, 5, 11, "0" * 64, "2026-11-21T09:00:11.000000000Z")  # broken chain
        self.assertEqual(run(Store(self, blocks=[b1, b2bad]).dir)["first_bad_block"], 2)
        b2part, _ = make_block(2, 5, 10, h1, "2026-11-21T09:00:11.000000000Z")  # event 11 unsealed: fine
        self.assertTrue(run(Store(self, blocks=[b1, b2part]).dir)["ok"])
        b = json.loads(b2part)                                              # root of 5..10, range 5..11
        b.update(last=11, count=7)
        del b["hash"]
        c = vf.canonical_bytes(b, vf.BLOCK_KEYS)
        res = run(Store(self, blocks=[b1, vf.stored_line(c, sha(c))]).dir)
        self.assertEqual(res["first_bad_block"], 2, res)
        self.assertIn("root", res["reason"])
        b2bad, _ = make_block(2, 5, 12, h1, "2026-11-21T09:00:11.000000000Z")   # beyond the log
        res = run(Store(self, blocks=[b1, b2bad]).dir)
        self.assertEqual(res["first_bad_event"], 12, res)                   # §6: the first missing event
        self.assertIsNone(res["first_bad_block"], res)
        self.assertEqual(run(Store(self, blocks=[b2, b1]).dir)["first_bad_block"], 1)
        self.assertEqual(run(Store(self, blocks=[b1, b1]).dir)["first_bad_block"], 2)

    # ---- torn tails (§10)

    def test_tail_partial_line(self):
        nxt = EVENT_LINES[11][:57]
        s = Store(self, events=EVENT_LINES + [nxt])
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["tail_bytes"], 57)
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("TAIL: 57 bytes after event 11", p.stdout.splitlines())

    def test_tail_zeros(self):
        for tail in (b"\0" * 4096, b"\0" * 100 + b"\n", b"\0\n\0\n\0"):
            with self.subTest(tail=tail[:8]):
                s = Store(self, events=EVENT_LINES + [tail])
                res = run(s.dir)
                self.assertTrue(res["ok"], res)
                self.assertEqual(res["tail_bytes"], len(tail))

    def test_tail_with_lagging_head_unclean(self):
        # the writer crashed while appending event 11: head at 10, line 11 without LF
        s = Store(self, events=EVENT_LINES[:11] + [EVENT_LINES[11][:-1]], head=head_for(EVENT_LINES, 10),
                  blocks=[], lock=b"pid 1 (layerfs) on h since 2026-11-21T09:00:00.000000000Z\n")
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["events"], 11)
        self.assertEqual(res["tail_bytes"], len(EVENT_LINES[11]) - 1)

    def test_tail_named_by_head_is_damage(self):
        # last line lost its LF but the head names it
        s = Store(self, events=EVENT_LINES[:11] + [EVENT_LINES[11][:-1]])
        self.assertBadEvent(run(s.dir), 11)
        # last line is garbage but complete, and the head names it
        s = Store(self, events=EVENT_LINES[:11] + [b"\0" * 50 + b"\n"])
        self.assertBadEvent(run(s.dir), 11)

    def test_garbage_followed_by_event_is_damage(self):
        s = Store(self, events=EVENT_LINES[:6] + [b"garbage\n"] + EVENT_LINES[6:])
        self.assertBadEvent(run(s.dir), 6)
        s = Store(self, events=EVENT_LINES + [b"\0" * 10 + b"\n", EVENT_LINES[11]])
        self.assertBadEvent(run(s.dir), 12)


# --------------------------------------------------------------------------- synthetic stores

class TestRules(unittest.TestCase):
    def check(self, dicts, bad=None, raw_lines=None, lock=b""):
        lines, _ = make_events(dicts)
        head = head_for(lines)
        if raw_lines:
            for i, l in raw_lines.items():
                lines[i] = l
        s = Store(self, events=lines, head=head, blocks=[], lock=lock)
        res = run(s.dir)
        if bad is None:
            self.assertTrue(res["ok"], res)
        else:
            self.assertEqual(res["first_bad_event"], bad, res)
        return res

    def t(self, n):
        return "2026-01-01T00:00:%02d.000000000Z" % n

    def test_minimal(self):
        self.check([GENESIS])

    def test_empty_log(self):
        s = Store(self, events=[], head=b"0" * 64 + b" " + b"0" * 20 + b"\n", blocks=[])
        self.assertEqual(run(s.dir)["first_bad_event"], 0)

    def test_genesis_rules(self):
        self.check([prov(self.t(0), op="mkdir", path="/a", mode="0755")], bad=0)
        self.check([dict(GENESIS, format="layerfs-events/2")], bad=0)
        self.check([GENESIS, dict(GENESIS, time=self.t(1))], bad=1)
        self.check([dict(GENESIS, path="/x")], bad=0)

    def test_time_order(self):
        self.check([GENESIS, prov(self.t(5), op="mkdir", path="/a", mode="0755"),
                    prov(self.t(5), op="mkdir", path="/b", mode="0755"),
                    prov(self.t(4), op="mkdir", path="/c", mode="0755")], bad=3)

    def test_timestamps(self):
        for ts in ("2026-02-29T00:00:00.000000000Z", "2026-01-01T24:00:00.000000000Z",
                   "2026-01-01T00:00:60.000000000Z", "2026-01-01T00:00:00.00000000Z",
                   "2026-01-01T00:00:00.000000000+00:00", "1677-12-31T23:59:59.999999999Z",
                   "2262-01-01T00:00:00.000000000Z", "2026-01-01t00:00:00.000000000Z",
                   "２026-01-01T00:00:00.000000000Z"):
            with self.subTest(ts=ts):
                self.check([dict(GENESIS, time=ts)], bad=0)
        for ts in ("2024-02-29T23:59:59.999999999Z", "1678-01-01T00:00:00.000000000Z",
                   "2261-12-31T23:59:59.999999999Z"):
            with self.subTest(ts=ts):
                self.check([dict(GENESIS, time=ts)])

    def test_fields_per_op(self):
        g = GENESIS
        t = self.t(1)
        cases = [
            (prov(t, op="mkdir", path="/a"), 1),                                  # missing mode
            (prov(t, op="mkdir", path="/a", mode="0755", size=0), 1),             # extra key
            (prov(t, op="mkdir", path="/a", mode="755"), 1),
            (prov(t, op="mkdir", path="/a", mode="0855"), 1),
            (prov(t, op="chown", path="/"), 1),                                   # neither owner nor group
            (prov(t, op="chown", path="/", owner=4294967296), 1),
            (prov(t, op="write", path="/f", mode="0644", size=1, text="a", base64="YQ=="), 1),
            (prov(t, op="write", path="/f", mode="0644", size=1), 1),
            (prov(t, op="frob", path="/f"), 1),
            (prov(t, op="mkdir", path="/a", mode="0755", pid=2147483648), 1),
            (prov(t, op="mkdir", path="/a", mode="0755", proc="a\x7f"), 1),
            (prov(t, op="mkdir", path="/a", mode="0755", proc="x" * 65), 1),
            (prov(t, op="symlink", path="/l", target=""), 1),
            (prov(t, op="symlink", path="/l", target="a\x00b"), 1),
        ]
        for ev, bad in cases:
            with self.subTest(ev=ev):
                self.check([g, ev], bad=bad)
        self.check([g, prov(t, op="chown", path="/", owner=4294967295)])
        self.check([g, prov(t, op="chown", path="/", group=0)])
        self.check([g, prov(t, op="mkdir", path="/a", mode="0755", proc="", pid=2147483647,
                            uid=4294967295)])
        self.check([g, prov(t, op="mkdir", path="/a", mode="0755", proc="x" * 64)])

    def test_paths(self):
        t = self.t(1)
        for p in ("a", "/a/", "//a", "/a//b", "/.", "/a/..", "/@a", "/" + "x" * 256, "/a\x00"):
            with self.subTest(path=p):
                self.check([GENESIS, prov(t, op="mkdir", path=p, mode="0755")], bad=1)
        self.check([GENESIS, prov(t, op="mkdir", path="/" + "é" * 127, mode="0755")])
        self.check([GENESIS, prov(t, op="mkdir", path="/a@", mode="0755"),
                    prov(t, op="mkdir", path="/a@/@b", mode="0755"),
                    prov(t, op="mkdir", path="/a\nb", mode="0755")])
        for op in ("chmod", "chown", "utimens"):
            extra = {"chmod": {"mode": "0700"}, "chown": {"owner": 1}, "utimens": {"mtime": t}}[op]
            self.check([GENESIS, prov(t, op=op, path="/", **extra)])
        for ev in (prov(t, op="rmdir", path="/"), prov(t, op="unlink", path="/"),
                   prov(t, op="mkdir", path="/", mode="0755")):
            self.check([GENESIS, ev], bad=1)

    def test_content_rules(self):
        t = self.t(1)
        w = lambda **kw: prov(t, op="write", path="/f", mode="0644", **kw)
        self.check([GENESIS, w(size=0, text="")])
        self.check([GENESIS, w(size=3, text="\x01\x1f\x7f")])
        self.check([GENESIS, w(size=2, text="ab")])
        self.check([GENESIS, w(size=3, text="ab")], bad=1)                  # size
        self.check([GENESIS, w(size=1, text="\x00")], bad=1)                # NUL must be base64
        self.check([GENESIS, w(size=1, base64="AA==")])                     # ... like this
        self.check([GENESIS, w(size=2, base64="YWI=")], bad=1)              # "ab" must be text
        self.check([GENESIS, w(size=2, base64="YWJ=")], bad=1)              # non-canonical bits
        self.check([GENESIS, w(size=2, base64="/w8")], bad=1)               # no padding
        self.check([GENESIS, w(size=65536, text="y" * 65536)])
        self.check([GENESIS, w(size=65537, text="y" * 65537)])             # §4: inline at any size
        self.check([GENESIS, w(size=70000, base64=base64.b64encode(b"\xff" * 70000).decode())])
        self.check([GENESIS, w(size=70000, object=BLOB_HASH)])              # blob exists in Store
        self.check([GENESIS, w(size=69999, object=BLOB_HASH)], bad=1)
        self.check([GENESIS, w(size=1, object="0" * 64)], bad=1)            # missing blob

    def test_surrogate_base64(self):
        # ED A0 80 is a UTF-8-encoded surrogate: not valid UTF-8, so base64 is right
        t = self.t(1)
        self.check([GENESIS, prov(t, op="write", path="/f", mode="0644", size=3, base64="7aCA")])

    def test_small_object_accepted(self):
        data = b"hello"
        h = sha(data)
        lines, _ = make_events([GENESIS, prov(self.t(1), op="write", path="/f", mode="0644", size=5,
                                                   object=h)])
        s = Store(self, events=lines, head=head_for(lines), blocks=[])
        os.makedirs(s.path("objects/" + h[:2]), exist_ok=True)
        s.write("objects/%s/%s" % (h[:2], h[2:]), data)
        self.assertTrue(run(s.dir)["ok"])

    def test_non_canonical_lines(self):
        t = self.t(1)
        base = [GENESIS, prov(t, op="write", path="/f", mode="0644", size=5, text="é\x1f\"/")]
        lines, _ = make_events(base)
        good = lines[1]
        self.assertIn('"é\\u001f\\"/"'.encode(), good)
        variants = [
            good.replace("é".encode(), b"\\u00e9"),
            good.replace(b"\\u001f", b"\\u001F"),
            good.replace(b"/\"", b"\\/\""),
            good.replace(b'"seq":1,', b'"seq": 1,'),
            good.replace(b'"seq":1,"time":"%s",' % t.encode(), b'"time":"%s","seq":1,' % t.encode()),
            good.replace(b'"size":5', b'"size":5.0'),
            good.replace(b'"size":5', b'"size":5e0'),
            good.replace(b'"size":5', b'"size":05'),
            good[:-1] + b"\r\n",
            good[:-2] + b' }\n',
            b"\xef\xbb\xbf" + good,
        ]
        for v in variants:
            with self.subTest(line=v):
                self.assertNotEqual(v, good)
                # recompute the hash over the real canonical bytes: only the encoding is wrong
                self.check(base, bad=1, raw_lines={1: v})

    def test_duplicate_key_and_constants(self):
        lines, _ = make_events([GENESIS, prov(self.t(1), op="mkdir", path="/a", mode="0755")])
        dup = lines[1].replace(b'"mode":"0755",', b'"mode":"0755","mode":"0755",')
        self.check([GENESIS, prov(self.t(1), op="mkdir", path="/a", mode="0755")], bad=1, raw_lines={1: dup})
        nan = lines[1].replace(b'"pid":42', b'"pid":NaN')
        self.check([GENESIS, prov(self.t(1), op="mkdir", path="/a", mode="0755")], bad=1, raw_lines={1: nan})
        tru = lines[1].replace(b'"pid":42', b'"pid":true')
        self.check([GENESIS, prov(self.t(1), op="mkdir", path="/a", mode="0755")], bad=1, raw_lines={1: tru})

    def test_big_integers_exact(self):
        # an integer above 2^53 must survive parsing exactly (size of an object-stored write)
        n = 2**53 + 1
        lines, _ = make_events([GENESIS, prov(self.t(1), op="write", path="/f", mode="0644", size=n,
                                                   object=BLOB_HASH)])
        self.assertIn(b'"size":9007199254740993', lines[1])
        s = Store(self, events=lines, head=head_for(lines), blocks=[])
        res = run(s.dir)
        self.assertEqual(res["first_bad_event"], 1)
        self.assertIn("9007199254740993", res["reason"])   # blob size mismatch, not parse error

    def test_tree_rules(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        setup = [GENESIS, E("mkdir", path="/d", mode="0755"),
                 E("write", path="/d/f", mode="0644", size=1, text="a"),
                 E("symlink", path="/l", target="d"),
                 E("mkdir", path="/e", mode="0755")]
        n = len(setup)
        bad_cases = [
            E("write", path="/x/f", mode="0644", size=0, text=""),       # no parent
            E("write", path="/d/f/g", mode="0644", size=0, text=""),     # parent is a file
            E("write", path="/l/g", mode="0644", size=0, text=""),       # parent is a symlink
            E("write", path="/d", mode="0644", size=0, text=""),         # is a directory
            E("write", path="/l", mode="0644", size=0, text=""),         # is a symlink
            E("truncate", path="/nope", mode="0644", size=0, text=""),
            E("truncate", path="/d", mode="0644", size=0, text=""),
            E("mkdir", path="/d", mode="0755"),
            E("mkdir", path="/d/f", mode="0755"),
            E("symlink", path="/d/f", target="x"),
            E("mkdir", path="/x/y", mode="0755"),
            E("unlink", path="/d"),
            E("unlink", path="/nope"),
            E("rmdir", path="/d"),                                         # not empty
            E("rmdir", path="/d/f"),
            E("rmdir", path="/l"),
            E("rename", path="/nope", to="/x"),
            E("rename", path="/d", to="/d"),
            E("rename", path="/d", to="/d/sub"),
            E("rename", path="/d/f", to="/x/f"),
            E("rename", path="/d/f", to="/e"),                             # non-dir over dir
            E("rename", path="/e", to="/d/f"),                             # dir over non-dir
            E("rename", path="/e", to="/d"),                               # dir over non-empty dir
            E("rename", path="/d/f", to="/@f"),
            E("chmod", path="/l", mode="0700"),
            E("chmod", path="/nope", mode="0700"),
            E("chown", path="/nope", owner=1),
            E("utimens", path="/nope", mtime=t),
        ]
        for ev in bad_cases:
            with self.subTest(ev=ev):
                self.check(setup + [ev], bad=n)
        good_cases = [
            E("write", path="/d/f", mode="0600", size=1, text="b"),
            E("truncate", path="/d/f", mode="0644", size=0, text=""),
            E("unlink", path="/l"),
            E("unlink", path="/d/f"),
            E("rmdir", path="/e"),
            E("rename", path="/e", to="/d2"),
            E("rename", path="/d", to="/e"),                               # dir over empty dir
            E("rename", path="/d/f", to="/l"),                             # file over symlink
            E("rename", path="/d/f", to="/e/g"),
            E("rename", path="/d", to="/dd"),                              # /dd starts with /d, not /d/
            E("chmod", path="/d", mode="1777"),
            E("chown", path="/l", group=5),
            E("utimens", path="/l", mtime="1999-12-31T23:59:59.000000000Z"),
        ]
        for ev in good_cases:
            with self.subTest(ev=ev):
                self.check(setup + [ev])

    def test_rename_moves_descendants(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        base = [GENESIS, E("mkdir", path="/a", mode="0755"), E("mkdir", path="/a/b", mode="0755"),
                E("write", path="/a/b/f", mode="0644", size=1, text="a"),
                E("rename", path="/a", to="/z")]
        self.check(base + [E("unlink", path="/z/b/f"), E("rmdir", path="/z/b"), E("rmdir", path="/z")])
        self.check(base + [E("unlink", path="/a/b/f")], bad=5)


def next_event(lines=None, **fields):
    """A valid line for the event after `lines` (default: §11.1): mkdir /tmp at 09:00:12 unless told."""
    lines = EVENT_LINES if lines is None else lines
    last = json.loads(lines[-1])
    ev = {"seq": last["seq"] + 1, "time": "2026-11-21T09:00:12.000000000Z", "op": "mkdir", "path": "/tmp",
          "mode": "1777", "uid": 0, "gid": 0, "pid": 4711, "proc": "layerfs", "prev": last["hash"]}
    ev.update(fields)
    c = vf.canonical_bytes(ev, vf.EVENT_KEYS)
    return vf.stored_line(c, sha(c))


EV12 = next_event()


class TestBlockHead(unittest.TestCase):
    """§8.5 metadata/current_block and §11.4's example-block-head."""

    def test_vector(self):
        self.assertEqual(len(BLOCK_HEAD), 86)
        self.assertEqual(BLOCK_HEAD, ("%s %020d\n" % (BLOCKS["block-hash"].strip(), 1)).encode())
        self.assertEqual(BLOCK_HEAD, block_head_for(BLOCK_LINES))
        s = Store(self)
        self.assertEqual(s.read("metadata/current_block"), BLOCK_HEAD)
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["block_head"], BLOCKS["block-hash"].strip())

    def test_absent_while_blocks_exist(self):
        res = run(Store(self, block_head=None).dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        self.assertIsNone(res["first_bad_event"], res)
        b1, b2, _ = two_blocks()
        res = run(Store(self, blocks=[b1, b2], block_head=None).dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        # unclean shutdown: the crash came between the header and the block head
        for blocks in ([BLOCK_LINES[0]], [b1, b2]):
            res = run(Store(self, blocks=blocks, block_head=None, lock=UNCLEAN).dir)
            self.assertTrue(res["ok"], res)
            self.assertTrue(res["notes"], res)

    def test_lagging(self):
        b1, b2, _ = two_blocks()
        bh1 = block_head_for([b1])
        res = run(Store(self, blocks=[b1, b2], block_head=bh1).dir)
        self.assertEqual(res["first_bad_block"], 2, res)       # the first block after the block head
        self.assertIsNone(res["first_bad_event"], res)
        res = run(Store(self, blocks=[b1, b2], block_head=bh1, lock=UNCLEAN).dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["blocks"], 2)
        self.assertTrue(res["notes"], res)

    def test_names_missing_block(self):
        h = BLOCKS["block-hash"].strip()
        for n in (2, 3, 99999999999999999999):
            for lock in (b"", UNCLEAN):
                with self.subTest(n=n, lock=lock):
                    res = run(Store(self, block_head=("%s %020d\n" % (h, n)).encode(), lock=lock).dir)
                    self.assertEqual(res["first_bad_block"], 2, res)    # the first missing block
                    self.assertIsNone(res["first_bad_event"], res)
        # no blocks at all
        res = run(Store(self, blocks=[], block_head=BLOCK_HEAD).dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        # block 0 is no block: blocks.jsonl does not hold it (reading of §8.5 that matches layerfs)
        res = run(Store(self, block_head=("%s %020d\n" % (h, 0)).encode()).dir)
        self.assertEqual(res["first_bad_block"], 2, res)

    def test_deleted_last_block_line(self):
        b1, b2, bh2 = two_blocks()
        for lock in (b"", UNCLEAN):
            with self.subTest(lock=lock):
                res = run(Store(self, blocks=[b1], block_head=bh2, lock=lock).dir)
                self.assertEqual(res["first_bad_block"], 2, res)
                self.assertIsNone(res["first_bad_event"], res)
        # both blocks deleted
        res = run(Store(self, blocks=[], block_head=bh2).dir)
        self.assertEqual(res["first_bad_block"], 1, res)

    def test_wrong_hash(self):
        h = bytearray(BLOCK_HEAD)
        h[3] ^= 0x01                                               # '8' -> '9', still lowercase hex
        res = run(Store(self, block_head=bytes(h)).dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        b1, b2, bh2 = two_blocks()
        # names block 1 with block 2's hash, and block 2 with block 1's hash
        res = run(Store(self, blocks=[b1, b2], block_head=bh2[:-21] + b"%020d\n" % 1).dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        res = run(Store(self, blocks=[b1, b2], block_head=block_head_for([b1])[:-21] + b"%020d\n" % 2).dir)
        self.assertEqual(res["first_bad_block"], 2, res)
        # the head's event hash instead of the block's
        res = run(Store(self, block_head=HEAD[:65] + b"%020d\n" % 1, lock=UNCLEAN).dir)
        self.assertEqual(res["first_bad_block"], 1, res)

    def test_unreadable(self):
        h = BLOCK_HEAD[:64]
        for bh in (b"", BLOCK_HEAD[:-1], BLOCK_HEAD + b"\n", BLOCK_HEAD.upper(), h + b" 1\n",
                   h + b"\t" + BLOCK_HEAD[65:], BLOCK_HEAD[:-1] + b"\r\n", b"garbage\n",
                   h + b" " + b"%019d\n" % 1, h + b"  " + b"%020d\n" % 1):
            for lock in (b"", UNCLEAN):
                with self.subTest(bh=bh, lock=lock):
                    res = run(Store(self, block_head=bh, lock=lock).dir)
                    self.assertEqual(res["first_bad_block"], 1, res)     # the last block
                    self.assertIn("unreadable", res["reason"])
        s = Store(self, block_head=None)
        os.mkdir(s.path("metadata/current_block"))
        res = run(s.dir)
        self.assertEqual(res["first_bad_block"], 1, res)
        # malformed before any block was sealed
        res = run(Store(self, blocks=[], block_head=b"garbage\n").dir)
        self.assertFalse(res["ok"], res)
        self.assertEqual(res["first_bad_block"], 0, res)

    def test_blocks_and_events_reported_separately(self):
        # a bad event and a bad block head: both are named
        lines = list(EVENT_LINES)
        lines[5] = lines[5].replace(b'"seq":5', b'"seq":6')
        res = run(Store(self, events=lines, block_head=None).dir)
        self.assertEqual((res["first_bad_event"], res["first_bad_block"]), (5, 1), res)


class TestTailRule(unittest.TestCase):
    """§10: the bytes from the first line that is not a valid event are a tail when no complete line
    among them begins with {"seq": and the head names no event beyond the last valid one."""

    def assertTail(self, appended, lock=b"", head=None, events=None):
        s = Store(self, events=(EVENT_LINES if events is None else events) + appended, head=head, lock=lock)
        res = run(s.dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["tail_bytes"], len(b"".join(appended)), res)
        return res

    def assertDamage(self, appended, seq, lock=b"", head=None, events=None):
        s = Store(self, events=(EVENT_LINES if events is None else events) + appended, head=head, lock=lock)
        res = run(s.dir)
        self.assertEqual(res["first_bad_event"], seq, res)
        self.assertIsNone(res["first_bad_block"], res)
        return res

    def test_garbage_lines_are_a_tail(self):
        for tail in ([b"garbage\n"], [b"hello\n", b"world\n"], [b"\n"], [b"\n", b"\n", b"x"], [b"\r\n"],
                     [b"}\n"], [b"[1,2]\n"], [b'{"foo":1}\n'], [b'{"se\n'], [b'{"seq"\n'], [b'{"seq\':1}\n'],
                     [b"\xff\xfe\n"], [b'"seq":12\n']):
            with self.subTest(tail=tail):
                self.assertTail(tail)

    def test_other_prefix_is_a_tail(self):
        # a space (or anything else) inside the first 7 bytes: not {"seq":, so a tail
        for tail in (b' ' + EV12, b'{ "seq":12}\n', b"\t" + EV12, b"\xef\xbb\xbf" + EV12,
                     EV12.replace(b'{"seq":', b'{"Seq":'), EV12.replace(b'{"seq":', b'{"seq" :'),
                     b'{"seq" : 12, "op": "mkdir"}\n', EV12.replace(b'{"seq":', b'{\n"seq":')):
            with self.subTest(tail=tail[:12]):
                self.assertTail([tail])
        # ... even if other garbage lines come first or after
        self.assertTail([b"\0" * 5 + b"\n", b" " + EV12, b"zz"])

    def test_seq_colon_space_is_damage(self):
        # `{"seq": 12` begins with the 7 bytes {"seq": (the space comes after them): damage
        sp = EV12.replace(b'"seq":12', b'"seq": 12')
        self.assertTrue(sp.startswith(b'{"seq": 12,'))
        for tail in ([sp], [b'{"seq": 12}\n'], [b'{"seq": "x"}\n', b"\0"], [b"garbage\n", sp]):
            with self.subTest(tail=tail):
                self.assertDamage(tail, 12)
        # ... unless it has no LF
        self.assertTail([sp[:-1]])

    def test_nul_runs_are_a_tail(self):
        for tail in ([b"\0" * 4096], [b"\0" * 100 + b"\n"], [b"\0\n", b"\0\n", b"\0"], [b"\0" * 10 + b"\n", b"\0" * 7],
                     [b"\0" * 3 + b'{"seq":12\n']):
            with self.subTest(tail=tail[0][:8]):
                self.assertTail(tail)

    def test_incomplete_last_line_is_a_tail_whatever_its_bytes(self):
        for tail in (EV12[:-1], EV12[:7], b'{"seq":', b'{"seq":12,garbage', EV12[:-1] + b" ",
                     b"\0\0\0\n" + EV12[:-1], b"garbage\n" + EV12[:-1]):
            with self.subTest(tail=tail[-12:]):
                res = self.assertTail([tail])
                self.assertEqual(res["events"], 12)

    def test_complete_seq_line_is_damage(self):
        bad = [EV12.replace(b"/tmp", b"/tmq"),                 # hash no longer matches
               b'{"seq":12}\n', b'{"seq":12,garbage\n', b'{"seq":\n', b'{"seq":11' + EVENT_LINES[11][9:],
               EVENT_LINES[11], EVENT_LINES[0], EV12[:-2] + b"\n", EV12[:-1] + b"\r\n",
               next_event(time="2026-11-21T09:00:09.000000000Z"),             # time goes back
               next_event(op="rmdir", path="/nope", mode="0755"),           # rmdir takes no mode
               next_event(op="mkdir", path="/etc", mode="0755")]            # /etc exists (§3.1)
        for line in bad:
            with self.subTest(line=line[:40]):
                self.assertDamage([line], 12)

    def test_seq_line_after_garbage_makes_the_garbage_damage(self):
        for tail in ([b"garbage\n", EV12], [b"\0" * 10 + b"\n", EV12], [b"\n", b'{"seq":\n'],
                     [b"x\n", b"y\n", b'{"seq":99}\n', b"zzz"], [b"\0" * 9 + b"\n", EV12, b"\0" * 4]):
            with self.subTest(tail=tail):
                self.assertDamage(tail, 12)

    def test_valid_event_after_a_bad_seq_line(self):
        # a bad line (begins with {"seq":) in the middle, valid events after it
        lines = list(EVENT_LINES)
        lines[7] = lines[7].replace(b'"proc":"layerfs"', b'"proc":"layerfz"')
        self.assertDamage([], 7, events=lines)

    def test_first_bytes_of_last_line_damaged(self):
        # line 11 no longer begins with {"seq": ...
        for i, x in ((0, 0x01), (2, 0x20), (6, 0x01)):
            bad = bytearray(EVENT_LINES[11])
            bad[i] ^= x
            events = EVENT_LINES[:11] + [bytes(bad)]
            with self.subTest(byte=i):
                # ... but the head names event 11: damage (condition 2), clean or not
                self.assertDamage([], 11, events=events)
                self.assertDamage([], 11, events=events, lock=UNCLEAN)
                # the head names event 10 after an unclean shutdown: a tail, and the block that
                # seals event 11 then reports event 11 missing (§8.1)
                s = Store(self, events=events, head=head_for(EVENT_LINES, 10), lock=UNCLEAN, blocks=[])
                res = run(s.dir)
                self.assertTrue(res["ok"], res)
                self.assertEqual((res["events"], res["tail_bytes"]), (11, len(bad)))
                s = Store(self, events=events, head=head_for(EVENT_LINES, 10), lock=UNCLEAN)
                res = run(s.dir)
                self.assertEqual(res["first_bad_event"], 11, res)
                self.assertIsNone(res["first_bad_block"], res)

    def test_damaged_inside_last_line_is_damage_even_if_head_lags(self):
        bad = EVENT_LINES[11].replace(b"/etc/motd", b"/etc/motx")
        self.assertDamage([], 11, events=EVENT_LINES[:11] + [bad], head=head_for(EVENT_LINES, 10), lock=UNCLEAN)

    def test_head_naming_beyond_makes_the_tail_damage(self):
        h = json.loads(EV12)["hash"]
        head12 = ("%s %020d\n" % (h, 12)).encode()
        for tail in ([b"garbage\n"], [EV12[:-1]], [b"\0" * 50], [b" " + EV12]):
            with self.subTest(tail=tail):
                res = self.assertDamage(tail, 12, head=head12)
                self.assertIn("head", res["reason"])
        self.assertTail([EV12[:-1]], head=head_for(EVENT_LINES, 11))
        # head names event 12 and nothing follows: the first missing event
        self.assertDamage([], 12, head=head12)

    def test_tail_after_a_lagging_head(self):
        # appended garbage after an unclean shutdown whose head lags: still a tail
        self.assertTail([b"\0" * 20], head=head_for(EVENT_LINES, 9), lock=UNCLEAN)
        # after a clean one, the lagging head itself is the problem (event 10)
        res = run(Store(self, events=EVENT_LINES + [b"\0" * 20], head=head_for(EVENT_LINES, 9)).dir)
        self.assertEqual(res["first_bad_event"], 10, res)

    def test_empty_or_garbage_only_log(self):
        for data in ([], [b"\0" * 10], [b"garbage\n"], [b"\n"], [EVENT_LINES[0][:-1]]):
            with self.subTest(data=data):
                res = run(Store(self, events=data, blocks=[]).dir)
                self.assertEqual(res["first_bad_event"], 0, res)


class TestRevisedRules(unittest.TestCase):
    """§1, §3.1, §4, §6 and §8.1/§8.3 as revised."""

    t = staticmethod(lambda n: "2026-01-01T00:00:%02d.000000000Z" % n)

    def check(self, dicts, bad=None, lock=b"", head_seq=None, blocks=None):
        lines, _ = make_events(dicts)
        s = Store(self, events=lines, head=head_for(lines, head_seq), blocks=blocks or [], lock=lock)
        res = run(s.dir)
        if bad is None:
            self.assertTrue(res["ok"], res)
        else:
            self.assertEqual(res["first_bad_event"], bad, res)
        return res

    def test_truncate_content_not_related_to_old(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        base = [GENESIS, E("write", path="/f", mode="0644", size=5, text="hello")]
        self.check(base + [E("truncate", path="/f", mode="0600", size=8, text="complete")])
        self.check(base + [E("truncate", path="/f", mode="0644", size=2, text="xy")])
        self.check(base + [E("truncate", path="/f", mode="0644", size=8, base64="aGVsbG8AAA==")], bad=2)  # 7 bytes, not 8
        self.check(base + [E("truncate", path="/f", mode="0644", size=8, base64="aGVsbG8AAAA=")])
        # truncate of a symlink (or of what it points to) fails
        self.check(base + [E("symlink", path="/l", target="f"),
                           E("truncate", path="/l", mode="0644", size=0, text="")], bad=3)

    def test_symlinks_are_never_followed(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        setup = [GENESIS, E("mkdir", path="/d", mode="0755"),
                 E("write", path="/d/f", mode="0644", size=1, text="a"),
                 E("mkdir", path="/d/sub", mode="0755"),
                 E("symlink", path="/l", target="d"),
                 E("symlink", path="/abs", target="/d")]
        n = len(setup)
        for ev in (E("write", path="/l/f", mode="0644", size=0, text=""),
                   E("write", path="/l/new", mode="0644", size=0, text=""),
                   E("truncate", path="/l/f", mode="0644", size=0, text=""),
                   E("mkdir", path="/l/x", mode="0755"),
                   E("symlink", path="/abs/x", target="y"),
                   E("unlink", path="/l/f"),
                   E("rmdir", path="/l/sub"),
                   E("rename", path="/l/f", to="/g"),
                   E("rename", path="/d/f", to="/l/g"),
                   E("chmod", path="/l/f", mode="0600"),
                   E("chown", path="/abs/f", owner=1),
                   E("utimens", path="/l/sub", mtime=t),
                   E("rmdir", path="/l"),                   # a symlink to a directory is not one
                   E("mkdir", path="/l", mode="0755")):
            with self.subTest(ev=ev):
                self.check(setup + [ev], bad=n)
        for ev in (E("unlink", path="/l"), E("chown", path="/l", owner=1),
                   E("utimens", path="/l", mtime=t), E("rename", path="/l", to="/d/l")):
            with self.subTest(ev=ev):
                self.check(setup + [ev])

    def test_reserved_root_names_never_exist(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        base = [GENESIS, E("mkdir", path="/a", mode="0755")]
        for ev in (E("chmod", path="/@views", mode="0755"), E("chown", path="/@x", owner=1),
                   E("utimens", path="/@x", mtime=t), E("unlink", path="/@x"), E("rmdir", path="/@x"),
                   E("rename", path="/@x", to="/b"), E("rename", path="/a", to="/@a"),
                   E("truncate", path="/@x", mode="0644", size=0, text=""),
                   E("write", path="/@x", mode="0644", size=0, text=""), E("mkdir", path="/@/b", mode="0755"),
                   E("symlink", path="/@l", target="/a"), E("chmod", path="/@", mode="0755")):
            with self.subTest(ev=ev):
                self.check(base + [ev], bad=2)
        self.check(base + [E("symlink", path="/l", target="/@views/x"), E("mkdir", path="/a/@b", mode="0755")])

    def test_inline_content_any_size(self):
        t = self.t(1)
        w = lambda **kw: prov(t, op="write", path="/f", mode="0644", **kw)
        self.check([GENESIS, w(size=65537, text="z" * 65537)])
        self.check([GENESIS, w(size=200000, text="é" * 100000)])
        self.check([GENESIS, w(size=65537, base64=base64.b64encode(b"\0" * 65537).decode())])
        self.check([GENESIS, w(size=65537, base64=base64.b64encode(b"\0" * 65536).decode())], bad=1)

    def test_canonical_base64(self):
        t = self.t(1)
        w = lambda **kw: prov(t, op="write", path="/f", mode="0644", **kw)
        self.check([GENESIS, w(size=2, base64="AP8=")])
        self.check([GENESIS, w(size=1, base64="/w==")])
        self.check([GENESIS, w(size=3, base64="AP8A")])
        for b64, size in (("AP8", 2), ("AP9=", 2), ("AP/=", 2), ("/x==", 1), ("/w=", 1), ("/w", 1),
                          ("AP8==", 2), ("AP8=AA==", 3), ("A P8=", 2), ("AP8=\n", 2), ("AP_-", 3),
                          ("====", 0), ("=AP8", 2), ("AP8A====", 3)):
            with self.subTest(b64=b64):
                self.check([GENESIS, w(size=size, base64=b64)], bad=1)

    def test_report_table(self):
        t = self.t(1)
        E = lambda op, **kw: prov(t, op=op, **kw)
        ev = [GENESIS] + [E("mkdir", path="/d%d" % i, mode="0755") for i in range(1, 8)]
        lines, _ = make_events(ev)

        def res_of(events, head, lock=b""):
            return run(Store(self, events=events, head=head, blocks=[], lock=lock).dir)

        # the head names a missing event: last valid + 1 (even if it names one far beyond)
        for seq in (8, 9, 100):
            h = json.loads(lines[-1])["hash"]
            self.assertEqual(res_of(lines, ("%s %020d\n" % (h, seq)).encode())["first_bad_event"], 8)
        # a line deleted from the end, the head untouched: the first missing event
        self.assertEqual(res_of(lines[:-2], head_for(lines))["first_bad_event"], 6)
        # the head's hash does not match: the event it names
        wrong = ("%s %020d\n" % (json.loads(lines[3])["hash"], 5)).encode()
        self.assertEqual(res_of(lines, wrong)["first_bad_event"], 5)
        self.assertEqual(res_of(lines, wrong, lock=UNCLEAN)["first_bad_event"], 5)
        # the head is missing or malformed: the last valid event
        self.assertEqual(res_of(lines, b"")["first_bad_event"], 7)
        self.assertEqual(res_of(lines, b"x" * 86)["first_bad_event"], 7)
        # a lagging head after a clean shutdown: the first event after it
        self.assertEqual(res_of(lines, head_for(lines, 2))["first_bad_event"], 3)
        # a bad line comes before any head problem (the head is not a line of §2-§6)
        bad = list(lines)
        bad[4] = bad[4].replace(b'"pid":42', b'"pid":43')
        for head in (b"", head_for(lines, 2), wrong, head_for(lines)):
            with self.subTest(head=head):
                self.assertEqual(res_of(bad, head)["first_bad_event"], 4)

    def test_blocks_policy_not_checked(self):
        # twelve one-event blocks, sealed whenever: fine
        blocks, prev = [], "0" * 64
        for i in range(12):
            b, prev = make_block(i + 1, i, i, prev, "2026-11-21T09:00:11.000000000Z")
            blocks.append(b)
        res = run(Store(self, blocks=blocks).dir)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["blocks"], 12)
        # a block covering a torn tail event: the first missing event
        events = EVENT_LINES[:11] + [EVENT_LINES[11][:-1]]
        res = run(Store(self, events=events, head=head_for(EVENT_LINES, 10), lock=UNCLEAN).dir)
        self.assertEqual(res["first_bad_event"], 11, res)
        self.assertIsNone(res["first_bad_block"], res)

    def test_no_writer_lock_means_clean(self):
        s = Store(self, head=head_for(EVENT_LINES, 9))
        os.remove(s.path("metadata/writer.lock"))
        self.assertEqual(run(s.dir)["first_bad_event"], 10)
        s = Store(self)
        os.remove(s.path("metadata/writer.lock"))
        self.assertTrue(run(s.dir)["ok"])

    def test_everything_else_is_operational(self):
        s = Store(self)
        os.makedirs(s.path(".snapshots/block-1-000000000000"))   # a wrong snapshot name: not checked
        os.makedirs(s.path("metadata/recovered"))
        s.write("metadata/recovered/events-tail-x-at-byte-0.bin", b"junk")
        s.write("objects/bc/stray", b"not a blob")
        s.write("README", b"hello")
        self.assertTrue(run(s.dir)["ok"])

    def test_cli_text_output_tails(self):
        s = Store(self, events=EVENT_LINES + [b"\0" * 9], blocks=[BLOCK_LINES[0], b'{"blo'],
                  block_head=BLOCK_HEAD)
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout)
        out = p.stdout.splitlines()
        self.assertIn("TAIL: 9 bytes after event 11", out)
        self.assertIn("BLOCK TAIL: 5 bytes after block 1", out)
        s = Store(self, block_head=None)
        p = subprocess.run([sys.executable, VERIFIER, s.dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stdout.startswith("FAILED: block 1: "), p.stdout)


if __name__ == "__main__":
    unittest.main()
