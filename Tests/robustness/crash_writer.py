"""A writer for the crash runner (test_crash.py): changes files under one directory of a layerfs
mount until a call fails, and records each change in a manifest OUTSIDE the mount.

    crash_writer.py DIR STATE.json MANIFEST SEED [--fill[=MAX]]

DIR is the writer's directory in the mount (created if missing). STATE.json maps the names in DIR
to the sha256 of their content (the state the last check found), so the writer knows what it
changes. For every change, the manifest gets (one JSON line each, flushed before going on):

    {"n": k, "intent": OP, "before": {name: sha|null}, "after": {name: sha|null}, "size": bytes}
    {"n": k, "ack": HOW}

The intent line is written before the first call of the change, the ack line only after the call
that makes it durable returned success: fsync(2), or close(2) of a descriptor that wrote (an
empty file is always fsynced: layerfs commits a file that was only created at its release, just
after close returns), or rename(2)/unlink(2) themselves. A change with an intent and no ack was
in flight: it may or may not be in the store, but then wholly ("before" or "after").

Changes (random, seeded): new files and rewrites (O_TRUNC) of 0 B ... 9 MiB, a sixth of them over
4 MiB (staged by layerfs in metadata/staging/), fsynced or only closed; appends (O_APPEND) to small
files; the editor pattern (write a temp file, fsync, close, rename it over the target: two
changes); renames (sometimes over another file); unlinks.

--fill: only new files (fsynced or closed), large and small, until a call fails (ENOSPC);
--fill=MAX: only new files of MAX/2 ... MAX bytes.

The writer stops at the first failing call and prints one JSON line: what it did and the errno.
"""

import errno
import hashlib
import json
import os
import random
import sys
import time

CHUNK = 256 << 10


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Writer:
    def __init__(self, directory, state, manifest, seed, fill):
        self.dir = directory
        self.model = dict(state)  # name -> sha
        self.sizes = {}
        self.rng = random.Random(seed)
        self.manifest = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.fill = fill is not None
        self.fill_max = fill or None
        self.n = 0
        self.acked = 0
        self.bytes_acked = 0
        self.counts = {}

    def record(self, entry):
        os.write(self.manifest, (json.dumps(entry, sort_keys=True) + "\n").encode())

    def size(self):
        if self.fill_max is not None:
            return self.rng.randint(max(1, self.fill_max // 2), self.fill_max)
        r = self.rng.random()
        if r < 0.05:
            return 0
        if r < 0.55:
            return self.rng.randint(1, 8 << 10)
        if r < 0.83:
            return self.rng.randint(64 << 10, 1 << 20)
        return self.rng.randint((4 << 20) + 1, 9 << 20)  # over 4 MiB: a staged file

    def begin(self, op, before, after, size=0):
        self.n += 1
        self.record({"n": self.n, "intent": op, "before": before, "after": after, "size": size})

    def ack(self, how, size=0):
        self.record({"n": self.n, "ack": how})
        self.acked += 1
        self.bytes_acked += size

    def write_file(self, name, data, flags, sync, op):
        path = os.path.join(self.dir, name)
        if flags & os.O_APPEND:
            after = sha(self.read(name) + data)
        else:
            after = sha(data)
        if len(data) == 0:
            sync = True  # see the module's doc
        self.begin(op, {name: self.model.get(name)}, {name: after}, len(data))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
        acked = False
        try:
            view = memoryview(data)
            done = 0
            while done < len(data):
                done += os.write(fd, view[done:done + CHUNK])
            if sync:
                os.fsync(fd)
                self.ack("fsync", len(data))
                acked = True
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
        if acked:
            try:
                os.close(fd)
            except OSError:
                pass  # durable already: fsync returned success
        else:
            os.close(fd)  # raises if the commit fails: then no ack
            self.ack("close", len(data))
        self.model[name] = after
        self.counts[op] = self.counts.get(op, 0) + 1

    def read(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def new_name(self, prefix="f"):
        return f"{prefix}{self.n + 1:05}-{self.rng.randrange(1 << 30):08x}"

    def step(self):
        names = sorted(self.model)
        if self.fill:
            data = self.rng.randbytes(self.size())
            self.write_file(self.new_name(), data, os.O_TRUNC, self.rng.random() < 0.5, "new")
            return
        r = self.rng.random()
        if not names or r < 0.25 or (len(names) < 6 and r < 0.5):
            data = self.rng.randbytes(self.size())
            self.write_file(self.new_name(), data, os.O_TRUNC, self.rng.random() < 0.5, "new")
        elif r < 0.45:
            data = self.rng.randbytes(self.size())
            self.write_file(self.rng.choice(names), data, os.O_TRUNC, self.rng.random() < 0.5, "rewrite")
        elif r < 0.55:
            small = [n for n in names if os.stat(os.path.join(self.dir, n)).st_size < (64 << 10)]
            if small:
                data = self.rng.randbytes(self.rng.randint(1, 2000))
                self.write_file(self.rng.choice(small), data, os.O_APPEND, self.rng.random() < 0.3, "append")
        elif r < 0.75:
            # The editor pattern: temp file, fsync, close, rename over the target.
            target = self.rng.choice(names)
            temp = f".{target}.tmp{self.n + 1}"
            data = self.rng.randbytes(self.size())
            self.write_file(temp, data, os.O_TRUNC | os.O_EXCL, True, "editor-temp")
            self.rename(temp, target, "editor-rename")
        elif r < 0.87:
            source = self.rng.choice(names)
            others = [n for n in names if n != source]
            target = self.rng.choice(others) if others and self.rng.random() < 0.5 else self.new_name("r")
            self.rename(source, target, "rename-over" if target in self.model else "rename")
        elif len(names) > 4:
            name = self.rng.choice(names)
            self.begin("unlink", {name: self.model[name]}, {name: None})
            os.unlink(os.path.join(self.dir, name))
            self.ack("unlink")
            del self.model[name]
            self.counts["unlink"] = self.counts.get("unlink", 0) + 1
        if len(self.model) > 40:  # keep the directory (and the checks) small
            name = sorted(self.model)[0]
            self.begin("unlink", {name: self.model[name]}, {name: None})
            os.unlink(os.path.join(self.dir, name))
            self.ack("unlink")
            del self.model[name]

    def rename(self, source, target, op):
        moved = self.model[source]
        self.begin(op, {source: moved, target: self.model.get(target)}, {source: None, target: moved})
        os.rename(os.path.join(self.dir, source), os.path.join(self.dir, target))
        self.ack("rename")
        del self.model[source]
        self.model[target] = moved
        self.counts[op] = self.counts.get(op, 0) + 1


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--fill")]
    directory, state_path, manifest, seed = args[0], args[1], args[2], int(args[3])
    fill = None
    for a in sys.argv[1:]:
        if a.startswith("--fill"):
            fill = int(a.split("=", 1)[1]) if "=" in a else 0
    with open(state_path) as f:
        state = json.load(f)
    writer = Writer(directory, state, manifest, seed, fill)
    failure = failed_at = None
    try:
        while True:
            writer.step()
    except OSError as e:
        failure = e.errno
        failed_at = time.monotonic()
    print(json.dumps({"failed_at": failed_at, "acked": writer.acked, "bytes_acked": writer.bytes_acked, "errno": failure,
                      "errno_name": errno.errorcode.get(failure, str(failure)), "counts": writer.counts}), flush=True)


if __name__ == "__main__":
    main()
