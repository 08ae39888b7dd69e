import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { addModel } from '@nightshift/registry';
import { expandSweep, parseSpec, SpecError } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { submitSweep, submitUpscale } from './sweeps.js';
import type { SweepDeps } from './deps.js';
import { advertisedBy, specModel, upscaleModel } from './sweep-model.js';

let s3: S3Server;
let storage: Storage;
const tmp = tempDir('nightshift-sweep-model-');

before(async () => {
  s3 = await startS3Server(join(tmp.dir, 's3'));
  storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();
});
after(async () => {
  await s3?.stop();
  tmp.cleanup();
});

async function addFolder(name: string, content: string) {
  const dir = join(tmp.dir, `${name}-${content}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), content);
  return (await addModel(storage, name, 'diffusion', dir)).manifest;
}

const deps = (advertised: string[] = []) => ({ storage, advertised: (n: string) => advertised.includes(n) });
const spec = (model?: string, backend = 'onnx') => ({ prompts: ['a lighthouse'], seeds: { count: 2 }, backend, ...(model ? { model } : {}), params: { width: 64, height: 64, steps: 2 } });

function sweepDeps(store: EngineStore): SweepDeps {
  return {
    config: loadConfig({}),
    log: { info: () => {} },
    engine: new SqliteEngine(store),
    hub: { dispatch: async () => {}, cancelJobs: () => {} },
  };
}

test('a registered name resolves to its hash at submit; a re-add under the name changes no stored sweep', async () => {
  const v1 = await addFolder('castle-xl', 'weights v1');
  const resolved = await specModel(deps(), spec('castle-xl'));
  assert.deepEqual(resolved, { name: 'castle-xl', hash: v1.hash, bytes: v1.totalSize });
  assert.deepEqual(await specModel(deps(), spec(v1.hash)), { name: v1.hash, hash: v1.hash, bytes: v1.totalSize }, 'by hash too');

  const store = new EngineStore(openDb(join(tmp.dir, 'a.db')));
  const { id } = await submitSweep(sweepDeps(store), spec('castle-xl'), undefined, resolved);
  const v2 = await addFolder('castle-xl', 'weights v2');
  assert.notEqual(v2.hash, v1.hash);
  const again = await specModel(deps(), spec('castle-xl'));
  const { id: id2 } = await submitSweep(sweepDeps(store), spec('castle-xl'), undefined, again);

  const first = store.getSweep(id)!;
  assert.equal(first.model_hash, v1.hash);
  assert.equal(first.model_bytes, v1.totalSize);
  assert.equal(first.model, 'castle-xl');
  const jobs1 = store.jobs(id);
  const jobs2 = store.jobs(id2);
  assert.ok(jobs1.every((j) => j.model_hash === v1.hash && j.model === 'castle-xl'));
  assert.ok(jobs2.every((j) => j.model_hash === v2.hash));
  // The hash is in the render key: other weights, other images; and not the name's key.
  const byName = expandSweep(parseSpec(spec('castle-xl')), 100);
  assert.notDeepEqual(jobs1.map((j) => j.render_key), jobs2.map((j) => j.render_key));
  assert.notDeepEqual(jobs1.map((j) => j.render_key), byName.map((j) => j.renderKey));
});

test('models known only by name keep their render keys; unknown names on onnx and unknown hashes are refused', async () => {
  // The built-in and node-advertised names stay names (no hash, keys as before).
  assert.equal(await specModel(deps(), spec()), undefined, 'onnx default nightshift-tiny-sd, not registered here');
  assert.equal(await specModel(deps(['sd-turbo']), spec('sd-turbo')), undefined);
  assert.equal(await specModel(deps(), spec('my-generator', 'exec')), undefined, 'exec generators are names nodes know');
  assert.equal(await specModel(deps(), spec(undefined, 'procedural')), undefined);
  const store = new EngineStore(openDb(join(tmp.dir, 'b.db')));
  const { id } = await submitSweep(sweepDeps(store), spec('sd-turbo'), undefined, undefined);
  assert.deepEqual(store.jobs(id).map((j) => j.render_key), expandSweep(parseSpec(spec('sd-turbo')), 100).map((j) => j.renderKey));
  assert.equal(store.getSweep(id)!.model_hash, '');

  await assert.rejects(specModel(deps(), spec('sd-typo')), (err: unknown) => err instanceof SpecError && /unknown model "sd-typo"/.test(err.details[0]!.message) && err.details[0]!.path === 'model');
  await assert.rejects(specModel(deps(), spec('f'.repeat(64), 'exec')), (err: unknown) => err instanceof SpecError && /no registered model has hash/.test(err.details[0]!.message));
  // No bucket: names stay names, a hash cannot be checked and is refused.
  await assert.rejects(specModel({ storage: {}, advertised: () => false }, spec('a'.repeat(64), 'exec')), SpecError);
  // An invalid spec is left for submitSweep to report.
  assert.equal(await specModel(deps(), { prompts: [] }), undefined);
});

test('advertisedBy reads node capabilities', () => {
  const has = advertisedBy({ listNodes: () => [{ capabilities_json: JSON.stringify({ models: ['sd-turbo'] }) }, { capabilities_json: '{}' }] });
  assert.equal(has('sd-turbo'), true);
  assert.equal(has('other'), false);
});

test('an upscale names a registry upscaler by name or hash: its jobs carry the hash; unknown or non-upscaler models are refused', async () => {
  const file = join(tmp.dir, 'x4.onnx');
  writeFileSync(file, 'an upscaler');
  const up = (await addModel(storage, 'tiny-x4', 'upscaler', file)).manifest;
  await addFolder('not-an-upscaler', 'sd weights');
  assert.deepEqual(await upscaleModel(storage, { keys: ['x'], model: 'tiny-x4' }), { name: 'tiny-x4', hash: up.hash, bytes: up.totalSize });
  assert.deepEqual(await upscaleModel(storage, { keys: ['x'], model: up.hash }), { name: up.hash, hash: up.hash, bytes: up.totalSize });
  assert.equal(await upscaleModel(storage, { keys: ['x'] }), undefined, "no model: each node's configured upscaler");
  assert.equal(await upscaleModel(storage, { keys: ['x'], model: 'default' }), undefined);
  const refused = async (input: unknown, s: Partial<typeof storage>, why: RegExp) =>
    assert.rejects(upscaleModel(s, input), (err: unknown) => err instanceof SpecError && err.details[0]!.path === 'model' && why.test(err.details[0]!.message));
  await refused({ model: 'no-such' }, storage, /no registered model no-such/);
  await refused({ model: 'not-an-upscaler' }, storage, /is a diffusion model, not an upscaler/);
  await refused({ model: '../x' }, storage, /a registered model name or a 64-hex model hash/);
  await refused({ model: 7 }, storage, /a registered model name/);
  await refused({ model: 'tiny-x4' }, {}, /needs the bucket/);
  // The other way round: a sweep on the onnx backend refuses an upscaler (exec generators take any kind).
  await assert.rejects(specModel(deps(), spec('tiny-x4')), (err: unknown) => err instanceof SpecError && /tiny-x4 is of kind upscaler; the onnx backend renders with a diffusion model/.test(err.details[0]!.message));
  assert.equal((await specModel(deps(), spec('tiny-x4', 'exec')))?.hash, up.hash);

  // The batch's sweep and jobs carry the upscaler's hash, so nodes pull it; without one, 'default' as before.
  const store = new EngineStore(openDb(join(tmp.dir, 'up.db')));
  const { id } = await submitSweep(sweepDeps(store), spec(undefined, 'procedural'));
  store.db.prepare(`UPDATE jobs SET state = 'done' WHERE sweep_id = ?`).run(id);
  const keys = store.jobs(id).map((j) => `images/${j.render_key}.png`);
  const withModel = await submitUpscale(sweepDeps(store), { keys, model: 'tiny-x4' }, undefined, await upscaleModel(storage, { model: 'tiny-x4' }));
  const sweep = store.getSweep(withModel.id)!;
  assert.deepEqual([sweep.model, sweep.model_hash, sweep.model_bytes], ['tiny-x4', up.hash, up.totalSize]);
  assert.ok(store.jobs(withModel.id).every((j) => j.model === 'tiny-x4' && j.model_hash === up.hash && j.kind === 'upscale'));
  const plain = await submitUpscale(sweepDeps(store), { keys });
  assert.ok(store.jobs(plain.id).every((j) => j.model === 'default' && j.model_hash === ''));
  // A model named but not resolved (a caller that skipped upscaleModel) is refused, not silently the default.
  await assert.rejects(submitUpscale(sweepDeps(store), { keys, model: 'tiny-x4' }), /was not resolved in the registry/);
});
