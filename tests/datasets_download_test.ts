/**
 * `deno task data la --download` against a local HTTP server on 127.0.0.1 that serves the three real
 * cases of ../shared/data/la (and the lists) under their UA-MT repository paths: pinned hashes, the
 * check at the end, a corrupted copy that is named and not kept, a Range resume of a `.part`, a retry
 * after a transient 500, and an interrupted download that leaves nothing under the final name.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { main } from "../datasets/check.ts";
import {
  defaultBaseUrl,
  downloadLa,
  fileUrl,
  LA_MANIFEST,
  manifestCaseIds,
  type ProgressSink,
} from "../datasets/download.ts";
import splitJson from "../datasets/splits/la.json" with { type: "json" };

const LA_DIR = fileURLToPath(new URL("../../shared/data/la", import.meta.url));
let present = false;
try {
  present = Deno.statSync(LA_DIR).isDirectory;
} catch {
  present = false;
}
if (!present) {
  // deno-lint-ignore no-console
  console.log(`SKIP LA download tests against a local server: ${LA_DIR} is absent`);
}

const IDS = ["06SR5RBREL16DQ6M8LWS", "0RZDK210BSMWAA6467LU", "UPT6DX9IQY9JAZ7HJKA7"];
const CASE_PREFIX = "/data/2018LA_Seg_Training Set/";

interface ServeOptions {
  /** Case whose served bytes have one byte flipped. */
  corrupt?: string;
  /** Repository paths answered with HTTP 500 on their first request. */
  fail500?: string[];
  /** Send this many bytes of the path, then break the body. */
  cut?: { path: string; bytes: number };
  /** Ignore Range headers (always 200 with the whole file). */
  noRange?: boolean;
}

interface Served {
  url: string;
  requests: { path: string; range: string | null; status: number }[];
  close(): Promise<void>;
}

/** The file of ../shared/data/la behind a UA-MT repository path, or null. */
function localFile(path: string): string | null {
  if (path === "/data/train.list" || path === "/data/test.list") return `${LA_DIR}${path.slice(5)}`;
  const m = new RegExp(`^${CASE_PREFIX}([A-Z0-9]+)/mri_norm2\\.h5$`).exec(path);
  return m && IDS.includes(m[1]!) ? `${LA_DIR}/${m[1]}/mri_norm2.h5` : null;
}

function serve(o: ServeOptions = {}): Served {
  const requests: Served["requests"] = [];
  const failed = new Set<string>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    onError: () => new Response(null, { status: 500 }),
  }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const range = req.headers.get("range");
    const answer = (status: number, body: BodyInit | null, headers: HeadersInit = {}) => {
      requests.push({ path, range, status });
      return new Response(body, { status, headers });
    };
    if (o.fail500?.includes(path) && !failed.has(path)) {
      failed.add(path);
      return answer(500, "transient");
    }
    const file = localFile(path);
    if (file === null) return answer(404, "not found");
    const bytes = Deno.readFileSync(file);
    if (o.corrupt !== undefined && path === `${CASE_PREFIX}${o.corrupt}/mri_norm2.h5`) {
      const mid = bytes.length >> 1;
      bytes[mid] = bytes[mid]! ^ 0xff;
    }
    if (o.cut && path === o.cut.path) {
      const head = bytes.slice(0, o.cut.bytes);
      return answer(
        200,
        new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(head);
          },
          async pull(c) {
            await new Promise((r) => setTimeout(r, 50));
            c.error(new Error("connection cut by the test"));
          },
        }),
      );
    }
    const m = /^bytes=(\d+)-$/.exec(range ?? "");
    if (m && !o.noRange) {
      const start = Number(m[1]);
      if (start >= bytes.length) {
        return answer(416, null, { "content-range": `bytes */${bytes.length}` });
      }
      return answer(206, bytes.slice(start), {
        "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
      });
    }
    return answer(200, bytes);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

function sha256(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Every path under `dir`, relative. */
function walk(dir: string, pre = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const rel = pre ? `${pre}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...walk(`${dir}/${e.name}`, rel));
    else out.push(rel);
  }
  return out.sort();
}

const quiet: ProgressSink = { isTerminal: false, write() {} };

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "la-download-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("LA manifest: 100 cases (the split's 80 + 20) and 2 lists from one commit, raw URLs", () => {
  const split = splitJson.splits[0]!;
  assert.deepEqual(manifestCaseIds(), [...split.train, ...split.test].sort());
  assert.equal(LA_MANIFEST.files.length, 102);
  assert.equal(LA_MANIFEST.files.reduce((s, f) => s + f.size, 0), 233_095_088);
  assert.equal(
    fileUrl(defaultBaseUrl(), LA_MANIFEST.files[2]!.path),
    "https://raw.githubusercontent.com/yulequan/UA-MT/88ed29ad794f877122e542a7fa9505a76fa83515/data/2018LA_Seg_Training%20Set/06SR5RBREL16DQ6M8LWS/mri_norm2.h5",
  );
  if (!present) return;
  for (const f of LA_MANIFEST.files) {
    const p = `${LA_DIR}/${f.local}`;
    if (!exists(p)) continue;
    assert.equal(Deno.statSync(p).size, f.size, f.local);
    assert.equal(sha256(p), f.sha256, f.local);
  }
});

Deno.test({
  name:
    "la --download: 3 real cases and the lists from a local server, hashes checked, check OK; a rerun fetches nothing",
  ignore: !present,
  fn: async () => {
    const srv = serve();
    try {
      await withTmp(async (root) => {
        const lines: string[] = [];
        const progress: string[] = [];
        const args = ["la", "--download", "--root", root, "--from", srv.url, "--ids", IDS.join()];
        const code = await main(args, (l) => lines.push(l), {
          progress: { isTerminal: false, write: (t) => progress.push(t) },
        });
        assert.equal(code, 0, lines.join("\n"));
        assert.match(lines[0]!, /^la: fetching 3 of 100 cases and the 2 lists \(5 files, 6\.4 MB/);
        assert.ok(lines.some((l) => /^la: 5 downloaded \(6\.4 MB in /.test(l)), lines.join("\n"));
        assert.ok(lines.includes("la: 3 cases under " + root), lines.join("\n"));
        assert.ok(
          lines.includes("la: 97 split cases not downloaded (--ids/--limit subset): not checked"),
        );
        assert.equal(lines.at(-1), "la: OK");
        assert.match(
          progress.at(-1)!,
          /^la download: 6\.4 MB \/ 6\.4 MB, 5\/5 files, .* ETA 0:00\n$/,
        );
        assert.deepEqual(walk(root), [
          ...IDS.map((id) => `${id}/mri_norm2.h5`),
          "test.list",
          "train.list",
        ]);
        for (const rel of walk(root)) {
          assert.equal(sha256(`${root}/${rel}`), sha256(`${LA_DIR}/${rel}`));
        }
        assert.ok(srv.requests.some((r) => r.path === `${CASE_PREFIX}${IDS[0]}/mri_norm2.h5`));

        const before = srv.requests.length;
        const again: string[] = [];
        assert.equal(await main(args, (l) => again.push(l), { progress: quiet }), 0);
        assert.ok(again.some((l) => /^la: 0 downloaded .* 5 already present, 0 failed$/.test(l)));
        assert.equal(srv.requests.length, before, "a rerun requests nothing");
      });
    } finally {
      await srv.close();
    }
  },
});

Deno.test({
  name: "la --download: a corrupted case is named in one line and not kept; the others are",
  ignore: !present,
  fn: async () => {
    const bad = IDS[1]!;
    const srv = serve({ corrupt: bad });
    try {
      await withTmp(async (root) => {
        const lines: string[] = [];
        const args = ["la", "--download", "--root", root, "--from", srv.url, "--ids", IDS.join()];
        const code = await main(args, (l) => lines.push(l), { progress: quiet });
        assert.equal(code, 1);
        const named = lines.filter((l) => l.includes("SHA-256 mismatch"));
        assert.equal(named.length, 1, lines.join("\n"));
        assert.match(
          named[0]!,
          new RegExp(`^${root}/${bad}/mri_norm2\\.h5: SHA-256 mismatch .*; not kept$`),
        );
        assert.ok(lines.some((l) => /^la: 4 downloaded .* 1 failed$/.test(l)));
        assert.ok(lines.some((l) => l.startsWith(`${bad}: missing`)), "the check names it too");
        assert.deepEqual(walk(root), [
          `${IDS[0]}/mri_norm2.h5`,
          `${IDS[2]}/mri_norm2.h5`,
          "test.list",
          "train.list",
        ]);
      });
    } finally {
      await srv.close();
    }
  },
});

Deno.test({
  name:
    "la download: an interrupted file leaves only its .part, which the next run resumes with a Range request",
  ignore: !present,
  fn: async () => {
    const id = IDS[2]!;
    const path = `${CASE_PREFIX}${id}/mri_norm2.h5`;
    await withTmp(async (root) => {
      const final = `${root}/${id}/mri_norm2.h5`;
      const cut = serve({ cut: { path, bytes: 600_000 } });
      let r;
      const lines: string[] = [];
      try {
        r = await downloadLa({
          root,
          baseUrl: cut.url,
          ids: [id],
          retries: 0,
          print: (l) => lines.push(l),
          progress: quiet,
        });
      } finally {
        await cut.close();
      }
      assert.equal(r.failed.length, 1);
      assert.match(
        r.failed[0]!,
        new RegExp(
          `^${final}: failed after 1 attempt \\(.*\\); \\d+ bytes kept in ${final}\\.part for a resume$`,
        ),
      );
      assert.deepEqual(lines, r.failed);
      assert.ok(!exists(final), "nothing under the final name");
      const partSize = Deno.statSync(`${final}.part`).size;
      assert.ok(partSize > 0 && partSize <= 600_000, `part of ${partSize} bytes`);

      const good = serve();
      try {
        r = await downloadLa({
          root,
          baseUrl: good.url,
          ids: [id],
          print: () => {},
          progress: quiet,
        });
        assert.deepEqual(r.failed, []);
        assert.equal(r.downloaded, 1);
        assert.equal(r.present, 2, "the lists were already there");
        const req = good.requests.filter((q) => q.path === path);
        assert.deepEqual(req, [{ path, range: `bytes=${partSize}-`, status: 206 }]);
        assert.equal(r.bytes, Deno.statSync(`${LA_DIR}/${id}/mri_norm2.h5`).size - partSize);
      } finally {
        await good.close();
      }
      assert.equal(sha256(final), sha256(`${LA_DIR}/${id}/mri_norm2.h5`));
      assert.ok(!exists(`${final}.part`));
    });
  },
});

Deno.test({
  name:
    "la download: a wrong .part is restarted once from scratch; a server ignoring Range restarts the file",
  ignore: !present,
  fn: async () => {
    const id = IDS[0]!;
    const path = `${CASE_PREFIX}${id}/mri_norm2.h5`;
    const want = sha256(`${LA_DIR}/${id}/mri_norm2.h5`);
    for (const noRange of [false, true]) {
      await withTmp(async (root) => {
        const final = `${root}/${id}/mri_norm2.h5`;
        Deno.mkdirSync(`${root}/${id}`);
        Deno.writeFileSync(`${final}.part`, new Uint8Array(5000).fill(7));
        const srv = serve({ noRange });
        try {
          const r = await downloadLa({
            root,
            baseUrl: srv.url,
            ids: [id],
            print: () => {},
            progress: quiet,
          });
          assert.deepEqual(r.failed, []);
          const req = srv.requests.filter((q) => q.path === path);
          assert.deepEqual(
            req.map((q) => [q.range, q.status]),
            noRange ? [["bytes=5000-", 200]] : [["bytes=5000-", 206], [null, 200]],
          );
        } finally {
          await srv.close();
        }
        assert.equal(sha256(final), want);
        assert.ok(!exists(`${final}.part`));
      });
    }
  },
});

Deno.test({
  name: "la download: a transient HTTP 500 is retried",
  ignore: !present,
  fn: async () => {
    const path = `${CASE_PREFIX}${IDS[1]}/mri_norm2.h5`;
    const srv = serve({ fail500: [path, "/data/train.list"] });
    try {
      await withTmp(async (root) => {
        const r = await downloadLa({
          root,
          baseUrl: srv.url,
          ids: [IDS[1]!],
          retryDelayMs: 20,
          print: () => {},
          progress: quiet,
        });
        assert.deepEqual(r.failed, []);
        assert.equal(r.downloaded, 3);
        assert.deepEqual(srv.requests.filter((q) => q.path === path).map((q) => q.status), [
          500,
          200,
        ]);
        assert.equal(
          sha256(`${root}/${IDS[1]}/mri_norm2.h5`),
          sha256(`${LA_DIR}/${IDS[1]}/mri_norm2.h5`),
        );
      });
    } finally {
      await srv.close();
    }
  },
});

Deno.test("data --download: registration-gated datasets print where to get them (exit 2); bad flags are one line", async () => {
  for (const name of ["brats19", "brats18", "wmh", "lits"]) {
    const lines: string[] = [];
    assert.equal(await main([name, "--download"], (l) => lines.push(l)), 2, name);
    assert.match(
      lines[0]!,
      new RegExp(`^${name}: no automatic download: .* is registration-gated\\.`),
    );
    const text = lines.join("\n");
    assert.match(text, /registration required/);
    assert.match(text, /Expected layout/);
    assert.match(text, /https?:\/\//);
  }
  for (
    const [args, want] of [
      [["la", "--from", "http://127.0.0.1:1"], /^flag --from needs --download/],
      [["la", "--download", "--ids", "NOPE"], /^flag --ids: unknown LA case id 'NOPE'/],
      [
        ["la", "--download", "--limit", "0"],
        /^flag --limit: expected an integer 1\.\.100, got '0'/,
      ],
      [["la", "--download", "--limit", "2", "--ids", IDS[0]!], /^flags --ids and --limit exclude/],
      [["la", "--download", "--from", "ftp://x"], /^flag --from: expected an http\(s\) URL/],
      [["la", "--download", "--frm", "x"], /^unknown flag --frm/],
    ] as const
  ) {
    const lines: string[] = [];
    assert.equal(await main([...args], (l) => lines.push(l)), 2, args.join(" "));
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, want);
  }
  const lines: string[] = [];
  assert.equal(
    await main(["la", "--download", "--limit", "1"], (l) => lines.push(l), {
      env: (k) => (k === "SEMISEG_LA_URL" ? "file:///x" : undefined),
    }),
    2,
  );
  assert.match(lines[0]!, /^SEMISEG_LA_URL: expected an http\(s\) URL, got 'file:\/\/\/x'$/);
});
