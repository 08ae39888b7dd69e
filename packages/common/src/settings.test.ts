import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { loadConfig } from './config.js';
import { parseSettings, readSettingsFile, settingsInput } from './settings.js';

const dir = mkdtempSync(join(tmpdir(), 'nightshift-settings-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

test('settingsInput: the NIGHTSHIFT_CONFIG file (YAML or JSON), NIGHTSHIFT_* variables over it, empty ones unset', () => {
  const yaml = join(dir, 'farm.yaml');
  writeFileSync(yaml, 'NIGHTSHIFT_S3_BUCKET: from-file\nNIGHTSHIFT_MAX_JOBS: 5\n');
  const json = join(dir, 'farm.json');
  writeFileSync(json, JSON.stringify({ NIGHTSHIFT_MAX_JOBS: 7 }));
  assert.deepEqual(settingsInput({ NIGHTSHIFT_CONFIG: yaml, NIGHTSHIFT_S3_BUCKET: 'from-env', NIGHTSHIFT_NODE_NAME: '', HOME: '/root' }), {
    NIGHTSHIFT_CONFIG: yaml,
    NIGHTSHIFT_S3_BUCKET: 'from-env',
    NIGHTSHIFT_MAX_JOBS: 5,
  });
  assert.deepEqual(readSettingsFile(json), { NIGHTSHIFT_MAX_JOBS: 7 });
  assert.deepEqual(readSettingsFile(undefined), {});
  assert.throws(() => readSettingsFile(join(dir, 'missing.yaml')), /ENOENT/);
});

test('parseSettings names every bad field; loadConfig is the shared schema over settingsInput', () => {
  const Schema = z.object({ NIGHTSHIFT_A: z.coerce.number().int(), NIGHTSHIFT_B: z.string() });
  assert.deepEqual(parseSettings(Schema, { NIGHTSHIFT_A: '3', NIGHTSHIFT_B: 'x', OTHER: 1 }, 'test options'), { NIGHTSHIFT_A: 3, NIGHTSHIFT_B: 'x' });
  assert.throws(() => parseSettings(Schema, { NIGHTSHIFT_A: 'x' }, 'test options'), /^Error: invalid test options: NIGHTSHIFT_A: .+; NIGHTSHIFT_B: /);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'NIGHTSHIFT_MAX_JOBS: 12\nNIGHTSHIFT_S3_BUCKET: shared\n');
  const config = loadConfig({ NIGHTSHIFT_CONFIG: file, NIGHTSHIFT_S3_BUCKET: 'mine' });
  assert.equal(config.NIGHTSHIFT_MAX_JOBS, 12);
  assert.equal(config.NIGHTSHIFT_S3_BUCKET, 'mine');
  assert.throws(() => loadConfig({ NIGHTSHIFT_S3_BUCKET: 'No_Such' }), /invalid configuration: NIGHTSHIFT_S3_BUCKET: not a valid bucket name/);
});
