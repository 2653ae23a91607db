/**
 * Helpers shared by the native-kernel tests: whether oneDNN loads (with the skip message the
 * brief asks for, naming what is missing) and the relative error used for every comparison.
 * @module
 */
import assert from "node:assert/strict";
import { Dnnl } from "../methods/nn/native/dnnl.ts";

/**
 * Null when `libdnnl.so.2` loads; otherwise the reason, after printing one line that says which
 * tests of `file` are skipped and how to install the library.
 */
export function dnnlMissing(file: string): string | null {
  try {
    Dnnl.open().close();
    return null;
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]! : String(e);
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `${file}: SKIPPING oneDNN kernel tests: libdnnl.so.2 not loadable (${why}); apt-get install libdnnl2\n`,
      ),
    );
    return why;
  }
}

/** max |a-b| / max(1, max |b|): the error relative to the result magnitude. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0, s = 1;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}
