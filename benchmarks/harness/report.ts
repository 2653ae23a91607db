/**
 * The results report: one self-contained HTML page per benchmark (no network at view time:
 * inline styles and inline SVG, a Content-Security-Policy that forbids fetching anything)
 * with the paper-format table, per-metric plots over the labeled settings, per-case
 * distributions, training curves and provenance, plus each chart as a standalone SVG file.
 *
 * This module is the page (table, provenance, timing, layout); the charts are Vega-Lite specs
 * rendered to SVG in harness/report_charts.ts. Everything is built from the stored run files
 * alone, in a fixed order with fixed number formatting, so the same run files always give
 * byte-identical output.
 * @module
 */
import { join } from "node:path";
import {
  buildTable,
  type BuiltTable,
  rowLabel,
  runIterations,
  type TableOptions,
} from "./tables.ts";
import { mean } from "./stats.ts";
import type { BenchmarkSpec } from "./spec.ts";
import type { ResultStore, RunRecord } from "./store.ts";
import {
  type Chart,
  distinctSorted,
  FONT,
  renderCharts,
  runsOf,
  type Series,
  seriesOf,
  settingsOf,
} from "./report_charts.ts";

/** A built report: the HTML page and each chart as a standalone SVG, keyed by file stem. */
export interface Report {
  html: string;
  /** SVG text by chart name (file stem under `plots/`), in page order. */
  svgs: Record<string, string>;
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

function fmt(x: number, d: number): string {
  return Number.isFinite(x) ? x.toFixed(d) : String(x);
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
  const { metric: metricCharts, cases: caseCharts, curves: curveCharts, warnings } =
    await renderCharts(spec, used, series);
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
