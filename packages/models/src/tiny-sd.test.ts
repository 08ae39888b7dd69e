/**
 * nightshift-tiny-sd's folder: the diffusers ONNX export layout, written
 * byte-for-byte the same by every build, with a CLIP tokenizer that
 * transformers.js loads offline.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AutoTokenizer, CLIPTokenizer } from '@huggingface/transformers';
import { ensureTinySd, TINY_SD_NAME } from './mod.js';
import { SdTokenizer } from './sd-tokenize.js';
import { buildTinySd, tinySdFiles } from './tiny-sd.js';

const LAYOUT = [
  'model_index.json',
  'scheduler/scheduler_config.json',
  'text_encoder/config.json',
  'text_encoder/model.onnx',
  'tokenizer/merges.txt',
  'tokenizer/special_tokens_map.json',
  'tokenizer/tokenizer.json',
  'tokenizer/tokenizer_config.json',
  'tokenizer/vocab.json',
  'unet/config.json',
  'unet/model.onnx',
  'vae_decoder/config.json',
  'vae_decoder/model.onnx',
  'vae_encoder/config.json',
  'vae_encoder/model.onnx',
];

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)).split(path.sep).join('/'))
    .sort();
}

async function sha256s(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await listFiles(dir)) out.set(f, createHash('sha256').update(await readFile(path.join(dir, f))).digest('hex'));
  return out;
}

describe('nightshift-tiny-sd folder', () => {
  let tmp: string;
  let folder: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tiny-sd-test-'));
    folder = await ensureTinySd(path.join(tmp, 'models'));
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('has the diffusers ONNX export layout, kilobytes in size', async () => {
    assert.equal(path.basename(folder), TINY_SD_NAME);
    assert.deepEqual(await listFiles(folder), LAYOUT);
    let total = 0;
    for (const f of LAYOUT) total += (await stat(path.join(folder, f))).size;
    assert.ok(total < 1024 * 1024, `${total} bytes`);
    const index = JSON.parse(await readFile(path.join(folder, 'model_index.json'), 'utf8'));
    assert.equal(index._class_name, 'StableDiffusionPipeline');
    assert.deepEqual(index.unet, ['diffusers', 'UNet2DConditionModel']);
    const scheduler = JSON.parse(await readFile(path.join(folder, 'scheduler/scheduler_config.json'), 'utf8'));
    assert.equal(scheduler._class_name, 'EulerDiscreteScheduler');
    assert.equal(scheduler.beta_schedule, 'scaled_linear');
    assert.equal(scheduler.num_train_timesteps, 1000);
    const vae = JSON.parse(await readFile(path.join(folder, 'vae_decoder/config.json'), 'utf8'));
    assert.equal(vae.scaling_factor, 0.18215);
  });

  test('two builds write the same bytes (sha256 per file), and ensure leaves a current folder alone', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await buildTinySd(a);
    await buildTinySd(b);
    const ha = await sha256s(a);
    assert.deepEqual([...ha.keys()], LAYOUT);
    assert.deepEqual(ha, await sha256s(b));
    assert.deepEqual(ha, await sha256s(folder));
    const before = (await stat(path.join(folder, 'unet/model.onnx'))).mtimeMs;
    assert.equal(await ensureTinySd(path.join(tmp, 'models')), folder);
    assert.equal((await stat(path.join(folder, 'unet/model.onnx'))).mtimeMs, before);
    // A different seed is a different model; the same seed is the same model.
    assert.notDeepEqual(tinySdFiles({ seed: 1 }).get('unet/model.onnx'), tinySdFiles().get('unet/model.onnx'));
    assert.deepEqual(tinySdFiles({ seed: 1 }).get('unet/model.onnx'), tinySdFiles({ seed: 1 }).get('unet/model.onnx'));
  });

  test('ensure repairs a stale folder, and two ensures at once end with one current folder', async () => {
    const models = path.join(tmp, 'race');
    const [a, b] = await Promise.all([ensureTinySd(models), ensureTinySd(models)]);
    assert.equal(a, b);
    await writeFile(path.join(a!, 'unet', 'model.onnx'), 'stale');
    await ensureTinySd(models);
    assert.deepEqual(await sha256s(a!), await sha256s(folder));
    assert.deepEqual(await readdir(models), [TINY_SD_NAME], 'no temporary folders left behind');
  });

  test('the tokenizer is a CLIPTokenizer for transformers.js, offline: start/end tokens, padding and truncation at 77', async () => {
    const raw = await AutoTokenizer.from_pretrained(path.join(folder, 'tokenizer'), { local_files_only: true });
    assert.ok(raw instanceof CLIPTokenizer);
    const tok = await SdTokenizer.load(path.join(folder, 'tokenizer'));
    assert.equal(tok.maxLength, 77);
    const [short, long, empty] = tok.encodeRows(['A  Red circle', 'word '.repeat(100), '']);
    const bos = 512;
    const eos = 513;
    // Lower-cased, whitespace collapsed, spelled letter by letter with </w> ending each word.
    const letters = raw.convert_tokens_to_ids(['a</w>', 'r', 'e', 'd</w>', 'c', 'i', 'r', 'c', 'l', 'e</w>']);
    assert.deepEqual(short!.slice(0, 12), [bos, ...letters, eos]);
    assert.deepEqual(short!.slice(12), new Array(65).fill(eos));
    assert.equal(long!.length, 77);
    assert.equal(long![0], bos);
    assert.equal(long![76], eos, 'truncation keeps the end-of-text token');
    assert.ok(!long!.slice(1, 76).includes(eos));
    assert.deepEqual(empty, [bos, ...new Array(76).fill(eos)]);
    assert.deepEqual(Array.from(tok.encode(['A  Red circle'])), short);
  });
});
