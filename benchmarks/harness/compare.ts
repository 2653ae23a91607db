/**
 * `--compare <method>`: one method against every other row of a benchmark, per labeled
 * setting and metric, with the two-sided paired t-test over test cases (per-case values
 * averaged over seeds), and a plain verdict at p < 0.05.
 * @module
 */
import { mean, pairedTTest } from "./stats.ts";
import type { BenchmarkSpec } from "./spec.ts";
import type { RunRecord } from "./store.ts";

/** What a comparison concludes for one metric. */
export type Verdict = "better" | "worse" | "not distinguishable";

/** Verdict from a mean difference (candidate - baseline) and its p-value. */
export function verdict(diff: number, p: number | null, higherIsBetter: boolean): Verdict {
  if (p === null || !(p < 0.05) || diff === 0) return "not distinguishable";
  return (diff > 0) === higherIsBetter ? "better" : "worse";
}

function perCase(runs: RunRecord[], metric: string): Map<string, number> {
  const acc = new Map<string, number[]>();
  for (const r of runs) {
    for (const c of r.cases) {
      const v = c.values[metric];
      if (typeof v !== "number") continue;
      acc.set(c.id, [...(acc.get(c.id) ?? []), v]);
    }
  }
  return new Map([...acc].map(([k, v]) => [k, mean(v)]));
}

/** The comparison as printable lines; an error naming the row when it has no stored runs. */
export function compareReport(spec: BenchmarkSpec, runs: RunRecord[], candidate: string): string[] {
  const mine = runs.filter((r) => r.benchmark === spec.id);
  // `my_method` (new-method's file name) names the row `my-method`, as --methods accepts.
  if (!mine.some((r) => r.rowKey === candidate)) {
    const dashed = candidate.replaceAll("_", "-");
    if (mine.some((r) => r.rowKey === dashed)) candidate = dashed;
  }
  if (!mine.some((r) => r.rowKey === candidate)) {
    const keys = [...new Set(mine.map((r) => r.rowKey))].sort();
    throw new Error(
      `--compare: no stored runs of '${candidate}' in ${spec.id} (rows with runs: ${
        keys.join(", ") || "none"
      })`,
    );
  }
  const lines = [
    `${candidate} vs every other row of ${spec.id} (paired t-test over test cases, p < 0.05):`,
  ];
  for (const labeled of [...new Set(mine.map((r) => r.labeled))].sort((a, b) => a - b)) {
    const cand = mine.filter((r) => r.rowKey === candidate && r.labeled === labeled);
    if (cand.length === 0) continue;
    const others = [
      ...new Set(
        mine.filter((r) => r.labeled === labeled && r.rowKey !== candidate).map((r) => r.rowKey),
      ),
    ];
    lines.push(`labeled ${labeled}:`);
    for (const other of others) {
      const base = mine.filter((r) => r.rowKey === other && r.labeled === labeled);
      const parts: string[] = [];
      for (const col of spec.table.columns) {
        const a = perCase(cand, col.metric), b = perCase(base, col.metric);
        const ids = [...a.keys()].filter((id) => b.has(id)).sort();
        if (ids.length === 0) continue;
        const xa = ids.map((id) => a.get(id)!), xb = ids.map((id) => b.get(id)!);
        const t = ids.length >= 2 ? pairedTTest(xa, xb) : null;
        const p = t && Number.isFinite(t.p) ? t.p : null;
        const diff = (mean(xa) - mean(xb)) * col.scale;
        const v = verdict(diff, p, col.higherIsBetter);
        parts.push(
          `${col.metric} ${diff >= 0 ? "+" : ""}${diff.toFixed(col.decimals)} (p=${
            p === null ? "n/a" : p.toPrecision(2)
          }) ${v}`,
        );
      }
      lines.push(`  vs ${other}: ${parts.join("; ")}`);
    }
  }
  return lines;
}
