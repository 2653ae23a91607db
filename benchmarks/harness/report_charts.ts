/**
 * The report's charts: Vega-Lite specifications (data, not drawing code) of the per-metric
 * plots over the labeled settings, the per-case distributions and the training curves,
 * compiled to Vega and rendered headless to SVG (`renderer: "none"`, no browser, no canvas).
 * The SVG element ids are renumbered per chart, so the same runs always give byte-identical
 * SVG text. The HTML page around them is harness/report.ts.
 * @module
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import { type BuiltTable, SHORT_MARK } from "./tables.ts";
import { mean, std } from "./stats.ts";
import type { BenchmarkSpec, TableColumn } from "./spec.ts";
import type { RunRecord } from "./store.ts";

/** One chart of the page: its file stem under `plots/`, caption and SVG text. */
export interface Chart {
  name: string;
  caption: string;
  svg: string;
}

/** One layer of a layered Vega-Lite spec. */
type Layer = Extract<TopLevelSpec, { layer: unknown }>["layer"][number];

/** Curve keys that are schedules, not losses (learning rates, phase markers). */
const SCHEDULE_KEY = /^lr|^phase$/;
/**
 * Curve keys that are the ramped consistency weight (plotted in their own panel): every method
 * logs `consistencyWeight`; run files written before that name was shared say `weight`
 * (entropy-min) or `lambda` (ua-cotraining).
 */
const WEIGHT_KEY = /^(consistencyWeight|weight|lambda)$/;

/** The font of the charts and of the page. */
export const FONT = "DejaVu Sans, Verdana, Arial, sans-serif";

/** A file-name-safe stem. */
function stem(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "x";
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The distinct strings of `xs`, sorted. */
export function distinctSorted(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

/**
 * Vega's SVG renderer names clip paths and gradients from a process-wide counter; renumber
 * every id in order of appearance under `prefix`, so ids are stable across processes and
 * unique when several charts are inlined in one page.
 */
function normaliseIds(svg: string, prefix: string): string {
  const ids = [...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!);
  let out = svg;
  ids.forEach((id, i) => {
    const to = `${prefix}-${i + 1}`;
    out = out.replaceAll(`id="${id}"`, `id="${to}"`).replaceAll(`url(#${id})`, `url(#${to})`)
      .replaceAll(`href="#${id}"`, `href="#${to}"`);
  });
  return out;
}

/** Compile a Vega-Lite spec and render it to SVG headless; warnings go to `warnings`. */
async function renderSvg(spec: TopLevelSpec, name: string, warnings: string[]): Promise<string> {
  const handler = (_method: string, level: string, args: unknown[]) => {
    warnings.push(`${name}: ${level} ${args.map(String).join(" ")}`);
  };
  const logger = vega.logger(vega.Warn, "warn", handler);
  const compiled = vl.compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logger });
  try {
    return normaliseIds(await view.toSVG(), stem(name));
  } finally {
    view.finalize();
  }
}

const BASE_CONFIG = {
  aria: false,
  font: FONT,
  background: "white",
  view: { stroke: "#ccc" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  title: { fontSize: 13, anchor: "start" as const },
};

/**
 * One plotted series: a table row's method trained on one schedule (a cell whose runs used
 * different iteration counts is one row, and one series, per schedule).
 */
export interface Series {
  /** Unique in the page: the row key, and the iterations when the key has several schedules. */
  id: string;
  key: string;
  label: string;
  iterations: number | null;
  /** Trained fewer iterations than the paper's schedule (plotted with another marker). */
  short: boolean;
  runIds: Set<string>;
}

/** The series of the table's rows that have runs, in table order (proposed row marked). */
export function seriesOf(spec: BenchmarkSpec, table: BuiltTable): Series[] {
  const out: Series[] = [];
  for (const r of table.rows) {
    if (r.runIds.length === 0) continue;
    let s = out.find((x) => x.key === r.key && x.iterations === r.iterations);
    if (!s) {
      const label = r.label + (r.external ? " (external)" : "") + (r.added ? " (added)" : "") +
        (r.short ? ` ${SHORT_MARK}` : "") + (r.key === spec.table.proposed ? " (proposed)" : "");
      s = {
        id: r.key,
        key: r.key,
        label,
        iterations: r.iterations,
        short: r.short,
        runIds: new Set(),
      };
      out.push(s);
    }
    for (const id of r.runIds) s.runIds.add(id);
  }
  for (const s of out) {
    if (out.filter((x) => x.key === s.key).length > 1) s.id = `${s.key}-${s.iterations ?? "x"}it`;
  }
  return out;
}

/** The runs of `s` at `labeled`. */
export function runsOf(s: Series, runs: RunRecord[], labeled: number): RunRecord[] {
  return runs.filter((r) => s.runIds.has(r.runId) && r.labeled === labeled);
}

/** The labeled settings the runs cover, sorted (the benchmark's when there are none). */
export function settingsOf(spec: BenchmarkSpec, runs: RunRecord[]): number[] {
  const ran = [...new Set(runs.map((r) => r.labeled))];
  return (ran.length ? ran : [...spec.labeled]).sort((a, b) => a - b);
}

/** The legend entry of a series' schedule: the paper's, or a warning naming the iterations. */
function scheduleLabel(spec: BenchmarkSpec, s: Series): string {
  return s.short
    ? `${SHORT_MARK} ${s.iterations} of ${spec.iterations} it: not comparable`
    : `the paper's ${spec.iterations} it`;
}

/** Per-metric chart: per-seed dots, mean ± std bars and the paper's numbers per labeled setting. */
function metricChart(
  spec: BenchmarkSpec,
  col: TableColumn,
  runs: RunRecord[],
  series: Series[],
): TopLevelSpec {
  const seeds: Record<string, unknown>[] = [];
  const summary: Record<string, unknown>[] = [];
  const paper: Record<string, unknown>[] = [];
  const settings = settingsOf(spec, runs);
  for (const labeled of settings) {
    for (const se of series) {
      const rs = runsOf(se, runs, labeled);
      const vals: number[] = [];
      for (const r of rs) {
        const v = num(r.mean[col.metric]);
        if (v === null) continue;
        vals.push(v * col.scale);
        seeds.push({
          method: se.label,
          labeled,
          seed: `seed ${r.seed}`,
          value: v * col.scale,
          schedule: scheduleLabel(spec, se),
        });
      }
      if (vals.length) {
        const m = mean(vals), s = std(vals);
        summary.push({ method: se.label, labeled, mean: m, lo: m - s, hi: m + s });
      }
      const rep = spec.table.reported.find((x) => x.key === se.key && x.labeled === labeled);
      const pv = num(rep?.values[col.metric]);
      if (pv !== null) paper.push({ method: se.label, labeled, paper: pv });
    }
  }
  const domain = series.map((x) => x.label);
  // Runs on a shorter schedule than the paper's get another marker and a legend entry that
  // says so: never silently beside the paper's numbers.
  const schedules = [...new Set(series.map((x) => scheduleLabel(spec, x)))].sort((a, b) =>
    (a.startsWith(SHORT_MARK) ? 1 : 0) - (b.startsWith(SHORT_MARK) ? 1 : 0) ||
    a.localeCompare(b)
  );
  const short = series.some((x) => x.short);
  const shape = {
    field: "schedule",
    type: "nominal" as const,
    title: "schedule",
    scale: {
      domain: schedules,
      range: schedules.map((x) => x.startsWith(SHORT_MARK) ? "triangle-up" : "circle"),
    },
  };
  const x = {
    field: "labeled",
    type: "ordinal" as const,
    title: "labeled cases",
    sort: settings,
    axis: { labelAngle: 0 },
  };
  const xOffset = { field: "method", type: "nominal" as const, sort: domain };
  const color = {
    field: "method",
    type: "nominal" as const,
    scale: { domain },
    title: "method",
  };
  const yTitle = col.header;
  const layer: Layer[] = [
    {
      data: { values: summary },
      mark: { type: "rule", strokeWidth: 2 },
      encoding: {
        x,
        xOffset,
        color,
        y: { field: "lo", type: "quantitative", title: yTitle, scale: { zero: false } },
        y2: { field: "hi" },
      },
    },
    {
      data: { values: summary },
      mark: { type: "tick", thickness: 2, size: 10 },
      encoding: { x, xOffset, color, y: { field: "mean", type: "quantitative" } },
    },
    {
      data: { values: seeds },
      mark: { type: "point", filled: true, size: short ? 40 : 28, opacity: 0.75 },
      encoding: {
        x,
        xOffset,
        color,
        y: { field: "value", type: "quantitative" },
        ...(short ? { shape } : {}),
      },
    },
  ];
  if (paper.length) {
    layer.push({
      data: { values: paper },
      mark: { type: "point", shape: "diamond", filled: false, size: 70, strokeWidth: 1.5 },
      encoding: { x, xOffset, color, y: { field: "paper", type: "quantitative" } },
    });
  }
  return {
    title: `${col.header}: per-seed values and mean ± std${paper.length ? ", ◇ paper" : ""}${
      short ? `; ▲ ${SHORT_MARK} shorter schedule than the paper's, not comparable` : ""
    }`,
    width: Math.max(260, settings.length * series.length * 16),
    height: 220,
    config: BASE_CONFIG,
    layer,
  };
}

/** Per-case values averaged over a row's seeds (the pairing the table's t-tests use). */
function perCase(rs: RunRecord[], metric: string): { id: string; value: number }[] {
  const acc = new Map<string, number[]>();
  for (const r of rs) {
    for (const c of r.cases) {
      const v = num(c.values[metric]);
      if (v === null) continue;
      if (!acc.has(c.id)) acc.set(c.id, []);
      acc.get(c.id)!.push(v);
    }
  }
  return [...acc.keys()].sort().map((id) => ({ id, value: mean(acc.get(id)!) }));
}

/** Per-case distribution chart of one metric: a box and the cases per method, faceted by setting. */
function casesChart(
  spec: BenchmarkSpec,
  col: TableColumn,
  runs: RunRecord[],
  series: Series[],
): TopLevelSpec {
  const rows: Record<string, unknown>[] = [];
  const settings = settingsOf(spec, runs);
  // The proposed row first, then the baselines in table order.
  const order = [
    ...series.filter((x) => x.key === spec.table.proposed),
    ...series.filter((x) => x.key !== spec.table.proposed),
  ];
  for (const labeled of settings) {
    for (const se of order) {
      for (const c of perCase(runsOf(se, runs, labeled), col.metric)) {
        rows.push({ method: se.label, labeled, case: c.id, value: c.value * col.scale });
      }
    }
  }
  const domain = order.map((x) => x.label);
  const x = {
    field: "method",
    type: "nominal" as const,
    sort: domain,
    title: null,
    axis: { labelAngle: -35, labelLimit: 300 },
  };
  const y = { field: "value", type: "quantitative" as const, title: col.header };
  return {
    title: `${col.header}: per-case distribution (mean over seeds per case)`,
    config: BASE_CONFIG,
    data: { values: rows },
    facet: {
      column: { field: "labeled", type: "ordinal", title: "labeled cases", sort: settings },
    },
    spec: {
      width: Math.max(160, order.length * 30),
      height: 200,
      layer: [
        {
          mark: {
            type: "boxplot",
            extent: "min-max",
            size: 16,
            opacity: 0.5,
            median: { color: "#222" },
          },
          encoding: {
            x,
            y: { ...y, scale: { zero: false } },
            color: {
              field: "method",
              type: "nominal",
              scale: { domain: series.map((x) => x.label) },
            },
          },
        },
        {
          mark: { type: "point", filled: true, size: 14, opacity: 0.7, color: "#333" },
          encoding: { x, y },
        },
      ],
    },
  };
}

/** Training-curve chart of one series (loss terms, consistency weight); null when it has no curve. */
function curveChart(
  spec: BenchmarkSpec,
  se: Series,
  runs: RunRecord[],
): TopLevelSpec | null {
  const rows: Record<string, unknown>[] = [];
  const settings = settingsOf(spec, runs);
  for (const labeled of settings) {
    const rs = runsOf(se, runs, labeled)
      .sort((a, b) => a.seed - b.seed || a.runId.localeCompare(b.runId));
    for (const r of rs) {
      for (const p of r.curve) {
        for (const term of Object.keys(p.values).sort()) {
          const v = num(p.values[term]);
          if (v === null || SCHEDULE_KEY.test(term)) continue;
          rows.push({
            labeled: `${labeled} labeled`,
            panel: WEIGHT_KEY.test(term) ? "consistency weight" : "loss terms",
            term,
            seed: String(r.seed),
            iteration: p.iteration,
            value: v,
          });
        }
      }
    }
  }
  if (rows.length === 0) return null;
  return {
    title: `${se.label}: training curves (window means; one line per seed)`,
    config: BASE_CONFIG,
    data: { values: rows },
    facet: {
      row: {
        field: "panel",
        type: "nominal",
        title: null,
        sort: ["loss terms", "consistency weight"],
      },
      column: {
        field: "labeled",
        type: "ordinal",
        title: null,
        sort: settings.map((l) => `${l} labeled`),
      },
    },
    resolve: { scale: { y: "independent" } },
    spec: {
      width: 240,
      height: 150,
      mark: { type: "line", strokeWidth: 1.5, clip: true },
      encoding: {
        x: { field: "iteration", type: "quantitative", title: "iteration" },
        y: { field: "value", type: "quantitative", title: null },
        color: { field: "term", type: "nominal", title: "term" },
        strokeDash: { field: "seed", type: "nominal", title: "seed" },
      },
    },
  };
}

/** The rendered charts of a report, in page order, and the renderer's warnings. */
export interface Charts {
  metric: Chart[];
  cases: Chart[];
  curves: Chart[];
  warnings: string[];
}

/**
 * Render every chart of the report from the plotted runs `used` of `series`: one per table
 * column over the labeled settings, one per-case distribution per column, one training-curve
 * chart per series with a curve (none at all when no run is plotted).
 */
export async function renderCharts(
  spec: BenchmarkSpec,
  used: RunRecord[],
  series: Series[],
): Promise<Charts> {
  const shortSeries = series.filter((x) => x.short);
  const shortWarning = shortSeries.length
    ? `; ▲ ${SHORT_MARK} ${
      [...new Set(shortSeries.map((x) => x.iterations))].join(", ")
    } training iterations (${
      shortSeries.map((x) => x.label).join(", ")
    }), fewer than the paper's ${spec.iterations}: not comparable to the paper's numbers`
    : "";
  const warnings: string[] = [];
  const metricCharts: Chart[] = [], caseCharts: Chart[] = [], curveCharts: Chart[] = [];
  if (used.length) {
    for (const col of spec.table.columns) {
      const name = `metric-${stem(col.metric)}`;
      metricCharts.push({
        name,
        caption: `${col.header} per method over the labeled settings: dots are seeds, ` +
          "bars mean ± std over seeds (sample std, as in the table)" +
          (spec.table.reported.length ? ", hollow diamonds the paper's numbers" : "") +
          shortWarning,
        svg: await renderSvg(metricChart(spec, col, used, series), name, warnings),
      });
    }
    for (const col of spec.table.columns) {
      const name = `cases-${stem(col.metric)}`;
      caseCharts.push({
        name,
        caption: `${col.header} per test case (averaged over seeds), proposed row first: ` +
          "box = min, quartiles, median, max; dots = cases",
        svg: await renderSvg(casesChart(spec, col, used, series), name, warnings),
      });
    }
    for (const se of series) {
      const vlSpec = curveChart(spec, se, used);
      if (!vlSpec) continue;
      const name = `curves-${stem(se.id)}`;
      curveCharts.push({
        name,
        caption: `${se.label}: loss terms and consistency weight (when the method has one), ` +
          "means over the stored curve windows, per labeled setting; dash pattern = seed",
        svg: await renderSvg(vlSpec, name, warnings),
      });
    }
  }
  return { metric: metricCharts, cases: caseCharts, curves: curveCharts, warnings };
}
