import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { addModel, resolveModel } from '@nightshift/registry';
import type { NodeRow } from './store/rows.js';
import { modelsRoute, sweepsUsingModel, type ModelView } from './models.js';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';

let s3: S3Server;
let storage: Storage;
const tmp = tempDir('nightshift-models-route-');
/** An engine whose registered nodes are these. */
const nodesOf = (rows: NodeRow[]) => ({ nodes: { listNodes: async () => rows } });
const node = (id: string, models: string[]): NodeRow => ({ id, name: id, capabilities_json: JSON.stringify({ models }), status: 'online', last_seen: 0, connected_at: 0, jobs_done: 0 });

before(async () => {
  s3 = await startS3Server(join(tmp.dir, 's3'));
  storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();
});
after(async () => {
  await s3?.stop();
  tmp.cleanup();
});

test('GET /api/models lists names with their nodes; GET one; DELETE refused while in use, then removes', async () => {
  const dir = join(tmp.dir, 'm');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), 'weights');
  const { manifest } = await addModel(storage, 'tiny-clip', 'clip', dir);
  let busy: string | undefined = '2 queued jobs of sweep s1';
  const app = modelsRoute({ storage, engine: nodesOf([node('n1', [manifest.hash]), node('n2', ['other']), node('n3', ['tiny-clip'])]), modelInUse: async () => busy });

  const list = (await (await app.request('/')).json()) as { models: ModelView[] };
  assert.equal(list.models.length, 1);
  assert.deepEqual({ ...list.models[0], addedAt: undefined }, { name: 'tiny-clip', hash: manifest.hash, kind: 'clip', size: 7, files: manifest.files, addedAt: undefined, nodes: ['n1', 'n3'] });

  assert.equal(((await (await app.request(`/${manifest.hash}`)).json()) as ModelView).name, 'tiny-clip');
  assert.equal((await app.request('/nope')).status, 404);
  assert.equal((await app.request('/..%2Fx')).status, 400);

  const refused = await app.request('/tiny-clip', { method: 'DELETE' });
  assert.equal(refused.status, 409);
  assert.match(((await refused.json()) as { error: string }).error, /in use: 2 queued jobs/);
  busy = undefined;
  assert.equal((await app.request(`/${manifest.hash}`, { method: 'DELETE' })).status, 400, 'by name only');
  const gone = await app.request('/tiny-clip', { method: 'DELETE' });
  assert.deepEqual(await gone.json(), { name: 'tiny-clip', hash: manifest.hash, contentRemoved: true });
  assert.equal(await resolveModel(storage, manifest.hash), undefined);
  assert.equal((await app.request('/tiny-clip', { method: 'DELETE' })).status, 404);
});

test('without a bucket the routes say so', async () => {
  const app = modelsRoute({ storage: { get: () => Promise.resolve(Buffer.alloc(0)) }, engine: nodesOf([]) });
  assert.equal((await app.request('/')).status, 503);
});

test('a model pulled into connected nodes\' caches lists them in nodes', async () => {
  const dir = join(tmp.dir, 'pulled');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), 'pulled weights');
  const { manifest } = await addModel(storage, 'pulled', 'diffusion', dir);
  const app = modelsRoute({ storage, engine: nodesOf([node('n1', ['pulled'])]), hub: { models: { holders: (h) => (h === manifest.hash ? ['n7', 'n1'] : []) } } });
  const one = (await (await app.request('/pulled')).json()) as ModelView;
  assert.deepEqual(one.nodes, ['n1', 'n7']);
});

test('DELETE is refused while a sweep resolved to the model still has queued work', async () => {
  const dir = join(tmp.dir, 'busy');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), 'busy weights');
  const { manifest } = await addModel(storage, 'busy', 'diffusion', dir);
  const store = new EngineStore(openDb(':memory:'));
  const job = { index: 0, renderKey: 'rk', prompt: 'p', seed: 1, params: {}, axes: {}, backend: 'onnx', model: 'busy', minVramMb: 0 };
  store.createSweep({ name: 's', spec: {}, priority: 0, backend: 'onnx', model: 'busy', modelHash: manifest.hash, modelBytes: manifest.totalSize }, [job], 'sw-busy');
  const app = modelsRoute({ storage, engine: nodesOf([]), modelInUse: sweepsUsingModel(new SqliteEngine(store)) });
  const refused = await app.request('/busy', { method: 'DELETE' });
  assert.equal(refused.status, 409);
  assert.match(((await refused.json()) as { error: string }).error, /1 queued or running job\(s\) of sweep sw-busy/);
  store.cancelSweep('sw-busy');
  assert.equal((await app.request('/busy', { method: 'DELETE' })).status, 200);
});
