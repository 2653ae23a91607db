/**
 * oneDNN implementations of tfjs's Conv3D, Conv3DBackpropInputV2 and Conv3DBackpropFilterV2
 * for the cpu backend. tfjs's NDHWC activations and DHWIO filters map directly onto oneDNN's
 * `ndhwc` / `dhwio` tags (zero-copy). Dilated convolutions and anything oneDNN refuses return
 * `null` (JS fallback).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ABI } from "./abi.ts";
import { dimsOf, type Dnnl, type Primitive, PrimitiveCache } from "./dnnl.ts";
import { f32, type KernelArgs, type NativeImpl } from "./kernel.ts";

type Shape5 = [number, number, number, number, number];
type Conv3DInfo = ReturnType<typeof tf.backend_util.computeConv3DInfo>;

interface Geometry {
  src: number[];
  wei: number[];
  dst: number[];
  strides: BigInt64Array<ArrayBuffer>;
  padL: BigInt64Array<ArrayBuffer>;
  padR: BigInt64Array<ArrayBuffer>;
  key: string;
}

function geometry(info: Conv3DInfo): Geometry | null {
  if (info.dilationDepth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    return null;
  }
  const p = info.padInfo;
  const g = {
    src: [info.batchSize, info.inChannels, info.inDepth, info.inHeight, info.inWidth],
    wei: [info.outChannels, info.inChannels, info.filterDepth, info.filterHeight, info.filterWidth],
    dst: [info.batchSize, info.outChannels, info.outDepth, info.outHeight, info.outWidth],
    strides: [info.strideDepth, info.strideHeight, info.strideWidth],
    padL: [p.front, p.top, p.left],
    padR: [p.back, p.bottom, p.right],
  };
  return {
    src: g.src,
    wei: g.wei,
    dst: g.dst,
    strides: dimsOf(g.strides),
    padL: dimsOf(g.padL),
    padR: dimsOf(g.padR),
    key: JSON.stringify(g),
  };
}

/** Build the three conv3d kernels on library `d`. */
export function conv3dKernels(d: Dnnl): Record<string, NativeImpl> {
  const cache = new PrimitiveCache();
  const mds = (g: Geometry) => ({
    src: d.mdTag(g.src, ABI.dnnl_ndhwc),
    wei: d.mdTag(g.wei, ABI.dnnl_dhwio),
    dst: d.mdTag(g.dst, ABI.dnnl_ndhwc),
  });
  const fwdDesc = (g: Geometry, m: ReturnType<typeof mds>) => {
    const op = new Uint8Array(ABI.sizeof_dnnl_convolution_desc_t);
    d.check(
      "convolution_forward_desc_init",
      d.sym.dnnl_convolution_forward_desc_init(
        op,
        ABI.dnnl_forward_training,
        ABI.dnnl_convolution_direct,
        m.src,
        m.wei,
        null,
        m.dst,
        g.strides,
        g.padL,
        g.padR,
      ),
    );
    return op;
  };

  const forward = (g: Geometry): Primitive | null =>
    cache.get("f" + g.key, () => {
      const m = mds(g);
      return d.primitive(fwdDesc(g, m), [
        [ABI.DNNL_ARG_SRC, m.src],
        [ABI.DNNL_ARG_WEIGHTS, m.wei],
        [ABI.DNNL_ARG_DST, m.dst],
      ]);
    });
  /** A backward primitive needs the forward primitive descriptor as a hint; freed on failure. */
  const withForwardHint = (
    g: Geometry,
    m: ReturnType<typeof mds>,
    op: Parameters<typeof d.primitive>[0],
    args: Parameters<typeof d.primitive>[1],
  ): Primitive => {
    const hint = d.primitiveDesc(fwdDesc(g, m));
    try {
      return d.primitive(op, args, hint);
    } catch (e) {
      d.destroyDesc(hint);
      throw e;
    }
  };
  const backwardData = (g: Geometry): Primitive | null =>
    cache.get("d" + g.key, () => {
      const m = mds(g);
      const op = new Uint8Array(ABI.sizeof_dnnl_convolution_desc_t);
      d.check(
        "convolution_backward_data_desc_init",
        d.sym.dnnl_convolution_backward_data_desc_init(
          op,
          ABI.dnnl_convolution_direct,
          m.src,
          m.wei,
          m.dst,
          g.strides,
          g.padL,
          g.padR,
        ),
      );
      return withForwardHint(g, m, op, [
        [ABI.DNNL_ARG_DIFF_DST, m.dst],
        [ABI.DNNL_ARG_WEIGHTS, m.wei],
        [ABI.DNNL_ARG_DIFF_SRC, m.src],
      ]);
    });
  const backwardWeights = (g: Geometry): Primitive | null =>
    cache.get("w" + g.key, () => {
      const m = mds(g);
      const op = new Uint8Array(ABI.sizeof_dnnl_convolution_desc_t);
      d.check(
        "convolution_backward_weights_desc_init",
        d.sym.dnnl_convolution_backward_weights_desc_init(
          op,
          ABI.dnnl_convolution_direct,
          m.src,
          m.wei,
          null,
          m.dst,
          g.strides,
          g.padL,
          g.padR,
        ),
      );
      return withForwardHint(g, m, op, [
        [ABI.DNNL_ARG_SRC, m.src],
        [ABI.DNNL_ARG_DIFF_DST, m.dst],
        [ABI.DNNL_ARG_DIFF_WEIGHTS, m.wei],
      ]);
    });

  const Conv3D: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"], w = inputs["filter"];
    const xv = f32(backend, x), wv = f32(backend, w);
    if (!x || !w || !xv || !wv) return null;
    const info = tf.backend_util.computeConv3DInfo(
      x.shape as Shape5,
      w.shape as Shape5,
      attrs["strides"] as [number, number, number],
      attrs["dilations"] as [number, number, number],
      attrs["pad"] as "valid" | "same",
    );
    const g = geometry(info);
    const prim = g && forward(g);
    if (!prim) return null;
    const y = new Float32Array(tf.util.sizeFromShape(info.outShape));
    prim.exec([xv, wv, y]);
    return backend.makeTensorInfo(info.outShape, "float32", y);
  };

  const Conv3DBackpropInputV2: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const dy = inputs["dy"], w = inputs["filter"];
    const dyv = f32(backend, dy), wv = f32(backend, w);
    if (!dy || !w || !dyv || !wv) return null;
    const inputShape = attrs["inputShape"] as Shape5;
    const info = tf.backend_util.computeConv3DInfo(
      inputShape,
      w.shape as Shape5,
      attrs["strides"] as [number, number, number],
      1,
      attrs["pad"] as "valid" | "same",
    );
    const g = geometry(info);
    const prim = g && backwardData(g);
    if (!prim) return null;
    const dx = new Float32Array(tf.util.sizeFromShape(inputShape));
    prim.exec([dyv, wv, dx]);
    return backend.makeTensorInfo([...inputShape], "float32", dx);
  };

  const Conv3DBackpropFilterV2: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"], dy = inputs["dy"];
    const xv = f32(backend, x), dyv = f32(backend, dy);
    if (!x || !dy || !xv || !dyv) return null;
    const filterShape = attrs["filterShape"] as Shape5;
    const info = tf.backend_util.computeConv3DInfo(
      x.shape as Shape5,
      filterShape,
      attrs["strides"] as [number, number, number],
      1,
      attrs["pad"] as "valid" | "same",
    );
    const g = geometry(info);
    const prim = g && backwardWeights(g);
    if (!prim) return null;
    const dw = new Float32Array(tf.util.sizeFromShape(filterShape));
    prim.exec([xv, dyv, dw]);
    return backend.makeTensorInfo([...filterShape], "float32", dw);
  };

  return { Conv3D, Conv3DBackpropInputV2, Conv3DBackpropFilterV2 };
}
