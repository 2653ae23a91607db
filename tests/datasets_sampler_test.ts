import assert from "node:assert/strict";
import { PatchSampler, TwoStreamBatchSampler } from "../datasets/sampler.ts";
import { synthetic } from "../datasets/synthetic.ts";
import { Rng } from "../methods/nn/rng.ts";

Deno.test("TwoStreamBatchSampler: labeled first, one labeled pass per epoch, eternal unlabeled stream", () => {
  const primary = [0, 1, 2, 3, 4];
  const secondary = [10, 11, 12, 13, 14, 15, 16];
  const s = new TwoStreamBatchSampler(primary, secondary, 4, 2, new Rng(1));
  assert.equal(s.epochLength, 2); // floor(5/2)
  const sec: number[] = [];
  for (let e = 0; e < 6; e++) {
    const seen: number[] = [];
    const secEpoch: number[] = [];
    for (let b = 0; b < s.epochLength; b++) {
      const batch = s.next();
      assert.equal(batch.length, 4);
      assert.equal(s.epoch, e);
      seen.push(...batch.slice(0, 2));
      secEpoch.push(...batch.slice(2));
      assert.ok(batch.slice(0, 2).every((i) => primary.includes(i)));
      assert.ok(batch.slice(2).every((i) => secondary.includes(i)));
    }
    assert.equal(new Set(seen).size, 4); // 4 distinct labeled per epoch, one dropped
    // Within an epoch the unlabeled stream is a fresh permutation: the first 4 are distinct.
    assert.equal(new Set(secEpoch).size, 4);
    sec.push(...secEpoch);
  }
  assert.equal(sec.length, 24);
});

Deno.test("TwoStreamBatchSampler: secondary stream wraps with fresh permutations within an epoch", () => {
  const s = new TwoStreamBatchSampler(
    Array.from({ length: 20 }, (_, i) => i),
    [100, 101, 102],
    3,
    1,
    new Rng(9),
  );
  const sec: number[] = [];
  for (let b = 0; b < 9; b++) sec.push(...s.next().slice(1));
  for (let k = 0; k < 6; k++) assert.deepEqual(sec.slice(3 * k, 3 * k + 3).sort(), [100, 101, 102]);
});

Deno.test("TwoStreamBatchSampler: same seed same sequence; state/restore resumes exactly", () => {
  const mk = () =>
    new TwoStreamBatchSampler([0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12], 4, 2, new Rng(42));
  const a = mk(), b = mk();
  const seqA = Array.from({ length: 15 }, () => a.next());
  assert.deepEqual(Array.from({ length: 15 }, () => b.next()), seqA);
  const c = mk();
  for (let i = 0; i < 7; i++) c.next();
  const st = JSON.parse(JSON.stringify(c.state()));
  const d = mk();
  d.restore(st);
  assert.deepEqual(Array.from({ length: 8 }, () => d.next()), seqA.slice(7));
});

Deno.test("PatchSampler: NDHWC batches, deterministic, resumable, labeled first", async () => {
  const ds = synthetic.open("", { n: 8, size: 12, nTrain: 8 });
  const cases = await Promise.all((await ds.caseIds()).map((id) => ds.load(id)));
  const opts = {
    patch: [8, 8, 6] as [number, number, number],
    batchSize: 4,
    labeledBatchSize: 2,
    seed: 1337,
  };
  const a = new PatchSampler(cases, [0, 1, 2], [3, 4, 5, 6, 7], opts);
  const b = new PatchSampler(cases, [0, 1, 2], [3, 4, 5, 6, 7], opts);
  assert.equal(a.epochLength, 1);
  const batches = Array.from({ length: 6 }, () => a.next());
  for (const [k, x] of batches.entries()) {
    assert.deepEqual(x.imageShape, [4, 8, 8, 6, 1]);
    assert.deepEqual(x.labelShape, [4, 8, 8, 6]);
    assert.equal(x.image.length, 4 * 8 * 8 * 6);
    assert.ok(x.label instanceof Int32Array);
    assert.ok(x.caseIndices.slice(0, 2).every((i) => i < 3));
    assert.ok(x.caseIndices.slice(2).every((i) => i >= 3));
    const y = b.next();
    assert.deepEqual(y.image, x.image, `batch ${k}`);
    assert.deepEqual(y.label, x.label);
  }
  const c = new PatchSampler(cases, [0, 1, 2], [3, 4, 5, 6, 7], opts);
  for (let i = 0; i < 3; i++) c.next();
  const st = JSON.parse(JSON.stringify(c.state()));
  const d = new PatchSampler(cases, [0, 1, 2], [3, 4, 5, 6, 7], opts);
  d.restore(st);
  for (let i = 3; i < 6; i++) assert.deepEqual(d.next().image, batches[i]!.image);
  const e = new PatchSampler(cases, [0, 1, 2], [3, 4, 5, 6, 7], { ...opts, seed: 1338 });
  assert.notDeepEqual(e.next().image, batches[0]!.image);
});
