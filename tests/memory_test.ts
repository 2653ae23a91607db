import assert from "node:assert/strict";
import {
  garbageCollector,
  gcLimitBytes,
  mallocTrim,
  MemoryGuard,
  type MemorySample,
} from "../benchmarks/harness/memory.ts";

const MB = 2 ** 20;

Deno.test("memory: the collector is reachable without --expose-gc; malloc_trim on glibc", () => {
  assert.equal(typeof garbageCollector(), "function");
  if (Deno.build.os === "linux") assert.equal(typeof mallocTrim(), "function");
});

Deno.test("memory: SEMISEG_GC_MB sets the bound; junk values fall back to 1024 MiB", () => {
  assert.equal(gcLimitBytes(() => "64"), 64 * MB);
  assert.equal(gcLimitBytes(() => undefined), 1024 * MB);
  assert.equal(gcLimitBytes(() => "-3"), 1024 * MB);
  assert.equal(gcLimitBytes(() => "lots"), 1024 * MB);
});

Deno.test("memory: collects past the bound over the baseline; what survives is the new baseline", () => {
  let now: MemorySample = { rss: 500 * MB, external: 100 * MB };
  let gcs = 0, trims = 0;
  const guard = new MemoryGuard(
    64 * MB,
    () => gcs++,
    () => trims++,
    () => now,
  );
  assert.equal(guard.check(), false); // the start is the baseline
  now = { rss: 560 * MB, external: 150 * MB };
  assert.equal(guard.check(), false); // +60 MB, +50 MB: under 64 MB
  now = { rss: 570 * MB, external: 170 * MB };
  assert.equal(guard.check(), true); // ArrayBuffers +70 MB
  assert.deepEqual([gcs, trims, guard.collections], [1, 1, 1]);
  // The collection left 700 MB resident (live data, e.g. the loaded cases): the new baseline.
  now = { rss: 700 * MB, external: 160 * MB };
  guard.collect();
  now = { rss: 760 * MB, external: 200 * MB };
  assert.equal(guard.check(), false);
  now = { rss: 770 * MB, external: 200 * MB };
  assert.equal(guard.check(), true); // resident +70 MB
  assert.equal(guard.collections, 3);
});

Deno.test("memory: without a collector the guard never collects", () => {
  const guard = new MemoryGuard(1, null, null, () => ({ rss: 1e12, external: 1e12 }));
  assert.equal(guard.active, false);
  assert.equal(guard.check(), false);
});

Deno.test("memory: the real collector and trim hand dead buffers back (RSS drops)", () => {
  const guard = new MemoryGuard(32 * MB);
  // 300 dead 4 MB buffers, each under glibc's mmap threshold once it has risen.
  for (let i = 0; i < 300; i++) new Float32Array(MB).fill(i);
  const before = Deno.memoryUsage();
  guard.collect();
  const after = Deno.memoryUsage();
  assert.ok(
    after.external < before.external || before.external < 64 * MB,
    `external ${before.external} -> ${after.external}`,
  );
  assert.ok(after.rss <= before.rss, `rss ${before.rss} -> ${after.rss}`);
});
