/**
 * Re-scoring an external PyTorch checkpoint under a benchmark's protocol (`deno task
 * evaluate`): the checkpoint's weights go into the network of one of the benchmark's methods
 * (`torch_weights.ts`), the method predicts the benchmark's test cases by the protocol's
 * sliding window, and each prediction is scored twice, with and without the largest connected
 * component (the protocol's setting is the row's number; the other is recorded beside it). The
 * result is stored as a run file of the benchmark marked as an external checkpoint, with its
 * own row key, label and run id, so tables and reports show it as its own row.
 *
 * Subsets: `cases` (the first N test cases of the split) or `caseIds` score part of the test
 * split; the row label, the printed row and the run file say so ("1 of 20 test cases"). Such
 * a mean is not comparable to the paper's, which averages over the whole split.
 * @module
 */
import { basename, resolve } from "node:path";
import { getMethod } from "../../methods/mod.ts";
import type { HyperParams, Method } from "../../methods/types.ts";
import type { Provenance } from "../../methods/nn/backend.ts";
import { captureState } from "../../methods/nn/readback.ts";
import { hashOf } from "../../methods/nn/canonical.ts";
import { findStateDict, parsePth, type PthContents } from "../../methods/nn/torch/mod.ts";
import type { Case, Dataset, Split } from "../../datasets/types.ts";
import type { BenchmarkSpec, EvalProtocol, MethodEntry } from "./spec.ts";
import type { CaseMetrics, ResultStore, RunRecord } from "./store.ts";
import { expandGrid, rowKey } from "./plan.ts";
import { caseWindows, predictLabels, scoreLabels } from "./evaluate.ts";
import type { Progress } from "./progress.ts";
import { sha256Hex, stateWithCheckpoint } from "./torch_weights.ts";

/** What a run file of a re-scored checkpoint records about it (`RunRecord.checkpoint`). */
export interface ExternalCheckpoint {
  /** The path as given. */
  file: string;
  name: string;
  sha256: string;
  bytes: number;
  format: PthContents["format"];
  /** Keys followed to the state_dict (e.g. `["state_dict"]`); `module.` prefix stripped or not. */
  stateDictPath: string[];
  strippedModulePrefix: boolean;
  /** Checkpoint keys not used (BatchNorm `num_batches_tracked`, unused modules). */
  ignoredKeys: number;
  /** The architecture the weights went into. */
  network: string;
  /** The benchmark row whose network and prediction rule scored it. */
  row: string;
  /** Scored test cases when not the whole test split; null = the whole split. */
  subset: { scored: number; total: number; ids: string[] } | null;
  /** How the protocol differs from the paper's (e.g. a coarser stride); null = the paper's. */
  nonPaper: string | null;
  /** The same predictions scored with the other largest-component setting. */
  alternative: { lcc: boolean; cases: CaseMetrics[]; mean: Record<string, number> };
}

/** Options of {@link rescoreCheckpoint}. */
export interface RescoreOptions {
  spec: BenchmarkSpec;
  /** Path of the `.pth` / `.pt` / `.tar` file. */
  checkpoint: string;
  /** Row key or method id of the benchmark (default: the first row the checkpoint fits). */
  method?: string;
  /** Labeled setting the row is shown at (default: the row's first). */
  labeled?: number;
  /** Score the first N test cases of the split. */
  cases?: number;
  /** Score these test cases. */
  caseIds?: string[];
  /** Non-paper sliding-window stride [xy, z] (ua-mt window only). */
  stride?: [number, number];
  /** Take the state_dict under this (dotted) key of the checkpoint. */
  key?: string;
  dataset: Dataset;
  split: Split;
  /** Dataset root, for error lines. */
  root: string;
  store: ResultStore;
  provenance: Provenance;
  gitCommit: string;
  progress: Progress;
}

/** One printed row: a post-processing setting's mean metrics. */
export interface RescoreRow {
  lcc: boolean;
  /** Whether this is the benchmark protocol's own setting (the number in tables). */
  protocol: boolean;
  mean: Record<string, number>;
}

/** What {@link rescoreCheckpoint} produced. */
export interface RescoreResult {
  record: RunRecord;
  runFile: string;
  /** The results root the run file went to (`--out`). */
  out: string;
  entry: MethodEntry;
  rows: RescoreRow[];
}

const firstLine = (e: unknown) =>
  ((e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "").trim();

/** The row named `name` (row key, method id, `_` read as `-`), or a one-line error. */
export function findRow(spec: BenchmarkSpec, name: string): MethodEntry {
  for (const n of [name, name.replaceAll("_", "-")]) {
    const e = spec.methods.find((m) => rowKey(m) === n) ?? spec.methods.find((m) => m.method === n);
    if (e) return e;
  }
  throw new Error(
    `--method: '${name}' is not a row of benchmark ${spec.id} (expected one of ${
      spec.methods.map(rowKey).join(", ")
    })`,
  );
}

/** The test case ids to score, or a one-line error (not in the split, not on disk). */
export async function selectTestCases(
  dataset: Dataset,
  split: Split,
  root: string,
  opts: { cases?: number; caseIds?: string[] },
): Promise<string[]> {
  const test = split.test;
  const where = `dataset ${dataset.id} at ${root}`;
  if (test.length === 0) throw new Error(`${where}: split ${split.name} has no test cases`);
  let ids: string[];
  if (opts.caseIds !== undefined) {
    for (const id of opts.caseIds) {
      if (!test.includes(id)) {
        throw new Error(
          `--case-ids: '${id}' is not a test case of split ${split.name} (${test.length} test cases, e.g. ${
            test.slice(0, 3).join(", ")
          })`,
        );
      }
    }
    ids = [...new Set(opts.caseIds)];
  } else if (opts.cases !== undefined) {
    if (opts.cases > test.length) {
      throw new Error(
        `--cases: ${opts.cases} > the ${test.length} test cases of split ${split.name}`,
      );
    }
    ids = test.slice(0, opts.cases);
  } else {
    ids = test;
  }
  const onDisk = new Set(await dataset.caseIds());
  const missing = ids.filter((id) => !onDisk.has(id));
  const present = test.filter((id) => onDisk.has(id));
  if (missing.length === 0) return ids;
  if (present.length === 0) {
    throw new Error(
      `${where}: no test cases on disk (split ${split.name} lists ${test.length}, e.g. ${
        test[0]
      }); pass --data-dir DIR, \`deno task data ${dataset.id}\` checks a root`,
    );
  }
  throw new Error(
    `${where}: ${missing.length} of ${ids.length} test cases to score are not on disk (first: ${
      missing[0]
    }); ${present.length} of the split's ${test.length} are (${present.slice(0, 5).join(",")}${
      present.length > 5 ? ",..." : ""
    }): score a subset with --case-ids or --cases N`,
  );
}

function meanOf(cases: CaseMetrics[]): Record<string, number> {
  const mean: Record<string, number> = {};
  for (const m of Object.keys(cases[0]?.values ?? {})) {
    mean[m] = cases.reduce((s, c) => s + (c.values[m] ?? NaN), 0) / cases.length;
  }
  return mean;
}

/** The benchmark's protocol with the non-paper overrides, and their description. */
export function protocolOf(
  spec: BenchmarkSpec,
  stride?: [number, number],
): { protocol: EvalProtocol; nonPaper: string | null } {
  if (stride === undefined) return { protocol: spec.eval, nonPaper: null };
  if (spec.eval.window !== "ua-mt") {
    throw new Error(
      `--stride: benchmark ${spec.id} uses the ${spec.eval.window} sliding window, which has no stride`,
    );
  }
  const [xy, z] = stride;
  if (xy === spec.eval.strideXY && z === spec.eval.strideZ) {
    return { protocol: spec.eval, nonPaper: null };
  }
  return {
    protocol: { ...spec.eval, strideXY: xy, strideZ: z },
    nonPaper: `stride ${xy}/${z}, not the paper's ${spec.eval.strideXY}/${spec.eval.strideZ}`,
  };
}

/**
 * Load `checkpoint` into a method of `spec`, score the selected test cases under the
 * protocol, store the run file and return it. Every failure is one line: a missing or
 * unreadable file, not a checkpoint, no state_dict, a wrong architecture (the bridge's line,
 * or "fits no row" naming the rows tried), unknown row or labeled setting, cases not on disk.
 */
export async function rescoreCheckpoint(o: RescoreOptions): Promise<RescoreResult> {
  const { spec, dataset, split } = o;
  const name = basename(o.checkpoint);
  const label = o.checkpoint;
  // 1. the file
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(o.checkpoint);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${label}: no such file`);
    throw new Error(`${label}: cannot read (${firstLine(e)})`);
  }
  const contents = parsePth(bytes, label);
  const found = findStateDict(contents.value, {
    label,
    ...(o.key !== undefined ? { key: o.key } : {}),
  });
  const sha256 = await sha256Hex(bytes);
  // 2. rows, setting, protocol, cases (names checked before any data is read)
  const candidates = o.method !== undefined ? [findRow(spec, o.method)] : spec.methods;
  const { protocol, nonPaper } = protocolOf(spec, o.stride);
  const ids = await selectTestCases(dataset, split, o.root, o);
  const first = await dataset.load(ids[0]!);
  // 3. the first row whose network the checkpoint fits
  let chosen: {
    entry: MethodEntry;
    hp: HyperParams;
    method: Method;
    network: string;
    ignored: number;
  } | null = null;
  const misfits: string[] = [];
  for (const entry of candidates) {
    const key = rowKey(entry);
    const hp = expandGrid(spec, { methods: [key], seeds: [spec.seeds[0]!] })
      .find((r) => r.rowKey === key)!.hyperParams;
    const method = getMethod(entry.method).create(hp, {
      initSeed: 0,
      inChannels: first.image.channels,
      nClasses: dataset.nClasses,
    });
    try {
      const loaded = stateWithCheckpoint(await captureState(method), found.tensors, label);
      method.restore(loaded.state);
      chosen = { entry, hp, method, network: loaded.network, ignored: loaded.ignored.length };
      break;
    } catch (e) {
      method.dispose();
      misfits.push(firstLine(e).replace(`${label}: `, ""));
    }
  }
  if (chosen === null) {
    if (o.method !== undefined) throw new Error(`${label}: ${misfits[0]}`);
    throw new Error(
      `${label}: fits no row of benchmark ${spec.id} (tried ${
        candidates.map(rowKey).join(", ")
      }): ${misfits[0]}`,
    );
  }
  const { entry, method } = chosen;
  try {
    const settings = entry.labeled ?? spec.labeled;
    const labeled = o.labeled ?? settings[0]!;
    if (!settings.includes(labeled)) {
      throw new Error(
        `--labeled: ${labeled} is not a setting of row ${
          rowKey(entry)
        } of ${spec.id} (expected one of ${settings.join(", ")})`,
      );
    }
    const subset = ids.length < split.test.length
      ? { scored: ids.length, total: split.test.length, ids }
      : null;
    const runSpec = {
      kind: "external-checkpoint",
      checkpointSha256: sha256,
      benchmark: spec.id,
      dataset: spec.dataset,
      split: { name: split.name, hash: split.hash },
      method: entry.method,
      row: rowKey(entry),
      labeled,
      eval: protocol,
      cases: subset ? ids : "all",
    };
    const runId = hashOf(runSpec).slice(0, 16);
    const notes = [
      `checkpoint ${name}`,
      ...(subset ? [`${subset.scored} of ${subset.total} test cases`] : []),
      ...(nonPaper ? [`non-paper stride ${protocol.strideXY}/${protocol.strideZ}`] : []),
    ];
    const rowLabel = `${entry.label ?? getMethod(entry.method).meta.title} (${notes.join(", ")})`;
    o.progress.line(
      `evaluate: ${name} (${contents.format}${
        found.path.length ? `, state_dict under ${found.path.join(".")}` : ""
      }${found.strippedModulePrefix ? ", module. prefix stripped" : ""}) loaded into row ${
        rowKey(entry)
      }: ${chosen.network}`,
    );
    // 4. predict once per case, score with and without the largest component
    if (ids.length > 1) o.progress.line(`evaluate: loading ${ids.length} test cases`);
    const cases: Case[] = [first];
    for (const id of ids.slice(1)) cases.push(await dataset.load(id));
    const windows = cases.map((c) => caseWindows(c.image.shape, protocol));
    const windowsTotal = windows.reduce((a, b) => a + b, 0);
    const t0 = performance.now();
    let before = 0;
    const report = (casesDone: number, windowsDone: number) =>
      o.progress.evalUpdate({
        run: 1,
        runs: 1,
        label: rowLabel,
        phase: "eval",
        casesDone,
        cases: cases.length,
        windowsDone,
        windowsTotal,
        elapsed: (performance.now() - t0) / 1000,
      });
    report(0, 0);
    const other: EvalProtocol = { ...protocol, lcc: !protocol.lcc };
    const main: CaseMetrics[] = [], alt: CaseMetrics[] = [];
    for (const [i, c] of cases.entries()) {
      const labels = await predictLabels(
        method,
        c,
        protocol,
        dataset.nClasses,
        (done) => report(i, before + done),
      );
      main.push(scoreLabels(labels, c, protocol, dataset.ignoreLabel));
      alt.push(scoreLabels(labels, c, other, dataset.ignoreLabel));
      before += windows[i]!;
      report(i + 1, before);
    }
    const evalSeconds = (performance.now() - t0) / 1000;
    const def = getMethod(entry.method);
    const record: RunRecord = {
      runId,
      benchmark: spec.id,
      rowKey: `${rowKey(entry)}@checkpoint-${runId}`,
      method: entry.method,
      labeled,
      seed: 0,
      hyperParams: chosen.hp,
      spec: { ...runSpec, label: rowLabel, reconstructed: def.meta.reconstructed },
      split: { name: split.name, hash: split.hash },
      provenance: { ...o.provenance, gitCommit: o.gitCommit },
      timing: { trainSeconds: 0, evalSeconds, iterationsPerSecond: 0 },
      curve: [],
      cases: main,
      mean: meanOf(main),
      protocol: {
        units: protocol.units,
        emptyPolicy: protocol.emptyPolicy,
        selection: "external checkpoint",
        lcc: protocol.lcc,
      },
      finishedAt: new Date().toISOString(),
      checkpoint: {
        file: o.checkpoint,
        name,
        sha256,
        bytes: bytes.length,
        format: contents.format,
        stateDictPath: found.path,
        strippedModulePrefix: found.strippedModulePrefix,
        ignoredKeys: chosen.ignored,
        network: chosen.network,
        row: rowKey(entry),
        subset,
        nonPaper,
        alternative: { lcc: other.lcc, cases: alt, mean: meanOf(alt) },
      },
    };
    await o.store.writeRun(record);
    return {
      record,
      runFile: resolve(o.store.runPath(runId)),
      out: o.store.root,
      entry,
      rows: [
        { lcc: protocol.lcc, protocol: true, mean: record.mean },
        { lcc: other.lcc, protocol: false, mean: record.checkpoint!.alternative.mean },
      ].sort((a, b) => Number(b.lcc) - Number(a.lcc)),
    };
  } finally {
    method.dispose();
  }
}

const fmt = (x: number | undefined, d: number) =>
  x === undefined ? "" : Number.isFinite(x) ? x.toFixed(d) : String(x);

/**
 * The paper-format rows (the benchmark table's columns, the paper's number and the gap), one
 * per post-processing setting, as Markdown, then notes (subset, non-paper protocol, run file).
 */
export function rescoreText(spec: BenchmarkSpec, r: RescoreResult): string {
  const rec = r.record;
  const ck = rec.checkpoint!;
  const reported = spec.table.reported.find((x) =>
    x.key === rowKey(r.entry) && x.labeled === rec.labeled
  );
  const cols = spec.table.columns;
  const head = ["Method", "Labeled", "Post-processing"];
  for (const c of cols) head.push(`${c.header} ours`, "paper", "gap");
  const lines = [
    `### ${spec.table.caption}: re-scored checkpoint`,
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
  ];
  for (const row of r.rows) {
    const cells = [
      String(rec.spec["label"]),
      String(rec.labeled),
      `${row.lcc ? "largest connected component" : "none"}${row.protocol ? " (protocol)" : ""}`,
    ];
    for (const c of cols) {
      const v = row.mean[c.metric];
      const ours = typeof v === "number" ? v * c.scale : undefined;
      const p = reported?.values[c.metric];
      cells.push(fmt(ours, c.decimals), p === undefined ? "n/a" : fmt(p, c.decimals));
      cells.push(
        ours !== undefined && p !== undefined && Number.isFinite(ours)
          ? `${ours - p >= 0 ? "+" : ""}${fmt(ours - p, c.decimals)}`
          : "",
      );
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  const pe = rec.spec["eval"] as EvalProtocol;
  const outFlag = r.out === "results" ? "" : ` --out ${r.out}`;
  lines.push(
    "",
    `- Checkpoint: ${ck.file} (sha256 ${
      ck.sha256.slice(0, 16)
    }..., ${ck.format} format) in row ${ck.row}'s network ${ck.network}.`,
    `- Scored: ${
      ck.subset
        ? `SUBSET of split ${rec.split.name}, ${ck.subset.scored} of ${ck.subset.total} test cases (${
          ck.subset.ids.join(", ")
        }): not comparable to the paper's mean over all ${ck.subset.total}`
        : `all ${rec.cases.length} test cases of split ${rec.split.name}`
    }.`,
    `- Protocol: ${pe.window} sliding window, patch ${
      pe.patch.join("x")
    }, stride ${pe.strideXY}/${pe.strideZ}${
      ck.nonPaper ? ` (NON-PAPER: ${ck.nonPaper})` : ""
    }, distances in ${pe.units}, empty-mask policy ${pe.emptyPolicy}; the protocol's post-processing is ${
      pe.lcc ? "the largest connected component" : "none"
    }.`,
    `- Paper: ${
      reported
        ? `${spec.table.reportedSource}, row ${reported.key} at ${reported.labeled} labeled`
        : `no reported row for ${rowKey(r.entry)} at ${rec.labeled} labeled`
    }.`,
    `- Run file: ${r.runFile} (run ${rec.runId}); \`deno task bench --benchmark ${spec.id} --tables-only${outFlag}\` and \`deno task report --benchmark ${spec.id}${outFlag}\` show it as its own row.`,
    "",
  );
  return lines.join("\n");
}
