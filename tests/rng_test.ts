import assert from "node:assert/strict";
import { deriveSeed, Rng } from "../methods/nn/rng.ts";

Deno.test("deriveSeed is stable, order-sensitive in its parts, and purpose-specific", () => {
  const a = deriveSeed(1337, "ua-mt", "la", 16, "init");
  assert.equal(a, deriveSeed(1337, "ua-mt", "la", 16, "init"));
  assert.notEqual(a, deriveSeed(1337, "ua-mt", "la", 16, "sampler"));
  assert.notEqual(a, deriveSeed(1338, "ua-mt", "la", 16, "init"));
  // "16" the string and 16 the number are different identities.
  assert.notEqual(a, deriveSeed(1337, "ua-mt", "la", "16", "init"));
  // Known answers (Python: int.from_bytes(sha256(b'[0,"x"]').digest()[:4], "big")).
  assert.equal(deriveSeed(0, "x"), 0xb5b775e3);
  assert.equal(a, 1632237074);
});

Deno.test("Rng: same seed same stream, different seed different stream", () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.nextUint32());
  const xb = Array.from({ length: 8 }, () => b.nextUint32());
  const xc = Array.from({ length: 8 }, () => c.nextUint32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
});

Deno.test("Rng: uniform and normal moments are right over 200k draws", () => {
  const r = new Rng(7);
  const n = 200_000;
  let s = 0, s2 = 0, z = 0, z2 = 0;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    assert.ok(u >= 0 && u < 1);
    s += u;
    s2 += u * u;
    const g = r.normal();
    z += g;
    z2 += g * g;
  }
  assert.ok(Math.abs(s / n - 0.5) < 0.005);
  assert.ok(Math.abs(s2 / n - (s / n) ** 2 - 1 / 12) < 0.002);
  assert.ok(Math.abs(z / n) < 0.01);
  assert.ok(Math.abs(z2 / n - 1) < 0.01);
});

Deno.test("Rng: int covers [0,n) uniformly and permutation is a permutation", () => {
  const r = new Rng(1);
  const counts = new Array(5).fill(0);
  for (let i = 0; i < 50_000; i++) counts[r.int(5)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 400, `count ${c}`);
  const p = r.permutation(100);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.throws(() => r.int(0), /positive integer/);
});

Deno.test("Rng: state/restore resumes the exact stream, including the cached Gaussian", () => {
  const r = new Rng(99);
  r.normal(); // leaves a spare
  const st = r.state();
  const rest = [r.normal(), r.uniform(), r.normal()];
  const q = new Rng(0);
  q.restore(st);
  assert.deepEqual([q.normal(), q.uniform(), q.normal()], rest);
});
