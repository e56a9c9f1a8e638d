"""The Python binding (python/kvpool_py.cc) on an in-process pool and on kvpoold.

Each PoolTest opens a pool with one DRAM region from a TOML file in a temp
dir; DaemonTest serves the same pool from a kvpoold child ($KVPOOLD).
ctest runs this file as python_test with PYTHONPATH set to the module's
build directory; the numpy cases need python3-numpy.
"""

import array
import ctypes
import gc
import os
import signal
import subprocess
import tempfile
import time
import unittest

import kvpool

try:
    import numpy
except ImportError:  # the numpy cases report themselves skipped
    numpy = None

LAYERS = 4
CHUNK_TOKENS = 16
SEGMENT = 2 * CHUNK_TOKENS * 2 * 64 * 2  # K and V, 16 tokens, 2 heads, 64 dims, 2 bytes

POOL_TOML = """\
[model]
layers = 4
kv_heads = 2
head_dim = 64
dtype_bytes = 2
chunk_tokens = 16

[[device]]
name = "dram0"
kind = "dram"
capacity = "8MiB"
bandwidth_gibps = 4.0
"""


def pattern(chunks, layer, seed):
    """Deterministic bytes of `chunks` segments of one layer."""
    return bytes((i * 31 + layer * 7 + seed) % 251 for i in range(chunks * SEGMENT))


class PoolTest(unittest.TestCase):
    def setUp(self):
        root = os.environ.get("KVPOOL_TEST_TMP")
        if root:
            os.makedirs(root, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory(dir=root)
        self.config = os.path.join(self.tmp.name, "pool.toml")
        with open(self.config, "w") as f:
            f.write(POOL_TOML)
        self.pool = kvpool.open(self.config)

    def tearDown(self):
        self.pool.close()
        self.tmp.cleanup()

    def keys(self, chunks, seed=1):
        ns = kvpool.namespace(self.pool.shape["fingerprint"], "")
        tokens = [i * 3 + seed for i in range(chunks * CHUNK_TOKENS)]
        return kvpool.chain_keys(ns, tokens, CHUNK_TOKENS)

    def offload_pattern(self, keys, seed):
        src = [pattern(len(keys), l, seed) for l in range(LAYERS)]
        self.assertEqual(self.pool.offload(keys, src, SEGMENT), len(keys))
        return src

    def test_shape(self):
        shape = self.pool.shape
        self.assertEqual(shape["layers"], LAYERS)
        self.assertEqual(shape["kv_heads"], 2)
        self.assertEqual(shape["head_dim"], 64)
        self.assertEqual(shape["dtype_bytes"], 2)
        self.assertEqual(shape["chunk_tokens"], CHUNK_TOKENS)
        self.assertEqual(shape["segment_payload_bytes"], SEGMENT)
        self.assertIsInstance(shape["fingerprint"], int)

    def test_keys(self):
        ns = kvpool.namespace(1234, "tenant-a")
        self.assertEqual(len(ns), 2)
        self.assertNotEqual(ns, kvpool.namespace(1234, "tenant-b"))
        self.assertEqual(kvpool.namespace(1234), kvpool.namespace(1234, ""))
        tokens = list(range(3 * CHUNK_TOKENS + 5))
        keys = kvpool.chain_keys(ns, tokens, CHUNK_TOKENS)
        self.assertEqual(len(keys), 3)  # the partial chunk has no key
        for hi, lo in keys:
            self.assertTrue(0 <= hi < 2**64 and 0 <= lo < 2**64)
        self.assertEqual(kvpool.chain_keys(ns, array.array("i", tokens), CHUNK_TOKENS), keys)
        self.assertEqual(kvpool.chain_keys(ns, tokens[:CHUNK_TOKENS], CHUNK_TOKENS), keys[:1])
        self.assertEqual(kvpool.chain_keys(ns, [], CHUNK_TOKENS), [])
        with self.assertRaisesRegex(ValueError, "chunk_tokens"):
            kvpool.chain_keys(ns, tokens, 0)
        with self.assertRaisesRegex(TypeError, "int32"):
            kvpool.chain_keys(ns, array.array("d", [1.0] * 16), CHUNK_TOKENS)
        with self.assertRaisesRegex(ValueError, r"tokens\[1\]"):
            kvpool.chain_keys(ns, [0, 2**31], CHUNK_TOKENS)
        with self.assertRaisesRegex(TypeError, "ns"):
            kvpool.chain_keys((1, 2, 3), tokens, CHUNK_TOKENS)

    def test_partial_chunk_key(self):
        ns = kvpool.namespace(1234, "tenant-a")
        tokens = list(range(2 * CHUNK_TOKENS))
        full = kvpool.chain_keys(ns, tokens, CHUNK_TOKENS)
        second = tokens[CHUNK_TOKENS:]
        keys = [kvpool.partial_chunk_key(ns, full[0], second[:n]) for n in range(1, CHUNK_TOKENS)]
        self.assertEqual(len(set(keys)), CHUNK_TOKENS - 1)  # one key per length
        for hi, lo in keys:
            self.assertTrue(0 <= hi < 2**64 and 0 <= lo < 2**64)
        self.assertEqual(kvpool.partial_chunk_key(ns, full[0], array.array("i", second[:5])),
                         keys[4])
        self.assertEqual(kvpool.partial_chunk_key(ns, list(full[0]), second[:5]), keys[4])
        # Never a full chunk's key; the parent and the namespace are hashed.
        self.assertNotEqual(kvpool.partial_chunk_key(ns, full[0], second), full[1])
        self.assertNotEqual(kvpool.partial_chunk_key(ns, (0, 0), tokens[:CHUNK_TOKENS]), full[0])
        self.assertNotEqual(kvpool.partial_chunk_key(ns, (0, 0), second[:5]), keys[4])
        self.assertNotEqual(kvpool.partial_chunk_key(kvpool.namespace(1234, "tenant-b"), full[0],
                                                     second[:5]), keys[4])
        with self.assertRaisesRegex(ValueError, "tokens must not be empty"):
            kvpool.partial_chunk_key(ns, full[0], [])
        with self.assertRaisesRegex(TypeError, "parent"):
            kvpool.partial_chunk_key(ns, (1,), second[:5])
        with self.assertRaisesRegex(TypeError, "ns"):
            kvpool.partial_chunk_key("ns", full[0], second[:5])
        with self.assertRaisesRegex(TypeError, "int32"):
            kvpool.partial_chunk_key(ns, full[0], array.array("q", second[:5]))

    @unittest.skipIf(numpy is None, "numpy is not installed (python3-numpy)")
    def test_keys_from_numpy(self):
        ns = kvpool.namespace(99, "")
        tokens = numpy.arange(2 * CHUNK_TOKENS, dtype=numpy.int32)
        self.assertEqual(kvpool.chain_keys(ns, tokens, CHUNK_TOKENS),
                         kvpool.chain_keys(ns, tokens.tolist(), CHUNK_TOKENS))
        with self.assertRaisesRegex(TypeError, "int32"):
            kvpool.chain_keys(ns, tokens.astype(numpy.int64), CHUNK_TOKENS)

    def test_round_trip_bytearray(self):
        keys = self.keys(3)
        self.assertEqual(self.pool.lookup(keys), 0)
        src = self.offload_pattern(keys, seed=5)
        self.assertEqual(self.pool.lookup(keys), 3)
        self.assertEqual(self.pool.offload(keys, src, SEGMENT), 0)  # already present
        dst = [bytearray(3 * SEGMENT) for _ in range(LAYERS)]
        self.assertEqual(self.pool.retrieve(keys, dst, SEGMENT), 3)
        self.assertEqual([bytes(d) for d in dst], src)

    def test_round_trip_memoryview_with_stride_and_first_chunk(self):
        keys = self.keys(4, seed=2)
        stride = SEGMENT + 100  # a gap of 100 bytes between chunks
        full = [pattern(4, l, 3) for l in range(LAYERS)]
        src = [bytearray(4 * stride) for _ in range(LAYERS)]
        for l, buf in enumerate(src):
            for c in range(4):
                buf[c * stride:c * stride + SEGMENT] = full[l][c * SEGMENT:(c + 1) * SEGMENT]
        self.assertEqual(self.pool.offload(keys, [memoryview(b) for b in src], stride), 4)
        self.assertEqual(self.pool.lookup(keys), 4)
        # Chunks 2 and 3 only: the caller holds chunks 0 and 1 already.
        dst = [memoryview(bytearray(2 * stride)) for _ in range(LAYERS)]
        self.assertEqual(self.pool.retrieve(keys, dst, stride, first_chunk=2), 4)
        for l in range(LAYERS):
            self.assertEqual(bytes(dst[l][0:SEGMENT]), full[l][2 * SEGMENT:3 * SEGMENT])
            self.assertEqual(bytes(dst[l][stride:stride + SEGMENT]), full[l][3 * SEGMENT:])

    def test_offload_from_first_chunk(self):
        keys = self.keys(3, seed=6)
        full = [pattern(3, l, 4) for l in range(LAYERS)]
        tail = [memoryview(b)[SEGMENT:] for b in full]  # chunks 1 and 2
        self.assertEqual(self.pool.offload(keys, tail, SEGMENT, first_chunk=1), 2)
        self.assertEqual(self.pool.lookup(keys), 0)  # chunk 0 is still missing
        self.assertEqual(self.pool.offload(keys, full, SEGMENT), 1)
        self.assertEqual(self.pool.lookup(keys), 3)
        dst = [bytearray(3 * SEGMENT) for _ in range(LAYERS)]
        self.assertEqual(self.pool.retrieve(keys, dst, SEGMENT), 3)
        self.assertEqual([bytes(d) for d in dst], full)

    @unittest.skipIf(numpy is None, "numpy is not installed (python3-numpy)")
    def test_round_trip_numpy(self):
        keys = self.keys(2, seed=3)
        rng = numpy.random.default_rng(7)
        # One (chunks, tokens, heads, dims x 2) float16 array per layer.
        src = [rng.standard_normal((2, CHUNK_TOKENS, 2, 128)).astype(numpy.float16)
               for _ in range(LAYERS)]
        self.assertEqual(src[0].nbytes, 2 * SEGMENT)
        self.assertEqual(self.pool.offload(keys, src, SEGMENT), 2)
        dst = [numpy.zeros_like(a) for a in src]
        self.assertEqual(self.pool.retrieve(keys, dst, SEGMENT), 2)
        for a, b in zip(src, dst):
            self.assertTrue(numpy.array_equal(a.view(numpy.uint16), b.view(numpy.uint16)))

    def test_buffer_errors(self):
        keys = self.keys(2)
        good = [bytearray(2 * SEGMENT) for _ in range(LAYERS)]
        self.assertEqual(self.pool.offload(keys, good, SEGMENT), 2)
        short = list(good)
        short[2] = bytearray(2 * SEGMENT - 1)
        with self.assertRaisesRegex(ValueError, r"layers\[2\] has 16383 bytes"):
            self.pool.retrieve(keys, short, SEGMENT)
        with self.assertRaisesRegex(ValueError, r"layers\[2\]"):
            self.pool.offload(keys, short, SEGMENT)
        readonly = [bytes(2 * SEGMENT)] + good[1:]
        with self.assertRaisesRegex(ValueError, r"layers\[0\] is read-only"):
            self.pool.retrieve(keys, readonly, SEGMENT)
        with self.assertRaisesRegex(ValueError, r"layers\[1\] is read-only"):
            self.pool.retrieve(keys, [good[0], memoryview(bytes(2 * SEGMENT))] + good[2:],
                               SEGMENT)
        self.assertEqual(self.pool.offload(keys, readonly, SEGMENT), 0)  # reading is fine
        with self.assertRaisesRegex(ValueError, "3 buffers, the pool's shape has 4 layers"):
            self.pool.retrieve(keys, good[:3], SEGMENT)
        with self.assertRaisesRegex(TypeError, r"layers\[3\] does not support the buffer"):
            self.pool.retrieve(keys, good[:3] + [42], SEGMENT)
        with self.assertRaisesRegex(TypeError, "sequence of buffers"):
            self.pool.retrieve(keys, good[0], SEGMENT)
        with self.assertRaisesRegex(kvpool.Error, "chunk_stride") as caught:
            self.pool.retrieve(keys, good, SEGMENT // 2)
        self.assertEqual(caught.exception.status, "invalid argument")
        with self.assertRaisesRegex(TypeError, r"keys\[1\]"):
            self.pool.lookup([keys[0], (1,)])
        with self.assertRaisesRegex(ValueError, r"keys\[0\]\[1\]"):
            self.pool.lookup([(1, -1)])

    @unittest.skipIf(numpy is None, "numpy is not installed (python3-numpy)")
    def test_numpy_buffer_errors(self):
        keys = self.keys(1)
        wide = numpy.zeros((LAYERS, 2 * SEGMENT), dtype=numpy.uint8)
        with self.assertRaisesRegex(ValueError, r"layers\[0\] is not C-contiguous"):
            self.pool.retrieve(keys, [wide[0, ::2]] + list(wide[1:]), SEGMENT)
        frozen = numpy.zeros(SEGMENT, dtype=numpy.uint8)
        frozen.flags.writeable = False
        with self.assertRaisesRegex(ValueError, r"layers\[3\] is read-only"):
            self.pool.retrieve(keys, list(wide[:3]) + [frozen], SEGMENT)

    def test_lookup_after_remove(self):
        keys = self.keys(4)
        self.offload_pattern(keys, seed=8)
        self.assertEqual(self.pool.remove(keys[2:]), 2)
        self.assertEqual(self.pool.lookup(keys), 2)
        self.assertEqual(self.pool.remove(keys[2:]), 0)
        self.assertEqual(self.pool.remove(keys[:1]), 1)
        self.assertEqual(self.pool.lookup(keys), 0)
        self.pool.flush()

    def partial_key(self, full, n, seed=1):
        """The key of the partial chunk of n tokens after self.keys(full, seed)."""
        ns = kvpool.namespace(self.pool.shape["fingerprint"], "")
        start = full * CHUNK_TOKENS
        parent = self.keys(full, seed)[-1] if full else (0, 0)
        return kvpool.partial_chunk_key(ns, parent, [i * 3 + seed for i in range(start, start + n)])

    def test_find_child_finds_an_offloaded_partial_chunk(self):
        full = self.keys(3)
        self.offload_pattern(full, seed=5)
        # The partial chunk of 5 tokens, stored as the leaf of the full chunks' chain.
        chain = full + [self.partial_key(3, 5)]
        leaf = [pattern(1, l, 11) for l in range(LAYERS)]
        self.assertEqual(self.pool.offload(chain, leaf, SEGMENT, first_chunk=3), 1)
        candidates = [self.partial_key(3, n) for n in range(CHUNK_TOKENS - 1, 0, -1)]
        self.assertEqual(self.pool.find_child(full, candidates), CHUNK_TOKENS - 1 - 5)
        self.assertEqual(self.pool.find_child(full, candidates[10:]), 0)
        self.assertEqual(self.pool.find_child(full, candidates[11:]), len(candidates[11:]))
        self.assertEqual(self.pool.find_child(full[:2], candidates), len(candidates))
        self.assertEqual(self.pool.find_child([], candidates), len(candidates))
        self.assertEqual(self.pool.find_child(full, []), 0)
        dst = [bytearray(SEGMENT) for _ in range(LAYERS)]
        self.assertEqual(self.pool.retrieve(chain, dst, SEGMENT, first_chunk=3), 4)
        self.assertEqual([bytes(d) for d in dst], leaf)

    def test_find_child_at_the_prompt_start(self):
        leaf = self.partial_key(0, 7, seed=4)
        self.assertEqual(self.pool.offload([leaf], [pattern(1, l, 2) for l in range(LAYERS)],
                                           SEGMENT), 1)
        candidates = [self.partial_key(0, 8, seed=4), leaf]
        self.assertEqual(self.pool.find_child([], candidates), 1)
        self.assertEqual(self.pool.find_child(self.keys(1, seed=4), candidates), 2)

    def test_find_child_errors(self):
        keys = self.keys(2)
        with self.assertRaisesRegex(TypeError, r"prefix\[1\]"):
            self.pool.find_child([keys[0], (1,)], keys)
        with self.assertRaisesRegex(ValueError, r"candidates\[0\]\[0\]"):
            self.pool.find_child(keys, [(-1, 0)])
        with self.assertRaisesRegex(TypeError, "candidates must be a sequence"):
            self.pool.find_child(keys, "ab")
        self.pool.close()
        with self.assertRaises(kvpool.Error) as caught:
            self.pool.find_child(keys, keys)
        self.assertEqual(caught.exception.status, "aborted")

    def test_stats(self):
        keys = self.keys(2)
        self.offload_pattern(keys, seed=4)
        self.pool.lookup(keys)
        self.pool.flush()  # counters are settled once no request is in flight
        stats = self.pool.stats()
        self.assertEqual(stats["chunks"], 2)
        self.assertEqual(stats["segments"], 2 * LAYERS)
        self.assertEqual(stats["offloaded_chunks"], 2)
        self.assertGreaterEqual(stats["lookups"], 1)
        self.assertEqual([d["name"] for d in stats["devices"]], ["dram0"])
        self.assertEqual(stats["devices"][0]["kind"], "dram")
        self.assertEqual(stats["devices"][0]["capacity_bytes"], 8 << 20)
        self.assertGreater(stats["devices"][0]["used_bytes"], 0)

    def test_alloc_shared(self):
        view = self.pool.alloc_shared(LAYERS * SEGMENT + 1)
        self.assertIsInstance(view, memoryview)
        self.assertFalse(view.readonly)
        self.assertEqual(len(view), LAYERS * SEGMENT + 1)
        view[:] = bytes(len(view))
        if numpy is not None:
            address = numpy.frombuffer(view, dtype=numpy.uint8).ctypes.data
            self.assertEqual(address % 4096, 0)
        # One segment per layer, straight from and into shared memory.
        keys = self.keys(1, seed=9)
        layers = [view[l * SEGMENT:(l + 1) * SEGMENT] for l in range(LAYERS)]
        for l, part in enumerate(layers):
            part[:] = pattern(1, l, 21)
        self.assertEqual(self.pool.offload(keys, layers, SEGMENT), 1)
        view[:] = bytes(len(view))
        self.assertEqual(self.pool.retrieve(keys, layers, SEGMENT), 1)
        for l, part in enumerate(layers):
            self.assertEqual(bytes(part), pattern(1, l, 21))
        del layers, part, view
        gc.collect()
        with self.assertRaisesRegex(ValueError, "nbytes"):
            self.pool.alloc_shared(0)

    def test_shared_memory_outlives_close(self):
        view = self.pool.alloc_shared(4096)
        self.pool.close()
        self.assertTrue(self.pool.closed)
        view[0:4] = b"kvpo"  # still valid: the pool is released after its buffers
        self.assertEqual(bytes(view[0:4]), b"kvpo")
        with self.assertRaises(kvpool.Error) as caught:
            self.pool.lookup([])
        self.assertEqual(caught.exception.status, "aborted")
        with self.assertRaises(kvpool.Error):
            self.pool.alloc_shared(4096)
        del view
        gc.collect()
        self.pool.close()  # closing twice is a no-op

    def test_context_manager(self):
        with kvpool.open(self.config) as pool:
            keys = self.keys(1)
            self.assertEqual(pool.offload(keys, [bytes(SEGMENT)] * LAYERS, SEGMENT), 1)
            self.assertFalse(pool.closed)
        self.assertTrue(pool.closed)


class DaemonTest(unittest.TestCase):
    """The same calls through kvpoold: staged numpy buffers and zero-copy shared memory."""

    def setUp(self):
        binary = os.environ.get("KVPOOLD")
        if not binary or not os.path.exists(binary):
            self.fail(f"KVPOOLD={binary!r}: the kvpoold binary is needed (ctest sets it)")
        root = os.environ.get("KVPOOL_TEST_TMP")
        if root:
            os.makedirs(root, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory(dir=root)
        self.socket = os.path.join(self.tmp.name, "kvpoold.sock")
        config = os.path.join(self.tmp.name, "kvpoold.toml")
        with open(config, "w") as f:
            f.write(POOL_TOML + f'\n[daemon]\nsocket = "{self.socket}"\n')
        self.daemon = subprocess.Popen([binary, "--config", config], stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(self.socket):
            if self.daemon.poll() is not None or time.time() > deadline:
                self.fail("kvpoold did not start: " + self.daemon.stderr.read().decode())
            time.sleep(0.02)
        self.pool = kvpool.open("unix:" + self.socket, timeout_ms=5000)

    def tearDown(self):
        self.pool.close()
        self.daemon.send_signal(signal.SIGTERM)
        self.assertEqual(self.daemon.wait(30), 0)
        self.daemon.stderr.close()
        self.tmp.cleanup()

    def keys(self, chunks, seed):
        ns = kvpool.namespace(self.pool.shape["fingerprint"], "")
        return kvpool.chain_keys(ns, [i * 5 + seed for i in range(chunks * CHUNK_TOKENS)], CHUNK_TOKENS)

    @unittest.skipIf(numpy is None, "python3-numpy is not installed")
    def test_round_trip_numpy_through_the_daemon(self):
        keys = self.keys(6, 1)
        src = [numpy.frombuffer(pattern(6, l, 3), dtype=numpy.uint8).copy() for l in range(LAYERS)]
        self.assertEqual(self.pool.offload(keys, src, SEGMENT), 6)
        self.assertEqual(self.pool.lookup(keys), 6)
        dst = [numpy.zeros(6 * SEGMENT, dtype=numpy.uint8) for _ in range(LAYERS)]
        self.assertEqual(self.pool.retrieve(keys, dst, SEGMENT), 6)
        for l in range(LAYERS):
            self.assertTrue(numpy.array_equal(dst[l], src[l]), f"layer {l}")
        stats = self.pool.stats()
        self.assertEqual(stats["pool"]["chunks"], 6)
        self.assertEqual(stats["tenants"][0]["name"], "default")
        self.assertEqual(stats["tenants"][0]["offloaded_chunks"], 6)

    def test_shared_memory_is_read_and_written_by_the_daemon(self):
        keys = self.keys(3, 2)
        view = self.pool.alloc_shared(LAYERS * 3 * SEGMENT)
        layers = [view[l * 3 * SEGMENT:(l + 1) * 3 * SEGMENT] for l in range(LAYERS)]
        for l, part in enumerate(layers):
            part[:] = pattern(3, l, 8)
        self.assertEqual(self.pool.offload(keys, layers, SEGMENT), 3)
        view[:] = bytes(len(view))
        self.assertEqual(self.pool.retrieve(keys, layers, SEGMENT), 3)
        for l, part in enumerate(layers):
            self.assertEqual(bytes(part), pattern(3, l, 8), f"layer {l}")
        self.assertEqual(self.pool.remove(keys[1:]), 2)
        self.assertEqual(self.pool.lookup(keys), 1)
        del layers, part, view
        gc.collect()

    def region_flags(self, view):
        """The VmFlags of the mapping that holds `view` (/proc/self/smaps)."""
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        with open("/proc/self/smaps") as f:
            inside = False
            for line in f:
                head = line.split()[0]
                if "-" in head and ":" not in head:
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo <= address < hi
                elif inside and line.startswith("VmFlags:"):
                    return line.split()[1:]
        self.fail(f"no mapping holds {address:#x}")

    def test_region_pages_choose_the_shared_regions_pages(self):
        # MADV_HUGEPAGE shows as "hg", MADV_NOHUGEPAGE as "nh", hugetlb as "ht".
        view = self.pool.alloc_shared(4 << 20)
        self.assertIn("hg", self.region_flags(view), "the default is transparent huge pages")
        del view
        with kvpool.open("unix:" + self.socket, timeout_ms=5000, region_pages="small") as small:
            view = small.alloc_shared(4 << 20)
            flags = self.region_flags(view)
            self.assertIn("nh", flags)
            self.assertNotIn("hg", flags)
            del view
        with kvpool.open("unix:" + self.socket, timeout_ms=5000, shared_bytes=8 << 20,
                         region_pages="hugetlb") as huge:
            view = huge.alloc_shared(4 << 20)
            flags = self.region_flags(view)
            # hugetlb pages where enough are reserved and free, else transparent ones.
            self.assertTrue("ht" in flags or "hg" in flags, flags)
            del view
        gc.collect()
        with self.assertRaises(kvpool.Error) as caught:
            kvpool.open("unix:" + self.socket, region_pages="huge")
        self.assertEqual(caught.exception.status, "invalid argument")
        self.assertIn("region_pages: 'huge'", caught.exception.message)

    def test_find_child_through_the_daemon(self):
        keys = self.keys(2, 3)
        self.assertEqual(self.pool.offload(keys, [pattern(2, l, 1) for l in range(LAYERS)],
                                           SEGMENT), 2)
        ns = kvpool.namespace(self.pool.shape["fingerprint"], "")
        tail = [2 * CHUNK_TOKENS * 5 + 3 + 5 * i for i in range(CHUNK_TOKENS - 1)]
        candidates = [kvpool.partial_chunk_key(ns, keys[-1], tail[:n])
                      for n in range(CHUNK_TOKENS - 1, 0, -1)]
        leaf = [pattern(1, l, 6) for l in range(LAYERS)]
        self.assertEqual(self.pool.offload(keys + [candidates[4]], leaf, SEGMENT, first_chunk=2), 1)
        self.assertEqual(self.pool.find_child(keys, candidates), 4)
        self.assertEqual(self.pool.find_child(keys[:1], candidates), len(candidates))
        self.assertEqual(self.pool.find_child(keys, candidates[5:]), len(candidates[5:]))


class OpenTest(unittest.TestCase):
    def test_error_is_a_runtime_error(self):
        self.assertTrue(issubclass(kvpool.Error, RuntimeError))

    def test_missing_file_names_the_path(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "absent.toml")
            with self.assertRaises(kvpool.Error) as caught:
                kvpool.open(path)
        error = caught.exception
        self.assertEqual(error.status, "invalid argument")
        self.assertEqual(error.code, 2)
        self.assertIn(path, error.message)
        self.assertIn(path, str(error))

    def test_bad_target(self):
        with self.assertRaises(kvpool.Error) as caught:
            kvpool.open("")
        self.assertEqual(caught.exception.status, "invalid argument")
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(kvpool.Error):
                kvpool.open("unix:" + os.path.join(tmp, "no-daemon.sock"), tenant="t",
                            timeout_ms=200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
