/**
 * VRAM a render of a given size needs, for placement. The figures follow a
 * Stable-Diffusion-class model in fp16: about 4 GiB of weights and runtime,
 * plus activations that grow with the pixel count — so 256×256 fits an 8 GB
 * GTX 1070 and 512×512 does not, as users of such cards report. Nodes whose
 * generator knows better can advertise more VRAM or a bigger card.
 *
 * A batch (params.batch: several seeds of one prompt in one UNet call) keeps
 * one copy of the weights and multiplies the activations by its size.
 */
const BASE_MB = 4096;
const ACTIVATIONS_MB_PER_256_SQUARE = 1536;

export function estimateVramMb(width: number, height: number, batch = 1): number {
  return Math.ceil(BASE_MB + ACTIVATIONS_MB_PER_256_SQUARE * ((width * height) / (256 * 256)) * Math.max(1, batch));
}

/**
 * How many images of `wanted` (a job's params.batch) a card of `vramMb` renders
 * in one batch: the most whose estimate fits, at least 1 (a job's own floor,
 * estimateVramMb(w, h), is what placement checks). Both the coordinator's
 * dispatch and the node's batcher size batches with it.
 */
export function batchForVram(width: number, height: number, wanted: number, vramMb: number): number {
  let b = Math.max(1, Math.floor(wanted));
  while (b > 1 && estimateVramMb(width, height, b) > vramMb) b--;
  return b;
}
