/**
 * `deno task compile`: build `dist/semiseg`, one executable file holding the bench and perf
 * entry points (benchmarks/compiled_main.ts), a Deno runtime and every npm package they
 * import, for machines that can neither install Deno nor reach a package registry. It comes
 * in one of two forms, printed on the first line of the report:
 *
 * - **deno compile** (the first choice): `deno compile` writes the program into `denort`, the
 *   runtime-only Deno build of the same version. The npm packages of Deno do not carry it
 *   (they hold the full CLI, which does not run embedded programs). It is taken, in this
 *   order, from `DENORT_BIN` (a denort binary of exactly the running Deno version), a `denort`
 *   beside the `deno` executable, or Deno's own download cache
 *   (`<DENO_DIR>/dl/release/v<version>/denort-<target>.zip`), which `deno compile` fills on
 *   first use when it can download it. npm packages come from Deno's global npm cache with
 *   `--exclude-unused-npm`: only what the module graph reaches.
 * - **self-extracting** (when there is no denort, e.g. offline): the makeself pattern, a POSIX
 *   `sh` header followed by an `xz -9` tar of the running Deno binary (`Deno.execPath()`),
 *   the sources (methods/, datasets/, benchmarks/, mod.ts, deno.json, deno.lock) and a
 *   `node_modules/` holding only the npm packages the module graph of the entry point reaches
 *   (`deno info`: tfjs core/cpu/webgpu/wasm, h5wasm, nifti-reader-js, vega, vega-lite) and
 *   their dependencies, source maps dropped. On its first run the header unpacks the payload
 *   once into `${SEMISEG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/semiseg-bench}/<id>/` (`<id>`:
 *   the first 16 hex digits of the payload's SHA-256; a temp folder, then a rename, so
 *   concurrent first runs are safe), which needs only sh, tail, xz (or busybox), tar, mkdir,
 *   mv and rm; then every run `exec`s `<cache>/deno run -A --cached-only
 *   <cache>/app/benchmarks/compiled_main.ts` with the user's arguments, in the user's
 *   current folder. The payload's deno.json says `"nodeModulesDir": "manual"`, so Deno
 *   resolves every npm import from that node_modules/ as it is and never installs or
 *   downloads anything; `--jobs` workers and SLURM tasks re-run that same Deno on
 *   `<cache>/app/benchmarks/main.ts` (`Deno.execPath()` and `import.meta.url` of the
 *   unpacked copy), which finds the same deno.json and node_modules/.
 *
 *   Why node_modules/ rather than the other offline forms: of the 34.8 MiB file, 28.4 MiB is
 *   the Deno binary (`xz -9`), so the packages cost only ~6.5 MiB. A `deno bundle` of the
 *   entry point (9.8 MB) would save at most ~5 MiB, but it downloads esbuild from npm on first
 *   use (no offline build), and run from the bundle (tried) the `--jobs` workers fail: the
 *   harness re-launches `../main.ts` relative to `import.meta.url`, which no longer exists, and
 *   the wasm backend's .wasm files are looked up the same way under
 *   `node_modules/@tensorflow/tfjs-backend-wasm/dist/`. A DENO_DIR npm cache holds the same
 *   package files plus registry metadata, and its "auto"/"none" resolution checks the whole
 *   lockfile (tfjs-node included) instead of reading a folder as it is.
 *
 * Either way the tfjs-node bindings are absent, as on any machine that did not build them:
 * `--backend auto` falls back past them with its one-line notices.
 *
 * Report (stdout): the form, the build time, the executable's size, its compressed size
 * (`xz -T2 -6` of a deno-compile executable; the self-extracting file is compressed already,
 * so its own size), and the executable's absolute path as the last line. Over 60 MiB
 * compressed: one error line and exit 1 (the executable is kept, for inspection).
 *
 * Flags: `--out DIR` (default dist/), `--no-check` (skip type-checking; `deno task ok` does
 * it), `--with-tests` (self-extracting form with tests/ inside, for `semiseg selftest` on a
 * machine that can install nothing, e.g. the webgpu kernel tests on a lent GPU), `--form auto|compile|self-extracting` (default auto: deno compile when a denort is
 * found, else self-extracting). Tools' own output is shown (on stderr) only when they fail.
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";

/** The compressed executable must fit in this many bytes. */
export const XZ_LIMIT_BYTES = 60 * 1024 * 1024;
/** Name of the executable under the output folder. */
export const EXE_NAME = "semiseg";
/** What the self-extracting payload holds besides the Deno binary and node_modules/. */
export const SOURCES = ["methods", "datasets", "benchmarks", "mod.ts", "deno.json", "deno.lock"];

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const ENTRY = join(ROOT, "benchmarks", "compiled_main.ts");
const enc = new TextEncoder(), dec = new TextDecoder();

const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
const warn = (line: string) => Deno.stderr.writeSync(enc.encode(line + "\n"));

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Where `deno compile` caches the denort zip of the running Deno version and target. */
export async function denortCachePath(): Promise<string> {
  let dir = Deno.env.get("DENO_DIR");
  if (!dir) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    dir = (JSON.parse(dec.decode(out.stdout)) as { denoDir: string }).denoDir;
  }
  const v = Deno.version.deno;
  return join(dir, "dl", "release", `v${v}`, `denort-${Deno.build.target}.zip`);
}

/** How `deno compile` will get its runtime; `env` is what to add to its environment. */
export type DenortSource =
  | { ok: true; what: string; env: Record<string, string> }
  | { ok: false; problem: string };

/**
 * Find the denort runtime (see the module doc); when none is found, let `deno compile`
 * download it once into its cache by compiling a one-line program. `problem` is one line.
 */
export async function findDenort(): Promise<DenortSource> {
  const v = Deno.version.deno, target = Deno.build.target;
  const env = Deno.env.get("DENORT_BIN");
  if (env) {
    if (await exists(env)) return { ok: true, what: `DENORT_BIN=${env}`, env: {} };
    return { ok: false, problem: `DENORT_BIN=${env} does not exist (unset it or fix the path)` };
  }
  const beside = join(dirname(Deno.execPath()), "denort");
  if (await exists(beside)) return { ok: true, what: beside, env: { DENORT_BIN: beside } };
  const cached = await denortCachePath();
  if (await exists(cached)) return { ok: true, what: cached, env: {} };
  const tmp = await Deno.makeTempDir({ prefix: "semiseg-denort-" });
  try {
    await Deno.writeTextFile(join(tmp, "probe.ts"), "export {};\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "--no-config", "--no-lock", "-q", "-o", join(tmp, "probe"), "probe.ts"],
      cwd: tmp,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success && await exists(cached)) {
      return { ok: true, what: `${cached} (downloaded now)`, env: {} };
    }
    const lines = dec.decode(out.stderr).split("\n").map((l) => l.trim());
    const cause = lines.find((l) => /^\d+: /.test(l) && !/Setting up base binary/.test(l)) ??
      lines.find((l) => l !== "") ?? `exit ${out.code}`;
    return {
      ok: false,
      problem: `no denort runtime for Deno ${v} (${target}): DENORT_BIN is unset, ${cached} ` +
        `is absent and deno compile could not download it (${cause.replace(/^\d+: /, "")}); ` +
        `run \`deno task compile\` once on a machine with internet and Deno ${v} (or copy that ` +
        `zip from one to the same path here), or set DENORT_BIN to the denort unzipped from it`,
    };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** `n` bytes as "123,456,789 bytes (117.7 MiB)". */
export function formatBytes(n: number): string {
  return `${n.toLocaleString("en-US")} bytes (${(n / 1024 / 1024).toFixed(1)} MiB)`;
}

/** Size of `path` compressed by `xz -T2 -6` (into a temp file), or null when xz is absent. */
async function xzSize(path: string): Promise<number | null> {
  const tmp = await Deno.makeTempFile({ prefix: "semiseg-", suffix: ".xz" });
  try {
    const file = await Deno.open(tmp, { write: true, truncate: true });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("xz", {
        args: ["-T2", "-6", "-c", path],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      file.close();
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    await child.stdout.pipeTo(file.writable);
    const st = await child.status;
    if (!st.success) throw new Error(`xz -T2 -6 ${path}: exit ${st.code}`);
    return (await Deno.stat(tmp)).size;
  } finally {
    await Deno.remove(tmp);
  }
}

/** What one build produced, for the report. */
interface Built {
  form: "deno compile" | "self-extracting";
  /** One line on what went in. */
  detail: string;
}

async function buildWithDenoCompile(
  exe: string,
  denort: { what: string; env: Record<string, string> },
  check: boolean,
): Promise<Built> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "-A",
      ...(check ? [] : ["--no-check"]),
      // Only the npm packages the module graph reaches (see the module doc). Datasets' split
      // files are JSON modules and the webgpu/wasm backends literal dynamic imports, so the
      // graph holds them: no --include is needed.
      "--node-modules-dir=none",
      "--exclude-unused-npm",
      "-o",
      exe,
      ENTRY,
    ],
    cwd: ROOT,
    env: { ...denort.env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = dec.decode(out.stdout) + dec.decode(out.stderr);
  if (!out.success) {
    warn(log.trimEnd());
    throw new Error(`deno compile failed (exit ${out.code}); its output is above`);
  }
  // A base binary that is not a denort (e.g. DENORT_BIN pointing at the full deno CLI) yields
  // an executable that ignores the embedded program: run it once to be sure.
  await smokeTest(exe, {}, `is ${denort.what} the denort of Deno ${Deno.version.deno}?`);
  const embedded = /^Files:\s*(.+)$/m.exec(log)?.[1]?.trim();
  return {
    form: "deno compile",
    detail: `denort ${denort.what}` + (embedded ? `; embedded files ${embedded}` : ""),
  };
}

/** Run `exe help`; remove the executable and throw unless it prints the semiseg usage. */
async function smokeTest(exe: string, env: Record<string, string>, hint: string): Promise<void> {
  const smoke = await new Deno.Command(exe, {
    args: ["help"],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = dec.decode(smoke.stdout) + dec.decode(smoke.stderr);
  if (!smoke.success || !dec.decode(smoke.stdout).startsWith("semiseg ")) {
    await Deno.remove(exe);
    const first = text.split("\n").filter((l) => !l.startsWith("semiseg: unpacking"))[0] ?? "";
    throw new Error(
      `${exe} help did not print the semiseg usage, so it was removed (${hint}); it printed: ` +
        first,
    );
  }
}

/** The top-level npm package names that the module graph of `entry` imports. */
export async function npmRoots(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${entry} failed: ${dec.decode(out.stderr).trim().split("\n")[0]}`);
  }
  const info = JSON.parse(dec.decode(out.stdout)) as { modules: { specifier: string }[] };
  const names = new Set<string>();
  for (const { specifier } of info.modules) {
    // "npm:/@tensorflow/tfjs-core@4.22.0", "npm:/h5wasm@0.10.3/node"
    const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@/.exec(specifier);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

/**
 * The folders of `<nodeModules>/.deno/` (Deno's layout: `.deno/<pkg>@<ver>/node_modules/`
 * holds the package and symlinks to its dependencies) that `roots` reach, by following
 * those symlinks.
 */
export async function npmClosure(nodeModules: string, roots: string[]): Promise<Set<string>> {
  const store = await Deno.realPath(join(nodeModules, ".deno"));
  const folderOf = async (link: string): Promise<string> => {
    const rel = relative(store, await Deno.realPath(link));
    const folder = rel.split("/")[0]!;
    if (rel.startsWith("..") || folder === "" || folder === "node_modules") {
      throw new Error(`${link} does not lead into ${store}/<package>/ (run deno install)`);
    }
    return folder;
  };
  const seen = new Set<string>();
  const todo: string[] = [];
  for (const name of roots) {
    const link = join(nodeModules, name);
    try {
      await Deno.lstat(link);
    } catch {
      throw new Error(`${link} is missing (run deno install in ${dirname(nodeModules)})`);
    }
    todo.push(await folderOf(link));
  }
  while (todo.length > 0) {
    const folder = todo.pop()!;
    if (seen.has(folder)) continue;
    seen.add(folder);
    const nm = join(store, folder, "node_modules");
    const entries: string[] = [];
    for await (const e of Deno.readDir(nm)) {
      if (e.name.startsWith("@") && e.isDirectory) {
        for await (const s of Deno.readDir(join(nm, e.name))) {
          if (s.isSymlink) entries.push(join(nm, e.name, s.name));
        }
      } else if (e.isSymlink) entries.push(join(nm, e.name));
    }
    for (const link of entries) todo.push(await folderOf(link));
  }
  return seen;
}

/** Copy the tree at `src` to `dst` (symlinks as symlinks), skipping names `skip` accepts. */
async function copyTree(src: string, dst: string, skip: (name: string) => boolean) {
  const st = await Deno.lstat(src);
  if (st.isSymlink) {
    await Deno.symlink(await Deno.readLink(src), dst);
  } else if (st.isDirectory) {
    await Deno.mkdir(dst, { recursive: true });
    for await (const e of Deno.readDir(src)) {
      if (!skip(e.name)) await copyTree(join(src, e.name), join(dst, e.name), skip);
    }
  } else if (st.isFile) {
    await Deno.copyFile(src, dst);
  }
}

/** Run a command; throw one line (plus its stderr above) unless it succeeds. */
async function mustRun(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output().catch((e) => {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(`${cmd} is not installed (the self-extracting form needs xz and tar)`);
      }
      throw e;
    });
  if (!out.success) {
    warn(dec.decode(out.stderr).trimEnd());
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}); its output is above`);
  }
}

/** The `sh` header of the self-extracting file; `skip` is the payload's 1-based byte offset. */
export function sfxHeader(id: string, skip: number, about: string): string {
  return `#!/bin/sh
# semiseg-bench: ${about}.
# A self-extracting executable built by \`deno task compile\` (benchmarks/compile.ts): after this
# header comes an xz-compressed tar of Deno, the project sources and the npm packages they use.
# The first run unpacks it, once, into \${SEMISEG_CACHE:-\${XDG_CACHE_HOME:-$HOME/.cache}/semiseg-bench}/${id}/;
# every run then executes that Deno on benchmarks/compiled_main.ts with the arguments, in the
# current folder. Needs only sh, tail, xz (or busybox), tar, mkdir, mv and rm.
id=${id}
skip=${skip}
base=\${SEMISEG_CACHE:-\${XDG_CACHE_HOME:-\${HOME:-/tmp}/.cache}/semiseg-bench}
dir=$base/$id
fail() { echo "semiseg: $2" >&2; exit "$1"; }
if [ ! -f "$dir/.complete" ]; then
  for t in tail tar mkdir mv rm; do
    command -v "$t" >/dev/null 2>&1 || fail 127 "cannot unpack itself: '$t' is not on PATH"
  done
  if command -v xz >/dev/null 2>&1; then unxz="xz -dc"
  elif command -v busybox >/dev/null 2>&1; then unxz="busybox unxz -c"
  else fail 127 "cannot unpack itself: 'xz' is not on PATH (install xz-utils, or busybox)"
  fi
  mkdir -p "$base" 2>/dev/null || fail 1 "cannot create $base (set SEMISEG_CACHE to a writable folder)"
  tmp=$base/.$id.$$
  rm -rf "$tmp" && mkdir "$tmp" || fail 1 "cannot create $tmp"
  echo "semiseg: unpacking into $dir (first run only)" >&2
  { tail -c +$skip "$0" | $unxz || : >"$tmp/.bad"; } | tar -xf - -C "$tmp" || : >"$tmp/.bad"
  if [ -e "$tmp/.bad" ] || [ ! -x "$tmp/deno" ]; then
    rm -rf "$tmp"
    fail 1 "unpacking $0 failed (a truncated copy? its size must equal the built one's)"
  fi
  : >"$tmp/.complete"
  if [ -d "$dir" ] && [ ! -f "$dir/.complete" ]; then rm -rf "$dir"; fi
  mv "$tmp" "$dir" 2>/dev/null
  rm -rf "$tmp" "$dir/.$id.$$"
  [ -f "$dir/.complete" ] || fail 1 "could not rename the unpacked copy to $dir"
fi
export DENO_NO_UPDATE_CHECK=1
exec "$dir/deno" run -A --cached-only "$dir/app/benchmarks/compiled_main.ts" "$@"
exit 127
`;
}

async function buildSelfExtracting(
  exe: string,
  outDir: string,
  withTests = false,
): Promise<Built> {
  const work = await Deno.makeTempDir({ dir: outDir, prefix: ".semiseg-build-" });
  try {
    const stage = join(work, "stage"), app = join(stage, "app");
    await Deno.mkdir(app, { recursive: true });
    await Deno.copyFile(Deno.execPath(), join(stage, "deno"));
    await Deno.chmod(join(stage, "deno"), 0o755);
    for (const s of withTests ? [...SOURCES, "tests"] : SOURCES) {
      await copyTree(join(ROOT, s), join(app, s), () => false);
    }
    // Resolve npm imports from node_modules/ as it is: never install, never download.
    const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
    config.nodeModulesDir = "manual";
    await Deno.writeTextFile(join(app, "deno.json"), JSON.stringify(config, null, 2) + "\n");

    const roots = await npmRoots(ENTRY);
    const nm = join(ROOT, "node_modules"), nmOut = join(app, "node_modules");
    const folders = await npmClosure(nm, roots);
    const noMaps = (name: string) => name.endsWith(".map");
    for (const f of folders) {
      await copyTree(join(nm, ".deno", f), join(nmOut, ".deno", f), noMaps);
    }
    for (const name of roots) {
      await Deno.mkdir(dirname(join(nmOut, name)), { recursive: true });
      await copyTree(join(nm, name), join(nmOut, name), noMaps);
    }

    // GNU tar: a reproducible archive (same inputs, same bytes, same cache id).
    const gnu = (await new Deno.Command("tar", { args: ["--version"], stdout: "piped" })
      .output().catch(() => null))?.stdout;
    const repro = gnu && dec.decode(gnu).includes("GNU tar")
      ? ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner"]
      : [];
    await mustRun("tar", ["-cf", join(work, "payload.tar"), ...repro, "-C", stage, "."], work);
    // One thread: a multi-threaded xz splits the input into blocks and compresses worse.
    await mustRun("xz", ["-9", "-T1", "-k", join(work, "payload.tar")], work);
    const payload = await Deno.readFile(join(work, "payload.tar.xz"));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", payload));
    const id = [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const about = `bench and perf, Deno ${Deno.version.deno} (${Deno.build.target}), ` +
      `npm ${roots.join(" ")}`;
    let skip = 1;
    for (;;) {
      const next = enc.encode(sfxHeader(id, skip, about)).length + 1;
      if (next === skip) break;
      skip = next;
    }
    const file = await Deno.open(exe, { write: true, create: true, truncate: true, mode: 0o755 });
    try {
      await file.write(enc.encode(sfxHeader(id, skip, about)));
      for (let o = 0; o < payload.length;) o += await file.write(payload.subarray(o));
    } finally {
      file.close();
    }
    await Deno.chmod(exe, 0o755);
    // Unpack it once into a throwaway cache: the header, the payload and the program work.
    const cache = join(work, "cache");
    await smokeTest(exe, { SEMISEG_CACHE: cache }, "the self-extracting file is broken");
    const tarBytes = (await Deno.stat(join(work, "payload.tar"))).size;
    return {
      form: "self-extracting",
      detail: `sh header + xz -9 tar (${formatBytes(tarBytes)} unpacked) of Deno ` +
        `${Deno.version.deno} (${Deno.execPath()}), ${SOURCES.join(" ")} and node_modules/ ` +
        `(${roots.length} packages, ${folders.size} with dependencies); cache id ${id}`,
    };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** A bad flag (exit 2, as every task answers one), not a failed build (exit 1). */
class FlagError extends Error {}

async function main(args: string[]): Promise<number> {
  let outDir = join(ROOT, "dist");
  let check = true;
  let form = "auto";
  let withTests = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--out" && args[i + 1] !== undefined) outDir = resolve(args[++i]!);
    else if (a === "--no-check") check = false;
    else if (a === "--with-tests") withTests = true;
    else if (a === "--form" && ["auto", "compile", "self-extracting"].includes(args[i + 1]!)) {
      form = args[++i]!;
    } else {
      throw new FlagError(
        `unknown or incomplete flag ${a} (flags: --out DIR, --no-check, --with-tests, ` +
          `--form auto|compile|self-extracting)`,
      );
    }
  }
  try {
    if (!(await Deno.stat(outDir)).isDirectory) {
      throw new FlagError(
        `--out: '${outDir}' is a file, not a folder (pass a folder for ${EXE_NAME})`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(outDir, { recursive: true });
  const exe = join(outDir, EXE_NAME);
  const t0 = performance.now();
  let built: Built;
  // The test files run with `deno test` inside the unpacked copy: self-extracting only.
  const denort = form === "self-extracting" || withTests ? null : await findDenort();
  if (denort?.ok) {
    built = await buildWithDenoCompile(exe, denort, check);
  } else {
    if (denort && form === "compile") throw new Error(denort.problem);
    if (denort) warn(`compile: deno compile is not possible here (${denort.problem})`);
    if (check) await mustRun(Deno.execPath(), ["check", "--quiet", ENTRY], ROOT);
    built = await buildSelfExtracting(exe, outDir, withTests);
  }
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  say(`form: ${built.form}`);
  say(`built in ${seconds} s from ${ENTRY}: ${built.detail}`);
  const size = (await Deno.stat(exe)).size;
  say(`executable: ${formatBytes(size)}`);
  const xz = built.form === "self-extracting" ? size : await xzSize(exe);
  const how = built.form === "self-extracting"
    ? "compressed (the file itself: its payload is xz already)"
    : "compressed (xz -T2 -6)";
  let code = 0;
  if (xz === null) {
    say(`${how}: xz is not installed (apt-get install xz-utils); not measured`);
  } else {
    say(`${how}: ${formatBytes(xz)}, limit ${formatBytes(XZ_LIMIT_BYTES)}`);
    if (xz > XZ_LIMIT_BYTES) {
      warn(`compile: error: compressed, the executable is over the limit (${formatBytes(xz)})`);
      code = 1;
    }
  }
  say(exe);
  return code;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    warn(`compile: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(e instanceof FlagError ? 2 : 1);
  }
}
