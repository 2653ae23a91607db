/**
 * Flags across tasks: `--methods` accepts new-method's file-name spelling (`entropy_min` for
 * the id `entropy-min`) with unchanged run ids; new-method prints the id to use; every task
 * (bench, report, data, new-method, doctor) answers a bad flag with one line and no stack trace.
 * @module
 */
import assert from "node:assert/strict";
import { expandGrid, resolveMethodNames } from "../benchmarks/harness/plan.ts";
import { flagErrorMessage, parseFlags } from "../benchmarks/harness/flags.ts";
import { parseEvaluateArgs } from "../benchmarks/evaluate_main.ts";
import { parseReportArgs } from "../benchmarks/report_main.ts";
import { main as newMethodMain, scaffoldSummary } from "../benchmarks/new_method.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { ugMclTable3La } from "../benchmarks/ug_mcl_table3_la.ts";
import { parseArgs } from "node:util";
import { task } from "./task_util.ts";

Deno.test("--methods: my_method means my-method when no id matches exactly; ids unchanged", () => {
  assert.deepEqual(resolveMethodNames(synthetic, ["entropy_min", "ua-mt", "ug_mcl"]), [
    "entropy-min",
    "ua-mt",
    "ug-mcl",
  ]);
  const a = expandGrid(synthetic, { methods: ["entropy_min", "ua_mt"] });
  const b = expandGrid(synthetic, { methods: ["entropy-min", "ua-mt"] });
  assert.ok(a.length > 0);
  assert.deepEqual(a.map((r) => r.runId), b.map((r) => r.runId));
  // Row keys too (supervised_upper -> supervised-upper); unknown names still list the choices.
  assert.deepEqual(
    expandGrid(ugMclTable3La, { methods: ["supervised_upper"] }).map((r) => r.rowKey),
    ["supervised-upper", "supervised-upper", "supervised-upper"],
  );
  assert.throws(
    () => resolveMethodNames(synthetic, ["no_such"]),
    /^Error: --methods: 'no_such' is not in benchmark synthetic \(expected one of supervised, /,
  );
});

Deno.test("--methods entropy_min: the dry-run plan is byte-identical to entropy-min's", async () => {
  const args = ["--dry-run", "--no-estimate", "--backend", "cpu-js", "--methods"];
  const under = await task("benchmarks/main.ts", [...args, "entropy_min,ua_mt"]);
  const dash = await task("benchmarks/main.ts", [...args, "entropy-min,ua-mt"]);
  assert.equal(under.code, 0, under.stderr);
  assert.equal(under.stdout, dash.stdout);
  assert.match(under.stdout, / entropy-min +labeled=2 /);
});

Deno.test("new-method: prints the id to use; flags and names are refused in one line", async () => {
  assert.deepEqual(scaffoldSummary("my_method", ["methods/my_method.ts"]), [
    "wrote methods/my_method.ts",
    "method id: my-method (deno task bench --methods my-method; --methods my_method is accepted too)",
    "next: write the loss in methods/my_method.ts, then deno test -A tests/my_method_test.ts",
  ]);
  assert.equal(
    scaffoldSummary("plain", [])[1],
    "method id: plain (deno task bench --methods plain)",
  );
  const run = async (args: string[]) => {
    const out: string[] = [], err: string[] = [];
    const code = await newMethodMain(args, (l) => out.push(l), (l) => err.push(l), "/nonexistent");
    return { code, out, err };
  };
  assert.deepEqual(await run(["--help"]), {
    code: 0,
    out: [
      "usage: deno task new-method <name>   (lower-case words joined by _ or -, e.g. cross_pseudo)",
    ],
    err: [],
  });
  for (
    const [args, want] of [
      [["--force", "x"], /^new-method: unknown flag --force \(usage: /],
      [[], /^new-method: no name given \(usage: /],
      [["a", "b"], /^new-method: one name only \(usage: /],
      [["Bad"], /^new-method: invalid name 'Bad'/],
    ] as const
  ) {
    const r = await run([...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, want);
  }
});

Deno.test("every task: a bad flag is one line, exit 2, no stack trace", async () => {
  const cases: [string, string[], RegExp][] = [
    ["benchmarks/main.ts", ["--bogus"], /^bench: unknown flag --bogus \(see --help/],
    ["benchmarks/main.ts", ["--benchmark"], /^bench: flag --benchmark needs a value$/],
    ["benchmarks/report_main.ts", ["--bogus"], /^report: unknown flag --bogus/],
    ["benchmarks/report_main.ts", ["--out"], /^report: flag --out needs a value$/],
    [
      "benchmarks/report_main.ts",
      ["--benchmark", "nope"],
      /^report: --benchmark: unknown benchmark 'nope'/,
    ],
    ["datasets/check.ts", ["la", "--bogus"], /^unknown flag --bogus \(usage: deno task data /],
    ["datasets/check.ts", ["la", "--root"], /^flag --root needs a value \(usage: deno task data /],
    ["datasets/check.ts", ["nope"], /^unknown dataset 'nope' \(expected one of /],
    ["benchmarks/new_method.ts", ["--bogus"], /^new-method: unknown flag --bogus/],
    ["benchmarks/doctor.ts", ["--bogus"], /^doctor: unknown flag --bogus/],
    ["benchmarks/doctor.ts", ["x"], /^doctor: unexpected argument 'x'/],
  ];
  for (const [script, args, want] of cases) {
    const r = await task(script, args);
    const lines = (r.stdout + r.stderr).split("\n").filter((l) => l !== "");
    const what = `${script} ${args.join(" ")}: ${r.stdout}${r.stderr}`;
    assert.equal(r.code, 2, what);
    assert.equal(lines.length, 1, what);
    assert.match(lines[0]!, want, what);
    assert.ok(!/\n\s+at /.test(r.stderr), what);
  }
});

Deno.test("flagErrorMessage: parseArgs errors become the shared one-line forms", () => {
  const err = (args: string[]) => {
    try {
      parseArgs({ args, options: { root: { type: "string", short: "r" } }, strict: true });
    } catch (e) {
      return flagErrorMessage(e);
    }
    return "no error";
  };
  assert.equal(err(["--x"]), "unknown flag --x (see --help for the flags)");
  assert.equal(err(["pos"]), "unexpected argument 'pos' (flags take the form --name value)");
  assert.equal(err(["--root"]), "flag --root needs a value");
  assert.equal(err(["-r"]), "flag --root needs a value");
});

Deno.test("parseFlags: strict parse, positionals only when allowed, errors as one line", () => {
  const options = {
    root: { type: "string" as const, short: "r" },
    help: { type: "boolean" as const },
  };
  const ok = parseFlags(["--root", "a", "x", "--help"], options, true);
  assert.deepEqual({ ...ok.values }, { root: "a", help: true });
  assert.deepEqual(ok.positionals, ["x"]);
  assert.deepEqual({ ...parseFlags(["-r", "b"], options).values }, { root: "b" });
  const bad: [string[], string][] = [
    [["x"], "unexpected argument 'x' (flags take the form --name value)"],
    [["--x"], "unknown flag --x (see --help for the flags)"],
    [["--root"], "flag --root needs a value"],
  ];
  for (const [argv, want] of bad) {
    assert.throws(() => parseFlags(argv, options), (e: Error) => e.message === want, argv.join());
  }
  // The tasks' own parsers answer through it.
  assert.throws(
    () => parseEvaluateArgs(["--checkpoint"]),
    (e: Error) => e.message === "flag --checkpoint needs a value",
  );
  assert.throws(
    () => parseReportArgs(["extra"]),
    (e: Error) => e.message === "unexpected argument 'extra' (flags take the form --name value)",
  );
});
