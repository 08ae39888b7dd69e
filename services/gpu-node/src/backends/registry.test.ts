/** Node config → backends: schema, defaults, relative paths and the example file. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ExecBackend, vramFromTable } from './exec.js';
import { backendsFromEnv, buildBackends, loadNodeConfig, parseNodeConfig } from './registry.js';
import { UpscaleBackend } from './upscale.js';

const EXAMPLE = fileURLToPath(new URL('../../../../examples/node-config.yaml', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'nightshift-registry-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('node config', () => {
  test('no NIGHTSHIFT_NODE_CONFIG: procedural only', () => {
    assert.deepEqual([...backendsFromEnv({}).keys()], ['procedural']);
  });

  test('the example config parses: procedural, exec with two generators, upscale', () => {
    const config = loadNodeConfig(EXAMPLE);
    const examples = path.dirname(EXAMPLE);
    assert.equal(config.generators[0]!.cwd, examples, 'cwd resolved against the config folder');
    assert.equal(config.upscale?.model, path.resolve(examples, '../.data/models/nightshift-tiny-upscaler-x4.onnx'));
    const backends = buildBackends(config);
    assert.deepEqual([...backends.keys()], ['procedural', 'exec', 'upscale']);
    const exec = backends.get('exec') as ExecBackend;
    assert.deepEqual(exec.models, ['node-example', 'diffusers', 'stable-diffusion-v1-5/stable-diffusion-v1-5']);
    assert.equal(vramFromTable(exec.resolve('diffusers').gen.vramMb, 512, 512), 6144);
    assert.deepEqual(backends.get('upscale')!.models, ['nightshift-tiny-upscaler-x4']);
  });

  test('JSON files work too, and procedural can be switched off', () => {
    const file = path.join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({ procedural: false, generators: [{ name: 'g', command: ['gen', '--out={output}'], cwd: 'work' }] }));
    const config = loadNodeConfig(file);
    assert.equal(config.generators[0]!.cwd, path.join(dir, 'work'));
    assert.equal(config.generators[0]!.timeoutMs, 30 * 60_000, 'defaults filled in');
    assert.deepEqual([...buildBackends(config).keys()], ['exec']);
    assert.deepEqual([...backendsFromEnv({ NIGHTSHIFT_NODE_CONFIG: file }).keys()], ['exec']);
  });

  test('upscale without a model: the backend exists (jobs fail clearly) and advertises no model', () => {
    const backends = buildBackends(parseNodeConfig({ upscale: {} }));
    const up = backends.get('upscale');
    assert.ok(up instanceof UpscaleBackend);
    assert.deepEqual(up.models, []);
  });

  test('errors name the field', () => {
    assert.throws(() => parseNodeConfig({ generators: [{ name: 'g', command: ['x', '{promt}'] }] }), /generators\.0\.command\.1: unknown placeholder \{promt\}/);
    assert.throws(() => parseNodeConfig({ generators: [{ name: 'g' }] }), /generators\.0\.command/);
    assert.throws(() => parseNodeConfig({ generators: [{ name: 'g', command: ['x'], vramMb: { big: 1 } }] }), /generators\.0\.vramMb/);
    assert.throws(() => parseNodeConfig({ generators: [{ name: 'g', command: ['x'] }, { name: 'g', command: ['y'] }] }), /"g" is defined twice/);
    assert.throws(() => parseNodeConfig({ upscale: { tileSize: 2 } }), /upscale\.tileSize/);
    assert.throws(() => parseNodeConfig({ typo: true }), /invalid node config/);
    assert.throws(() => buildBackends(parseNodeConfig({ procedural: false })), /enables no backend/);
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'generators: [unclosed');
    assert.throws(() => loadNodeConfig(bad), /not valid YAML/);
    assert.throws(() => loadNodeConfig(path.join(dir, 'missing.yaml')), /cannot read node config/);
  });
});

test('onnx.maxLoadedModels: default 2, at least 1', () => {
  assert.equal(parseNodeConfig({ onnx: {} }).onnx?.maxLoadedModels, 2);
  assert.equal(parseNodeConfig({ onnx: { maxLoadedModels: 5 } }).onnx?.maxLoadedModels, 5);
  assert.throws(() => parseNodeConfig({ onnx: { maxLoadedModels: 0 } }), /onnx\.maxLoadedModels/);
});
