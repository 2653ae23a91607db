/**
 * `deno task compile` (benchmarks/compile.ts) and the executable's entry point
 * (benchmarks/compiled_main.ts): the dispatch on the first argument, run from a folder away
 * from the checkout; then the executable that `deno task compile` builds here (deno compile
 * when a denort runtime is found, else the self-extracting file), run offline from a fresh
 * temp folder: `bench --list`, a 2-iteration synthetic run (exit 0, a run file with finite
 * metrics under that folder's results/, the tfjs-node fallback notices), `--jobs 2` workers,
 * a SLURM array task from `--slurm --slurm-dry-run`, a tiny `perf`, and the 60 MiB bound.
 *
 * Offline means: a cleared environment with HOME, XDG_CACHE_HOME and an empty DENO_DIR in the
 * temp folder, PATH holding only the tools the self-extracting header needs (tail, xz, tar,
 * mkdir, mv, rm: no deno), proxies pointing at a closed port and, where `unshare -rnm` works
 * (user namespaces), no network at all and tmpfs mounted over the checkout and the caller's
 * DENO_DIR, so neither the checkout's node_modules/ nor Deno's npm cache can be read. Skipped,
 * with one line, only when xz or tar is absent.
 */
import assert from "node:assert/strict";
import { delimiter, join, relative } from "node:path";
import { findDenort, XZ_LIMIT_BYTES } from "../benchmarks/compile.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ENTRY = join(ROOT, "benchmarks", "compiled_main.ts");
const dec = new TextDecoder();
const note = (line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));

/** Absolute path of `name` on the caller's PATH, or null. */
function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(delimiter)) {
    if (!dir) continue;
    try {
      if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
    } catch { /* not here */ }
  }
  return null;
}

const missing = ["xz", "tar"].filter((t) => which(t) === null);
if (missing.length > 0) {
  note(`compile_test: executable test skipped: ${missing.join(" and ")} not installed`);
}

interface Ran {
  code: number;
  out: string;
  err: string;
  seconds: number;
}

async function run(
  cmd: string,
  args: string[],
  cwd: string,
  opts: { env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<Ran> {
  const t0 = performance.now();
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    env: opts.env ?? { OMP_NUM_THREADS: "1" },
    clearEnv: opts.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    out: dec.decode(r.stdout),
    err: dec.decode(r.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

function assertListing(r: Ran, what: string): void {
  assert.equal(r.code, 0, `${what}: ${r.err}`);
  assert.match(r.out, /^Benchmarks:\n {2}synthetic /m, what);
  assert.match(r.out, /^ {2}ua-mt /m, what);
}

/** A 2-iteration synthetic plan: supervised, 2 labeled cases, the given seeds. */
function synthetic(seeds: string): string[] {
  const flags = { benchmark: "synthetic", methods: "supervised", labeled: "2", seeds };
  return [...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]), "--iterations", "2"];
}

Deno.test("compiled_main: dispatch on the first argument (deno run, away from the checkout)", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "semiseg_dispatch_" });
  try {
    const deno = (args: string[]) => run(Deno.execPath(), ["run", "-A", ENTRY, ...args], cwd);
    const help = await deno(["help"]);
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, /^semiseg \[bench\] \[flags\]/);
    assert.match(help.out, /^semiseg perf /m);
    assertListing(await deno(["bench", "--list"]), "bench --list");
    assertListing(await deno(["--list"]), "--list (bench is the default)");
    // --jobs workers and SLURM tasks re-invoke the executable as `run -A <main.ts> FLAGS`.
    assertListing(await deno(["run", "-A", join(ROOT, "benchmarks", "main.ts"), "--list"]), "run");
    const bad = await deno(["frobnicate"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.err,
      "semiseg: unknown command 'frobnicate' (expected bench, perf, evaluate, doctor, selftest or help)\n",
    );
    const badFlag = await deno(["bench", "--frobnicate"]);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.err, /^bench: unknown flag --frobnicate \(/);
    const badPerf = await deno(["perf", "--frobnicate"]);
    assert.equal(badPerf.code, 2);
    assert.equal(badPerf.err, "perf: unknown flag --frobnicate\n");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

/** `dir` is `parent` or inside it. */
const within = (dir: string, parent: string) => !relative(parent, dir).startsWith("..");

/** The caller's DENO_DIR (where Deno's npm cache lives). */
async function denoDir(): Promise<string> {
  const r = await run(Deno.execPath(), ["info", "--json"], ROOT);
  return (JSON.parse(r.out) as { denoDir: string }).denoDir;
}

/**
 * A runner for the executable with no network, no checkout and no Deno caches (see the module
 * doc); `isolated` says whether unshare could take the network away and hide the folders.
 */
async function offlineRunner(tmp: string) {
  const dirs = Object.fromEntries(
    ["bin", "bin-no-xz", "home", "cache", "deno_dir"].map((d) => [d, join(tmp, d)]),
  );
  for (const d of Object.values(dirs)) await Deno.mkdir(d, { recursive: true });
  for (const t of ["tail", "xz", "tar", "mkdir", "mv", "rm"]) {
    const path = which(t);
    if (path === null) continue; // the header's own check then names it
    await Deno.symlink(path, join(dirs.bin!, t));
    if (t !== "xz") await Deno.symlink(path, join(dirs["bin-no-xz"]!, t));
  }
  const closed = "http://127.0.0.1:9";
  const env = (bin: string): Record<string, string> => ({
    PATH: bin,
    HOME: dirs.home!,
    XDG_CACHE_HOME: dirs.cache!,
    DENO_DIR: dirs.deno_dir!,
    OMP_NUM_THREADS: "1",
    NO_COLOR: "1",
    ...Object.fromEntries(
      ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
        .map((k) => [k, closed]),
    ),
    NPM_CONFIG_REGISTRY: `${closed}/`,
    JSR_URL: `${closed}/`,
    ...(Deno.env.get("LD_LIBRARY_PATH")
      ? { LD_LIBRARY_PATH: Deno.env.get("LD_LIBRARY_PATH")! }
      : {}),
  });
  // Hide the checkout and the caller's Deno cache behind empty tmpfs mounts.
  const hide = [ROOT, await denoDir()].filter((d) => {
    try {
      return Deno.statSync(d).isDirectory && !within(tmp, d);
    } catch {
      return false;
    }
  });
  const unshare = which("unshare"), mount = which("mount");
  const script = `while [ "$1" != -- ]; do ${mount} -t tmpfs tmpfs "$1" || exit 99; shift; done;` +
    ` shift; exec "$@"`;
  const wrap = (
    cmd: string,
    args: string[],
  ): [string, string[]] => [unshare!, [
    "-rnm",
    "/bin/sh",
    "-c",
    script,
    "sh",
    ...hide,
    "--",
    cmd,
    ...args,
  ]];
  let isolated = false;
  if (unshare && mount) {
    const [c, a] = wrap("/bin/sh", ["-c", `[ ! -e ${JSON.stringify(join(ROOT, "deno.json"))} ]`]);
    isolated = (await run(c, a, tmp, { env: env(dirs.bin!), clearEnv: true })).code === 0;
  }
  return {
    isolated,
    hidden: hide,
    dirs,
    run(cmd: string, args: string[], cwd: string, opts: { noXz?: boolean; extra?: object } = {}) {
      const e = { ...env(opts.noXz ? dirs["bin-no-xz"]! : dirs.bin!), ...opts.extra };
      const [c, a] = isolated ? wrap(cmd, args) : [cmd, args];
      return run(c, a, cwd, { env: e, clearEnv: true });
    },
  };
}

Deno.test({
  name: "deno task compile: the executable lists, trains and times offline, away from the checkout",
  ignore: missing.length > 0,
  async fn() {
    const base = Deno.env.get("TMPDIR");
    // Never under the checkout: it is hidden from the executable.
    const tmp = await Deno.makeTempDir({
      prefix: "semiseg_compile_",
      ...(base && within(base, ROOT) ? { dir: "/tmp" } : {}),
    });
    try {
      const built = await run(Deno.execPath(), [
        "run",
        "-A",
        join(ROOT, "benchmarks", "compile.ts"),
        "--out",
        join(tmp, "dist"),
        "--no-check",
        // Without a denort runtime (the usual case here) the self-extracting form is built;
        // then with tests/ inside, so that `selftest` is checked too.
        ...((await findDenort()).ok ? [] : ["--with-tests"]),
      ], ROOT);
      assert.equal(built.code, 0, built.out + built.err);
      const lines = built.out.trimEnd().split("\n");
      const exe = lines.at(-1)!;
      assert.equal(exe, join(tmp, "dist", "semiseg"));
      const size = (await Deno.stat(exe)).size;
      const form = /^form: (deno compile|self-extracting)$/m.exec(built.out)?.[1];
      assert.ok(form, built.out);
      const sfx = form === "self-extracting";
      const compressed = /^compressed \([^)]*\): ([\d,]+) bytes/m.exec(built.out);
      assert.ok(compressed, built.out);
      const xzBytes = Number(compressed[1]!.replaceAll(",", ""));
      if (sfx) assert.equal(xzBytes, size);
      assert.ok(xzBytes <= XZ_LIMIT_BYTES, `${xzBytes} bytes compressed, over 60 MiB`);

      const off = await offlineRunner(tmp);
      if (!off.isolated) {
        note(
          "compile_test: unshare -rnm is not available: the executable runs with a cleared " +
            "environment and dead proxies, but the network and the checkout stay reachable",
        );
      }
      // A fresh folder with no checkout, no deno.json and no node_modules above it.
      const cwd = join(tmp, "elsewhere");
      await Deno.mkdir(cwd);
      const unpacking = /^semiseg: unpacking into .+ \(first run only\)$/m;

      if (sfx) {
        // Without xz the first run stops at once with one line naming it.
        const noXz = await off.run(exe, ["--list"], cwd, { noXz: true });
        assert.equal(noXz.code, 127, noXz.err);
        assert.equal(
          noXz.err,
          "semiseg: cannot unpack itself: 'xz' is not on PATH (install xz-utils, or busybox)\n",
        );
      }
      const first = await off.run(exe, ["bench", "--list"], cwd);
      assertListing(first, "exe bench --list (first run)");
      if (sfx) assert.match(first.err, unpacking);
      const second = await off.run(exe, ["bench", "--list"], cwd);
      assertListing(second, "exe bench --list (second run)");
      assert.doesNotMatch(second.err, unpacking);

      const bench = await off.run(exe, ["bench", ...synthetic("1"), "--jobs", "1"], cwd);
      assert.equal(bench.code, 0, bench.err);
      // The tfjs-node bindings are not in the executable: one notice line each, then fallback.
      assert.match(bench.err, /^backend node-gpu unavailable: .*; falling back$/m);
      assert.match(bench.err, /^backend node unavailable: .*; falling back$/m);
      assert.match(bench.out, /1\/1 runs done in [\d.]+ s; tables in results[\\/]synthetic/);
      const runs = join(cwd, "results", "synthetic", "runs");
      const runFiles = () =>
        [...Deno.readDirSync(runs)].map((e) => e.name).filter((n) => n.endsWith(".json"));
      assert.equal(runFiles().length, 1, runFiles().join());
      const rec = JSON.parse(await Deno.readTextFile(join(runs, runFiles()[0]!))) as {
        method: string;
        mean: Record<string, number>;
      };
      assert.equal(rec.method, "supervised");
      for (const m of ["dice", "jaccard", "hd95", "asd"]) {
        assert.ok(Number.isFinite(rec.mean[m]), `mean.${m} = ${rec.mean[m]}`);
      }
      assert.ok((await Deno.stat(join(cwd, "results", "synthetic", "table.md"))).isFile);

      // --jobs workers re-invoke the executable's Deno on its benchmarks/main.ts: seed 1 is
      // finished (skipped), seed 2 trains in a worker.
      const jobs = await off.run(exe, ["bench", ...synthetic("1,2"), "--jobs", "2"], cwd);
      assert.equal(jobs.code, 0, jobs.err);
      assert.match(jobs.out, /2 workers done in [\d.]+ s/);
      assert.equal(runFiles().length, 2);

      // A SLURM array task runs the generated script's command: seed 3, task 2 of 3.
      let slurm: Ran | null = null;
      const bash = ["/bin/bash", "/usr/bin/bash"].find((b) => {
        try {
          return Deno.statSync(b).isFile;
        } catch {
          return false;
        }
      });
      if (bash) {
        const dry = await off.run(exe, [...synthetic("1,2,3"), "--slurm", "--slurm-dry-run"], cwd);
        assert.equal(dry.code, 0, dry.err);
        const script = /^ {2}sbatch --parsable (\/\S+\.sbatch)$/m.exec(dry.out)?.[1];
        assert.ok(script, dry.out);
        slurm = await off.run(bash, [script], cwd, { extra: { SLURM_ARRAY_TASK_ID: "2" } });
        assert.equal(slurm.code, 0, slurm.err);
        assert.match(slurm.out, /1\/1 runs done in [\d.]+ s/);
        assert.equal(runFiles().length, 3);
      } else note("compile_test: no bash: the SLURM task part is skipped");

      const perf = await off.run(exe, [
        "perf",
        "--shapes",
        "16x16x16",
        "--batch",
        "1",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--backends",
        "cpu",
        "--no-torch",
        "--no-profile",
      ], cwd);
      assert.equal(perf.code, 0, perf.err);
      assert.match(perf.out, /^ {2}cpu +median [\d.]+ s over 1 /m);

      if (sfx) {
        // `selftest` runs test files inside the unpacked copy (a GPU-free test here).
        const st = await off.run(exe, [
          "selftest",
          "webgpu_kernels_test.ts",
          "--filter",
          "planChunks",
        ], cwd);
        assert.equal(st.code, 0, st.out + st.err);
        assert.match(st.out + st.err, /ok \| 1 passed/);
      }

      // Nothing was downloaded into the empty DENO_DIR.
      for (const sub of ["npm", "remote", "dl"]) {
        let names: string[] = [];
        try {
          names = [...Deno.readDirSync(join(off.dirs.deno_dir!, sub))].map((e) => e.name);
        } catch { /* absent */ }
        assert.deepEqual(names, [], `DENO_DIR/${sub}`);
      }
      const built0 = /^built in ([\d.]+) s/m.exec(built.out)?.[1];
      note(
        `compile_test: ${form}, ${(size / 1024 / 1024).toFixed(1)} MiB, built in ${built0} s ` +
          `(compile.ts ran ${built.seconds.toFixed(1)} s); ` +
          `--list first run ${first.seconds.toFixed(1)} s, second ${
            second.seconds.toFixed(1)
          } s; ` +
          `synthetic run ${bench.seconds.toFixed(1)} s, --jobs 2 ${jobs.seconds.toFixed(1)} s` +
          (slurm ? `, SLURM task ${slurm.seconds.toFixed(1)} s` : "") +
          `; ${off.isolated ? `no network, hidden: ${off.hidden.join(" ")}` : "not isolated"}`,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
