/**
 * Entry point of the single-file executable that `deno task compile` builds
 * (benchmarks/compile.ts): one binary for machines that cannot install Deno or fetch npm
 * packages (air-gapped clusters, locked-down GPU nodes), dispatching on its first argument:
 *
 *   semiseg [bench] FLAGS   `deno task bench` (the default when the first argument is a flag)
 *   semiseg perf FLAGS      `deno task perf`
 *   semiseg evaluate FLAGS  `deno task evaluate` (re-score a PyTorch checkpoint)
 *   semiseg doctor          `deno task doctor`
 *   semiseg selftest FILES  `deno test` of tests/FILES inside the unpacked copy (built with
 *                           `deno task compile --with-tests`; e.g. the webgpu kernel tests
 *                           on a GPU machine that can install nothing)
 *   semiseg help            this usage
 *
 * One binary instead of two because the two entry points share all of tfjs and the method
 * code, and the runtime dominates the size: a second binary would double it for nothing.
 * The bench harness re-invokes its own executable for `--jobs` workers and SLURM tasks as
 * `Deno.execPath() run -A <benchmarks/main.ts> FLAGS` (harness/parallel.ts,
 * harness/slurm.ts). Inside a `deno compile` binary `Deno.execPath()` is the binary itself, so
 * that form is accepted here too and runs the bench; in the self-extracting form it is the
 * unpacked Deno, which runs the unpacked benchmarks/main.ts directly.
 * @module
 */
import { main as benchMain } from "./main.ts";
import { main as perfMain } from "./perf.ts";
import { main as evaluateMain } from "./evaluate_main.ts";
import { main as doctorMain } from "./doctor.ts";

const USAGE = [
  "semiseg [bench] [flags]   run a benchmark (semiseg bench --help lists the flags)",
  "semiseg perf [flags]      time a V-Net training step; flags: --shapes DxHxW,... --batch N",
  "                          --full --runs N --warmup N --backends cpu,cpu-js --no-torch",
  "                          --no-profile --mem-steps N --json FILE --threads N",
  "semiseg evaluate FLAGS    re-score a .pth checkpoint (= deno task evaluate)",
  "semiseg doctor            what this machine can run (= deno task doctor)",
  "semiseg selftest [FILES]  run tests/FILES (default tests/webgpu_*_test.ts) inside this",
  "                          executable (built with deno task compile --with-tests)",
  "semiseg help              this usage",
  "Results go to ./results/ (or --out DIR) under the current directory.",
].join("\n");

function say(stream: { writeSync(b: Uint8Array): number }, line: string): void {
  stream.writeSync(new TextEncoder().encode(line + "\n"));
}

/**
 * `deno test -A --cached-only` of the named files under the unpacked copy's tests/ (default:
 * the webgpu tests), with the Deno that runs this program; one line when the build has no
 * tests or is a `deno compile` binary (which cannot run `deno test`).
 */
async function selftest(argv: string[]): Promise<number> {
  // Flags (e.g. --filter NAME) go to deno test; the rest are test file names.
  const flags = argv.filter((a, i) => a.startsWith("-") || argv[i - 1] === "--filter");
  const files = argv.filter((a) => !flags.includes(a));
  const testsDir = new URL("../tests/", import.meta.url);
  if (Deno.build.standalone) {
    say(Deno.stderr, "selftest: needs the self-extracting build (deno task compile --with-tests)");
    return 2;
  }
  let names = files;
  try {
    if (names.length === 0) {
      names = [];
      for await (const e of Deno.readDir(testsDir)) {
        if (/^webgpu_.*_test\.ts$/.test(e.name)) names.push(e.name);
      }
      names.sort();
    }
  } catch {
    say(Deno.stderr, "selftest: this build has no tests/ (deno task compile --with-tests)");
    return 2;
  }
  const paths = names.map((f) => new URL(f.replace(/^tests\//, ""), testsDir).pathname);
  const out = await new Deno.Command(Deno.execPath(), {
    // The unpacked copy's config (npm imports from its node_modules/, never downloaded); the
    // sources were type-checked when the executable was built.
    args: [
      "test",
      "-A",
      "--cached-only",
      "--no-check",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      ...flags,
      ...paths,
    ],
    env: { OMP_NUM_THREADS: Deno.env.get("OMP_NUM_THREADS") ?? "1" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return out.code;
}

/** Run the command `argv` names; resolves to the process exit code. */
export async function dispatch(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // `<exe> run -A <.../benchmarks/main.ts> FLAGS`: a --jobs worker or a SLURM task.
  if (
    first === "run" && rest[0] === "-A" && /(^|[\\/])benchmarks[\\/]main\.ts$/.test(rest[1] ?? "")
  ) {
    return await dispatch(["bench", ...rest.slice(2)]);
  }
  if (first === "help" || first === "-h") {
    say(Deno.stdout, USAGE);
    return 0;
  }
  if (first === "perf") {
    try {
      await perfMain(rest);
      return 0;
    } catch (e) {
      say(Deno.stderr, `perf: ${e instanceof Error ? e.message : String(e)}`);
      return 2;
    }
  }
  if (first === "selftest") return await selftest(rest);
  if (first === "evaluate" || first === "doctor") {
    try {
      return first === "evaluate"
        ? await evaluateMain(rest)
        : await doctorMain(rest, (l) => say(Deno.stdout, l));
    } catch (e) {
      say(Deno.stderr, `${first}: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`);
      return 2;
    }
  }
  if (first !== undefined && first !== "bench" && !first.startsWith("-")) {
    say(
      Deno.stderr,
      `semiseg: unknown command '${first}' (expected bench, perf, evaluate, doctor, selftest or help)`,
    );
    return 2;
  }
  const args = first === "bench" ? rest : argv;
  if (
    Deno.build.standalone &&
    args.some((a) => a === "--method-file" || a.startsWith("--method-file="))
  ) {
    // It type-checks the file with `deno check` and imports TypeScript from disk: needs Deno.
    say(
      Deno.stderr,
      "bench: --method-file needs a Deno install (deno task bench --method-file FILE)",
    );
    return 2;
  }
  try {
    return await benchMain(args);
  } catch (e) {
    say(Deno.stderr, `bench: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await dispatch(Deno.args));
