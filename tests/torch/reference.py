#!/usr/bin/env python3
"""PyTorch side of tests/torch_conformance_test.ts: one training step of a method, run twice
(float32 and float64) from the weights, batch, noise and dropout masks the Deno test wrote.

Written for the tests from the reference code's semantics (module names as the references, so
the project's .pth bridge maps the weights):
- V-Net: yulequan/UA-MT code/networks/vnet.py (batchnorm, Dropout3d on x5 and x9) and
  HiLab-git/DTC code/networks/vnet_sdf.py (out_conv under tanh + out_conv2);
- supervised: UA-MT code/train_LA.py; MT / UA-MT: UA-MT
  code/train_LA_meanteacher_certainty_unlabel.py (MT = the same without the mask);
- DTC: DTC code/train_la_dtc.py, compute_sdf of code/utils/util.py (scipy/skimage replaced by
  an exact brute-force EDT and a face-neighbour inner boundary, written here);
- UG-MCL: YichiZhang98/UG-MCL code/train_UGMCL_3D.py (reference-code mode) and the paper's
  equations as methods/ug_mcl.ts reads them (paper mode);
- MASSL / MSSL: ShuaiChenBIGR/MASSL-segmentation-framework network/ssl_3d_attention.py
  (MASSL_norm), network/ssl_3d_sep.py (MSSL_norm), Network_training_SSL_epoch_*_BraTS18.py
  (two Adams over all parameters with requires_grad switches, StepLR stepped before each
  update, DiceCoefficientLF, nn.MSELoss), with the project's documented choices where it
  departs from the script (methods/massl.ts).
Randomness is replayed, not drawn: the Deno side draws the input noise and the Dropout3d
masks from the method's seeded streams in the method's order and passes them here. The step's
ReLU / LeakyReLU gates are the project's too (see Gates), and the UA-MT / UG-MCL certainty mask
used in the losses is the project's (ours is computed and returned for the comparison).

Three runs: float32 ("f32"), float32 from weights moved by one ulp ("u32") and float64 ("f64");
the float32 runs measure how sensitive each output is to float32 rounding.

Usage: reference.py DIR (DIR/job.json describes the job; DIR/in.bin holds the arrays).
Writes DIR/out.json (scalars per dtype, the array index) and DIR/out.bin (float64 arrays).
"""
import json
import math
import os
import sys
import warnings
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("SEMISEG_TORCH_THREADS", "1")))
warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------------------------
# activations with the project's gates
#
# A ReLU whose input is within rounding of 0 may open in one framework and stay shut in the
# other; one such voxel changes every gradient upstream of it by up to ~1e-2 relative (measured),
# while the forward value (t ~ 0) does not change. The Deno side records the project's gates
# (t > 0 of every ReLU / LeakyReLU call of the step, in call order) and the step here uses them:
# act(t) = t * (gate + (1 - gate) slope). Our own gate is checked against each: they may differ
# only where |t| is within GATE_BAND of the call's max |t|.

GATE_BAND = 1e-4


class Gates:
    def __init__(self):
        self.queue = None
        self.stats = None

    def begin(self, gates):
        self.queue = list(gates)
        self.stats = {"gateCalls": 0, "gateFlips": 0, "gateFlipMax": 0.0, "gateElements": 0}

    def end(self, s):
        assert self.queue is not None and not self.queue, \
            "%d recorded gates left unused" % len(self.queue or [])
        s.update(self.stats)
        self.queue = None

    def act(self, t, slope):
        if self.queue is None:
            return F.leaky_relu(t, slope) if slope else F.relu(t)
        assert self.queue, "the step calls more activations than were recorded"
        g = self.queue.pop(0)
        assert tuple(g.shape) == tuple(t.shape), "gate %s for activation %s" % (
            tuple(g.shape), tuple(t.shape))
        g = g.to(t.dtype)
        with torch.no_grad():
            own = (t > 0).to(t.dtype)
            differ = own != g
            n = int(differ.sum())
            st = self.stats
            st["gateCalls"] += 1
            st["gateElements"] += t.numel()
            if n:
                st["gateFlips"] += n
                scale = float(t.abs().max())
                st["gateFlipMax"] = max(st["gateFlipMax"], float(t[differ].abs().max()) / scale)
        return t * (g + (1 - g) * slope)


GATES = Gates()


class GatedReLU(nn.Module):
    def forward(self, t):
        return GATES.act(t, 0.0)


# ----------------------------------------------------------------------------------------------
# networks


class ConvBlock(nn.Module):
    def __init__(self, n_stages, cin, cout):
        super().__init__()
        layers = []
        for i in range(n_stages):
            layers.append(nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1))
            layers.append(nn.BatchNorm3d(cout))
            layers.append(GatedReLU())
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return self.conv(x)


class DownsamplingConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(cin, cout, 2, stride=2, padding=0),
                                  nn.BatchNorm3d(cout), GatedReLU())

    def forward(self, x):
        return self.conv(x)


class UpsamplingDeconvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.ConvTranspose3d(cin, cout, 2, stride=2, padding=0),
                                  nn.BatchNorm3d(cout), GatedReLU())

    def forward(self, x):
        return self.conv(x)


class VNet(nn.Module):
    """UA-MT's VNet(normalization='batchnorm'); `heads` = [(name, channels, activation)]."""

    def __init__(self, n_channels, n_filters, heads):
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
        self.heads = [tuple(h) for h in heads]
        for name, ch, _ in self.heads:
            setattr(self, name, nn.Conv3d(f, ch, 1, padding=0))

    def forward(self, x, masks=None):
        """`masks`: None (no dropout) or the replayed Dropout3d masks (m5 [N, 16f], m9 [N, f]),
        values 0 or 1/(1-p), applied where UA-MT's `self.dropout` is."""
        x1 = self.block_one(x)
        x2 = self.block_two(self.block_one_dw(x1))
        x3 = self.block_three(self.block_two_dw(x2))
        x4 = self.block_four(self.block_three_dw(x3))
        x5 = self.block_five(self.block_four_dw(x4))
        if masks is not None:
            x5 = x5 * masks[0][:, :, None, None, None]
        x6 = self.block_six(self.block_five_up(x5) + x4)
        x7 = self.block_seven(self.block_six_up(x6) + x3)
        x8 = self.block_eight(self.block_seven_up(x7) + x2)
        x9 = self.block_nine(self.block_eight_up(x8) + x1)
        if masks is not None:
            x9 = x9 * masks[1][:, :, None, None, None]
        outs = []
        for name, _, act in self.heads:
            y = getattr(self, name)(x9)
            if act == "tanh":
                y = torch.tanh(y)
            elif act == "sigmoid":
                y = torch.sigmoid(y)
            outs.append(y)
        return outs


def conv3(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=True)


def conv1(cin, cout):
    return nn.Conv3d(cin, cout, kernel_size=1, stride=1, padding=0, bias=True)


def inorm_lrelu(x):
    # nn.InstanceNorm3d(c) (affine False, eps 1e-5) then nn.LeakyReLU() (slope 0.01)
    return GATES.act(F.instance_norm(x, eps=1e-5), 0.01)


def up2(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class MasslNet(nn.Module):
    """MASSL_norm / MSSL_norm, only the modules their forward uses (same names and Sequential
    indices: `conv_norm_lrelu_l1.0` is the conv of conv_norm_lrelu, `..._l1_seg.3` the conv of
    norm_lrelu_upscale_conv_norm_lrelu, `upscale_conv_norm_lrelu_l0_seg.1` the conv after the
    Upsample)."""

    def __init__(self, in_channels, n_classes, f, rec_channels):
        super().__init__()
        self.e_conv3d_l1_1 = conv3(in_channels, f)
        self.e_conv3d_l1_2 = conv3(f, f)
        for lvl in range(2, 6):
            c = f * 2 ** (lvl - 1)
            setattr(self, "e_conv3d_l%d_1" % lvl, conv3(c // 2, c, stride=2))
            setattr(self, "e_conv3d_l%d_2" % lvl, conv3(c, c))

        def seq(index, conv):
            layers = [nn.Identity() for _ in range(index)] + [conv]
            return nn.Sequential(*layers)

        self.upscale_conv_norm_lrelu_l0_seg = seq(1, conv3(16 * f, 8 * f))
        self.upscale_conv_norm_lrelu_l0_rec = seq(1, conv3(16 * f, 8 * f))
        self.conv3d_l0_seg = conv1(8 * f, 8 * f)
        self.conv3d_l0_rec = conv1(8 * f, 8 * f)
        for lvl in range(1, 4):
            c = 16 * f // 2 ** (lvl - 1)
            setattr(self, "conv_norm_lrelu_l%d" % lvl, seq(0, conv3(c, c)))
            setattr(self, "conv3d_l%d" % lvl, conv1(c, c // 2))
            if lvl <= 2:
                setattr(self, "conv3d_l%d_ssl" % lvl, conv1(c // 4, c // 4))
            setattr(self, "norm_lrelu_upscale_conv_norm_lrelu_l%d_seg" % lvl,
                    seq(3, conv3(c // 2, c // 4)))
            setattr(self, "norm_lrelu_upscale_conv_norm_lrelu_l%d_rec" % lvl,
                    seq(3, conv3(c // 2, c // 4)))
        self.conv_norm_lrelu_l4 = seq(0, conv3(2 * f, 2 * f))
        self.conv_norm_lrelu_l4_ssl = seq(0, conv3(f, f))
        self.conv3d_l4 = conv1(2 * f, n_classes)
        self.conv3d_l4_ssl = conv1(f, rec_channels)

    def group(self, name):
        module = name.split(".")[0]
        if module.startswith("e_conv3d_"):
            return "encoder"
        return "rec" if module.endswith("_rec") or "_ssl" in module else "seg"

    def set_trainable(self, encoder, seg, rec):
        for name, p in self.named_parameters():
            g = self.group(name)
            p.requires_grad_(encoder if g == "encoder" else seg if g == "seg" else rec)

    def forward(self, x, want_seg=True, want_rec=True):
        def m(name):
            return getattr(self, name)

        out = inorm_lrelu(self.e_conv3d_l1_1(x))
        e = [inorm_lrelu(self.e_conv3d_l1_2(out))]
        for lvl in range(2, 6):
            out = inorm_lrelu(m("e_conv3d_l%d_1" % lvl)(e[-1]))
            e.append(inorm_lrelu(m("e_conv3d_l%d_2" % lvl)(out)))
        enc = e[4]
        seg = rec = None
        if want_seg:
            d = inorm_lrelu(self.upscale_conv_norm_lrelu_l0_seg[1](up2(enc)))
            d = inorm_lrelu(self.conv3d_l0_seg(d))
            for lvl in range(1, 4):
                d = torch.cat([d, e[4 - lvl]], dim=1)
                d = inorm_lrelu(m("conv_norm_lrelu_l%d" % lvl)[0](d))
                d = m("conv3d_l%d" % lvl)(d)
                d = inorm_lrelu(m("norm_lrelu_upscale_conv_norm_lrelu_l%d_seg" % lvl)[3](
                    up2(inorm_lrelu(d))))
            d = torch.cat([d, e[0]], dim=1)
            d = inorm_lrelu(self.conv_norm_lrelu_l4[0](d))
            seg = torch.sigmoid(self.conv3d_l4(d))
        if want_rec:
            d = inorm_lrelu(self.upscale_conv_norm_lrelu_l0_rec[1](up2(enc)))
            d = self.conv3d_l0_rec(d)
            d = inorm_lrelu(self.norm_lrelu_upscale_conv_norm_lrelu_l1_rec[3](up2(inorm_lrelu(d))))
            d = self.conv3d_l1_ssl(d)
            d = inorm_lrelu(self.norm_lrelu_upscale_conv_norm_lrelu_l2_rec[3](up2(inorm_lrelu(d))))
            d = self.conv3d_l2_ssl(d)
            d = inorm_lrelu(self.norm_lrelu_upscale_conv_norm_lrelu_l3_rec[3](up2(inorm_lrelu(d))))
            d = inorm_lrelu(self.conv_norm_lrelu_l4_ssl[0](d))
            rec = torch.sigmoid(self.conv3d_l4_ssl(d))
        return seg, rec


# ----------------------------------------------------------------------------------------------
# losses and schedules (UA-MT / DTC code/utils/losses.py, ramps.py; MASSL module/dice_loss.py)


def dice_loss(score, target):
    target = target.to(score.dtype)
    smooth = 1e-5
    intersect = torch.sum(score * target)
    y_sum = torch.sum(target * target)
    z_sum = torch.sum(score * score)
    return 1 - (2 * intersect + smooth) / (z_sum + y_sum + smooth)


def dice_lf(y_true, y_pred):
    return 1.0 - (2.0 * torch.sum(y_true * y_pred)) / (torch.sum(y_true) + torch.sum(y_pred) + 1e-4)


def softmax_mse_loss(a, b):
    return (F.softmax(a, dim=1) - F.softmax(b, dim=1)) ** 2


def sigmoid_rampup(current, rampup_length):
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def step_lr(hp, it):
    return hp["lr"] * hp["lrGamma"] ** (it // hp["lrStep"])


def ema_update(teacher, student, alpha_max, global_step):
    alpha = min(1 - 1 / (global_step + 1), alpha_max)
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.data.mul_(alpha).add_((1 - alpha) * s.data)


# DTC compute_sdf without scipy/skimage: exact squared EDT by separable brute-force lower
# envelopes (min over j of f[j] + (i-j)^2 along each axis in turn), and skimage's
# find_boundaries(mode='inner', connectivity 1): foreground voxels with a background face
# neighbour inside the array (grey erosion pads by reflection, so the array edge is no boundary).


def edt(mask):
    f = np.where(mask, np.inf, 0.0)
    for axis in range(mask.ndim):
        g = np.moveaxis(f, axis, -1)
        n = g.shape[-1]
        i = np.arange(n, dtype=np.float64)
        d2 = (i[:, None] - i[None, :]) ** 2
        g = np.min(g[..., None, :] + d2, axis=-1)
        f = np.moveaxis(g, -1, axis)
    return np.sqrt(f)


def inner_boundary(mask):
    padded = np.pad(mask, 1, mode="constant", constant_values=True)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    out = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for s in (-1, 1):
            sl = list(core)
            sl[axis] = slice(1 + s, padded.shape[axis] - 1 + s)
            out |= mask & ~padded[tuple(sl)]
    return out


def compute_sdf(labels):
    out = np.zeros(labels.shape, dtype=np.float64)
    for b in range(labels.shape[0]):
        pos = labels[b].astype(bool)
        if pos.any() and not pos.all():
            neg = ~pos
            posdis, negdis = edt(pos), edt(neg)
            boundary = inner_boundary(pos)
            sdf = (negdis - negdis.min()) / (negdis.max() - negdis.min()) - \
                (posdis - posdis.min()) / (posdis.max() - posdis.min())
            sdf[boundary] = 0
            out[b] = sdf
    return out


# ----------------------------------------------------------------------------------------------
# job I/O


class Job:
    def __init__(self, d):
        self.dir = d
        with open(os.path.join(d, "job.json")) as f:
            self.spec = json.load(f)
        self.blob = np.fromfile(os.path.join(d, "in.bin"), dtype=np.uint8)
        self.hp = self.spec.get("hp", {})
        self.out_index = {}
        self.out_chunks = []
        self.out_offset = 0
        self.scalars = {}

    def array(self, name):
        off, dtype, shape = self.spec["arrays"][name]
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) if shape else 1
        return np.frombuffer(self.blob[off:off + n * dt.itemsize].tobytes(), dtype=dt).reshape(shape)

    def has(self, name):
        return name in self.spec["arrays"]

    def put(self, name, t):
        a = t.detach().to(torch.float64).cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
        a = np.ascontiguousarray(a, dtype=np.float64)
        self.out_index[name] = [self.out_offset, list(a.shape)]
        self.out_chunks.append(a.tobytes())
        self.out_offset += a.nbytes

    def finish(self):
        with open(os.path.join(self.dir, "out.bin"), "wb") as f:
            for c in self.out_chunks:
                f.write(c)
        with open(os.path.join(self.dir, "out.json"), "w") as f:
            json.dump({"scalars": self.scalars, "arrays": self.out_index}, f)


# The "u32" run: float32 from weights moved by one ulp each (random direction), a second
# sample of PyTorch's own float32 sensitivity. Its weights after the step are reported minus that
# move, so updates compare with the same base.
PERTURB = {"on": False}


def load_net(job, file, net, dt):
    sd = torch.load(os.path.join(job.dir, file), weights_only=True)
    shift = {}
    if PERTURB["on"]:
        rng = np.random.default_rng(zlib.crc32(file.encode()))
        for k, v in sd.items():
            if v.is_floating_point():
                a = v.numpy()
                to = np.where(rng.random(a.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
                moved = np.nextafter(a, to)
                shift[k] = torch.from_numpy(moved.astype(np.float64) - a.astype(np.float64))
                sd[k] = torch.from_numpy(moved)
    net.load_state_dict(sd, strict=True)
    net.ulp_shift = shift
    return net.to(dt)


def put_state(job, tag, net):
    shift = getattr(net, "ulp_shift", {})
    for k, v in net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            v = v.detach().to(torch.float64)
            job.put("%s/%s" % (tag, k), v - shift[k] if k in shift else v)


def vnet_heads(job):
    return job.spec["heads"]


class Ctx:
    """Inputs of one run in dtype `dt`."""

    def __init__(self, job, dt):
        self.dt = dt
        self.job = job
        self.xl = torch.from_numpy(job.array("labeled").copy()).to(dt)
        self.y = torch.from_numpy(job.array("labels").astype(np.int64))
        self.xu = torch.from_numpy(job.array("unlabeled").copy()).to(dt) if job.has("unlabeled") else None
        self.x = self.xl if self.xu is None else torch.cat([self.xl, self.xu], 0)
        self.bl = self.xl.shape[0]

    def gates(self):
        out = []
        i = 0
        while self.job.has("gate.%d" % i):
            out.append(torch.from_numpy(self.job.array("gate.%d" % i).copy()))
            i += 1
        return out

    def masks(self, name):
        if not self.job.has(name + ".m5"):
            return None
        return (torch.from_numpy(self.job.array(name + ".m5").copy()).to(self.dt),
                torch.from_numpy(self.job.array(name + ".m9").copy()).to(self.dt))

    def noise(self, name):
        raw = torch.from_numpy(self.job.array(name).copy())
        clip = self.job.hp["noiseClip"]
        return torch.clamp(raw, -clip, clip).to(self.dt)


def sgd(job, net):
    hp = job.hp
    return torch.optim.SGD(net.parameters(), lr=step_lr(hp, job.spec["iteration"]),
                           momentum=hp["momentum"], weight_decay=hp["weightDecay"])


def put_sgd(job, p, net, opt):
    for k, par in net.named_parameters():
        job.put("%smom/%s" % (p, k), opt.state[par]["momentum_buffer"])


def put_predict(job, name, net, x, seg_index, sigmoid=False):
    net.eval()
    with torch.no_grad():
        o = net(x)[seg_index]
        job.put(name, torch.sigmoid(o) if sigmoid else F.softmax(o, dim=1))
    net.train()


# ----------------------------------------------------------------------------------------------
# methods: each runs one step in dtype dt, records scalars and arrays under the prefix p


def run_vnet(job, dt, p, s):
    """Standalone V-Net: eval forward, train forward (replayed dropout) and its BN update."""
    c = Ctx(job, dt)
    net = load_net(job, "net.pth", VNet(1, job.spec["nFilters"], vnet_heads(job)), dt)
    net.eval()
    with torch.no_grad():
        for i, o in enumerate(net(c.x)):
            job.put(p + "eval%d" % i, o)
    net.train()
    with torch.no_grad():
        for i, o in enumerate(net(c.x, masks=c.masks("drop"))):
            job.put(p + "train%d" % i, o)
    put_state(job, p + "net", net)


def supervised_terms(out_l, y):
    ce = F.cross_entropy(out_l, y)
    dice = dice_loss(F.softmax(out_l, dim=1)[:, 1], y == 1)
    return 0.5 * (ce + dice), ce, dice


def run_supervised(job, dt, p, s):
    c = Ctx(job, dt)
    net = load_net(job, "student.pth", VNet(1, job.spec["nFilters"], vnet_heads(job)), dt).train()
    put_predict(job, p + "predict_before", net, c.x, 0)
    opt = sgd(job, net)
    GATES.begin(c.gates())
    out = net(c.xl, masks=c.masks("student"))[0]
    GATES.end(s)
    loss, ce, dice = supervised_terms(out, c.y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    s.update(loss=loss.item(), ce=ce.item(), dice=dice.item(), lr=opt.param_groups[0]["lr"])
    put_state(job, p + "student", net)
    put_sgd(job, p, net, opt)
    put_predict(job, p + "predict_after", net, c.x, 0)


def mc_entropy(job, c, teacher, xs, seg_of, s, p):
    """UA-MT's T MC passes (T/2 forwards over the batch repeated twice), mean softmax,
    entropy; the certainty mask of the reference threshold. Returns the project's mask for the
    losses (flips at |U - threshold| ~ rounding would otherwise decide the comparison) and
    records ours."""
    hp = job.hp
    T, rep = hp["mcPasses"], hp["mcRepeats"]
    n = xs.shape[0]
    xr = xs.repeat(rep, 1, 1, 1, 1)
    preds = []
    with torch.no_grad():
        for i in range(T // rep):
            inp = xr + c.noise("mc%d" % i)
            preds.append(seg_of(teacher(inp, masks=c.masks("mc%d" % i))))
    preds = F.softmax(torch.cat(preds, 0), dim=1)
    preds = preds.reshape(T, n, *preds.shape[1:]).mean(0)
    unc = -1.0 * torch.sum(preds * torch.log(preds + 1e-6), dim=1, keepdim=True)
    it, total = job.spec["iteration"], job.spec["totalIterations"]
    nc = preds.shape[1]
    threshold = (0.75 + 0.25 * sigmoid_rampup(it, total)) * np.log(nc)
    own = (unc < threshold).to(c.dt)
    given = torch.from_numpy(job.array("mask").copy()).to(c.dt).reshape(own.shape)
    job.put(p + "entropy", unc)
    job.put(p + "own_mask", own)
    s.update(threshold=float(threshold))
    return given


def run_mean_teacher(job, dt, p, s, uncertainty):
    c = Ctx(job, dt)
    hp = job.hp
    nf, heads = job.spec["nFilters"], vnet_heads(job)
    student = load_net(job, "student.pth", VNet(1, nf, heads), dt).train()
    teacher = load_net(job, "teacher.pth", VNet(1, nf, heads), dt).train()
    for q in teacher.parameters():
        q.detach_()
    put_predict(job, p + "predict_before", student, c.x, 0)
    opt = sgd(job, student)
    it = job.spec["iteration"]
    bl = c.bl
    GATES.begin(c.gates())
    with torch.no_grad():
        ema_output = teacher(c.xu + c.noise("noise0"), masks=c.masks("teacher0"))[0]
    mask = mc_entropy(job, c, teacher, c.xu, lambda o: o[0], s, p) if uncertainty else None
    outputs = student(c.x, masks=c.masks("student"))[0]
    GATES.end(s)
    sup, ce, dice = supervised_terms(outputs[:bl], c.y)
    w = hp["consistency"] * sigmoid_rampup(it // hp["rampupEpochLength"], hp["consistencyRampup"])
    dist = softmax_mse_loss(outputs[bl:], ema_output)
    if uncertainty:
        cons = torch.sum(mask * dist) / (2 * torch.sum(mask) + 1e-16)
    else:
        cons = torch.mean(dist)
    loss = sup + w * cons
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema_update(teacher, student, hp["emaDecay"], it)
    s.update(loss=loss.item(), supervised=sup.item(), ce=ce.item(), dice=dice.item(),
             consistency=cons.item(), consistencyWeight=w, lr=opt.param_groups[0]["lr"])
    put_state(job, p + "student", student)
    put_state(job, p + "teacher", teacher)
    put_sgd(job, p, student, opt)
    put_predict(job, p + "predict_after", student, c.x, 0)


def run_dtc(job, dt, p, s):
    c = Ctx(job, dt)
    hp = job.hp
    net = load_net(job, "student.pth", VNet(1, job.spec["nFilters"], vnet_heads(job)), dt).train()
    put_predict(job, p + "predict_before", net, c.x, 1, sigmoid=True)
    opt = sgd(job, net)
    bl, it = c.bl, job.spec["iteration"]
    GATES.begin(c.gates())
    outputs_tanh, outputs = net(c.x, masks=c.masks("student"))
    GATES.end(s)
    outputs_soft = torch.sigmoid(outputs)
    gt_dis = torch.from_numpy(compute_sdf(c.y.numpy())).to(dt)
    job.put(p + "sdf_target", gt_dis)
    loss_sdf = F.mse_loss(outputs_tanh[:bl, 0, ...], gt_dis)
    loss_seg_dice = dice_loss(outputs_soft[:bl, 0, :, :, :], c.y == 1)
    dis_to_mask = torch.sigmoid(-hp["k"] * outputs_tanh)
    consistency_loss = torch.mean((dis_to_mask - outputs_soft) ** 2)
    supervised_loss = loss_seg_dice + hp["beta"] * loss_sdf
    w = hp["consistency"] * sigmoid_rampup(it // hp["rampupEpochLength"], hp["consistencyRampup"])
    loss = supervised_loss + w * consistency_loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    s.update(loss=loss.item(), dice=loss_seg_dice.item(), sdf=loss_sdf.item(),
             consistency=consistency_loss.item(), supervised=supervised_loss.item(),
             consistencyWeight=w, lr=opt.param_groups[0]["lr"])
    put_state(job, p + "student", net)
    put_sgd(job, p, net, opt)
    put_predict(job, p + "predict_after", net, c.x, 1, sigmoid=True)


def run_ug_mcl(job, dt, p, s):
    c = Ctx(job, dt)
    hp = job.hp
    ref = hp["referenceCode"]
    nf, heads = job.spec["nFilters"], vnet_heads(job)
    student = load_net(job, "student.pth", VNet(1, nf, heads), dt).train()
    teacher = load_net(job, "teacher.pth", VNet(1, nf, heads), dt).train()
    for q in teacher.parameters():
        q.detach_()

    def dual(outs):
        # (seg logits, "SDF"): the code's tanh of the same logits, or the paper's tanh head
        return (outs[0], torch.tanh(outs[0])) if ref else (outs[1], outs[0])

    seg_index = 0 if ref else 1
    put_predict(job, p + "predict_before", student, c.x, seg_index)
    opt = sgd(job, student)
    it, bl, k = job.spec["iteration"], c.bl, hp["k"]
    GATES.begin(c.gates())
    with torch.no_grad():
        ema_seg, ema_dis = dual(teacher(c.x + c.noise("noise0"), masks=c.masks("teacher0")))
    mask = mc_entropy(job, c, teacher, c.x, lambda o: dual(o)[0], s, p)
    outputs, outdis = dual(student(c.x, masks=c.masks("student")))
    GATES.end(s)
    loss_seg = F.cross_entropy(outputs[:bl], c.y)
    outputs_soft = F.softmax(outputs, dim=1)
    loss_seg_dice = dice_loss(outputs_soft[:bl, 1, :, :, :], c.y == 1)
    rampup = hp["consistencyRampup"]
    if rampup < 0:
        rampup = 200 if ref else 40
    w = hp["consistency"] * sigmoid_rampup(it // hp["rampupEpochLength"], rampup)
    if ref:
        # train_UGMCL_3D.py
        consistency_dist = softmax_mse_loss(outputs, ema_seg)
        itc = 0.5 * torch.sum(mask * consistency_dist) / (2 * torch.sum(mask) + 1e-16)
        dis_to_mask = torch.sigmoid(-k * outdis)
        loss_dis = dice_loss(dis_to_mask[:bl, 1, :, :, :], c.y == 1)
        ctc = torch.mean((dis_to_mask - outputs_soft) ** 2)
        sup = 0.5 * (loss_seg + loss_seg_dice + hp["disWeight"] * loss_dis)
    else:
        # paper Eqs. 2, 4, 6, 7 as methods/ug_mcl.ts reads them
        gt_dis = torch.from_numpy(compute_sdf(c.y.numpy())).to(dt)[:, None]
        job.put(p + "sdf_target", gt_dis)
        loss_dis = F.mse_loss(outdis[:bl], gt_dis)
        beta = hp["beta"]
        d_seg = softmax_mse_loss(outputs, ema_seg)
        d_dis = (outdis - ema_dis) ** 2
        itc = beta * torch.sum(mask * d_seg) / (d_seg.shape[1] * torch.sum(mask) + 1e-16) + \
            (1 - beta) * torch.sum(mask * d_dis) / (d_dis.shape[1] * torch.sum(mask) + 1e-16)
        ctc = torch.mean((torch.sigmoid(-k * outdis) - outputs_soft[:, 1:2]) ** 2)
        sup = hp["supervisedScale"] * (loss_seg + loss_seg_dice + hp["disWeight"] * loss_dis)
    loss = sup + w * itc + w * ctc
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema_update(teacher, student, hp["emaDecay"], it)
    s.update(loss=loss.item(), supervised=sup.item(), ce=loss_seg.item(),
             dice=loss_seg_dice.item(), dis=loss_dis.item(), itc=itc.item(), ctc=ctc.item(),
             certainFraction=mask.mean().item(), consistencyWeight=w,
             lr=opt.param_groups[0]["lr"])
    put_state(job, p + "student", student)
    put_state(job, p + "teacher", teacher)
    put_sgd(job, p, student, opt)
    put_predict(job, p + "predict_after", student, c.x, seg_index)


def run_massl(job, dt, p, s):
    c = Ctx(job, dt)
    hp = job.hp
    attention = job.spec["target"] == "attention"
    joint = hp["strategy"] == "joint"
    stop = hp["attentionGrad"] == "stop"
    nf = job.spec["nFilters"]
    rec_ch = 2 if attention else 1
    net = load_net(job, "net.pth", MasslNet(1, 1, nf, rec_ch), dt).train()
    it = job.spec["iteration"]
    u = c.xu if c.xu is not None else c.xl
    fg = (c.y == 1).to(dt)[:, None]

    with torch.no_grad():
        job.put(p + "predict_before", net(c.x, want_rec=False)[0])

    def rec_loss(p_seg, rec):
        if not attention:
            # MSSL: mean((R - x)^2) as the paper and the project. (The MSSL script, mode 'rec',
            # takes its target as sample['image'][:, 2].long(), which truncates the z-scored
            # FLAIR to integers; that is not reproduced.)
            return F.mse_loss(rec, u), {}
        # reference: labels_back = (1 - P) x, labels_fore = P x; w = sums / total; nn.MSELoss.
        # The script indexes outputsU[:, 0] against [B, 1, ...] targets, which broadcasts to
        # B x B pairs for B > 1 (it trains with batch 1); channels are kept here.
        back, fore = (1.0 - p_seg) * u, p_seg * u
        mb = F.mse_loss(rec[:, 0:1], back)
        mf = F.mse_loss(rec[:, 1:2], fore)
        if hp["weighted"]:
            w2, w3 = torch.sum(1.0 - p_seg), torch.sum(p_seg)
            total = w2 + w3
            w2, w3 = w2 / total, w3 / total
        else:
            w2 = w3 = torch.ones((), dtype=p_seg.dtype)
        loss = w2 * mb + w3 * mf
        return loss, {"mseBack": mb, "mseFore": mf, "wFore": w3}

    if joint:
        opt = torch.optim.Adam(net.parameters(), lr=hp["lrJoint"])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp["lrStep"], gamma=hp["lrGamma"])
        for _ in range(it + 1):
            sched.step()
        if attention and not stop:
            raise SystemExit("reference.py: joint training with attentionGrad 'encoder' is not tested")
        GATES.begin(c.gates())
        p_det = None
        if attention:
            with torch.no_grad():
                p_det = net(u, want_rec=False)[0]
        seg = dice_lf(net(c.xl, want_rec=False)[0], fg)
        _, rec = net(u, want_seg=False)
        GATES.end(s)
        rl, aux = rec_loss(p_det, rec)
        a = hp["alpha"]
        loss = a * seg + (1 - a) * rl
        opt.zero_grad()
        loss.backward()
        opt.step()
        s.update(loss=loss.item(), seg=seg.item(), rec=rl.item(), lr=opt.param_groups[0]["lr"])
        for k, v in aux.items():
            s[k] = v.item()
        opts = {"seg": opt}
    else:
        # Network_training_SSL_epoch(_attention)_BraTS18.py: two Adams over all parameters,
        # requires_grad switched per phase (trainL: encoder + seg decoder; trainU: encoder + rec
        # decoder), zero_grad on both before each phase.
        opt_l = torch.optim.Adam(net.parameters(), lr=hp["lrSeg"])
        opt_u = torch.optim.Adam(net.parameters(), lr=hp["lrRec"])
        sch_l = torch.optim.lr_scheduler.StepLR(opt_l, step_size=hp["lrStep"], gamma=hp["lrGamma"])
        sch_u = torch.optim.lr_scheduler.StepLR(opt_u, step_size=hp["lrStep"], gamma=hp["lrGamma"])
        for _ in range(it):
            sch_l.step()
            sch_u.step()
        GATES.begin(c.gates())
        # labeled phase
        sch_l.step()
        net.set_trainable(True, True, False)
        opt_l.zero_grad()
        opt_u.zero_grad()
        seg = dice_lf(net(c.xl, want_rec=False)[0], fg)
        seg.backward()
        opt_l.step()
        # unlabeled phase (a fresh forward after the labeled update)
        sch_u.step()
        net.set_trainable(True, False, True)
        opt_l.zero_grad()
        opt_u.zero_grad()
        if attention and stop:
            with torch.no_grad():
                p_det = net(u, want_rec=False)[0]
            _, rec = net(u, want_seg=False)
            rl, aux = rec_loss(p_det, rec)
        elif attention:
            pu, rec = net(u)
            rl, aux = rec_loss(pu, rec)
        else:
            _, rec = net(u, want_seg=False)
            rl, aux = rec_loss(None, rec)
        GATES.end(s)
        rl.backward()
        opt_u.step()
        net.set_trainable(True, True, True)
        s.update(loss=seg.item() + rl.item(), seg=seg.item(), rec=rl.item(),
                 lrSeg=opt_l.param_groups[0]["lr"], lrRec=opt_u.param_groups[0]["lr"])
        for k, v in aux.items():
            s[k] = v.item()
        opts = {"seg": opt_l, "rec": opt_u}
    put_state(job, p + "net", net)
    for tag, opt in opts.items():
        for k, par in net.named_parameters():
            st = opt.state.get(par)
            if st:
                job.put("%s%s.exp_avg/%s" % (p, tag, k), st["exp_avg"])
    with torch.no_grad():
        job.put(p + "predict_after", net(c.x, want_rec=False)[0])


RUNNERS = {
    "vnet": run_vnet,
    "supervised": run_supervised,
    "mean-teacher": lambda j, dt, p, s: run_mean_teacher(j, dt, p, s, False),
    "ua-mt": lambda j, dt, p, s: run_mean_teacher(j, dt, p, s, True),
    "dtc": run_dtc,
    "ug-mcl": run_ug_mcl,
    "massl": run_massl,
}


def main():
    job = Job(sys.argv[1])
    runner = RUNNERS[job.spec["method"]]
    for name, dt in (("f32", torch.float32), ("u32", torch.float32), ("f64", torch.float64)):
        PERTURB["on"] = name == "u32"
        s = {}
        runner(job, dt, name + ":", s)
        job.scalars[name] = s
    job.finish()


if __name__ == "__main__":
    main()
