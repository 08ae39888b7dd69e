// @ts-check
// "Variations" of an image: an img2img sweep on the onnx backend that starts
// from the image itself (params.init, its object key) at a fixed strength,
// over a few seeds the prompt has not had yet.

/**
 * @typedef {import('./api-types.js').ImageDetail} ImageDetail
 * @typedef {import('./api-types.js').SpecDraft} SpecDraft
 */

/** How far a variation strays from the image (0: the image again, 1: ignore it). */
export const VARIATION_STRENGTH = 0.6;
export const VARIATION_COUNT = 4;

/** What the dialog says the button does. */
export const VARIATIONS_HINT = `Variations: ${VARIATION_COUNT} new seeds of this prompt started from this image (img2img, strength ${VARIATION_STRENGTH}) on the onnx backend.`;

/**
 * The sweep "Variations" submits for an image.
 * @param {ImageDetail} d
 * @param {number} [count]
 * @returns {SpecDraft}
 */
export function variationsSpec(d, count = VARIATION_COUNT) {
  const fromOnnx = d.backend === 'onnx';
  // An onnx image keeps its own settings (sampler, steps, negative prompt, model);
  // another backend's only its size: its steps and guidance mean something else there.
  const own = { ...d.params };
  delete own.init;
  delete own.strength;
  const base = fromOnnx ? own : { width: own.width, height: own.height };
  return {
    name: `variations of: ${d.prompt}`.slice(0, 200),
    prompts: [d.prompt],
    seeds: { start: d.nextSeed ?? d.seed + 1, count },
    params: { ...base, init: d.key, strength: VARIATION_STRENGTH },
    backend: 'onnx',
    ...(fromOnnx && d.model ? { model: d.model } : {}),
  };
}
