/**
 * PyTorch interop (methods/nn/torch/): zip and pickle codecs, .pth round trips, the reference
 * names of VNet / DTC / MASSL, and, with Debian's `/usr/bin/python3` + torch, checkpoints
 * written by PyTorch (zip and legacy formats) giving PyTorch's logits in this project's VNet,
 * and .pth files written here giving the project's logits in PyTorch
 * (`torch.load(weights_only=True)`). The PyTorch V-Net below is written for this test after
 * UA-MT's `code/networks/vnet.py` structure and module names (batchnorm, no dropout).
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { dtcHeads, segHeads, VNet } from "../methods/nn/vnet.ts";
import { MasslNet } from "../methods/nn/massl_net.ts";
import {
  applyTorchStateDict,
  encodePth,
  encodeTorchStateDict,
  findStateDict,
  loadTorchStateDict,
  parsePth,
  saveTorchStateDict,
  torchStateDict,
  TorchTensor,
  writeZip,
  ZipReader,
} from "../methods/nn/torch/mod.ts";
import { BufferReader, PickleWriter, unpickle } from "../methods/nn/torch/pickle.ts";
import { PYTHON, torchMissing } from "./torch_util.ts";

const FILE = "tests/torch_interop_test.ts";

const missing = torchMissing();
if (missing !== null) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`${FILE}: SKIPPING the PyTorch comparisons: ${missing}\n`),
  );
}

/** max |a-b| / max |b|. */
function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}

/** The error's message, asserting it is one line. */
function oneLine(e: unknown): string {
  assert.ok(e instanceof Error);
  assert.ok(!e.message.includes("\n"), `not one line: ${e.message}`);
  return e.message;
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<string> {
  try {
    await p;
  } catch (e) {
    const m = oneLine(e);
    assert.match(m, re);
    return m;
  }
  throw new Error(`expected a rejection matching ${re}`);
}

function vnet(seed: number, nf = 4, heads = segHeads(2)): VNet {
  return new VNet({ inChannels: 1, nFilters: nf, heads }, new Rng(seed));
}

function snapshot(net: VNet | MasslNet): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [k, v] of net.params) m.set(k, (v.dataSync() as Float32Array).slice());
  if (net instanceof VNet) {
    for (const [k, v] of net.buffers) m.set(k, (v.dataSync() as Float32Array).slice());
  }
  return m;
}

function assertSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.deepEqual(b.get(k), v, k);
}

Deno.test("torch zip: write/read round trip, 64-byte data alignment, CRC and truncation errors", () => {
  const enc = new TextEncoder();
  const files = [
    { name: "a/data.pkl", data: enc.encode("hello") },
    { name: "a/data/0", data: new Uint8Array(1000).map((_, i) => i * 7) },
    { name: "a/version", data: enc.encode("3\n") },
  ];
  const z = writeZip(files);
  const r = new ZipReader(z, "t.zip");
  assert.deepEqual(r.names(), files.map((f) => f.name));
  for (const f of files) assert.deepEqual(r.read(f.name), f.data);
  // data start: the reader returns a view into the archive when stored
  const view = r.read("a/data/0");
  assert.equal(view.byteOffset % 64, 0);
  const bad = z.slice();
  bad[view.byteOffset + 10]! ^= 0xff;
  assert.throws(() => new ZipReader(bad, "t.zip").read("a/data/0"), (e) => {
    assert.match(oneLine(e), /^t\.zip: a\/data\/0: CRC-32 mismatch/);
    return true;
  });
  assert.throws(() => new ZipReader(z.subarray(0, z.length - 30), "t.zip"), (e) => {
    assert.match(oneLine(e), /truncated/);
    return true;
  });
});

Deno.test("torch pickle: the writer's ints, strings and tuples read back through pickleparser", () => {
  const w = new PickleWriter();
  w.mark();
  for (const v of [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 40]) w.int(v);
  w.str("é-key").memoStr("cpu").memoStr("cpu").bool(true).none().intTuple([1, 2, 3, 4]);
  w.tuple();
  const { value } = unpickle(new BufferReader(w.finish()), { label: "t" });
  assert.deepEqual(value, [
    0,
    255,
    256,
    65535,
    65536,
    -1,
    -(2 ** 31),
    2 ** 31,
    2 ** 40,
    "é-key",
    "cpu",
    "cpu",
    true,
    null,
    [1, 2, 3, 4],
  ]);
  assert.throws(
    () => unpickle(new BufferReader(Uint8Array.of(0x28, 0x2e)), { label: "p0" }),
    (e) => {
      assert.match(oneLine(e), /^p0: not a pickle of protocol 2-5/);
      return true;
    },
  );
});

Deno.test("torch .pth: encode/parse round trip; nested and module.-prefixed state_dicts", () => {
  const a = TorchTensor.of("float32", [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6));
  const n = TorchTensor.of("int64", [], BigInt64Array.of(42n));
  const bytes = encodePth([["module.x.weight", a], ["module.x.num_batches_tracked", n]]);
  const c = parsePth(bytes, "mem");
  assert.equal(c.format, "zip");
  const found = findStateDict(c.value);
  assert.equal(found.strippedModulePrefix, true);
  assert.deepEqual([...found.tensors.keys()], ["x.weight", "x.num_batches_tracked"]);
  assert.deepEqual(found.tensors.get("x.weight")!.data, a.data);
  assert.deepEqual(found.tensors.get("x.num_batches_tracked")!.data, BigInt64Array.of(42n));
  const nested = new Map<string, unknown>([["epoch", 3], ["state_dict", new Map([["w", a]])]]);
  assert.deepEqual(findStateDict(nested).path, ["state_dict"]);
  assert.throws(() => findStateDict(new Map([["epoch", 3]]), { label: "f.pth" }), (e) => {
    assert.match(
      oneLine(e),
      /^f\.pth: no state_dict found: the checkpoint is a dict \{epoch: number\}/,
    );
    return true;
  });
  assert.throws(() => parsePth(new TextEncoder().encode("not a checkpoint"), "x.pth"), (e) => {
    assert.match(oneLine(e), /^x\.pth: not a PyTorch checkpoint/);
    return true;
  });
});

Deno.test("torch reference names: VNet (UA-MT, DTC) and MASSL state_dicts, save/load round trip", async () => {
  await initBackend("cpu");
  const net = vnet(1);
  const sd = torchStateDict(net);
  const shape = (k: string) => sd.get(k)?.shape;
  assert.deepEqual(shape("block_one.conv.0.weight"), [4, 1, 3, 3, 3]);
  assert.deepEqual(shape("block_one.conv.1.running_mean"), [4]);
  assert.deepEqual(shape("block_two.conv.3.weight"), [8, 8, 3, 3, 3]);
  assert.deepEqual(shape("block_two.conv.4.running_var"), [8]);
  assert.deepEqual(shape("block_one_dw.conv.0.weight"), [8, 4, 2, 2, 2]);
  assert.deepEqual(shape("block_five_up.conv.0.weight"), [64, 32, 2, 2, 2]);
  assert.deepEqual(shape("block_five_up.conv.1.num_batches_tracked"), []);
  assert.deepEqual(shape("out_conv.weight"), [2, 4, 1, 1, 1]);
  // UA-MT's VNet state_dict: 21 block stages and 8 down/up convs (conv 2 + BN 5 entries
  // each), the head's 2
  assert.equal(sd.size, 7 * (1 + 2 + 3 + 3 + 3 + 3 + 3 + 2 + 1) + 7 * 8 + 2);
  const dtc = torchStateDict(vnet(2, 4, dtcHeads(2)));
  assert.ok(dtc.has("out_conv.weight") && dtc.has("out_conv2.bias"));

  const copy = vnet(99);
  const bytes = encodeTorchStateDict(net);
  const res = await loadTorchStateDict(copy, bytes);
  assert.equal(res.loaded, net.params.size + net.buffers.size);
  assert.equal(res.ignored.length, 21 + 8); // every BatchNorm's num_batches_tracked
  assert.ok(res.ignored.every((k) => k.endsWith(".num_batches_tracked")));
  assertSameWeights(snapshot(net), snapshot(copy));

  const m1 = new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 2 }, new Rng(3));
  const m2 = new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 2 }, new Rng(4));
  const msd = torchStateDict(m1);
  assert.deepEqual(msd.get("e_conv3d_l1_1.weight")?.shape, [2, 1, 3, 3, 3]);
  assert.ok(msd.has("norm_lrelu_upscale_conv_norm_lrelu_l1_seg.3.bias"));
  const withUnused = new Map(msd);
  withUnused.set("ds2_1x1_conv3d.weight", TorchTensor.of("float32", [1], Float32Array.of(0)));
  const r2 = applyTorchStateDict(m2, withUnused);
  assert.deepEqual(r2.ignored, ["ds2_1x1_conv3d.weight"]);
  assertSameWeights(snapshot(m1), snapshot(m2));
  for (const n of [net, copy, m1, m2]) n.dispose();
});

const PY = String.raw`
import copy, json, sys, zipfile
from collections import OrderedDict
import torch, torch.nn as nn
torch.set_num_threads(1)

class ConvBlock(nn.Module):
    def __init__(self, n_stages, n_filters_in, n_filters_out):
        super().__init__()
        ops = []
        for i in range(n_stages):
            ops += [nn.Conv3d(n_filters_in if i == 0 else n_filters_out, n_filters_out, 3, padding=1),
                    nn.BatchNorm3d(n_filters_out), nn.ReLU(inplace=True)]
        self.conv = nn.Sequential(*ops)
    def forward(self, x):
        return self.conv(x)

class DownsamplingConvBlock(nn.Module):
    def __init__(self, n_filters_in, n_filters_out, stride=2):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(n_filters_in, n_filters_out, stride, padding=0, stride=stride),
                                  nn.BatchNorm3d(n_filters_out), nn.ReLU(inplace=True))
    def forward(self, x):
        return self.conv(x)

class UpsamplingDeconvBlock(nn.Module):
    def __init__(self, n_filters_in, n_filters_out, stride=2):
        super().__init__()
        self.conv = nn.Sequential(nn.ConvTranspose3d(n_filters_in, n_filters_out, stride, padding=0, stride=stride),
                                  nn.BatchNorm3d(n_filters_out), nn.ReLU(inplace=True))
    def forward(self, x):
        return self.conv(x)

class VNet(nn.Module):
    def __init__(self, n_channels=1, n_classes=2, n_filters=4, dtc=False):
        super().__init__()
        f = n_filters
        self.block_one = ConvBlock(1, n_channels, f)
        self.block_one_dw = DownsamplingConvBlock(f, 2 * f)
        self.block_two = ConvBlock(2, 2 * f, 2 * f)
        self.block_two_dw = DownsamplingConvBlock(2 * f, 4 * f)
        self.block_three = ConvBlock(3, 4 * f, 4 * f)
        self.block_three_dw = DownsamplingConvBlock(4 * f, 8 * f)
        self.block_four = ConvBlock(3, 8 * f, 8 * f)
        self.block_four_dw = DownsamplingConvBlock(8 * f, 16 * f)
        self.block_five = ConvBlock(3, 16 * f, 16 * f)
        self.block_five_up = UpsamplingDeconvBlock(16 * f, 8 * f)
        self.block_six = ConvBlock(3, 8 * f, 8 * f)
        self.block_six_up = UpsamplingDeconvBlock(8 * f, 4 * f)
        self.block_seven = ConvBlock(3, 4 * f, 4 * f)
        self.block_seven_up = UpsamplingDeconvBlock(4 * f, 2 * f)
        self.block_eight = ConvBlock(2, 2 * f, 2 * f)
        self.block_eight_up = UpsamplingDeconvBlock(2 * f, f)
        self.block_nine = ConvBlock(1, f, f)
        self.out_conv = nn.Conv3d(f, n_classes, 1, padding=0)
        self.dtc = dtc
        if dtc:
            self.out_conv2 = nn.Conv3d(f, n_classes, 1, padding=0)
    def forward(self, x):
        x1 = self.block_one(x)
        x2 = self.block_two(self.block_one_dw(x1))
        x3 = self.block_three(self.block_two_dw(x2))
        x4 = self.block_four(self.block_three_dw(x3))
        x5 = self.block_five(self.block_four_dw(x4))
        x6 = self.block_six(self.block_five_up(x5) + x4)
        x7 = self.block_seven(self.block_six_up(x6) + x3)
        x8 = self.block_eight(self.block_seven_up(x7) + x2)
        x9 = self.block_nine(self.block_eight_up(x8) + x1)
        out = self.out_conv(x9)
        return [torch.tanh(out), self.out_conv2(x9)] if self.dtc else [out]

def calibrated(net, x):
    # running statistics of real activations (those of x: momentum None averages the batches
    # seen), a random affine, and running_var + 0.1: channels of near-zero variance would
    # otherwise amplify float32 rounding (PyTorch's own float32-vs-float64 logits then differ
    # by 2e-6..7e-6 relative; with it by ~3e-7; a mapping error is O(1))
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        net(x)
        for m in bns:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
            m.running_var.add_(0.1)
    return net.eval()

def f32_error(net, x):
    # PyTorch's own float32 rounding: its float32 logits against float64 ones
    with torch.no_grad():
        y32 = torch.cat([o.reshape(-1) for o in net(x)])
        y64 = torch.cat([o.reshape(-1) for o in copy.deepcopy(net).double()(x.double())])
    return ((y32.double() - y64).abs().max() / y64.abs().max()).item()

def logits(net, x, path):
    with torch.no_grad():
        outs = net(x)
    torch.cat([o.reshape(-1) for o in outs]).numpy().tofile(path)

mode, d = sys.argv[1], sys.argv[2]
x = torch.load(d + "/x.pt") if mode == "check" else None
if mode == "gen":
    torch.manual_seed(0)
    x = torch.randn(2, 1, 32, 32, 16)
    torch.save(x, d + "/x.pt")
    x.numpy().tofile(d + "/x.bin")
    net = calibrated(VNet(), x)
    sd = net.state_dict()
    torch.save(sd, d + "/uamt.pth")
    logits(net, x, d + "/uamt.bin")
    legacy = {"epoch": 7, "best_dice": 0.9,
              "state_dict": OrderedDict(("module." + k, v) for k, v in sd.items())}
    torch.save(legacy, d + "/uamt_legacy.pth", _use_new_zipfile_serialization=False)
    dtc = calibrated(VNet(dtc=True), x)
    opt = torch.optim.SGD(dtc.parameters(), lr=0.01, momentum=0.9)
    torch.save({"model_state_dict": dtc.state_dict(), "optimizer_state_dict": opt.state_dict()},
               d + "/dtc.pth")
    logits(dtc, x, d + "/dtc.bin")
    torch.save(VNet(n_filters=8).state_dict(), d + "/nf8.pth")
    bad = OrderedDict(sd)
    del bad["block_two.conv.3.weight"]
    torch.save(bad, d + "/missing.pth")
    bad = OrderedDict(sd)
    bad["block_five_up.conv.0.weight"] = torch.randn(32, 64, 2, 2, 2)
    torch.save(bad, d + "/wrongshape.pth")
    with zipfile.ZipFile(d + "/uamt.pth") as zi, \
            zipfile.ZipFile(d + "/uamt_deflate.pth", "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():  # the same archive, deflated
            zo.writestr(info.filename, zi.read(info.filename))
    torch.save(net, d + "/whole_module.pth")  # a pickled nn.Module, not a state_dict
    views = {"t": torch.arange(6.0).reshape(2, 3).t(), "h": torch.arange(4, dtype=torch.float16) / 4,
             "s": torch.arange(5, dtype=torch.float64)[2:], "i": torch.tensor([-3, 2 ** 40])}
    torch.save(views, d + "/views.pth")
    torch.save(views, d + "/views_legacy.pth", _use_new_zipfile_serialization=False, pickle_protocol=4)
    print(json.dumps({"torch f32 vs f64": f32_error(net, x), "torch f32 vs f64 dtc": f32_error(dtc, x)}))
else:
    report = {}
    for name, dtc in (("ours_uamt", False), ("ours_dtc", True)):
        sd = torch.load(d + "/" + name + ".pth", weights_only=True)
        report[name] = [type(sd).__name__, sorted({str(v.dtype) for v in sd.values()})]
        net = VNet(dtc=dtc)
        net.load_state_dict(sd, strict=True)
        logits(net.eval(), x, d + "/" + name + "_torch.bin")
    print(json.dumps(report))
`;

function python(mode: string, dir: string): string {
  const r = new Deno.Command(PYTHON, { args: ["-c", PY, mode, dir] }).outputSync();
  const err = new TextDecoder().decode(r.stderr);
  if (!r.success) throw new Error(`python ${mode} failed: ${err}`);
  return new TextDecoder().decode(r.stdout);
}

const f32 = (path: string) => new Float32Array(Deno.readFileSync(path).buffer);

/** The net's eval-mode outputs, NCDHW, heads concatenated (as the Python side writes them). */
function forward(net: VNet, xNcdhw: Float32Array): Float32Array {
  return tf.tidy(() => {
    const x = tf.transpose(tf.tensor5d(xNcdhw, [2, 1, 32, 32, 16]), [0, 2, 3, 4, 1]);
    const outs = net.forward(x as tf.Tensor5D, { training: false });
    const flat = outs.map((o) => tf.reshape(tf.transpose(o, [0, 4, 1, 2, 3]), [-1]));
    return tf.concat(flat).dataSync() as Float32Array;
  });
}

Deno.test({
  name: "torch interop vs PyTorch: checkpoints both ways give the same logits; bad ones one line",
  ignore: missing !== null,
  async fn() {
    await initBackend("cpu");
    const dir = await Deno.makeTempDir({ prefix: "torch_interop_" });
    try {
      const own: Record<string, number> = JSON.parse(python("gen", dir));
      const x = f32(`${dir}/x.bin`);
      const diffs: Record<string, number> = {};

      // 1. PyTorch-written checkpoints: zip (bare), legacy (nested, DataParallel prefix), DTC
      const net = vnet(11);
      const zipRes = await loadTorchStateDict(net, `${dir}/uamt.pth`);
      assert.equal(zipRes.format, "zip");
      const ref = f32(`${dir}/uamt.bin`);
      diffs["zip"] = rel(forward(net, x), ref);

      const leg = vnet(12);
      const legRes = await loadTorchStateDict(leg, `${dir}/uamt_legacy.pth`);
      assert.equal(legRes.format, "legacy");
      assert.deepEqual(legRes.path, ["state_dict"]);
      assert.equal(legRes.strippedModulePrefix, true);
      diffs["legacy"] = rel(forward(leg, x), ref);

      const deflated = vnet(15);
      await loadTorchStateDict(deflated, `${dir}/uamt_deflate.pth`);
      diffs["deflated zip"] = rel(forward(deflated, x), ref);
      deflated.dispose();

      const whole = vnet(14);
      await loadTorchStateDict(whole, `${dir}/whole_module.pth`);
      diffs["whole module"] = rel(forward(whole, x), ref);
      whole.dispose();

      for (const f of ["views.pth", "views_legacy.pth"]) {
        const v = parsePth(await Deno.readFile(`${dir}/${f}`), f).value as Map<string, TorchTensor>;
        assert.deepEqual(v.get("t")!.shape, [3, 2]);
        assert.deepEqual(v.get("t")!.data, Float32Array.of(0, 3, 1, 4, 2, 5), f);
        assert.deepEqual(v.get("h")!.data, Float32Array.of(0, 0.25, 0.5, 0.75), f);
        assert.deepEqual(v.get("s")!.data, Float64Array.of(2, 3, 4), f);
        assert.deepEqual(v.get("i")!.data, BigInt64Array.of(-3n, 2n ** 40n), f);
      }

      const dtc = vnet(13, 4, dtcHeads(2));
      const dtcRes = await loadTorchStateDict(dtc, `${dir}/dtc.pth`);
      assert.deepEqual(dtcRes.path, ["model_state_dict"]);
      diffs["dtc"] = rel(forward(dtc, x), f32(`${dir}/dtc.bin`));

      // 2. project-written .pth files (weights changed here first) loaded by PyTorch
      tf.tidy(() => {
        const r = new Rng(5);
        for (const v of [...net.params.values(), ...dtc.params.values()]) {
          const noise = r.fillUniform(new Float32Array(v.size), 0.9, 1.1);
          v.assign(tf.mul(v, tf.tensor(noise, v.shape)));
        }
      });
      await saveTorchStateDict(net, `${dir}/ours_uamt.pth`);
      await saveTorchStateDict(dtc, `${dir}/ours_dtc.pth`);
      const report = JSON.parse(python("check", dir));
      assert.deepEqual(report["ours_uamt"], ["OrderedDict", ["torch.float32", "torch.int64"]]);
      diffs["ours->torch"] = rel(f32(`${dir}/ours_uamt_torch.bin`), forward(net, x));
      diffs["ours->torch dtc"] = rel(f32(`${dir}/ours_dtc_torch.bin`), forward(dtc, x));
      // the perturbation is visible (the comparison is sensitive to the weights)
      assert.ok(rel(forward(net, x), ref) > 1e-3);

      Deno.stderr.writeSync(
        new TextEncoder().encode(
          `torch interop max relative logit differences: ${JSON.stringify(diffs)}; ${
            JSON.stringify(own)
          }\n`,
        ),
      );
      for (const [k, d] of Object.entries(diffs)) assert.ok(d <= 1e-5, `${k}: ${d}`);

      // 3. bad checkpoints: one line each, the network untouched
      const before = snapshot(net);
      const zipBytes = await Deno.readFile(`${dir}/uamt.pth`);
      await rejects(
        loadTorchStateDict(net, zipBytes.subarray(0, zipBytes.length >> 1), { label: "half.pth" }),
        /^half\.pth: not a complete zip archive .*truncated/,
      );
      const legBytes = await Deno.readFile(`${dir}/uamt_legacy.pth`);
      await rejects(
        loadTorchStateDict(net, legBytes.subarray(0, legBytes.length - 100), { label: "leg.pth" }),
        /^leg\.pth: truncated: storage \S+ needs \d+ bytes/,
      );
      const m = await rejects(
        loadTorchStateDict(net, `${dir}/nf8.pth`),
        /nf8\.pth: does not fit VNet\(n_channels 1, n_filters 4, heads out_conv:2, BatchNorm\): block_one\.conv\.0\.weight is \[8, 1, 3, 3, 3\] in the checkpoint, expected \[4, 1, 3, 3, 3\] \(\d+ problems: \d+ mis-shaped\); the checkpoint looks like VNet\(n_channels 1, n_filters 8, heads out_conv:2\)$/,
      );
      Deno.stderr.writeSync(new TextEncoder().encode(`wrong architecture: ${m}\n`));
      await rejects(
        loadTorchStateDict(net, `${dir}/missing.pth`),
        /missing\.pth: does not fit .*: missing key block_two\.conv\.3\.weight \(expected \[8, 8, 3, 3, 3\]\);/,
      );
      await rejects(
        loadTorchStateDict(net, `${dir}/wrongshape.pth`),
        /wrongshape\.pth: does not fit .*: block_five_up\.conv\.0\.weight is \[32, 64, 2, 2, 2\] in the checkpoint, expected \[64, 32, 2, 2, 2\];/,
      );
      await rejects(
        loadTorchStateDict(net, `${dir}/dtc.pth`),
        /dtc\.pth: does not fit .*: unexpected key out_conv2\.weight \[2, 4, 1, 1, 1\]/,
      );
      assertSameWeights(before, snapshot(net));
      for (const n of [net, leg, dtc]) n.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
