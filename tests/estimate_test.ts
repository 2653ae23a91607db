/**
 * Wall-time estimates: arithmetic from stored rates (iterations x step + windows x window,
 * largest shard with --jobs), probes that measure a few steps and store their rates, and the
 * bench printing the estimate on stderr at the start of a run and with --dry-run while the
 * plan on stdout stays byte-identical; a probe leaves a run's numbers unchanged.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  estimatePlan,
  forwardKey,
  humanDuration,
  machineKey,
  NOMINAL_TEST_VOLUMES,
  nominalTestWindows,
  type Rate,
  ratesPath,
  runBatch,
  storeRates,
  trainKey,
} from "../benchmarks/harness/estimate.ts";
import { caseWindows } from "../benchmarks/harness/evaluate.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { ugMclTable3La } from "../benchmarks/ug_mcl_table3_la.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { initBackend } from "../methods/nn/backend.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../benchmarks/main.ts", import.meta.url).pathname;
const dec = new TextDecoder();
const facts = { channels: 1, nClasses: 2, source: "test" };

/** A tiny synthetic plan: 2-filter networks, 16^3 patches. */
const tiny: BenchmarkSpec = {
  ...synthetic,
  id: "estimate_test",
  patch: [16, 16, 16],
  methods: [{ method: "supervised", labeledOnly: true }, { method: "mean-teacher" }],
  labeled: [2],
  seeds: [1, 2],
  iterations: 40,
  common: { ...synthetic.common, nFilters: 2 },
  eval: { ...synthetic.eval, patch: [16, 16, 16], strideXY: 16, strideZ: 16 },
};

Deno.test("humanDuration and the batch a run trains on", () => {
  assert.equal(humanDuration(42), "42 s");
  assert.equal(humanDuration(600), "10 min");
  assert.equal(humanDuration(5 * 3600), "5.0 h");
  assert.equal(humanDuration(2000 * 3600), "83 days (2,000 h)");
  assert.equal(humanDuration(NaN), "unknown");
  const la = expandGrid(ugMclTable3La);
  const sup = la.find((r) => r.rowKey === "supervised")!;
  const upper = la.find((r) => r.rowKey === "supervised-upper")!;
  const mt = la.find((r) => r.rowKey === "mean-teacher")!;
  assert.deepEqual(runBatch(ugMclTable3La, sup), { labeled: 4, unlabeled: 0 });
  assert.deepEqual(runBatch(ugMclTable3La, upper), { labeled: 4, unlabeled: 0 });
  assert.deepEqual(runBatch(ugMclTable3La, mt), { labeled: 2, unlabeled: 2 });
  // supervised and supervised-upper train the same step: one configuration.
  assert.equal(trainKey(ugMclTable3La, sup, facts), trainKey(ugMclTable3La, upper, facts));
  assert.notEqual(trainKey(ugMclTable3La, sup, facts), trainKey(ugMclTable3La, mt, facts));
  // The nominal LA test set: 1,128 windows under the DTC protocol, else 20 at one real shape.
  assert.equal(nominalTestWindows("la", ugMclTable3La.eval)!.windows, 1128);
  const n = NOMINAL_TEST_VOLUMES["la"]!;
  const other = { ...ugMclTable3La.eval, strideXY: 56, strideZ: 40 };
  assert.equal(nominalTestWindows("la", other)!.windows, 20 * caseWindows(n.shape, other));
  assert.equal(caseWindows(n.shape, ugMclTable3La.eval), 45);
  assert.equal(nominalTestWindows("brats19", ugMclTable3La.eval), null);
});

Deno.test("estimate from stored rates: iterations x step + windows x window; jobs = the claimed list schedule", async () => {
  const provenance = await initBackend("cpu-js");
  const out = await Deno.makeTempDir({ prefix: "estimate_" });
  try {
    const runs = expandGrid(tiny);
    assert.equal(runs.length, 4);
    const rate = (seconds: number): Rate => ({ seconds, source: "test", at: "now" });
    const train: Record<string, Rate> = {}, forward: Record<string, Rate> = {};
    for (const r of runs) {
      train[trainKey(tiny, r, facts)] = rate(r.method === "supervised" ? 0.5 : 1);
      forward[forwardKey(tiny, r, facts)] = rate(0.1);
    }
    await storeRates(out, machineKey(provenance), train, forward);
    const lines: string[] = [];
    const est = await estimatePlan({
      spec: tiny,
      runs,
      finished: new Set([runs[3]!.runId]),
      provenance,
      outRoot: out,
      jobs: 2,
      facts,
      windows: () => ({ test: 10, val: 0 }),
      windowsSource: "test windows",
      print: (l) => lines.push(l),
    });
    assert.equal(est.probed, 0);
    // 2 supervised runs at 40 x 0.5 + 10 x 0.1 = 21 s, 1 mean-teacher run at 40 x 1 + 1 = 41 s.
    assert.equal(est.trainSeconds, 40 * 0.5 * 2 + 40);
    assert.ok(Math.abs(est.evalSeconds - 3) < 1e-9);
    assert.ok(Math.abs(est.serialSeconds - 83) < 1e-9);
    // Two workers claim the 3 unfinished runs longest first: [41] and [21, 21] -> 42 s.
    assert.ok(Math.abs(est.wallSeconds - 42) < 1e-9, `wall ${est.wallSeconds}`);
    assert.match(lines[0]!, /^estimate: 2 step configurations on cpu-js, .*: 2 from stored rates/);
    assert.match(lines[1]!, /supervised +16x16x16 batch 2\+0: 0\.50 s\/step \(stored: test\)/);
    assert.match(
      lines.at(-1)!,
      /^estimated wall time: \d+ s for 3 runs \(1 finished earlier, skipped\) as 2 workers \(serial 83 s\): training 80 s, evaluation 3 s \(30 test windows; test windows\)$/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("estimate: probes a few steps per configuration, stores them, reuses them", async () => {
  const provenance = await initBackend("cpu");
  const out = await Deno.makeTempDir({ prefix: "estimate_" });
  try {
    const runs = expandGrid(tiny);
    const base = {
      spec: tiny,
      runs,
      finished: new Set<string>(),
      provenance,
      outRoot: out,
      jobs: 1,
      facts,
      windows: () => ({ test: 4, val: 0 }),
      windowsSource: "test",
    };
    const first: string[] = [];
    const a = await estimatePlan({ ...base, print: (l) => first.push(l) });
    assert.equal(a.probed, 2);
    assert.match(
      first[1]!,
      /supervised .*\/step \(probe: [1-3] steps?\), .*\/window \(probe: [1-3] calls? of 2 windows\)/,
    );
    assert.ok(a.wallSeconds > 0 && Number.isFinite(a.wallSeconds));
    const file = JSON.parse(await Deno.readTextFile(ratesPath(out)));
    assert.equal(Object.keys(file.machines[machineKey(provenance)].train).length, 2);
    const second: string[] = [];
    const b = await estimatePlan({ ...base, print: (l) => second.push(l) });
    assert.equal(b.probed, 0);
    assert.equal(b.wallSeconds, a.wallSeconds);
    assert.match(second[1]!, /\(stored: probe: /);
    // No windows known: evaluation left out, and said so.
    const c: string[] = [];
    await estimatePlan({
      ...base,
      windows: () => null,
      windowsSource: "shapes unknown",
      print: (l) => c.push(l),
    });
    assert.match(c.at(-1)!, /evaluation not included \(shapes unknown\)$/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

async function bench(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { OMP_NUM_THREADS: "1" },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const SMALL = ["--methods", "supervised", "--labeled", "2", "--seeds", "1", "--backend", "cpu"];

Deno.test("bench: --dry-run prints the estimate on stderr; the plan on stdout is unchanged", async () => {
  const out = await Deno.makeTempDir({ prefix: "estimate_" });
  try {
    const plain = await bench([...SMALL, "--dry-run", "--no-estimate", "--out", out]);
    const est = await bench([...SMALL, "--dry-run", "--out", out]);
    assert.equal(est.code, 0, est.stderr);
    assert.equal(est.stdout, plain.stdout);
    assert.ok(!plain.stderr.includes("estimate"), plain.stderr);
    assert.match(
      est.stderr,
      /^estimate: 1 step configuration on cpu .*0 from stored rates .* 1 to measure/m,
    );
    assert.match(
      est.stderr,
      /^estimated wall time: .* for 1 run: training .*, evaluation .* \(6 test windows; from the 6 test volumes on disk\)/m,
    );
    const again = await bench([...SMALL, "--dry-run", "--out", out]);
    assert.match(again.stderr, /1 from stored rates/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("bench: a run prints the estimate before training; probing leaves the results unchanged", async () => {
  const a = await Deno.makeTempDir({ prefix: "estimate_" });
  const b = await Deno.makeTempDir({ prefix: "estimate_" });
  try {
    const args = [...SMALL, "--iterations", "5", "--jobs", "1"];
    const withEst = await bench([...args, "--out", a]);
    assert.equal(withEst.code, 0, withEst.stderr);
    const e = withEst.stderr.indexOf("estimated wall time:");
    assert.ok(e >= 0 && e < withEst.stderr.indexOf(" it 1/5 "), withEst.stderr);
    const without = await bench([...args, "--out", b, "--no-estimate"]);
    assert.equal(without.code, 0, without.stderr);
    const [id] = [...Deno.readDirSync(join(a, "synthetic", "runs"))].map((f) => f.name);
    const read = async (root: string) =>
      JSON.parse(await Deno.readTextFile(join(root, "synthetic", "runs", id!))) as {
        cases: unknown;
        curve: unknown;
      };
    const ra = await read(a), rb = await read(b);
    assert.deepEqual(ra.cases, rb.cases);
    assert.deepEqual(ra.curve, rb.curve);
    // The finished run (5 iterations) replaced the probe's rate with its own.
    const rates = JSON.parse(await Deno.readTextFile(ratesPath(a)));
    const m = Object.values(rates.machines)[0] as { train: Record<string, Rate> };
    assert.match(Object.values(m.train)[0]!.source, /^run [0-9a-f]{16}, 5 it$/);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("bench --jobs 2: one estimate for the whole plan, by a dry-run child", async () => {
  const out = await Deno.makeTempDir({ prefix: "estimate_" });
  try {
    const r = await bench([
      ...["--methods", "supervised", "--labeled", "2", "--seeds", "1,2", "--backend", "cpu"],
      ...["--iterations", "2", "--jobs", "2", "--out", out],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("estimated wall time:"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, / for 2 runs as 2 workers \(serial /);
    assert.match(r.stdout, /2 workers done in /);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
