/**
 * `deno task report [--benchmark NAME] [--out DIR]`: write `<out>/<benchmark>/report.html`
 * and `plots/*.svg` from the stored run files alone (nothing is trained).
 * @module
 */
import { getBenchmark } from "./mod.ts";
import { checkWritable, ResultStore } from "./harness/store.ts";
import { writeReport } from "./harness/report.ts";
import { checkOutputFolder, parseFlags } from "./harness/flags.ts";

const HELP = [
  "deno task report [flags]",
  "",
  "Writes results/<benchmark>/report.html (paper-format table, plots, training curves,",
  "provenance; self-contained) and results/<benchmark>/plots/*.svg from the stored run files.",
  "",
  "Flags:",
  "  --benchmark NAME   benchmark to report (default: synthetic)",
  "  --out DIR          results root (default: results)",
  "  --help             this help",
].join("\n");

/** Parsed options of `deno task report`. */
export interface ReportOptions {
  benchmark: string;
  out: string;
  help: boolean;
}

/** Parse argv; every problem is a one-line Error naming the flag. */
export function parseReportArgs(argv: string[]): ReportOptions {
  const { values } = parseFlags(argv, {
    benchmark: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean" },
  });
  return {
    benchmark: values.benchmark ?? "synthetic",
    out: values.out ?? "results",
    help: values.help === true,
  };
}

/** Entry point; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  const opts = parseReportArgs(argv);
  if (opts.help) {
    out(HELP);
    return 0;
  }
  const spec = getBenchmark(opts.benchmark);
  await checkOutputFolder("--out", opts.out);
  const store = new ResultStore(opts.out, spec.id);
  // A report of nothing is a wrong --out or --benchmark, not an empty page.
  const dir = await Deno.stat(store.dir).catch(() => null);
  if (dir === null || (dir.isDirectory && (await store.readAllRuns()).length === 0)) {
    throw new Error(
      `no run files under ${store.dir}/runs (expected the results of \`deno task bench --benchmark ${spec.id}\`; pass --out DIR where they are)`,
    );
  }
  // report.html and plots/*.svg: a folder that cannot take them is one line naming it.
  await checkWritable([store.dir, `${store.dir}/plots`], "the report and its plots");
  const path = await writeReport(spec, store);
  out(`report: ${path}`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(`report: ${e instanceof Error ? e.message : String(e)}\n`),
    );
    Deno.exit(2);
  }
}
