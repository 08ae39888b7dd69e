import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { formatA1111Parameters } from './a1111.js';
import { addPngTextChunk, readPngTextChunks } from './png-text.js';
import { RemixError, remixPng } from './remix.js';
import { a1111Infotext, comfyApiGraph, comfyPng, comfyWorkflow, invokeMetadata, pngChunk, pngWithText, PyFloat, pyJsonDumps, zTxtChunk, type ComfyFixture, type PyJson } from './remix-fixtures.js';

const A1111_PARAMS: [string, string][] = [
  ['Steps', '20'],
  ['Sampler', 'DPM++ 2M'],
  ['Schedule type', 'Karras'],
  ['CFG scale', '7.0'],
  ['Seed', '965400086'],
  ['Size', '512x768'],
  ['Model hash', 'e6e99610c4'],
  ['Model', 'v1-5-pruned'],
  ['Clip skip', '2'],
  ['Lora hashes', 'a: 1b2c, b: 3d4e'],
  ['Version', 'v1.10.1'],
];

test('the fixture JSON is Python json.dumps, not JSON.stringify', () => {
  const v: PyJson = { a: [1, new PyFloat(2)], b: 'é猫', c: null };
  assert.equal(pyJsonDumps(v), '{"a": [1, 2.0], "b": "\\u00e9\\u732b", "c": null}');
  assert.equal(pyJsonDumps(v, { compact: true, ensureAscii: false }), '{"a":[1,2.0],"b":"é猫","c":null}');
});

test('A1111: prompt, negative prompt and settings; hashes and version are not settings', () => {
  const text = a1111Infotext('a cat, (masterpiece:1.2)', 'blurry', A1111_PARAMS);
  assert.match(text, /Lora hashes: "a: 1b2c, b: 3d4e", Version/, 'the fixture quotes like A1111');
  const png = pngWithText(512, 768, [['parameters', text]]);
  const r = remixPng(png);
  assert.equal(r.source, 'a1111');
  assert.deepEqual(r.spec, {
    prompts: ['a cat, (masterpiece:1.2)'],
    seeds: [965400086],
    params: { width: 512, height: 768, steps: 20, guidance: 7, negative_prompt: 'blurry', sampler: 'DPM++ 2M', scheduler: 'Karras', clip_skip: 2 },
    backend: 'exec',
    model: 'v1-5-pruned',
  });
  assert.deepEqual(r.notes, []);
});

test('A1111: a non-latin-1 prompt goes in iTXt (as Pillow writes it) and reads back', () => {
  const text = a1111Infotext('猫, 🐈 on a mat', '', A1111_PARAMS.slice(0, 6));
  const png = pngWithText(512, 768, [['parameters', text]]);
  assert.ok(png.includes(Buffer.from('iTXtparameters')), 'iTXt chunk');
  const r = remixPng(png);
  assert.equal(r.spec.prompts[0], '猫, 🐈 on a mat');
  assert.equal(r.spec.params.negative_prompt, undefined, 'no negative line, no param');
});

test('A1111 text in a zTXt chunk is read too', () => {
  const png = pngWithText(64, 64, [], [zTxtChunk('parameters', a1111Infotext('zipped', '', A1111_PARAMS.slice(0, 6)))]);
  assert.equal(remixPng(png).spec.prompts[0], 'zipped');
});

test('Nightshift: the spec comes back exactly, every param with its type', () => {
  const text = formatA1111Parameters({
    prompt: 'a red circle, oil painting',
    seed: 7,
    width: 128,
    height: 64,
    steps: 12,
    guidance: 6.5,
    model: 'procedural-v1',
    backend: 'procedural',
    extra: { sampler: 'euler', tiling: false, strength: 0.35, note: 'a, b: c', tiny: 1e-7 },
  });
  const r = remixPng(addPngTextChunk(pngWithText(128, 64, []), 'parameters', text));
  assert.equal(r.source, 'nightshift');
  assert.deepEqual(r.spec, {
    prompts: ['a red circle, oil painting'],
    seeds: [7],
    params: { width: 128, height: 64, steps: 12, guidance: 6.5, sampler: 'euler', tiling: false, strength: 0.35, note: 'a, b: c', tiny: 1e-7 },
    backend: 'procedural',
    model: 'procedural-v1',
  });
});

const COMFY: ComfyFixture = {
  positive: 'beautiful scenery nature glass bottle landscape, purple galaxy bottle, é',
  negative: 'text, watermark',
  seed: 156680208700286,
  steps: 20,
  cfg: 8,
  sampler: 'euler',
  scheduler: 'normal',
  width: 512,
  height: 512,
  ckpt: 'v1-5-pruned-emaonly.safetensors',
};
const COMFY_SPEC = {
  prompts: [COMFY.positive],
  seeds: [156680208700286 % 2 ** 32],
  params: { width: 512, height: 512, steps: 20, guidance: 8, negative_prompt: 'text, watermark', sampler: 'euler', scheduler: 'normal' },
  backend: 'exec',
  model: 'v1-5-pruned-emaonly',
};

test('ComfyUI: prompt and workflow as the stock frontend saves them (ASCII JSON in tEXt)', () => {
  const png = comfyPng(COMFY);
  const chunks = readPngTextChunks(png);
  assert.deepEqual(Object.keys(chunks), ['prompt', 'workflow']);
  assert.match(chunks.prompt!, /"cfg": 8.0, "sampler_name": "euler"/);
  assert.match(chunks.prompt!, /bottle, \\u00e9"/, 'non-ASCII escaped, as json.dumps does');
  const r = remixPng(png);
  assert.equal(r.source, 'comfyui');
  assert.deepEqual(r.spec, COMFY_SPEC);
  assert.match(r.notes.join('\n'), /seed 156680208700286 is outside Nightshift's 32-bit seeds/);
});

test('ComfyUI: a bare API call (prompt only) and a workflow only give the same spec', () => {
  assert.deepEqual(remixPng(comfyPng(COMFY, { workflow: false })).spec, COMFY_SPEC);
  assert.deepEqual(remixPng(comfyPng(COMFY, { prompt: false })).spec, COMFY_SPEC);
});

test('ComfyUI: a workflow with schema-1 link objects reads the same', () => {
  const wf = comfyWorkflow(COMFY) as { links: [number, number, number, number, number, string][] } & Record<string, PyJson>;
  const v1 = { ...wf, version: 1, links: wf.links.map(([id, origin_id, origin_slot, target_id, target_slot, type]) => ({ id, origin_id, origin_slot, target_id, target_slot, type })) };
  assert.deepEqual(remixPng(pngWithText(512, 512, [['workflow', pyJsonDumps(v1)]])).spec, COMFY_SPEC);
});

test('ComfyUI: the sampler that feeds the saved image wins; links to primitive nodes are followed', () => {
  const graph = comfyApiGraph({ ...COMFY, seed: 5 }) as Record<string, { inputs: Record<string, PyJson>; class_type: string }>;
  // Hires fix: a second KSamplerAdvanced on an upscaled latent feeds the decoder; its seed comes from a primitive node.
  graph['10'] = { class_type: 'LatentUpscale', inputs: { upscale_method: 'nearest-exact', width: 1024, height: 1024, crop: 'disabled', samples: ['3', 0] } };
  graph['11'] = {
    class_type: 'KSamplerAdvanced',
    inputs: { add_noise: 'enable', noise_seed: ['12', 0], steps: 12, cfg: new PyFloat(7.5), sampler_name: 'dpmpp_2m', scheduler: 'karras', start_at_step: 0, end_at_step: 10000, return_with_leftover_noise: 'disable', model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['10', 0] },
  };
  graph['12'] = { class_type: 'PrimitiveInt', inputs: { value: 42 } };
  graph['8']!.inputs.samples = ['11', 0];
  const r = remixPng(pngWithText(1024, 1024, [['prompt', pyJsonDumps(graph)]]));
  assert.deepEqual(r.spec.seeds, [42]);
  assert.equal(r.spec.params.steps, 12);
  assert.equal(r.spec.params.sampler, 'dpmpp_2m');
  assert.deepEqual([r.spec.params.width, r.spec.params.height], [512, 512], 'the empty latent, not the upscale target');
  assert.equal(r.spec.prompts[0], COMFY.positive);
});

test('ComfyUI img2img (no empty latent): the size is the image\'s, with a note', () => {
  const graph = comfyApiGraph(COMFY) as Record<string, { inputs: Record<string, PyJson>; class_type: string }>;
  graph['5'] = { class_type: 'VAEEncode', inputs: { pixels: ['13', 0], vae: ['4', 2] } };
  graph['13'] = { class_type: 'LoadImage', inputs: { image: 'in.png', upload: 'image' } };
  graph['3']!.inputs.denoise = new PyFloat(0.6);
  const r = remixPng(pngWithText(640, 448, [['prompt', pyJsonDumps(graph)]]));
  assert.deepEqual([r.spec.params.width, r.spec.params.height, r.spec.params.denoise], [640, 448, 0.6]);
  assert.match(r.notes.join('\n'), /no size: using the image's, 640x448/);
});

test('InvokeAI: invokeai_metadata (compact JSON, raw non-ASCII so iTXt)', () => {
  const meta = invokeMetadata({ positive: 'a fox in snow, 雪', negative: 'blurry', seed: 3141592653, steps: 30, cfg: 7.5, scheduler: 'dpmpp_2m_k', width: 1024, height: 1024, model: 'Juggernaut XL v9' });
  const png = pngWithText(1024, 1024, [['invokeai_metadata', pyJsonDumps(meta, { compact: true, ensureAscii: false })]]);
  assert.ok(png.includes(Buffer.from('iTXtinvokeai_metadata')));
  const r = remixPng(png);
  assert.equal(r.source, 'invokeai');
  assert.deepEqual(r.spec, {
    prompts: ['a fox in snow, 雪'],
    seeds: [3141592653],
    params: { width: 1024, height: 1024, steps: 30, guidance: 7.5, negative_prompt: 'blurry', scheduler: 'dpmpp_2m_k' },
    backend: 'exec',
    model: 'Juggernaut XL v9',
  });
});

test('unknown metadata: a RemixError naming the chunks that are there', () => {
  const err = (png: Buffer) => {
    try {
      remixPng(png);
    } catch (e) {
      assert.ok(e instanceof RemixError);
      return e;
    }
    assert.fail('expected a RemixError');
  };
  const e1 = err(pngWithText(64, 64, [['Software', 'GIMP'], ['Comment', 'hello']]));
  assert.equal(e1.reason, 'no-metadata');
  assert.deepEqual(e1.found, ['Software', 'Comment']);
  assert.match(e1.message, /text chunks "Software", "Comment"; looked for parameters/);
  assert.match(err(pngWithText(64, 64, [])).message, /the PNG has no text chunks/);
  // SwarmUI's JSON `parameters`, a `prompt` that is not a graph, a last line with under 3 settings.
  assert.equal(err(pngWithText(64, 64, [['parameters', '{"sui_image_params": {"prompt": "x"}}']])).reason, 'no-metadata');
  assert.equal(err(pngWithText(64, 64, [['prompt', 'a cat']])).reason, 'no-metadata');
  assert.equal(err(pngWithText(64, 64, [['parameters', 'a cat\nSteps: 20']])).reason, 'no-metadata');
  assert.equal(err(Buffer.from('GIF89a')).reason, 'not-png');
  assert.equal(err(pngWithText(64, 64, [['parameters', 'x']]).subarray(0, 50)).reason, 'not-png', 'truncated inside a chunk');
  // A zip bomb: 64 MiB of text in a small zTXt chunk is refused instead of inflated.
  const bomb = Buffer.concat([Buffer.from('parameters\0\0', 'latin1'), zlib.deflateSync(Buffer.alloc(64 * 1024 * 1024, 0x61), { level: 9 })]);
  assert.ok(bomb.length < 200_000);
  const e2 = err(pngWithText(64, 64, [], [pngChunk('zTXt', bomb)]));
  assert.equal(e2.reason, 'not-png');
  assert.match(e2.message, /unreadable PNG/);
});
