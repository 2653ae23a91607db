/**
 * Paper-format comparison tables, built from stored run files alone (so
 * `--tables-only` regenerates exactly what a run printed). Per row and labeled setting:
 * our mean±std over seeds, the paper's number, the gap, and the two-sided paired t-test
 * p-value of the proposed row against each other row over test cases (as UG-MCL and MASSL
 * report; per-case values are averaged over seeds before pairing).
 * @module
 */
import { mean, pairedTTest, std } from "./stats.ts";
import type { BenchmarkSpec, EvalProtocol, MetricName, TableColumn } from "./spec.ts";
import type { RunRecord } from "./store.ts";
import { type PlannedRun, rowKey } from "./plan.ts";
import { METHODS } from "../../methods/mod.ts";

/** One cell group of the table (a row at a labeled setting, trained on one schedule). */
export interface TableRow {
  key: string;
  label: string;
  labeled: number;
  unlabeled: number | null;
  external: boolean;
  /** A registered method that is not a row of the paper's table, added with `--methods`. */
  added: boolean;
  seeds: number;
  expectedSeeds: number;
  /**
   * Training iterations of the row's runs (a cell whose runs used different schedules is one
   * row per schedule); null for re-scored checkpoints, paper-only rows and unrecorded ones.
   */
  iterations: number | null;
  /** The row's runs trained fewer iterations than the paper's schedule (marked †). */
  short: boolean;
  /** Run ids aggregated in the row (the report plots exactly these). */
  runIds: string[];
  /** Per column: our mean and std over seeds (in the column's scale), or null when no runs. */
  ours: ({ mean: number; std: number } | null)[];
  /** Per column: the paper's number, or null. */
  paper: (number | null)[];
  /** Per column: p-value of the proposed row vs this row, or null. */
  p: (number | null)[];
}

/**
 * The fields of a row with no runs of ours (a planned row in a preview, a paper-only row):
 * no seeds, no runs, empty cells for `columns` columns.
 */
function noRuns(
  columns: number,
  expectedSeeds: number,
  iterations: number | null,
): Pick<TableRow, "seeds" | "expectedSeeds" | "iterations" | "short" | "runIds" | "ours" | "p"> {
  const empty = () => new Array<null>(columns).fill(null);
  return {
    seeds: 0,
    expectedSeeds,
    iterations,
    short: false,
    runIds: [],
    ours: empty(),
    p: empty(),
  };
}

/** A built table, ready to print as Markdown or CSV. */
export interface BuiltTable {
  caption: string;
  columns: TableColumn[];
  rows: TableRow[];
  footer: string[];
}

/** What the table builder knows beyond the run files. */
export interface TableOptions {
  /**
   * The plan that ran (`deno task bench`): its rows are shown, those without a finished run as
   * missing, and its cells expect its runs. Without it (`--tables-only`, `deno task report`)
   * the rows with run files are shown and the cells expect the seeds found.
   */
  plan?: PlannedRun[];
}

/** The footnote mark of rows trained on a shorter schedule than the paper's. */
export const SHORT_MARK = "†";

function perCaseMeans(runs: RunRecord[], metric: MetricName): Map<string, number> {
  const acc = new Map<string, number[]>();
  for (const r of runs) {
    for (const c of r.cases) {
      const v = c.values[metric];
      if (typeof v !== "number") continue; // NaN is stored as null in JSON
      if (!acc.has(c.id)) acc.set(c.id, []);
      acc.get(c.id)!.push(v);
    }
  }
  return new Map([...acc].map(([k, v]) => [k, mean(v)]));
}

/** Count of unlabeled training cases of a row's runs (from the stored spec), if recorded. */
function unlabeledOf(runs: RunRecord[]): number | null {
  const u = runs[0]?.spec["unlabeledCount"];
  return typeof u === "number" ? u : null;
}

/** Training iterations recorded in a run file's spec, or null (a re-scored checkpoint, older files). */
export function runIterations(r: RunRecord): number | null {
  const its = r.spec["iterations"];
  return !r.checkpoint && typeof its === "number" ? its : null;
}

function distinct<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

const numSort = (a: number, b: number) => a - b;

/** "1" or "1-3": the range of `xs`. */
function range(xs: number[]): string {
  const lo = Math.min(...xs), hi = Math.max(...xs);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** A list of words: "a", "a and b", "a, b and c". */
function words(xs: string[]): string {
  return xs.length <= 1 ? xs.join("") : `${xs.slice(0, -1).join(", ")} and ${xs.at(-1)}`;
}

/** What a run (stored or planned) trained: from the spec it records. */
interface Schedule {
  rowKey: string;
  iterations: number | null;
  batch: string | null;
  patch: string | null;
}

function scheduleOf(rowKey: string, spec: Record<string, unknown>): Schedule {
  const b = spec["batch"] as { labeled?: unknown; unlabeled?: unknown } | undefined;
  const p = spec["patch"];
  return {
    rowKey,
    iterations: typeof spec["iterations"] === "number" ? spec["iterations"] : null,
    batch: b && typeof b.labeled === "number" && typeof b.unlabeled === "number"
      ? `${b.labeled}+${b.unlabeled}`
      : null,
    patch: Array.isArray(p) ? p.join("x") : null,
  };
}

/**
 * "Training: ..." from the schedules that ran (or, before any run, were planned; else the
 * benchmark's), beside the paper's schedule when they differ.
 */
function trainingLine(spec: BenchmarkSpec, schedules: Schedule[], what: string): string {
  const theirs = spec.table.reported.length ? "the paper" : "the benchmark";
  const its = distinct(schedules.map((s) => s.iterations).filter((x) => x !== null)).sort(
    numSort,
  );
  const itText = its.length
    ? `${its.join(", ")} iterations${what}${
      its.length === 1 && its[0] === spec.iterations ? "" : ` (${theirs}: ${spec.iterations})`
    }`
    : `${spec.iterations} iterations (the benchmark's schedule; not recorded in the run files)`;
  const batches = distinct(schedules.map((s) => s.batch).filter((x) => x !== null)).sort();
  const patches = new Map<string, Set<string>>();
  for (const s of schedules) {
    if (s.patch === null) continue;
    if (!patches.has(s.patch)) patches.set(s.patch, new Set());
    patches.get(s.patch)!.add(s.rowKey);
  }
  // The benchmark's patch (else the most used one) first; rows on their own patch after it.
  const own = spec.patch.join("x");
  const byUse = [...patches].sort((a, b) =>
    (b[0] === own ? 1 : 0) - (a[0] === own ? 1 : 0) || b[1].size - a[1].size ||
    a[0].localeCompare(b[0])
  );
  const patchText = byUse.length
    ? byUse[0]![0] +
      byUse.slice(1).map(([p, rows]) => ` (rows ${[...rows].sort().join(", ")}: ${p})`)
        .join("")
    : own;
  return `Training: ${itText}, batch ${
    batches.length ? batches.join(", ") : `${spec.batch.labeled}+${spec.batch.unlabeled}`
  }, patch ${patchText}, dataset ${spec.dataset.id}.`;
}

/** The benchmark's own schedules (before any run and without a plan). */
function specSchedules(spec: BenchmarkSpec): Schedule[] {
  return spec.methods.map((e) => ({
    rowKey: rowKey(e),
    iterations: spec.iterations,
    batch: `${spec.batch.labeled}+${spec.batch.unlabeled}`,
    patch: (e.patch ?? spec.patch).join("x"),
  }));
}

/**
 * Build the table of `spec` from `runs` (runs of other benchmarks are ignored) and, when
 * given, the plan that ran. Rows: the benchmark's rows with run files or in the plan, then
 * the other rows with run files or in the plan (a registered method added with `--methods`,
 * marked added; a `--method-file` method or a re-scored checkpoint, marked external), sorted.
 * A cell whose runs trained different schedules is one row per schedule. Rows with neither
 * runs nor a place in the plan are named once in a footer note (a row the paper reports
 * still shows its number). With no run files and no plan the table is the benchmark's plan,
 * every cell missing. The footer states the iterations, seeds, batch and patch that ran.
 */
export function buildTable(
  spec: BenchmarkSpec,
  runs: RunRecord[],
  opts: TableOptions = {},
): BuiltTable {
  const mine = runs.filter((r) => r.benchmark === spec.id);
  const plan = opts.plan?.filter((r) => r.benchmark === spec.id);
  const trained = mine.filter((r) => !r.checkpoint);
  const cols = spec.table.columns;
  const rows: TableRow[] = [];
  const declared = spec.methods.map(rowKey);
  const others = distinct([...mine.map((r) => r.rowKey), ...(plan ?? []).map((r) => r.rowKey)])
    .filter((k) => !declared.includes(k)).sort();
  const keys = [...declared, ...others];
  const checkpointKeys = new Set(mine.filter((r) => r.checkpoint).map((r) => r.rowKey));
  const methodOf = (k: string) =>
    spec.methods.find((m) => rowKey(m) === k)?.method ??
      mine.find((r) => r.rowKey === k)?.method ?? plan?.find((r) => r.rowKey === k)?.method;
  const registered = (id: string | undefined) =>
    id !== undefined && METHODS.some((d) => d.id === id);
  const labelOf = (k: string) =>
    spec.methods.find((m) => rowKey(m) === k)?.label ??
      mine.find((r) => r.rowKey === k)?.spec["label"] as string ??
      METHODS.find((d) => d.id === methodOf(k) && k === d.id)?.meta.title ?? k;
  // Nothing ran and nothing is planned: the table previews the benchmark's plan.
  const preview = plan === undefined && mine.length === 0;
  const planned = spec.seeds.length * (spec.dataset.folds?.length ?? 1);
  /** Runs a cell of `iterations` expects without a plan: the seeds x folds found at that schedule. */
  const foundAt = (its: number | null) =>
    distinct(
      trained.filter((r) => runIterations(r) === its).map((r) =>
        `${r.seed}/${String(r.spec["split"] ?? "")}`
      ),
    ).length;
  const notRun: { key: string; labeled: number }[] = [];
  const settings = [...spec.labeled].sort(numSort);
  for (const labeled of settings) {
    const proposedRuns = mine.filter((r) =>
      r.rowKey === spec.table.proposed && r.labeled === labeled
    );
    for (const key of keys) {
      const entry = spec.methods.find((m) => rowKey(m) === key);
      if (entry?.labeled && !entry.labeled.includes(labeled)) continue;
      const rs = mine.filter((r) => r.rowKey === key && r.labeled === labeled);
      const cellPlan = (plan ?? []).filter((r) => r.rowKey === key && r.labeled === labeled);
      // A re-scored checkpoint (`deno task evaluate`) is one run at one setting.
      const checkpoint = checkpointKeys.has(key);
      if (checkpoint && rs.length === 0) continue;
      // ... shown beside the paper's number of the row whose network scored it
      const paperKey = checkpoint ? rs[0]?.checkpoint?.row ?? key : key;
      const reported = spec.table.reported.find((x) => x.key === paperKey && x.labeled === labeled);
      const external = !checkpoint && entry?.added !== true &&
        (entry?.external === true || (!entry && !registered(methodOf(key))));
      const added = !checkpoint && !external && (entry?.added === true || !entry);
      const base = {
        key,
        labeled,
        unlabeled: reported?.unlabeled ?? unlabeledOf(rs),
        external: external || checkpoint,
        added,
        paper: cols.map((c) => reported?.values[c.metric] ?? null),
      };
      if (rs.length === 0 && cellPlan.length === 0) {
        if (preview && entry) {
          rows.push({
            ...base,
            label: labelOf(key),
            ...noRuns(cols.length, planned, spec.iterations),
          });
          continue;
        }
        notRun.push({ key, labeled });
        // The paper's number of a row not run here stays in the table, as a paper-only row.
        if (reported) {
          rows.push({
            ...base,
            label: labelOf(key),
            external: false,
            added: false,
            ...noRuns(cols.length, 0, null),
          });
        }
        continue;
      }
      // One row per schedule, the longest first; the planned schedule is shown even when empty.
      const plannedIts = cellPlan.length ? cellPlan[0]!.spec["iterations"] as number : undefined;
      const groups = new Map<number | null, RunRecord[]>();
      if (plannedIts !== undefined) groups.set(plannedIts, []);
      for (const r of rs) {
        const its = runIterations(r);
        groups.set(its, [...(groups.get(its) ?? []), r]);
      }
      const order = [...groups.keys()].sort((a, b) => (b ?? Infinity) - (a ?? Infinity));
      for (const its of order) {
        const group = groups.get(its)!;
        const short = spec.table.reported.length > 0 && its !== null && its < spec.iterations;
        const theirs = its === null
          ? proposedRuns
          : proposedRuns.filter((r) => runIterations(r) === its);
        rows.push({
          ...base,
          label: labelOf(key) + (groups.size > 1 && its !== null ? ` (${its} it)` : ""),
          seeds: group.length,
          expectedSeeds: checkpoint
            ? group.length
            : its === plannedIts
            ? cellPlan.length
            : foundAt(its),
          iterations: its,
          short,
          runIds: group.map((r) => r.runId).sort(),
          ours: cols.map((c) => {
            const vals = group.map((r) => r.mean[c.metric]).filter((v): v is number =>
              typeof v === "number"
            );
            return vals.length ? { mean: mean(vals) * c.scale, std: std(vals) * c.scale } : null;
          }),
          p: cols.map((c) => {
            if (key === spec.table.proposed || theirs.length === 0 || group.length === 0) {
              return null;
            }
            const a = perCaseMeans(theirs, c.metric), b = perCaseMeans(group, c.metric);
            const ids = [...a.keys()].filter((id) => b.has(id)).sort();
            if (ids.length < 2) return null;
            const t = pairedTTest(ids.map((id) => a.get(id)!), ids.map((id) => b.get(id)!));
            return Number.isNaN(t.p) ? null : t.p;
          }),
        });
      }
    }
    // Rows the paper reports that we do not run (e.g. methods without a module yet).
    for (const rep of spec.table.reported) {
      if (rep.labeled !== labeled || keys.includes(rep.key)) continue;
      rows.push({
        ...noRuns(cols.length, 0, null),
        key: rep.key,
        label: rep.key,
        labeled,
        unlabeled: rep.unlabeled ?? null,
        external: false,
        added: false,
        paper: cols.map((c) => rep.values[c.metric] ?? null),
      });
    }
  }
  return {
    caption: spec.table.caption,
    columns: cols,
    rows,
    footer: footerLines(spec, { mine, trained, plan, preview, rows, notRun, planned }),
  };
}

/** The table's notes: what ran (seeds, runs per cell, schedule), the protocol, provenance. */
function footerLines(spec: BenchmarkSpec, t: {
  mine: RunRecord[];
  trained: RunRecord[];
  plan: PlannedRun[] | undefined;
  preview: boolean;
  rows: TableRow[];
  notRun: { key: string; labeled: number }[];
  planned: number;
}): string[] {
  const { mine, trained, plan, rows } = t;
  const folds = spec.dataset.folds;
  const paper = `Paper: ${spec.table.reportedSource}.`;
  let ours: string;
  if (trained.length === 0) {
    const none = `no ${mine.length ? "trained " : ""}runs stored yet`;
    if (plan?.length) {
      const seeds = distinct(plan.map((r) => r.seed)).sort(numSort);
      ours = `Ours: mean ± std over seeds (the plan that ran: seeds ${seeds.join(", ")}${
        folds ? ` x ${folds.length} folds` : ""
      }, of the benchmark's ${t.planned} runs per cell; ${none}). ${paper}`;
    } else {
      ours = `Ours: mean ± std over ${
        folds ? `${folds.length} folds x ${spec.seeds.length} seed(s)` : "seeds"
      } (${t.planned} runs planned per cell; ${none}). ${paper}`;
    }
  } else {
    const seeds = distinct(trained.map((r) => r.seed)).sort(numSort);
    const ranFolds = distinct(trained.map((r) => String(r.spec["split"] ?? ""))).filter(Boolean);
    const ids = new Set(trained.map((r) => r.runId));
    const counts = rows.filter((r) => r.runIds.some((id) => ids.has(id))).map((r) => r.seeds);
    const same = seeds.join() === [...spec.seeds].sort(numSort).join();
    ours = `Ours: mean ± std over ${
      folds ? `${ranFolds.length} of ${folds.length} folds x ` : ""
    }seeds ${seeds.join(", ")} (runs per cell: ${
      counts.length ? range(counts) : "0"
    } of ${t.planned} planned${
      same ? "" : `: seeds ${spec.seeds.join(", ")}${folds ? ` x ${folds.length} folds` : ""}`
    }; n=k marks a cell with fewer runs). ${paper}`;
  }
  // The protocol and training lines describe the benchmark's own runs (a re-scored
  // checkpoint has no selection or schedule).
  const first = trained[0];
  const prov = (first ?? mine[0])?.provenance;
  const protocol = first?.protocol;
  const ev = (first?.spec["eval"] as EvalProtocol | undefined) ?? spec.eval;
  const schedules = trained.length
    ? trained.map((r) => scheduleOf(r.rowKey, r.spec))
    : plan?.length
    ? plan.map((r) => scheduleOf(r.rowKey, r.spec))
    : specSchedules(spec);
  const footer = [
    ours,
    `${
      spec.table.reported.length ? "Gap = ours - paper. " : ""
    }p = two-sided paired t-test over test cases of ${
      spec.table.proposed ?? "(no proposed row)"
    } vs the row (per-case values averaged over seeds); * p < 0.05, ** p < 0.01.`,
    `Protocol: ${ev.window} sliding window, patch ${
      ev.patch.join("x")
    }, stride ${ev.strideXY}/${ev.strideZ}, ${
      ev.lcc ? "largest connected component" : "no post-processing"
    }, distances in ${protocol?.units ?? ev.units}, empty-mask policy ${
      protocol?.emptyPolicy ?? ev.emptyPolicy
    }, selection ${protocol?.selection ?? spec.selection.kind}.`,
    trainingLine(
      spec,
      schedules,
      trained.length === 0 && plan?.length ? " planned" : "",
    ),
    prov
      ? `Backend: ${prov.backend} (tfjs ${prov.tfjsVersion}, Deno ${prov.denoVersion}, ${prov.device}${
        Object.entries(prov.details).map(([k, v]) => `, ${k} ${v}`).join("")
      }), commit ${prov.gitCommit}.`
      : "Backend: no runs stored yet.",
  ];
  const short = rows.filter((r) => r.short);
  if (short.length) {
    const its = distinct(short.map((r) => r.iterations!)).sort(numSort);
    footer.push(
      `${SHORT_MARK} Trained ${
        its.join(", ")
      } iterations, fewer than the paper's ${spec.iterations}: not comparable to the paper's numbers.`,
    );
  }
  if (rows.some((r) => r.added)) {
    footer.push(
      "(added): a registered method that is not a row of the paper's table, added from the command line (--methods, --method-file): the benchmark's common settings and the method's default hyper-parameters.",
    );
  }
  if (t.notRun.length) {
    const keys = distinct(t.notRun.map((r) => r.key));
    footer.push(
      `Not run: ${t.notRun.length} rows (${words(keys)}): no run files; select them with --methods${
        t.rows.some((r) => r.expectedSeeds === 0 && keys.includes(r.key))
          ? " (a row the paper reports shows its number only)"
          : ""
      }.`,
    );
  }
  const reconstructed = mine.filter((r) => r.spec["reconstructed"] === true).map((r) => r.rowKey);
  if (reconstructed.length) {
    footer.push(
      `Reconstructed methods (paper text/code unavailable; see their metadata): ${
        distinct(reconstructed).join(", ")
      }.`,
    );
  }
  return footer;
}

/**
 * A row's label as tables print it: external / added marks, `(n=k)` when the cell has fewer
 * runs than expected, and {@link SHORT_MARK} when it trained a shorter schedule than the paper.
 */
export function rowLabel(r: TableRow): string {
  return r.label + (r.external ? " (external)" : "") + (r.added ? " (added)" : "") +
    (r.seeds > 0 && r.seeds < r.expectedSeeds ? ` (n=${r.seeds})` : "") +
    (r.short ? ` ${SHORT_MARK}` : "");
}

function fmt(x: number, d: number): string {
  return Number.isFinite(x) ? x.toFixed(d) : String(x);
}

function stars(p: number | null): string {
  return p === null ? "" : p < 0.01 ? "**" : p < 0.05 ? "*" : "";
}

/** Markdown rendering: for each column "ours ± std | paper | gap", plus p marks on ours. */
export function tableMarkdown(t: BuiltTable): string {
  const withPaper = t.rows.some((r) => r.paper.some((p) => p !== null));
  const head = ["Method", "Labeled", "Unlabeled"];
  for (const c of t.columns) {
    head.push(...(withPaper ? [`${c.header} ours`, "paper", "gap"] : [c.header]));
  }
  const lines = [
    `### ${t.caption}`,
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
  ];
  for (const r of t.rows) {
    const cells = [
      rowLabel(r),
      String(r.labeled),
      r.unlabeled === null ? "" : String(r.unlabeled),
    ];
    t.columns.forEach((c, i) => {
      const o = r.ours[i] ?? null, p = r.paper[i] ?? null;
      cells.push(
        o
          ? `${fmt(o.mean, c.decimals)} ± ${fmt(o.std, c.decimals)}${stars(r.p[i] ?? null)}`
          : r.expectedSeeds
          ? "missing"
          : "—",
      );
      if (!withPaper) return;
      cells.push(p === null ? "n/a" : fmt(p, c.decimals));
      cells.push(
        o && p !== null ? `${o.mean - p >= 0 ? "+" : ""}${fmt(o.mean - p, c.decimals)}` : "",
      );
    });
    lines.push(`| ${cells.join(" | ")} |`);
  }
  lines.push("", ...t.footer.map((f) => `- ${f}`), "");
  return lines.join("\n");
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** CSV rendering with full precision (for further analysis). */
export function tableCsv(t: BuiltTable): string {
  const head = [
    "method",
    "key",
    "labeled",
    "unlabeled",
    "seeds",
    "external",
    "added",
    "iterations",
  ];
  for (const c of t.columns) {
    head.push(`${c.metric}_mean`, `${c.metric}_std`, `${c.metric}_paper`, `${c.metric}_p`);
  }
  const lines = [head.join(",")];
  for (const r of t.rows) {
    const cells = [
      r.label,
      r.key,
      String(r.labeled),
      r.unlabeled === null ? "" : String(r.unlabeled),
      String(r.seeds),
      String(r.external),
      String(r.added),
      r.iterations === null ? "" : String(r.iterations),
    ];
    t.columns.forEach((_, i) => {
      const o = r.ours[i] ?? null;
      cells.push(
        o ? String(o.mean) : "",
        o ? String(o.std) : "",
        String(r.paper[i] ?? ""),
        String(r.p[i] ?? ""),
      );
    });
    lines.push(cells.map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}
