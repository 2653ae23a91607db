/**
 * Every finished run writes `.pth` files of its final and selected weights into `weights/`
 * beside `runs/` (issue 18 item 3): reference names, zip format, recorded with their SHA-256; PyTorch loads
 * them with `torch.load(weights_only=True)` (Debian `/usr/bin/python3` + torch; that part is
 * skipped with one line when torch is absent); the selected file re-scored through
 * `rescoreCheckpoint` gives the run's own per-case metrics; methods without one reference
 * network are skipped without error; a failed write keeps the run's results.
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { executeRun, type RunContext } from "../benchmarks/harness/runner.ts";
import { ResultStore, type RunRecord } from "../benchmarks/harness/store.ts";
import { Progress } from "../benchmarks/harness/progress.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { rescoreCheckpoint } from "../benchmarks/harness/rescore.ts";
import { sha256Hex } from "../benchmarks/harness/torch_weights.ts";
import { synthetic as syntheticSpec } from "../benchmarks/synthetic.ts";
import { synthetic } from "../datasets/synthetic.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { dtcHeads, segHeads, VNet } from "../methods/nn/vnet.ts";
import { MasslNet } from "../methods/nn/massl_net.ts";
import { type TorchMappable, torchStateDict } from "../methods/nn/torch/mod.ts";
import { PYTHON, torchMissing } from "./torch_util.ts";

const FILE = "tests/run_weights_test.ts";

const tiny: BenchmarkSpec = {
  ...syntheticSpec,
  id: "run_weights_test",
  dataset: { id: "synthetic", options: { n: 8, nTrain: 4, nVal: 2, size: 16 } },
  labeled: [2],
  seeds: [1],
  iterations: 4,
  patch: [16, 16, 16],
  common: { nFilters: 2, mcPasses: 2, mcRepeats: 1 },
  eval: { ...syntheticSpec.eval, patch: [16, 16, 16], strideXY: 16, strideZ: 16 },
  selection: { kind: "best-val", every: 2 },
  checkpointEvery: 1000,
  methods: [
    { method: "supervised" },
    { method: "dtc" },
    { method: "massl-cnn" },
    { method: "ua-cotraining" },
    { key: "blocked", method: "supervised", overrides: { lr: 0.02 } },
  ],
};

/** Keys and shapes (PyTorch layout) of the reference state_dict of `net`. */
function expectedKeys(net: TorchMappable): [string, number[]][] {
  const out = [...torchStateDict(net)].map(([k, t]): [string, number[]] => [k, [...t.shape]]);
  net.dispose();
  return out;
}

Deno.test("runs write .pth files of their final and selected weights; PyTorch loads them; failures keep the run", async () => {
  const root = await Deno.makeTempDir({ prefix: "run_weights_" });
  const lines: string[] = [];
  try {
    const dataset = synthetic.open("", tiny.dataset.options ?? {});
    const split = (await dataset.splits())[0]!;
    const ctx: RunContext = {
      spec: tiny,
      dataset,
      split,
      store: new ResultStore(root, tiny.id),
      provenance: await initBackend("cpu"),
      gitCommit: "test",
      progress: new Progress(1e9, false, (s) => lines.push(s)),
      cache: new Map(),
      index: 0,
      total: 1,
    };
    const runs = expandGrid(tiny);
    const records = new Map<string, RunRecord>();
    for (const run of runs) {
      if (run.rowKey === "blocked") {
        // a directory where the final .pth goes: the write fails, the run must not
        await Deno.mkdir(join(ctx.store.dir, "weights", `${run.runId}.final.pth`), {
          recursive: true,
        });
      }
      const before = tf.memory().numTensors;
      const res = await executeRun(run, ctx);
      assert.equal(res.status, "finished", res.status === "failed" ? res.error : "");
      assert.equal(tf.memory().numTensors, before, `${run.rowKey}: tensors left behind`);
      if (res.status === "finished") records.set(run.rowKey, res.record);
    }
    const dir = join(root, tiny.id);
    // runs/ holds run files only
    for (const e of Deno.readDirSync(join(dir, "runs"))) assert.match(e.name, /^\w+\.json$/);

    // 1. recorded files exist beside the run file, with the recorded SHA-256
    const checked: Record<string, string> = {};
    for (const key of ["supervised", "dtc", "massl-cnn"]) {
      const w = records.get(key)!.weights!;
      assert.ok(w.final && w.selected, `${key}: ${JSON.stringify(w)}`);
      assert.equal(w.skipped, undefined);
      assert.equal(w.final.path, `weights/${records.get(key)!.runId}.final.pth`);
      assert.equal(w.selected.path, `weights/${records.get(key)!.runId}.selected.pth`);
      assert.ok(w.selected.iteration === 2 || w.selected.iteration === 4);
      for (const f of [w.final, w.selected]) {
        const bytes = await Deno.readFile(join(dir, f.path));
        assert.equal(await sha256Hex(bytes), f.sha256);
        assert.equal(bytes.length, f.bytes);
        checked[join(dir, f.path)] = key;
      }
      // the stored run file says the same
      const stored = await ctx.store.readRun(records.get(key)!.runId);
      assert.deepEqual(stored?.weights, w);
    }
    assert.match(records.get("dtc")!.weights!.final!.network, /heads out_conv:1, out_conv2:1/);
    assert.match(records.get("massl-cnn")!.weights!.final!.network, /^MasslNet\(/);

    // 2. two networks, no single reference network: skipped without error
    const co = records.get("ua-cotraining")!;
    assert.match(co.weights!.skipped!, /predicts with 2 networks \(net1, net2\)/);
    assert.equal(co.weights!.final, undefined);

    // 3. a failed write: one line, the run's results kept
    const blocked = records.get("blocked")!;
    assert.ok(blocked.cases.length > 0 && Number.isFinite(blocked.mean["dice"]));
    assert.match(blocked.weights!.skipped!, /^write failed: /);
    assert.ok(await ctx.store.readRun(blocked.runId));
    const failLines = lines.filter((l) => l.includes("could not write its .pth weights"));
    assert.equal(failLines.length, 1, lines.join(""));
    assert.match(
      failLines[0]!,
      new RegExp(
        `^run ${blocked.runId} \\(blocked L=2 seed=1\\): could not write .*; the run's results are kept\\n$`,
      ),
    );

    // 4. the selected weights re-scored under the same protocol: the run's own test metrics
    for (const key of ["supervised", "dtc", "massl-cnn"]) {
      const rec = records.get(key)!;
      const before = tf.memory().numTensors;
      const res = await rescoreCheckpoint({
        spec: tiny,
        checkpoint: join(dir, rec.weights!.selected!.path),
        method: key,
        dataset,
        split,
        root: "(synthetic)",
        store: new ResultStore(root, tiny.id),
        provenance: ctx.provenance,
        gitCommit: "test",
        progress: new Progress(1e9, false, () => {}),
      });
      assert.deepEqual(res.record.cases, rec.cases, key);
      assert.equal(tf.memory().numTensors, before, `${key}: rescore left tensors behind`);
      assert.equal(res.record.checkpoint!.subset, null);
    }

    // 5. PyTorch: torch.load(weights_only=True), the reference keys and shapes
    const missing = torchMissing();
    if (missing !== null) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(`${FILE}: SKIPPING the PyTorch load: ${missing}\n`),
      );
      return;
    }
    const py = [
      "import json, sys, torch",
      "out = {}",
      "for p in sys.argv[1:]:",
      "    sd = torch.load(p, weights_only=True)",
      "    out[p] = [type(sd).__name__, [[k, list(v.shape), str(v.dtype)] for k, v in sd.items()]]",
      "print(json.dumps(out))",
    ].join("\n");
    const r = new Deno.Command(PYTHON, { args: ["-c", py, ...Object.keys(checked)] }).outputSync();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    const loaded: Record<string, [string, [string, number[], string][]]> = JSON.parse(
      new TextDecoder().decode(r.stdout),
    );
    const rng = new Rng(0);
    const expected: Record<string, [string, number[]][]> = {
      supervised: expectedKeys(new VNet({ inChannels: 1, nFilters: 2, heads: segHeads(2) }, rng)),
      dtc: expectedKeys(new VNet({ inChannels: 1, nFilters: 2, heads: dtcHeads(1) }, rng)),
      "massl-cnn": expectedKeys(
        new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 0 }, rng),
      ),
    };
    for (const [p, key] of Object.entries(checked)) {
      const [type, entries] = loaded[p]!;
      assert.equal(type, "OrderedDict");
      assert.deepEqual(entries.map(([k, s]) => [k, s]), expected[key], p);
      for (const [k, , dtype] of entries) {
        assert.equal(dtype, k.endsWith("num_batches_tracked") ? "torch.int64" : "torch.float32");
      }
    }
    assert.ok(expected["supervised"]!.some(([k]) => k === "block_one.conv.1.running_mean"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
