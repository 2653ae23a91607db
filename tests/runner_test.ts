/** The runner: divergence handling, best-val selection, and its refusal without a validation split. */
import assert from "node:assert/strict";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { executeRun, type RunContext } from "../benchmarks/harness/runner.ts";
import { ResultStore } from "../benchmarks/harness/store.ts";
import { Progress } from "../benchmarks/harness/progress.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { synthetic as syntheticSpec } from "../benchmarks/synthetic.ts";
import { synthetic } from "../datasets/synthetic.ts";
import { initBackend } from "../methods/nn/backend.ts";

const tiny = (over: Partial<BenchmarkSpec>): BenchmarkSpec => ({
  ...syntheticSpec,
  id: "runner_test",
  dataset: { id: "synthetic", options: { n: 8, nTrain: 4, nVal: 2, size: 16 } },
  labeled: [2],
  seeds: [1],
  iterations: 4,
  patch: [16, 16, 16],
  common: { nFilters: 2 },
  eval: { ...syntheticSpec.eval, patch: [16, 16, 16], strideXY: 16, strideZ: 16 },
  checkpointEvery: 1000,
  ...over,
});

async function context(spec: BenchmarkSpec, root: string, splitName?: string): Promise<RunContext> {
  const dataset = synthetic.open("", spec.dataset.options ?? {});
  const splits = await dataset.splits();
  const split = splitName ? splits.find((s) => s.name === splitName)! : splits[0]!;
  return {
    spec,
    dataset,
    split,
    store: new ResultStore(root, spec.id),
    provenance: await initBackend("cpu"),
    gitCommit: "test",
    progress: new Progress(1e9, false),
    cache: new Map(),
    index: 0,
    total: 1,
  };
}

Deno.test("runner: a diverging loss stops that run with one line naming run and iteration; others finish", async () => {
  const root = await Deno.makeTempDir();
  const spec = tiny({
    methods: [
      { key: "blowup", method: "supervised", overrides: { lr: 1e30 } },
      { method: "supervised" },
    ],
    iterations: 6,
  });
  const ctx = await context(spec, root);
  const [bad, good] = expandGrid(spec);
  const r1 = await executeRun(bad!, ctx);
  assert.equal(r1.status, "failed");
  if (r1.status === "failed") {
    assert.match(
      r1.error,
      new RegExp(`^run ${bad!.runId} \\(blowup L=2 seed=1\\): loss diverged at iteration \\d+ \\(`),
    );
    assert.ok(!r1.error.includes("\n"));
  }
  const f = await ctx.store.readFailure(bad!.runId);
  assert.ok(f && f.iteration !== null && f.iteration < 6);
  const r2 = await executeRun(good!, ctx);
  assert.equal(r2.status, "finished");
  assert.equal(await ctx.store.readRun(bad!.runId), null);
  // Rerunning a finished run skips it.
  assert.equal((await executeRun(good!, ctx)).status, "skipped");
  await Deno.remove(root, { recursive: true });
});

Deno.test("runner: best-val selects on the validation split; without one it refuses", async () => {
  const root = await Deno.makeTempDir();
  const spec = tiny({
    methods: [{ method: "supervised" }],
    selection: { kind: "best-val", every: 2 },
  });
  const ctx = await context(spec, root);
  assert.ok(ctx.split.val.length === 2, "synthetic split has a validation part");
  const [run] = expandGrid(spec);
  const res = await executeRun(run!, ctx);
  assert.equal(res.status, "finished", res.status === "failed" ? res.error : "");
  if (res.status === "finished") {
    assert.equal(res.record.protocol.selection, "best-val");
    // Test cases only: validation ids never appear in the scored cases.
    for (const c of res.record.cases) assert.ok(!ctx.split.val.includes(c.id));
  }
  const noVal = tiny({
    id: "runner_test_noval",
    dataset: { id: "synthetic", options: { n: 8, nTrain: 4, nVal: 0, size: 16 } },
    methods: [{ method: "supervised" }],
    selection: { kind: "best-val", every: 2 },
  });
  const ctx2 = await context(noVal, root);
  const r2 = await executeRun(expandGrid(noVal)[0]!, ctx2);
  assert.equal(r2.status, "failed");
  if (r2.status === "failed") assert.match(r2.error, /selection best-val needs a validation split/);
  await Deno.remove(root, { recursive: true });
});
