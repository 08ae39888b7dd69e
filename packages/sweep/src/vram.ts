/**
 * VRAM a render of a given size needs, for placement. The figures follow a
 * Stable-Diffusion-class model in fp16: about 4 GiB of weights and runtime,
 * plus activations that grow with the pixel count — so 256×256 fits an 8 GB
 * GTX 1070 and 512×512 does not, as users of such cards report. Nodes whose
 * generator knows better can advertise more VRAM or a bigger card.
 */
export function estimateVramMb(width: number, height: number): number {
  return Math.ceil(4096 + 1536 * ((width * height) / (256 * 256)));
}
