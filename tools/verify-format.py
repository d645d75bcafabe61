#!/usr/bin/env python3
"""Independent verifier for layerfs stores (`layerfs-events/1`).

Written from docs/FORMAT.md alone (clean room); standard library only.

    verify-format.py STORE [--json]

Checks, as FORMAT.md specifies:
  * events.jsonl   (§2-§6): every line's canonical encoding (re-built from the
                   parsed values and compared byte for byte), hash, seq, prev
                   chain, time order, fields per operation, content rules
                   (text/base64 choice, canonical base64, size, blobs in
                   objects/), and the validity of every change by replaying
                   the tree (§3.1);
  * the head       (§7): metadata/current_hash, with the clean/unclean rule of §9;
  * blocks.jsonl   (§8): canonical form, hash, chain, ranges, Merkle roots, times;
  * the block head (§8.5): metadata/current_block, clean/unclean as for the head;
  * torn tails     (§10, §8.6): reported as a tail, not as damage, when the
                   byte-precise rule of §10 (events) or §8.6 (blocks) allows it.

Which event a problem is reported at follows the table of §6.  Snapshots (§8.4)
and the sealing policy (§8.3) are outside the format and not checked.

Output: `OK: N events, M blocks, head <hash>` (exit 0), or
`FAILED: event S: <reason>` / `FAILED: block B: <reason>` naming the first bad
event / block (exit 1; when both fail, the event line comes first).  A torn tail
adds `TAIL: N bytes after event S`, a torn block header `BLOCK TAIL: N bytes
after block B`.  Exit 2 on usage errors or when STORE has no events.jsonl.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import stat
import sys

FORMAT_NAME = "layerfs-events/1"
ZERO_HASH = "0" * 64
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PID_MAX = 2**31 - 1

EVENT_KEYS = ["seq", "time", "op", "path", "to", "target", "mode", "owner", "group",
              "mtime", "size", "text", "base64", "object", "store", "format",
              "uid", "gid", "pid", "proc", "prev", "hash"]
INT_KEYS = {"seq", "owner", "group", "size", "uid", "gid", "pid"}
COMMON_KEYS = {"seq", "time", "op", "uid", "gid", "pid", "proc", "prev", "hash"}
CONTENT_KEYS = {"text", "base64", "object"}

# op -> (required keys beyond COMMON_KEYS, optional keys)
OPS = {
    "genesis":  ({"store", "format"}, set()),
    "write":    ({"path", "mode", "size"}, set(CONTENT_KEYS)),
    "truncate": ({"path", "mode", "size"}, set(CONTENT_KEYS)),
    "mkdir":    ({"path", "mode"}, set()),
    "rmdir":    ({"path"}, set()),
    "unlink":   ({"path"}, set()),
    "rename":   ({"path", "to"}, set()),
    "symlink":  ({"path", "target"}, set()),
    "chmod":    ({"path", "mode"}, set()),
    "chown":    ({"path"}, {"owner", "group"}),
    "utimens":  ({"path", "mtime"}, set()),
}
ROOT_ALLOWED_OPS = {"chmod", "chown", "utimens"}

BLOCK_KEYS = ["block", "first", "last", "count", "root", "prev", "time", "hash"]
BLOCK_INT_KEYS = {"block", "first", "last", "count"}

HEX64 = re.compile(r"[0-9a-f]{64}\Z")
MODE_RE = re.compile(r"[0-7]{4}\Z")
TS_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{9}Z\Z")
HEAD_RE = re.compile(rb"([0-9a-f]{64}) ([0-9]{20})\n\Z")


class Bad(Exception):
    """A check failed; the message is the reason."""


class NotAStore(Exception):
    """STORE has no events.jsonl."""


# --------------------------------------------------------------------------- canonical encoding (§5)

_ESC = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r'}


def enc_string(s):
    out = ['"']
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ord(ch) < 0x20:
            out.append("\\u00%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (only reachable through a \uD8xx escape) has no UTF-8 form.
        raise Bad("string holds a lone surrogate; it has no canonical encoding")


def enc_value(v):
    if isinstance(v, bool):
        raise Bad("boolean value")
    if isinstance(v, int):
        if v < 0:
            raise Bad("negative integer")
        return str(v).encode("ascii")
    if isinstance(v, str):
        return enc_string(v)
    raise Bad("value of unexpected JSON type")


def canonical_bytes(obj, order):
    """The canonical bytes: all members except `hash`, in `order`."""
    parts = []
    for k in order:
        if k == "hash" or k not in obj:
            continue
        parts.append(enc_string(k) + b":" + enc_value(obj[k]))
    return b"{" + b",".join(parts) + b"}"


def stored_line(canon, h):
    return canon[:-1] + b',"hash":"' + h.encode("ascii") + b'"}\n'


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------- strict JSON

def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Bad("duplicate key %r" % k)
        d[k] = v
    return d


def _no_constant(name):
    raise Bad("non-JSON constant %s" % name)


class _Float:
    """Marker for a JSON number with fraction or exponent."""

    def __init__(self, s):
        self.s = s


def parse_json_line(raw):
    """raw: bytes of one line without its LF. Returns a dict or raises Bad."""
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise Bad("line is not valid UTF-8 (%s)" % e.reason)
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant,
                         parse_float=_Float)
    except Bad:
        raise
    except (ValueError, RecursionError) as e:
        raise Bad("line is not JSON (%s)" % e)
    if not isinstance(obj, dict):
        raise Bad("line is not a JSON object")
    return obj


# --------------------------------------------------------------------------- field formats

def check_timestamp(v, what):
    if not isinstance(v, str):
        raise Bad("%s is not a string" % what)
    m = TS_RE.match(v)
    if not m or len(v.encode("utf-8")) != 30:
        raise Bad("%s %r is not a timestamp YYYY-MM-DDTHH:MM:SS.fffffffffZ" % (what, v))
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups())
    try:
        datetime.date(y, mo, d)
    except ValueError:
        raise Bad("%s %r names a date that does not exist" % (what, v))
    if hh > 23 or mi > 59 or ss > 59:
        raise Bad("%s %r has an out-of-range time of day" % (what, v))
    if not (1678 <= y <= 2261):
        raise Bad("%s %r is outside 1678-01-01 ... 2261-12-31" % (what, v))


def check_store_path(v, what):
    if not isinstance(v, str):
        raise Bad("%s is not a string" % what)
    try:
        b = v.encode("utf-8")
    except UnicodeEncodeError:
        raise Bad("%s is not UTF-8" % what)
    if len(b) > 4095:
        raise Bad("%s is longer than 4095 bytes" % what)
    if v == "/":
        return
    if not v.startswith("/"):
        raise Bad("%s %r is not absolute" % (what, v))
    comps = v[1:].split("/")
    for c in comps:
        if c == "":
            raise Bad("%s %r has an empty component or a trailing /" % (what, v))
        if c in (".", ".."):
            raise Bad("%s %r has a . or .. component" % (what, v))
        if "\x00" in c:
            raise Bad("%s %r contains NUL" % (what, v))
        if len(c.encode("utf-8")) > 255:
            raise Bad("%s has a component longer than 255 bytes" % what)
    if comps[0].startswith("@"):
        raise Bad("%s %r is under a reserved root name (/@...)" % (what, v))


def check_int(v, what, lo=0, hi=U64_MAX):
    if isinstance(v, _Float):
        raise Bad("%s %s is not an integer" % (what, v.s))
    if isinstance(v, bool) or not isinstance(v, int):
        raise Bad("%s is not an integer" % what)
    if v < lo or v > hi:
        raise Bad("%s %d out of range %d ... %d" % (what, v, lo, hi))


def check_hex64(v, what):
    if not isinstance(v, str) or not HEX64.match(v):
        raise Bad("%s is not 64 lowercase hex digits" % what)


def check_event_fields(ev):
    """Static checks of §2.1-§3 for one parsed event (no seq/prev/hash/canonical/tree checks)."""
    for k in ev:
        if k not in EVENT_KEYS:
            raise Bad("unknown key %r" % k)
    for k, v in ev.items():
        if k in INT_KEYS:
            check_int(v, k)
        elif not isinstance(v, str):
            raise Bad("%s is not a string" % k)
    for k in ("seq", "time", "op", "uid", "gid", "pid", "proc", "prev", "hash"):
        if k not in ev:
            raise Bad("missing %r" % k)
    op = ev["op"]
    if op not in OPS:
        raise Bad("unknown op %r" % op)
    required, optional = OPS[op]
    allowed = COMMON_KEYS | required | optional
    for k in ev:
        if k not in allowed:
            raise Bad("key %r not allowed for op %s" % (k, op))
    for k in required:
        if k not in ev:
            raise Bad("op %s requires %r" % (op, k))
    if op in ("write", "truncate"):
        n = sum(1 for k in CONTENT_KEYS if k in ev)
        if n != 1:
            raise Bad("op %s needs exactly one of text/base64/object (has %d)" % (op, n))
    if op == "chown" and "owner" not in ev and "group" not in ev:
        raise Bad("chown needs owner and/or group")

    check_timestamp(ev["time"], "time")
    check_int(ev["uid"], "uid", 0, U32_MAX)
    check_int(ev["gid"], "gid", 0, U32_MAX)
    check_int(ev["pid"], "pid", 0, PID_MAX)
    proc = ev["proc"]
    if len(proc.encode("utf-8", errors="surrogatepass")) > 64:
        raise Bad("proc is longer than 64 bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in proc):
        raise Bad("proc contains a control character")
    check_hex64(ev["prev"], "prev")
    check_hex64(ev["hash"], "hash")
    if "path" in ev:
        check_store_path(ev["path"], "path")
        if ev["path"] == "/" and op not in ROOT_ALLOWED_OPS:
            raise Bad("op %s may not name the root /" % op)
    if "to" in ev:
        check_store_path(ev["to"], "to")
        if ev["to"] == "/":
            raise Bad("rename to the root /")
    if "target" in ev:
        t = ev["target"].encode("utf-8", errors="surrogatepass")
        if not (1 <= len(t) <= 4095):
            raise Bad("symlink target is not 1 to 4095 bytes")
        if b"\x00" in t:
            raise Bad("symlink target contains NUL")
    if "mode" in ev and not MODE_RE.match(ev["mode"]):
        raise Bad("mode %r is not four octal digits" % ev["mode"])
    if "owner" in ev:
        check_int(ev["owner"], "owner", 0, U32_MAX)
    if "group" in ev:
        check_int(ev["group"], "group", 0, U32_MAX)
    if "mtime" in ev:
        check_timestamp(ev["mtime"], "mtime")
    if "object" in ev:
        check_hex64(ev["object"], "object")
    if op == "genesis" and ev["format"] != FORMAT_NAME:
        raise Bad("format %r is not %s" % (ev["format"], FORMAT_NAME))


def is_text(data):
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def content_bytes(ev):
    """Inline content of a write/truncate as bytes (checks §4 rules 2/3, canonical base64, size).

    §4: inline content is accepted at any size (writers use `object` above 65536 bytes,
    but the event hash covers the inline content either way)."""
    size = ev["size"]
    if "text" in ev:
        t = ev["text"]
        if "\x00" in t:
            raise Bad("text content contains NUL (must be base64)")
        try:
            data = t.encode("utf-8")
        except UnicodeEncodeError:
            raise Bad("text content is not valid UTF-8")
    else:
        s = ev["base64"]
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s) or len(s) % 4 != 0:
            raise Bad("base64 content is not standard padded base64")
        try:
            data = base64.b64decode(s.encode("ascii"), validate=True)
        except (binascii.Error, ValueError):
            raise Bad("base64 content does not decode")
        if base64.b64encode(data).decode("ascii") != s:
            raise Bad("base64 content is not in canonical form")
        if is_text(data):
            raise Bad("base64 content is UTF-8 text without NUL (must be text)")
    if len(data) != size:
        raise Bad("content is %d bytes, size says %d" % (len(data), size))
    return data


# --------------------------------------------------------------------------- the tree (§3.1)

class Node:
    __slots__ = ("kind", "mode", "uid", "gid", "mtime", "size", "content", "target", "children")

    def __init__(self, kind, mode, uid, gid, mtime):
        self.kind = kind          # "file" | "dir" | "symlink"
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.size = 0
        self.content = None       # bytes, or ("object", hex) for blobs
        self.target = None
        self.children = {} if kind == "dir" else None


class Tree:
    def __init__(self):
        self.root = None

    @staticmethod
    def split(path):
        return path[1:].split("/") if path != "/" else []

    def lookup(self, path):
        node = self.root
        for c in self.split(path):
            if node is None or node.kind != "dir":
                return None
            node = node.children.get(c)
        return node

    def parent_and_name(self, path):
        comps = self.split(path)
        parent = self.lookup("/" + "/".join(comps[:-1])) if len(comps) > 1 else self.root
        return parent, comps[-1]

    def apply(self, ev, content):
        op = ev["op"]
        t = ev["time"]
        if op == "genesis":
            self.root = Node("dir", "0755", ev["uid"], ev["gid"], t)
            return
        path = ev["path"]
        if op == "write":
            node = self.lookup(path)
            if node is None:
                parent, name = self.parent_and_name(path)
                if parent is None or parent.kind != "dir":
                    raise Bad("write %s: parent is missing or not a directory" % path)
                node = Node("file", ev["mode"], ev["uid"], ev["gid"], t)
                parent.children[name] = node
            elif node.kind != "file":
                raise Bad("write %s: path exists and is a %s" % (path, kind_name(node)))
            node.mode = ev["mode"]
            node.size = ev["size"]
            node.content = content
            node.mtime = t
        elif op == "truncate":
            node = self.lookup(path)
            if node is None or node.kind != "file":
                raise Bad("truncate %s: not an existing file" % path)
            node.mode = ev["mode"]
            node.size = ev["size"]
            node.content = content
            node.mtime = t
        elif op in ("mkdir", "symlink"):
            if self.lookup(path) is not None:
                raise Bad("%s %s: path exists" % (op, path))
            parent, name = self.parent_and_name(path)
            if parent is None or parent.kind != "dir":
                raise Bad("%s %s: parent is missing or not a directory" % (op, path))
            if op == "mkdir":
                node = Node("dir", ev["mode"], ev["uid"], ev["gid"], t)
            else:
                node = Node("symlink", "0777", ev["uid"], ev["gid"], t)
                node.target = ev["target"]
            parent.children[name] = node
        elif op == "unlink":
            node = self.lookup(path)
            if node is None or node.kind == "dir":
                raise Bad("unlink %s: %s" % (path, "does not exist" if node is None else "is a directory"))
            parent, name = self.parent_and_name(path)
            del parent.children[name]
        elif op == "rmdir":
            node = self.lookup(path)
            if node is None or node.kind != "dir":
                raise Bad("rmdir %s: not an existing directory" % path)
            if node.children:
                raise Bad("rmdir %s: directory is not empty" % path)
            parent, name = self.parent_and_name(path)
            del parent.children[name]
        elif op == "rename":
            to = ev["to"]
            node = self.lookup(path)
            if node is None:
                raise Bad("rename %s: source does not exist" % path)
            if path == to:
                raise Bad("rename %s: source and destination are the same" % path)
            if to.startswith(path + "/"):
                raise Bad("rename %s -> %s: directory would move below itself" % (path, to))
            tparent, tname = self.parent_and_name(to)
            if tparent is None or tparent.kind != "dir":
                raise Bad("rename -> %s: destination parent is missing or not a directory" % to)
            existing = tparent.children.get(tname)
            if existing is not None:
                if node.kind == "dir":
                    if existing.kind != "dir" or existing.children:
                        raise Bad("rename %s -> %s: a directory may only replace an empty directory"
                                  % (path, to))
                elif existing.kind == "dir":
                    raise Bad("rename %s -> %s: a non-directory may not replace a directory"
                              % (path, to))
            sparent, sname = self.parent_and_name(path)
            del sparent.children[sname]
            tparent.children[tname] = node
        elif op == "chmod":
            node = self.lookup(path)
            if node is None or node.kind == "symlink":
                raise Bad("chmod %s: %s" % (path, "does not exist" if node is None else "is a symlink"))
            node.mode = ev["mode"]
        elif op == "chown":
            node = self.lookup(path)
            if node is None:
                raise Bad("chown %s: does not exist" % path)
            if "owner" in ev:
                node.uid = ev["owner"]
            if "group" in ev:
                node.gid = ev["group"]
        elif op == "utimens":
            node = self.lookup(path)
            if node is None:
                raise Bad("utimens %s: does not exist" % path)
            node.mtime = ev["mtime"]
        else:  # unreachable: op was checked
            raise Bad("unknown op %r" % op)


def kind_name(node):
    return {"dir": "directory", "symlink": "symlink", "file": "file"}[node.kind]


# --------------------------------------------------------------------------- Merkle tree (§8.2)

def merkle_root(leaves):
    """RFC 6962 MTH over a list of 32-byte hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


# --------------------------------------------------------------------------- blobs (§4)

class Blobs:
    def __init__(self, store):
        self.dir = os.path.join(store, "objects")
        self.cache = {}

    def check(self, digest, size):
        path = os.path.join(self.dir, digest[:2], digest[2:])
        res = self.cache.get(digest)
        if res is None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                res = ("missing", None)
            except OSError as e:
                res = ("unreadable: %s" % e.strerror, None)
            else:
                if not stat.S_ISREG(st.st_mode):
                    res = ("not a regular file", None)
                else:
                    h = hashlib.sha256()
                    n = 0
                    try:
                        with open(path, "rb") as f:
                            while True:
                                chunk = f.read(1 << 20)
                                if not chunk:
                                    break
                                h.update(chunk)
                                n += len(chunk)
                    except OSError as e:
                        res = ("unreadable: %s" % e.strerror, None)
                    else:
                        res = (None if h.hexdigest() == digest else "content does not hash to its name", n)
            self.cache[digest] = res
        err, n = res
        if err is not None:
            raise Bad("blob objects/%s/%s %s" % (digest[:2], digest[2:], err))
        if n != size:
            raise Bad("blob objects/%s/%s is %d bytes, size says %d" % (digest[:2], digest[2:], n, size))


# --------------------------------------------------------------------------- lines

def split_lines(data):
    """Returns (complete lines without LF, each with its byte offset; trailing partial bytes)."""
    lines = []
    pos = 0
    while True:
        i = data.find(b"\n", pos)
        if i < 0:
            break
        lines.append((pos, data[pos:i]))
        pos = i + 1
    return lines, data[pos:]


EVENT_PREFIX = b'{"seq":'      # §10: what every event line begins with (7 bytes)


# --------------------------------------------------------------------------- verification

class Result:
    def __init__(self):
        self.first_bad_event = None
        self.event_reason = None
        self.first_bad_block = None
        self.block_reason = None
        self.events = 0               # valid events (lines 0 .. events-1)
        self.blocks = 0               # valid block headers (blocks 1 .. blocks)
        self.tail_bytes = 0           # events.jsonl: bytes of an accepted torn tail (§10)
        self.tail_after = None
        self.block_tail_bytes = 0     # blocks.jsonl: bytes of a torn header (§8.6)
        self.head = None
        self.block_head = None
        self.notes = []

    def fail_event(self, seq, reason):
        if self.first_bad_event is None or seq < self.first_bad_event:
            self.first_bad_event = seq
            self.event_reason = reason

    def fail_block(self, bno, reason):
        if self.first_bad_block is None or bno < self.first_bad_block:
            self.first_bad_block = bno
            self.block_reason = reason

    @property
    def ok(self):
        return self.first_bad_event is None and self.first_bad_block is None


class Unreadable(Exception):
    """A file exists but cannot be read (a directory, no permission, an I/O error)."""


def read_file(path):
    """The file's bytes; None if it does not exist; raises Unreadable if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unreadable(e.strerror or str(e))


def read_meta(path):
    """(bytes or None, error or None) for a metadata file."""
    try:
        return read_file(path), None
    except Unreadable as e:
        return None, str(e)


def parse_head(data, name):
    """§7/§8.5 layout: 64 lowercase hex, space, 20 decimal digits, LF (86 bytes).
    Returns (hash, number) or raises Bad."""
    m = HEAD_RE.match(data)
    if len(data) != 86 or not m:
        raise Bad("%s is malformed (want 64 lowercase hex, a space, 20 digits, LF: 86 bytes)" % name)
    return m.group(1).decode("ascii"), int(m.group(2))


class EventChecker:
    """Checks events.jsonl line by line, in order (§2-§6, §3.1, §4)."""

    def __init__(self, store):
        self.tree = Tree()
        self.blobs = Blobs(store)
        self.prev_hash = ZERO_HASH
        self.prev_time = None
        self.hashes = []          # hash of each valid event
        self.times = []           # time of each valid event

    def check(self, i, raw):
        """Line i (bytes without LF) must be event i. Raises Bad; on success records it."""
        ev = parse_json_line(raw)
        check_event_fields(ev)
        if ev["seq"] != i:
            raise Bad("line %d holds seq %d" % (i, ev["seq"]))
        if i == 0 and ev["op"] != "genesis":
            raise Bad("event 0 is not genesis")
        if i > 0 and ev["op"] == "genesis":
            raise Bad("genesis after event 0")
        canon = canonical_bytes(ev, EVENT_KEYS)
        h = sha256_hex(canon)
        if raw + b"\n" != stored_line(canon, ev["hash"]):
            raise Bad("line is not in canonical encoding")
        if ev["hash"] != h:
            raise Bad("hash %s does not match the canonical bytes (%s)" % (ev["hash"], h))
        if ev["prev"] != self.prev_hash:
            raise Bad("prev %s is not the hash of event %d" % (ev["prev"], i - 1) if i
                      else "prev of genesis is not 64 zeros")
        if self.prev_time is not None and ev["time"] < self.prev_time:
            raise Bad("time %s is before the previous event's %s" % (ev["time"], self.prev_time))
        content = None
        if ev["op"] in ("write", "truncate"):
            if "object" in ev:
                self.blobs.check(ev["object"], ev["size"])
                content = ("object", ev["object"])
            else:
                content = content_bytes(ev)
        self.tree.apply(ev, content)
        self.prev_hash = ev["hash"]
        self.prev_time = ev["time"]
        self.hashes.append(ev["hash"])
        self.times.append(ev["time"])


def check_block_header(raw, bno, prev_bhash, prev_last, prev_btime):
    """Header-intrinsic and chain checks of §8.1 for block bno (line bno-1). Returns the dict."""
    b = parse_json_line(raw)
    signed = "key" in b or "sig" in b
    for k in b:
        if k not in BLOCK_KEYS and k not in ("key", "sig"):
            raise Bad("unknown key %r" % k)
    if signed:
        # §8.7: a signed header carries both, after hash; verifying the signature itself needs
        # the signer's public key and is outside this verifier (layerfs verify --pubkey).
        for k in ("key", "sig"):
            if not isinstance(b.get(k), str):
                raise Bad("a signed header needs %r as a string" % k)
        check_hex64(b["key"], "key")
        if len(b["sig"]) != 128 or any(c not in "0123456789abcdef" for c in b["sig"]):
            raise Bad("sig is not 128 lowercase hex digits")
    for k in BLOCK_KEYS:
        if k not in b:
            raise Bad("missing %r" % k)
    for k in BLOCK_INT_KEYS:
        check_int(b[k], k)
    for k in ("root", "prev", "time", "hash"):
        if not isinstance(b[k], str):
            raise Bad("%s is not a string" % k)
    check_hex64(b["root"], "root")
    check_hex64(b["prev"], "prev")
    check_hex64(b["hash"], "hash")
    check_timestamp(b["time"], "time")
    canon = canonical_bytes(b, BLOCK_KEYS)
    line = stored_line(canon, b["hash"])
    if signed:
        line = line[:-2] + b',"key":"' + b["key"].encode("ascii") + b'","sig":"' + b["sig"].encode("ascii") + b'"}\n'
    if raw + b"\n" != line:
        raise Bad("line is not in canonical encoding")
    h = sha256_hex(canon)
    if b["hash"] != h:
        raise Bad("hash %s does not match the canonical bytes (%s)" % (b["hash"], h))
    if b["block"] != bno:
        raise Bad("line %d holds block %d" % (bno - 1, b["block"]))
    if b["first"] != prev_last + 1:
        raise Bad("first is %d, expected %d" % (b["first"], prev_last + 1))
    if b["last"] < b["first"]:
        raise Bad("last %d is before first %d" % (b["last"], b["first"]))
    if b["count"] != b["last"] - b["first"] + 1:
        raise Bad("count %d is not last - first + 1" % b["count"])
    if b["prev"] != prev_bhash:
        raise Bad("prev is not the hash of block %d" % (bno - 1) if bno > 1
                  else "prev of block 1 is not 64 zeros")
    if prev_btime is not None and b["time"] < prev_btime:
        raise Bad("time %s is before block %d's time %s" % (b["time"], bno - 1, prev_btime))
    return b


def verify(store):
    r = Result()
    # Read order matters against a live writer: it appends an event, then updates the head
    # (§7); it writes a block only after its events are durable, and metadata/current_block
    # right after the block header (§8.3, §8.5).  So read writer.lock, the block head,
    # blocks.jsonl, the head, then events.jsonl last: everything named is then in what we read.
    try:
        lock = read_file(os.path.join(store, "metadata", "writer.lock"))
    except Unreadable:
        lock = b"?"                 # cannot tell: assume unclean (the lenient reading)
    unclean = bool(lock)            # non-empty: unclean shutdown, or a live writer (§9)
    bhead_data, bhead_err = read_meta(os.path.join(store, "metadata", "current_block"))
    blocks_data, blocks_err = read_meta(os.path.join(store, "blocks.jsonl"))
    head_data, head_err = read_meta(os.path.join(store, "metadata", "current_hash"))
    try:
        events_data = read_file(os.path.join(store, "events.jsonl"))
    except Unreadable as e:
        raise NotAStore("events.jsonl is unreadable (%s)" % e)
    if events_data is None:
        raise NotAStore("not a layerfs store (no events.jsonl)")

    # ---- head file syntax (§7)
    head_hash = head_seq = None
    head_reason = None
    if head_err is not None:
        head_reason = "metadata/current_hash is unreadable (%s)" % head_err
    elif head_data is None:
        head_reason = "metadata/current_hash is missing"
    else:
        try:
            head_hash, head_seq = parse_head(head_data, "metadata/current_hash")
        except Bad as e:
            head_reason = str(e)

    # ---- events, in order, up to the first line that is not a valid event (§2-§6)
    lines, partial = split_lines(events_data)
    checker = EventChecker(store)
    good = 0
    bad_reason = None
    for i, (_, raw) in enumerate(lines):
        try:
            checker.check(i, raw)
        except Bad as e:
            bad_reason = str(e)
            break
        good = i + 1
    last_valid = good - 1
    r.events = good

    # ---- torn tail (§10): the bytes from the first line that is not a valid event on
    if good < len(lines) or partial:
        tail_start = lines[good][0] if good < len(lines) else len(events_data) - len(partial)
        eventlike = [j for j in range(good, len(lines)) if lines[j][1].startswith(EVENT_PREFIX)]
        if eventlike:
            if eventlike[0] == good:
                r.fail_event(good, bad_reason)
            else:
                r.fail_event(good, "%s; not a torn tail: line %d after it begins with {\"seq\":"
                             % (bad_reason, eventlike[0]))
        elif head_seq is not None and head_seq > last_valid:
            what = bad_reason if good < len(lines) else "line %d is incomplete (no LF)" % good
            r.fail_event(good, "%s; not a torn tail: the head names event %d" % (what, head_seq))
        else:
            r.tail_bytes = len(events_data) - tail_start
            r.tail_after = last_valid
    if good == 0 and r.first_bad_event is None:
        r.fail_event(0, "the log holds no valid event (no genesis)")
    log_ok = r.first_bad_event is None

    # ---- head vs log (§7, §9); §6 table.  A line that fails §2-§6 is the first bad event;
    # head problems are reported only when every line is valid (or a torn tail).
    if log_ok:
        if head_reason is not None:
            r.fail_event(last_valid, head_reason)
        elif head_seq > last_valid:
            r.fail_event(last_valid + 1, "head names event %d but the log's last valid event is %d "
                         "(event %d is missing)" % (head_seq, last_valid, last_valid + 1))
        elif checker.hashes[head_seq] != head_hash:
            r.fail_event(head_seq, "head hash %s is not the hash of event %d" % (head_hash, head_seq))
        elif head_seq < last_valid:
            if unclean:
                r.notes.append("head names event %d, log ends at event %d: accepted, metadata/writer.lock "
                               "is non-empty (unclean shutdown or live writer)" % (head_seq, last_valid))
            else:
                r.fail_event(head_seq + 1, "event %d is after the head (%d) although the last shutdown "
                             "was clean (metadata/writer.lock empty)" % (head_seq + 1, head_seq))
    if r.first_bad_event is None and good:
        r.head = checker.hashes[last_valid]

    # ---- blocks (§8)
    if blocks_err is not None:
        r.fail_block(1, "blocks.jsonl is unreadable (%s)" % blocks_err)
        blocks_data = b""
    elif blocks_data is None:
        blocks_data = b""           # no blocks yet
    blines, bpartial = split_lines(blocks_data)
    if bpartial:
        r.block_tail_bytes = len(bpartial)       # §8.6: a torn header, unless the block head names it
    recorded = []                   # the `hash` member of each complete line, where it parses
    for _, raw in blines:
        try:
            h = parse_json_line(raw).get("hash")
        except Bad:
            h = None
        recorded.append(h if isinstance(h, str) else None)
    prev_bhash, prev_last, prev_btime = ZERO_HASH, -1, None
    events_missing = False
    for j, (_, raw) in enumerate(blines):
        bno = j + 1
        try:
            b = check_block_header(raw, bno, prev_bhash, prev_last, prev_btime)
            if b["last"] > last_valid:
                # §6/§8.1: a block sealing an event the log does not hold reports the first
                # missing event; the header itself is not the problem.
                if not events_missing:
                    r.fail_event(last_valid + 1, "event %d is missing: block %d seals events up to %d"
                                 % (last_valid + 1, bno, b["last"]))
                events_missing = True
            if not events_missing:
                root = merkle_root([bytes.fromhex(h) for h in checker.hashes[b["first"]:b["last"] + 1]]).hex()
                if root != b["root"]:
                    raise Bad("root %s is not the Merkle root of events %d..%d (%s)"
                              % (b["root"], b["first"], b["last"], root))
                et = checker.times[b["last"]]
                if b["time"] < et:
                    raise Bad("time %s is before the time of event %d (%s)" % (b["time"], b["last"], et))
        except Bad as e:
            r.fail_block(bno, str(e))
            break
        prev_bhash, prev_last, prev_btime = b["hash"], b["last"], b["time"]
        r.blocks = bno
    nblocks = len(blines)           # blocks that blocks.jsonl holds (complete lines)

    # ---- the block head (§8.5, §8.6, §9)
    if bhead_err is not None or (bhead_data is not None and not HEAD_RE.match(bhead_data)) \
            or (bhead_data is not None and len(bhead_data) != 86):
        # FORMAT.md does not say which block; like §6's missing head: the last block
        r.fail_block(nblocks, "metadata/current_block is unreadable (%s)"
                     % (bhead_err or "want 64 lowercase hex, a space, 20 digits, LF: 86 bytes"))
    elif bhead_data is None:
        if nblocks:
            if unclean:
                r.notes.append("metadata/current_block is absent while blocks.jsonl holds %d block(s): "
                               "accepted, metadata/writer.lock is non-empty (unclean shutdown)" % nblocks)
            else:
                r.fail_block(1, "metadata/current_block is absent but blocks.jsonl holds %d block(s) "
                             "after a clean shutdown" % nblocks)
    else:
        bh_hash, bh_no = parse_head(bhead_data, "metadata/current_block")
        r.block_head = bh_hash
        if bh_no > nblocks or bh_no == 0:
            # block 0 is no block, so blocks.jsonl does not hold it either (literal reading)
            r.fail_block(nblocks + 1, "block %d is missing: metadata/current_block names block %d but "
                         "blocks.jsonl holds %d complete line(s)%s" % (
                             nblocks + 1, bh_no, nblocks,
                             " and a torn header" if bpartial else ""))
        elif recorded[bh_no - 1] != bh_hash:
            r.fail_block(bh_no, "metadata/current_block hash %s is not the hash of block %d"
                         % (bh_hash, bh_no))
        elif bh_no < nblocks:
            if unclean:
                r.notes.append("metadata/current_block names block %d, blocks.jsonl ends at block %d: "
                               "accepted, metadata/writer.lock is non-empty (unclean shutdown)"
                               % (bh_no, nblocks))
            else:
                r.fail_block(bh_no + 1, "block %d is after metadata/current_block (%d) although the "
                             "last shutdown was clean" % (bh_no + 1, bh_no))
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="verify-format.py",
        description="Verify a layerfs store (format layerfs-events/1) exactly as docs/FORMAT.md specifies: "
                    "events.jsonl (canonical encoding, hashes, chain, times, fields, content, blobs, tree "
                    "replay), metadata/current_hash, blocks.jsonl, metadata/current_block and torn tails (§10, §8.6). "
                    "A failure names the first bad event or block as FORMAT.md §6 and §8 say.",
        epilog="Exit status: 0 OK (a torn tail is noted, not an error), 1 verification failed, 2 usage error "
               "or not a store (no events.jsonl). "
               "A non-empty metadata/writer.lock is taken to mean an unclean shutdown or a live writer, "
               "so a head that lags the log, or a block head that lags or is absent, is then accepted "
               "(a verifier cannot take the lock).")
    ap.add_argument("store", metavar="STORE", help="path of the store directory")
    ap.add_argument("--json", action="store_true",
                    help='print one JSON object {"ok", "first_bad_event", "first_bad_block", "reason", '
                         '"events", "blocks", "tail_bytes", ...} instead of text')
    args = ap.parse_args(argv)
    if not os.path.isdir(args.store):
        print("verify-format.py: %s: not a directory" % args.store, file=sys.stderr)
        return 2
    try:
        r = verify(args.store)
    except NotAStore as e:
        if args.json:
            print(json.dumps({"ok": False, "first_bad_event": None, "first_bad_block": None,
                              "reason": str(e), "events": 0, "blocks": 0, "tail_bytes": 0}))
        print("verify-format.py: %s: %s" % (args.store, e), file=sys.stderr)
        return 2

    reason = None
    lines = []
    if r.first_bad_event is not None:
        reason = r.event_reason
        lines.append("FAILED: event %d: %s" % (r.first_bad_event, r.event_reason))
    if r.first_bad_block is not None:
        if reason is None:
            reason = r.block_reason
        lines.append("FAILED: block %d: %s" % (r.first_bad_block, r.block_reason))
    if r.ok:
        lines.append("OK: %d events, %d blocks, head %s" % (r.events, r.blocks, r.head))
    if r.tail_bytes:
        lines.append("TAIL: %d bytes after event %d" % (r.tail_bytes, r.tail_after))
    if r.block_tail_bytes:
        lines.append("BLOCK TAIL: %d bytes after block %d" % (r.block_tail_bytes, r.blocks))
    for n in r.notes:
        lines.append("NOTE: %s" % n)

    if args.json:
        print(json.dumps({
            "ok": r.ok,
            "first_bad_event": r.first_bad_event,
            "first_bad_block": r.first_bad_block,
            "reason": reason,
            "events": r.events,
            "blocks": r.blocks,
            "tail_bytes": r.tail_bytes,
            "block_tail_bytes": r.block_tail_bytes,
            "head": r.head,
            "block_head": r.block_head,
            "notes": r.notes,
        }))
    else:
        print("\n".join(lines))
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
