/**
 * `deno task report [--benchmark NAME] [--out DIR]`: write `<out>/<benchmark>/report.html`
 * and `plots/*.svg` from the stored run files alone (nothing is trained).
 * @module
 */
import { parseArgs } from "node:util";
import { getBenchmark } from "./mod.ts";
import { ResultStore } from "./harness/store.ts";
import { writeReport } from "./harness/report.ts";
import { checkOutputFolder, flagErrorMessage } from "./harness/flags.ts";

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
  let values: { benchmark?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        benchmark: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new Error(flagErrorMessage(e));
  }
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
  const path = await writeReport(spec, new ResultStore(opts.out, spec.id));
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
