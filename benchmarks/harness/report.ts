/**
 * The results report: one self-contained HTML page per benchmark (no network at view time:
 * inline styles and inline SVG, a Content-Security-Policy that forbids fetching anything)
 * with the paper-format table, per-metric plots over the labeled settings, per-case
 * distributions, training curves and provenance, plus each chart as a standalone SVG file.
 *
 * Charts are Vega-Lite specifications (data, not drawing code) compiled to Vega and rendered
 * headless to SVG (`renderer: "none"`, no browser, no canvas). Everything is built from the
 * stored run files alone, in a fixed order with fixed number formatting, and the SVG element
 * ids are renumbered per chart, so the same run files always give byte-identical output.
 * @module
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import { join } from "node:path";
import {
  buildTable,
  type BuiltTable,
  rowLabel,
  runIterations,
  SHORT_MARK,
  type TableOptions,
} from "./tables.ts";
import { mean, std } from "./stats.ts";
import type { BenchmarkSpec, TableColumn } from "./spec.ts";
import type { ResultStore, RunRecord } from "./store.ts";

/** A built report: the HTML page and each chart as a standalone SVG, keyed by file stem. */
export interface Report {
  html: string;
  /** SVG text by chart name (file stem under `plots/`), in page order. */
  svgs: Record<string, string>;
}

/** One layer of a layered Vega-Lite spec. */
type Layer = Extract<TopLevelSpec, { layer: unknown }>["layer"][number];

/** One chart of the page. */
interface Chart {
  name: string;
  caption: string;
  svg: string;
}

/** Curve keys that are schedules, not losses (learning rates, phase markers). */
const SCHEDULE_KEY = /^lr|^phase$/;
/**
 * Curve keys that are the ramped consistency weight (plotted in their own panel): every method
 * logs `consistencyWeight`; run files written before that name was shared say `weight`
 * (entropy-min) or `lambda` (ua-cotraining).
 */
const WEIGHT_KEY = /^(consistencyWeight|weight|lambda)$/;

const FONT = "DejaVu Sans, Verdana, Arial, sans-serif";

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

function fmt(x: number, d: number): string {
  return Number.isFinite(x) ? x.toFixed(d) : String(x);
}

/** A file-name-safe stem. */
function stem(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "x";
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function distinctSorted(xs: string[]): string[] {
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
interface Series {
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
function seriesOf(spec: BenchmarkSpec, table: BuiltTable): Series[] {
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
function runsOf(s: Series, runs: RunRecord[], labeled: number): RunRecord[] {
  return runs.filter((r) => s.runIds.has(r.runId) && r.labeled === labeled);
}

/** The labeled settings the runs cover, sorted (the benchmark's when there are none). */
function settingsOf(spec: BenchmarkSpec, runs: RunRecord[]): number[] {
  const ran = [...new Set(runs.map((r) => r.labeled))];
  return (ran.length ? ran : [...spec.labeled]).sort((a, b) => a - b);
}

/** The legend entry of a series' schedule: the paper's, or a warning naming the iterations. */
function scheduleLabel(spec: BenchmarkSpec, s: Series): string {
  return s.short
    ? `${SHORT_MARK} ${s.iterations} of ${spec.iterations} it: not comparable`
    : `the paper's ${spec.iterations} it`;
}

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

function stars(p: number | null): string {
  return p === null ? "" : p < 0.01 ? "**" : p < 0.05 ? "*" : "";
}

/** The paper-format table as HTML: ours (mean ± std, t-test marks), paper, gap (coloured). */
function tableHtml(t: BuiltTable, proposed: string | undefined): string {
  const withPaper = t.rows.some((r) => r.paper.some((p) => p !== null));
  const head1 = ['<th rowspan="2">Method</th>', '<th rowspan="2">Labeled</th>'];
  head1.push('<th rowspan="2">Unlabeled</th>');
  const head2: string[] = [];
  for (const c of t.columns) {
    if (withPaper) {
      head1.push(`<th colspan="3">${esc(c.header)}</th>`);
      head2.push("<th>ours</th>", "<th>paper</th>", "<th>gap</th>");
    } else {
      head1.push(`<th rowspan="2">${esc(c.header)}</th>`);
    }
  }
  const lines = [
    '<table class="paper">',
    `<caption>${esc(t.caption)}</caption>`,
    "<thead>",
    `<tr>${head1.join("")}</tr>`,
    ...(head2.length ? [`<tr>${head2.join("")}</tr>`] : []),
    "</thead>",
    "<tbody>",
  ];
  let prev: number | null = null;
  for (const r of t.rows) {
    const cls = [
      ...(r.key === proposed ? ["proposed"] : []),
      ...(prev !== null && prev !== r.labeled ? ["group"] : []),
      ...(r.expectedSeeds === 0 ? ["paper-only"] : []),
    ];
    prev = r.labeled;
    const cells = [
      `<th scope="row">${esc(rowLabel(r))}</th>`,
      `<td>${r.labeled}</td>`,
      `<td>${r.unlabeled === null ? "" : r.unlabeled}</td>`,
    ];
    t.columns.forEach((c, i) => {
      const o = r.ours[i] ?? null, p = r.paper[i] ?? null;
      cells.push(
        o
          ? `<td class="num">${fmt(o.mean, c.decimals)} ± ${fmt(o.std, c.decimals)}${
            stars(r.p[i] ?? null)
          }</td>`
          : `<td class="num missing">${r.expectedSeeds ? "missing" : "—"}</td>`,
      );
      if (!withPaper) return;
      cells.push(`<td class="num">${p === null ? "n/a" : fmt(p, c.decimals)}</td>`);
      if (o && p !== null) {
        const gap = o.mean - p;
        const better = c.higherIsBetter ? gap >= 0 : gap <= 0;
        cells.push(
          `<td class="num gap ${better ? "better" : "worse"}">${gap >= 0 ? "+" : ""}${
            fmt(gap, c.decimals)
          }</td>`,
        );
      } else cells.push('<td class="num"></td>');
    });
    lines.push(`<tr${cls.length ? ` class="${cls.join(" ")}"` : ""}>${cells.join("")}</tr>`);
  }
  lines.push("</tbody>", "</table>");
  lines.push('<ul class="notes">', ...t.footer.map((f) => `<li>${esc(f)}</li>`), "</ul>");
  return lines.join("\n");
}

function provenanceHtml(spec: BenchmarkSpec, runs: RunRecord[], ignored: number): string {
  const protocol = (f: (r: RunRecord) => string, fallback: string) => {
    const xs = distinctSorted(runs.map(f));
    return xs.length ? xs.join("; ") : `${fallback} (from the spec; no runs)`;
  };
  const sel = spec.selection.kind === "best-val"
    ? `best-val (validation Dice every ${spec.selection.every} iterations)`
    : "last";
  const facts: [string, string][] = [
    ["Benchmark", `${spec.id}: ${spec.title}`],
    ["Dataset", `${spec.dataset.id}`],
    ["Split (name hash)", protocol((r) => `${r.split.name} ${r.split.hash}`, "")],
    ["Selection rule", protocol((r) => r.protocol.selection, sel)],
    ["Metric units", protocol((r) => r.protocol.units, spec.eval.units)],
    ["Empty-mask policy", protocol((r) => r.protocol.emptyPolicy, spec.eval.emptyPolicy)],
    [
      "Post-processing",
      protocol(
        (r) => r.protocol.lcc ? "largest connected component" : "none",
        String(spec.eval.lcc),
      ),
    ],
    [
      "Evaluation window",
      `${spec.eval.window}, patch ${
        spec.eval.patch.join("x")
      }, stride ${spec.eval.strideXY}/${spec.eval.strideZ}`,
    ],
    ["Git commit", protocol((r) => r.provenance.gitCommit, "unknown")],
    [
      "Runs",
      `${runs.length} stored${ignored ? `, ${ignored} of rows not in the spec ignored` : ""}`,
    ],
  ];
  const out = [
    '<dl class="facts">',
    ...facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`),
    "</dl>",
  ];
  // Distinct environments the runs were produced in.
  const envs = new Map<string, { row: string[]; n: number }>();
  for (const r of runs) {
    const p = r.provenance;
    const row = [
      p.backend,
      p.tfjsVersion,
      p.denoVersion,
      p.v8Version,
      p.os,
      p.device,
      Object.keys(p.details ?? {}).sort().map((k) => `${k}: ${p.details[k]}`).join("; "),
      p.gitCommit,
    ];
    const k = JSON.stringify(row);
    const e = envs.get(k);
    if (e) e.n++;
    else envs.set(k, { row, n: 1 });
  }
  out.push(
    '<table class="env">',
    "<caption>Environments (one row per distinct provenance)</caption>",
    "<thead><tr><th>backend</th><th>tfjs</th><th>Deno</th><th>V8</th><th>OS</th><th>device</th>" +
      "<th>details</th><th>commit</th><th>runs</th></tr></thead>",
    "<tbody>",
  );
  for (const k of [...envs.keys()].sort()) {
    const e = envs.get(k)!;
    out.push(`<tr>${e.row.map((c) => `<td>${esc(c)}</td>`).join("")}<td>${e.n}</td></tr>`);
  }
  out.push("</tbody>", "</table>");
  return out.join("\n");
}

function timingHtml(spec: BenchmarkSpec, runs: RunRecord[], series: Series[]): string {
  const out = [
    '<table class="runs">',
    "<caption>Runs per cell: seeds, iterations, mean training and evaluation time</caption>",
    "<thead><tr><th>method</th><th>labeled</th><th>seeds</th><th>iterations</th>" +
    "<th>train s</th><th>eval s</th><th>it/s</th></tr></thead>",
    "<tbody>",
  ];
  for (const labeled of settingsOf(spec, runs)) {
    for (const se of series) {
      const rs = runsOf(se, runs, labeled);
      if (!rs.length) continue;
      const its = distinctSorted(rs.map((r) => String(r.spec["iterations"] ?? "?"))).join(", ");
      const seeds = [...rs.map((r) => r.seed)].sort((a, b) => a - b).join(", ");
      out.push(
        `<tr><th scope="row">${esc(se.label)}</th><td>${labeled}</td><td>${seeds}</td>` +
          `<td>${esc(its)}</td><td class="num">${
            fmt(mean(rs.map((r) => r.timing.trainSeconds)), 1)
          }</td><td class="num">${fmt(mean(rs.map((r) => r.timing.evalSeconds)), 1)}</td>` +
          `<td class="num">${fmt(mean(rs.map((r) => r.timing.iterationsPerSecond)), 2)}</td></tr>`,
      );
    }
  }
  out.push("</tbody>", "</table>");
  return out.join("\n");
}

const STYLE = `
body { font-family: ${FONT}; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
thead th { background: #f3f3f3; }
tbody th { text-align: left; font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.proposed th, tr.proposed td { font-weight: bold; background: #fffbe6; }
tr.group th, tr.group td { border-top: 2px solid #888; }
tr.paper-only th, tr.paper-only td { color: #777; }
td.missing { color: #a00; }
td.gap.better { background: #e3f4e3; color: #145214; }
td.gap.worse { background: #fbe3e3; color: #7a1010; }
ul.notes { font-size: 12px; color: #444; }
figure { margin: 16px 0; } figcaption { font-size: 12px; color: #444; margin-top: 4px; }
figure svg { max-width: 100%; height: auto; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 13px; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; word-break: break-all; }
p.empty { color: #a00; }
`;

/**
 * The page header's facts, from the runs that are plotted: how many, of how many methods, at
 * which labeled settings, seeds and iterations (beside the benchmark's when they differ).
 */
function ranSummary(spec: BenchmarkSpec, used: RunRecord[], series: Series[]): string {
  const sorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
  const trained = used.filter((r) => !r.checkpoint);
  const seeds = sorted(trained.map((r) => r.seed));
  const its = sorted(trained.map(runIterations).filter((x) => x !== null));
  const theirs = spec.table.reported.length ? "the paper" : "the benchmark";
  const parts = [
    `${used.length} finished runs`,
    `${new Set(series.map((x) => x.key)).size} methods with runs`,
    `labeled settings ${settingsOf(spec, used).join(", ")}`,
  ];
  if (seeds.length) {
    const same = seeds.join() === sorted(spec.seeds).join();
    parts.push(`seeds ${seeds.join(", ")}${same ? "" : ` (${theirs}: ${spec.seeds.join(", ")})`}`);
  }
  if (its.length) {
    const same = its.length === 1 && its[0] === spec.iterations;
    parts.push(`${its.join(", ")} iterations${same ? "" : ` (${theirs}: ${spec.iterations})`}`);
  }
  return parts.join(", ");
}

function figure(c: Chart): string {
  // The inline SVG is the standalone file's text, byte for byte.
  return `<figure id="fig-${c.name}">\n${c.svg}\n<figcaption>${
    esc(c.caption)
  } (<code>plots/${c.name}.svg</code>)</figcaption>\n</figure>`;
}

/** Build the report of `spec` from `runs` (runs of other benchmarks are ignored). */
export async function buildReport(
  spec: BenchmarkSpec,
  runs: RunRecord[],
  opts: TableOptions = {},
): Promise<Report> {
  const mine = runs.filter((r) => r.benchmark === spec.id)
    .sort((a, b) => a.runId.localeCompare(b.runId));
  const table = buildTable(spec, mine, opts);
  const series = seriesOf(spec, table);
  const used = mine.filter((r) => series.some((x) => x.runIds.has(r.runId)));
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
  const charts = [...metricCharts, ...caseCharts, ...curveCharts];
  const section = (title: string, cs: Chart[], empty: string) =>
    [
      `<h2>${esc(title)}</h2>`,
      ...(cs.length ? cs.map(figure) : [`<p class="empty">${esc(empty)}</p>`]),
    ]
      .join("\n");
  const noRuns = "No finished runs stored yet.";
  const html = [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(spec.id)}: results report</title>`,
    `<style>${STYLE}</style>`,
    "</head>",
    "<body>",
    `<h1>${esc(spec.title)}</h1>`,
    `<p>Benchmark <code>${esc(spec.id)}</code>: ${esc(ranSummary(spec, used, series))}. ` +
    "Built from <code>runs/*.json</code> alone; " +
    "<code>deno task report</code> regenerates it byte for byte.</p>",
    "<h2>Table</h2>",
    tableHtml(table, spec.table.proposed),
    section("Metrics over the labeled settings", metricCharts, noRuns),
    section("Per-case distributions", caseCharts, noRuns),
    section("Training curves", curveCharts, noRuns),
    "<h2>Provenance</h2>",
    provenanceHtml(spec, mine, mine.length - used.length),
    timingHtml(spec, used, series),
    ...(warnings.length
      ? [
        '<h2 class="warnings">Chart warnings</h2>',
        '<ul class="warnings">',
        ...distinctSorted(warnings).map((w) => `<li>${esc(w)}</li>`),
        "</ul>",
      ]
      : []),
    "</body>",
    "</html>",
    "",
  ].join("\n");
  const svgs: Record<string, string> = {};
  for (const c of charts) svgs[c.name] = c.svg + "\n";
  return { html, svgs };
}

/**
 * Write `report.html` and `plots/<name>.svg` into the benchmark's result folder (atomically,
 * from the stored run files), removing SVGs of charts that no longer exist. Returns the
 * report's path.
 */
export async function writeReport(
  spec: BenchmarkSpec,
  store: ResultStore,
  opts: TableOptions = {},
): Promise<string> {
  const { html, svgs } = await buildReport(spec, await store.readAllRuns(), opts);
  for (const [name, svg] of Object.entries(svgs)) await store.writeText(`plots/${name}.svg`, svg);
  const plots = join(store.dir, "plots");
  try {
    for await (const e of Deno.readDir(plots)) {
      if (e.isFile && e.name.endsWith(".svg") && !(e.name.slice(0, -4) in svgs)) {
        await Deno.remove(join(plots, e.name));
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return await store.writeText("report.html", html);
}
