/**
 * Paper-format comparison tables, built from stored run files alone (so
 * `--tables-only` regenerates exactly what a run printed). Per row and labeled setting:
 * our mean±std over seeds, the paper's number, the gap, and the two-sided paired t-test
 * p-value of the proposed row against each other row over test cases (as UG-MCL and MASSL
 * report; per-case values are averaged over seeds before pairing).
 * @module
 */
import { mean, pairedTTest, std } from "./stats.ts";
import type { BenchmarkSpec, MetricName, TableColumn } from "./spec.ts";
import type { RunRecord } from "./store.ts";
import { rowKey } from "./plan.ts";

/** One cell group of the table (a row at a labeled setting). */
export interface TableRow {
  key: string;
  label: string;
  labeled: number;
  unlabeled: number | null;
  external: boolean;
  seeds: number;
  expectedSeeds: number;
  /** Per column: our mean and std over seeds (in the column's scale), or null when no runs. */
  ours: ({ mean: number; std: number } | null)[];
  /** Per column: the paper's number, or null. */
  paper: (number | null)[];
  /** Per column: p-value of the proposed row vs this row, or null. */
  p: (number | null)[];
}

/** A built table, ready to print as Markdown or CSV. */
export interface BuiltTable {
  caption: string;
  columns: TableColumn[];
  rows: TableRow[];
  footer: string[];
}

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

/**
 * Build the table of `spec` from `runs` (runs of other benchmarks are ignored). Rows of stored
 * runs whose key the spec does not declare (methods compared with `--method-file`) are added
 * after the declared rows and marked external.
 */
/** " (rows a, b: 32x32x32)" for rows that train on their own patch size, else "". */
function rowPatches(spec: BenchmarkSpec): string {
  const by = new Map<string, string[]>();
  for (const e of spec.methods) {
    if (!e.patch) continue;
    const k = e.patch.join("x");
    by.set(k, [...(by.get(k) ?? []), e.key ?? e.method]);
  }
  return [...by].map(([p, rows]) => ` (rows ${rows.join(", ")}: ${p})`).join("");
}

export function buildTable(spec: BenchmarkSpec, runs: RunRecord[]): BuiltTable {
  const mine = runs.filter((r) => r.benchmark === spec.id);
  const cols = spec.table.columns;
  const rows: TableRow[] = [];
  const declared = spec.methods.map(rowKey);
  const externalKeys = [...new Set(mine.map((r) => r.rowKey))].filter((k) => !declared.includes(k))
    .sort();
  const keys = [...declared, ...externalKeys];
  const checkpointKeys = new Set(mine.filter((r) => r.checkpoint).map((r) => r.rowKey));
  const labelOf = (k: string) =>
    spec.methods.find((m) => rowKey(m) === k)?.label ?? mine.find((r) =>
      r.rowKey === k
    )?.spec["label"] as string ?? k;
  const settings = [...spec.labeled].sort((a, b) => a - b);
  for (const labeled of settings) {
    const proposedRuns = mine.filter((r) =>
      r.rowKey === spec.table.proposed && r.labeled === labeled
    );
    for (const key of keys) {
      const entry = spec.methods.find((m) => rowKey(m) === key);
      if (entry?.labeled && !entry.labeled.includes(labeled)) continue;
      const rs = mine.filter((r) => r.rowKey === key && r.labeled === labeled);
      // A re-scored checkpoint (`deno task evaluate`) is one run at one setting.
      const checkpoint = checkpointKeys.has(key);
      if (checkpoint && rs.length === 0) continue;
      // ... shown beside the paper's number of the row whose network scored it
      const paperKey = checkpoint ? rs[0]?.checkpoint?.row ?? key : key;
      const reported = spec.table.reported.find((x) => x.key === paperKey && x.labeled === labeled);
      rows.push({
        key,
        label: labelOf(key),
        labeled,
        unlabeled: reported?.unlabeled ?? unlabeledOf(rs),
        external: externalKeys.includes(key) || entry?.external === true,
        seeds: rs.length,
        expectedSeeds: checkpoint
          ? rs.length
          : spec.seeds.length * (spec.dataset.folds?.length ?? 1),
        ours: cols.map((c) => {
          const vals = rs.map((r) => r.mean[c.metric]).filter((v): v is number =>
            typeof v === "number"
          );
          return vals.length ? { mean: mean(vals) * c.scale, std: std(vals) * c.scale } : null;
        }),
        paper: cols.map((c) => reported?.values[c.metric] ?? null),
        p: cols.map((c) => {
          if (key === spec.table.proposed || proposedRuns.length === 0 || rs.length === 0) {
            return null;
          }
          const a = perCaseMeans(proposedRuns, c.metric), b = perCaseMeans(rs, c.metric);
          const ids = [...a.keys()].filter((id) => b.has(id)).sort();
          if (ids.length < 2) return null;
          const t = pairedTTest(ids.map((id) => a.get(id)!), ids.map((id) => b.get(id)!));
          return Number.isNaN(t.p) ? null : t.p;
        }),
      });
    }
    // Rows the paper reports that we do not run (e.g. methods without a module yet).
    for (const rep of spec.table.reported) {
      if (rep.labeled !== labeled || keys.includes(rep.key)) continue;
      rows.push({
        key: rep.key,
        label: rep.key,
        labeled,
        unlabeled: rep.unlabeled ?? null,
        external: false,
        seeds: 0,
        expectedSeeds: 0,
        ours: cols.map(() => null),
        paper: cols.map((c) => rep.values[c.metric] ?? null),
        p: cols.map(() => null),
      });
    }
  }
  // The footer describes the benchmark's own runs (a re-scored checkpoint has no selection).
  const trained = mine.find((r) => !r.checkpoint);
  const prov = (trained ?? mine[0])?.provenance;
  const protocol = trained?.protocol;
  const footer = [
    `Ours: mean ± std over ${
      spec.dataset.folds
        ? `${spec.dataset.folds.length} folds x ${spec.seeds.length} seed(s)`
        : "seeds"
    } (${
      spec.seeds.length * (spec.dataset.folds?.length ?? 1)
    } runs planned per cell; a cell with fewer shows n=k). Paper: ${spec.table.reportedSource}.`,
    `${
      spec.table.reported.length ? "Gap = ours - paper. " : ""
    }p = two-sided paired t-test over test cases of ${
      spec.table.proposed ?? "(no proposed row)"
    } vs the row (per-case values averaged over seeds); * p < 0.05, ** p < 0.01.`,
    `Protocol: ${spec.eval.window} sliding window, patch ${
      spec.eval.patch.join("x")
    }, stride ${spec.eval.strideXY}/${spec.eval.strideZ}, ${
      spec.eval.lcc ? "largest connected component" : "no post-processing"
    }, distances in ${protocol?.units ?? spec.eval.units}, empty-mask policy ${
      protocol?.emptyPolicy ?? spec.eval.emptyPolicy
    }, selection ${protocol?.selection ?? spec.selection.kind}.`,
    `Training: ${spec.iterations} iterations (unless overridden at run time: see run files), batch ${spec.batch.labeled}+${spec.batch.unlabeled}, patch ${
      spec.patch.join("x")
    }${rowPatches(spec)}, dataset ${spec.dataset.id}.`,
    prov
      ? `Backend: ${prov.backend} (tfjs ${prov.tfjsVersion}, Deno ${prov.denoVersion}, ${prov.device}${
        Object.entries(prov.details).map(([k, v]) => `, ${k} ${v}`).join("")
      }), commit ${prov.gitCommit}.`
      : "Backend: no runs stored yet.",
  ];
  const reconstructed = mine.filter((r) => r.spec["reconstructed"] === true).map((r) => r.rowKey);
  if (reconstructed.length) {
    footer.push(
      `Reconstructed methods (paper text/code unavailable; see their metadata): ${
        [...new Set(reconstructed)].join(", ")
      }.`,
    );
  }
  return { caption: spec.table.caption, columns: cols, rows, footer };
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
      r.label + (r.external ? " (external)" : "") +
      (r.seeds > 0 && r.seeds < r.expectedSeeds ? ` (n=${r.seeds})` : ""),
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
  const head = ["method", "key", "labeled", "unlabeled", "seeds", "external"];
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
