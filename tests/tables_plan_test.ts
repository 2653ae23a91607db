/**
 * Tables describe the plan that ran: the footer states the iterations, seeds and runs per cell
 * found in the run files; rows trained on a shorter schedule than the paper's are marked; rows
 * neither run nor planned are one note, not "missing" rows; a registered method added to a
 * paper table with `--methods` is a row marked added and leaves every other run id unchanged.
 * Built from fake (structurally real) run records of la_baselines: nothing is trained.
 */
import assert from "node:assert/strict";
import { expandGrid, type PlannedRun, resolveMethodNames } from "../benchmarks/harness/plan.ts";
import { buildTable, tableCsv, tableMarkdown } from "../benchmarks/harness/tables.ts";
import type { RunRecord } from "../benchmarks/harness/store.ts";
import { withMethodFile } from "../benchmarks/harness/external.ts";
import { laBaselines } from "../benchmarks/la_baselines.ts";
import { entropyMin } from "../methods/entropy_min.ts";
import { supervised } from "../methods/supervised.ts";
import { resolveHyperParams } from "../methods/types.ts";
import { FAKE_PROVENANCE, fakeRecord } from "./records.ts";

/** A finished run of planned run `p` whose every case scores `dice`. */
function record(p: PlannedRun, dice: number): RunRecord {
  const cases = ["c1", "c2", "c3"].map((id, i) => ({
    id,
    values: { dice: dice + 0.01 * i, jaccard: dice / 2, asd: 2, hd95: 9 },
  }));
  return fakeRecord(p.runId, {
    benchmark: p.benchmark,
    rowKey: p.rowKey,
    method: p.method,
    labeled: p.labeled,
    seed: p.seed,
    hyperParams: p.hyperParams,
    spec: { ...p.spec, unlabeledCount: 80 - p.labeled, reconstructed: false },
    split: { name: "ua-mt", hash: "h" },
    provenance: { ...FAKE_PROVENANCE, denoVersion: "2.9.6" },
    cases,
    mean: { dice: dice + 0.01, jaccard: dice / 2, asd: 2, hd95: 9 },
    protocol: { units: "voxel", emptyPolicy: "reference-code", selection: "last", lcc: true },
  });
}

const SELECTED = ["supervised", "ua-mt", "entropy-min"];

Deno.test("--methods: a registered method that is not a row is added; other run ids unchanged", () => {
  const without = expandGrid(laBaselines, { methods: ["supervised", "ua-mt"] });
  const withIt = expandGrid(laBaselines, { methods: SELECTED });
  // The added rows come after the others; every other run is the same, byte for byte.
  assert.deepEqual(withIt.filter((r) => r.rowKey !== "entropy-min"), without);
  const added = withIt.filter((r) => r.rowKey === "entropy-min");
  assert.equal(added.length, 2 * 3, "both labeled settings x the benchmark's 3 seeds");
  assert.deepEqual(added.map((r) => r.seed), [1337, 1338, 1339, 1337, 1338, 1339]);
  // The benchmark's common settings (none here) and the method's default hyper-parameters.
  assert.deepEqual(added[0]!.hyperParams, resolveHyperParams(entropyMin, {}));
  assert.equal(added[0]!.spec["iterations"], 6000);
  assert.deepEqual(added[0]!.patch, [112, 112, 80]);
  assert.equal(new Set(withIt.map((r) => r.runId)).size, withIt.length);
  // The file-name spelling resolves too, to the same runs.
  assert.deepEqual(
    expandGrid(laBaselines, { methods: ["supervised", "ua_mt", "entropy_min"] }).map((r) =>
      r.runId
    ),
    withIt.map((r) => r.runId),
  );
  // The whole default plan is untouched by the added-row logic.
  assert.deepEqual(
    expandGrid(laBaselines).map((r) => r.rowKey),
    ["supervised", "mean-teacher", "ua-mt", "dtc"].flatMap((k) => Array(6).fill(k)),
  );
  assert.throws(
    () => resolveMethodNames(laBaselines, ["my-method"]),
    /^Error: --methods: 'my-method' is not in benchmark la_baselines \(expected one of supervised, mean-teacher, ua-mt, dtc\) nor a registered method/,
  );
});

Deno.test("--method-file on a registered method's own file adds the same row as --methods", () => {
  const viaFile = withMethodFile(laBaselines, entropyMin);
  assert.deepEqual(
    expandGrid(viaFile, { methods: SELECTED }).map((r) => r.runId),
    expandGrid(laBaselines, { methods: SELECTED }).map((r) => r.runId),
  );
  assert.equal(viaFile.methods.at(-1)!.added, true);
  // A method the benchmark has already is not added twice.
  assert.equal(withMethodFile(laBaselines, supervised), laBaselines);
  // A definition from outside the registry is an external row.
  const outside = { ...supervised, id: "outside", meta: { ...supervised.meta, title: "Out" } };
  assert.deepEqual(withMethodFile(laBaselines, outside).methods.at(-1), {
    method: "outside",
    label: "Out",
    external: true,
  });
});

Deno.test("tables: a 2-iteration seed-1 run says so, marks its rows, leaves unselected rows out", () => {
  const plan = expandGrid(laBaselines, { methods: SELECTED, seeds: [1], iterations: 2 });
  assert.equal(plan.length, 6);
  // Every planned run finished but UA-MT at 8 labeled.
  const runs = plan.filter((p) => !(p.rowKey === "ua-mt" && p.labeled === 8))
    .map((p, i) => record(p, 0.5 + 0.05 * i));
  const t = buildTable(laBaselines, runs, { plan });
  const md = tableMarkdown(t);
  const lines = md.split("\n");
  // The footer describes what ran, beside the paper's plan.
  assert.ok(
    t.footer.includes(
      "Training: 2 iterations (the paper: 6000), batch 2+2, patch 112x112x80, dataset la.",
    ),
    t.footer.join("\n"),
  );
  assert.match(
    t.footer[0]!,
    /^Ours: mean ± std over seeds 1 \(runs per cell: 1 of 3 planned: seeds 1337, 1338, 1339; /,
  );
  assert.ok(
    t.footer.includes(
      "† Trained 2 iterations, fewer than the paper's 6000: not comparable to the paper's numbers.",
    ),
  );
  assert.ok(
    t.footer.includes(
      "Not run: 4 rows (mean-teacher and dtc): no run files; select them with --methods (a row the paper reports shows its number only).",
    ),
    t.footer.join("\n"),
  );
  // Rows: the planned ones (one missing), the added one, and the paper-only numbers of the
  // rows not run; no other "missing" row, and no n=1 marks (the plan had one seed).
  const row = (label: string, labeled: number) =>
    lines.filter((l) => l.startsWith(`| ${label} | ${labeled} |`));
  assert.equal(row("Supervised baseline (V-Net) †", 16).length, 1);
  assert.equal(row(`${entropyMin.meta.title} (added) †`, 8).length, 1);
  assert.equal(row(`${entropyMin.meta.title} (added) †`, 16).length, 1);
  assert.match(row("UA-MT †", 8)[0]!, /\| missing \|/);
  assert.equal(lines.filter((l) => l.includes("missing")).length, 1);
  assert.ok(!md.includes("(n="), md);
  assert.match(row("DTC", 16)[0]!, /^\| DTC \| 16 \| 64 \| — \| 89\.42 \|/);
  assert.equal(row("MT", 8).length, 0, "not run and not reported at 8: left out");
  assert.equal(lines.filter((l) => l.startsWith("| MT |")).length, 1, "MT at 16: paper only");
  const csv = tableCsv(t).split("\n");
  assert.ok(csv[0]!.includes(",external,added,iterations,"));
  assert.ok(csv.some((l) => l.startsWith("Entropy") && l.includes(",false,true,2,")), csv[0]);

  // --tables-only (no plan): the rows with run files; the unfinished cell joins the note.
  const only = buildTable(laBaselines, runs);
  assert.ok(!tableMarkdown(only).includes("missing"));
  assert.ok(only.footer.some((f) => f.startsWith("Not run: 5 rows (mean-teacher, ua-mt and dtc)")));
  // When the plan finished, the table is the same with and without the plan.
  const all = plan.map((p, i) => record(p, 0.5 + 0.05 * i));
  assert.equal(
    tableMarkdown(buildTable(laBaselines, all, { plan })),
    tableMarkdown(buildTable(laBaselines, all)),
  );
});

Deno.test("tables: runs of two schedules in one cell are two rows, never averaged together", () => {
  const short = expandGrid(laBaselines, { methods: ["ua-mt"], labeled: [16], iterations: 2 });
  const full = expandGrid(laBaselines, { methods: ["ua-mt"], labeled: [16] });
  const runs = [
    ...short.map((p) => record(p, 0.2)),
    ...full.slice(0, 2).map((p) => record(p, 0.8)),
  ];
  const t = buildTable(laBaselines, runs, { plan: full });
  const ua = t.rows.filter((r) => r.key === "ua-mt" && r.labeled === 16);
  assert.deepEqual(ua.map((r) => [r.label, r.iterations, r.short, r.seeds, r.expectedSeeds]), [
    ["UA-MT (6000 it)", 6000, false, 2, 3],
    ["UA-MT (2 it)", 2, true, 3, 3],
  ]);
  assert.equal(ua[0]!.ours[0]!.mean.toFixed(2), "81.00");
  assert.equal(ua[1]!.ours[0]!.mean.toFixed(2), "21.00");
  const md = tableMarkdown(t);
  assert.ok(md.includes("| UA-MT (6000 it) (n=2) | 16 |"), md);
  assert.ok(md.includes("| UA-MT (2 it) † | 16 |"), md);
  assert.ok(t.footer.some((f) => f.startsWith("Training: 2, 6000 iterations (the paper: 6000)")));
});

Deno.test("tables: before any run, the table is the benchmark's plan, every cell missing", () => {
  const t = buildTable(laBaselines, []);
  assert.equal(t.rows.filter((r) => r.expectedSeeds === 3).length, 8);
  assert.match(t.footer[0]!, /^Ours: mean ± std over seeds \(3 runs planned per cell; no runs/);
  assert.ok(t.footer.includes(
    "Training: 6000 iterations, batch 2+2, patch 112x112x80, dataset la.",
  ));
  // With a plan and nothing finished: only the plan's rows, missing; the others in the note.
  const plan = expandGrid(laBaselines, { methods: ["dtc"], seeds: [5], iterations: 3 });
  const p = buildTable(laBaselines, [], { plan });
  assert.deepEqual(
    p.rows.filter((r) => r.expectedSeeds > 0).map((r) => [r.key, r.labeled, r.expectedSeeds]),
    [["dtc", 8, 1], ["dtc", 16, 1]],
  );
  assert.ok(p.footer.includes(
    "Training: 3 iterations planned (the paper: 6000), batch 2+2, patch 112x112x80, dataset la.",
  ));
  assert.match(
    p.footer[0]!,
    /^Ours: mean ± std over seeds \(the plan that ran: seeds 5, of the benchmark's 3 runs per cell; no runs stored yet\)/,
  );
});
