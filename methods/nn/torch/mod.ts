/**
 * PyTorch interop: read `.pth` checkpoints (zip and legacy formats), find their state_dict,
 * map it onto this project's networks with the reference names and layouts, and write `.pth`
 * files that PyTorch loads with `torch.load(path, weights_only=True)`.
 *
 * - `zip.ts`: the zip container (stored/deflate, CRC-32 checked; writer with torch's alignment)
 * - `pickle.ts`: pickles (the npm `pickleparser` reads; a protocol-2 writer)
 * - `tensor.ts`: storages and strided tensors
 * - `pth.ts`: the two `torch.save` formats
 * - `statedict.ts`: where the state_dict is in a checkpoint, `module.` prefixes
 * - `reference.ts`: reference names and layouts of VNet (UA-MT, DTC) and MasslNet
 * - `bridge.ts`: `loadTorchStateDict(net, file)` and `saveTorchStateDict(net, file)`
 * @module
 */
export * from "./bridge.ts";
export * from "./pth.ts";
export * from "./reference.ts";
export * from "./statedict.ts";
export * from "./tensor.ts";
export { looksLikeZip, writeZip, ZipReader } from "./zip.ts";
