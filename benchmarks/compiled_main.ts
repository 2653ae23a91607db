/**
 * Entry point of the single-file executable that `deno task compile` builds
 * (benchmarks/compile.ts): one binary for machines that cannot install Deno or fetch npm
 * packages (air-gapped clusters, locked-down GPU nodes), dispatching on its first argument:
 *
 *   semiseg [bench] FLAGS   `deno task bench` (the default when the first argument is a flag)
 *   semiseg perf FLAGS      `deno task perf`
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

const USAGE = [
  "semiseg [bench] [flags]   run a benchmark (semiseg bench --help lists the flags)",
  "semiseg perf [flags]      time a V-Net training step; flags: --shapes DxHxW,... --batch N",
  "                          --full --runs N --warmup N --backends cpu,cpu-js --no-torch",
  "                          --no-profile --mem-steps N --json FILE --threads N",
  "semiseg help              this usage",
  "Results go to ./results/ (or --out DIR) under the current directory.",
].join("\n");

function say(stream: { writeSync(b: Uint8Array): number }, line: string): void {
  stream.writeSync(new TextEncoder().encode(line + "\n"));
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
  if (first !== undefined && first !== "bench" && !first.startsWith("-")) {
    say(Deno.stderr, `semiseg: unknown command '${first}' (expected bench, perf or help)`);
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
