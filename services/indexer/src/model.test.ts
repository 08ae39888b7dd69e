import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { freePort } from '@nightshift/devfarm';
import { ensureTinyClip } from '@nightshift/models';
import { loadModel } from './model.js';

/** A logger that keeps its lines, to check what the operator is told. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

describe('model selection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'model-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('no setting: the built-in test model, and the log says so', async () => {
    const { log, lines } = capture();
    const m = await loadModel(undefined, dir, log);
    assert.match(m.id, /^nightshift-tiny-clip@[0-9a-f]{12}$/);
    assert.ok(lines.some((l) => l.level === 40 && /built-in test model/.test(l.msg)));
    await m.embedder.dispose();
  });

  test('a local folder: its id changes when its files do (a model change)', async () => {
    const folder = join(dir, 'my-clip');
    cpSync(await ensureTinyClip(join(dir, 'models')), folder, { recursive: true });
    const a = await loadModel(folder, dir, capture().log);
    assert.match(a.id, /^my-clip@/);
    writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', pad_token: '[PAD]', unk_token: '[UNK]', model_max_length: 77 }));
    const b = await loadModel(folder, dir, capture().log);
    assert.notEqual(a.id, b.id);
    await Promise.all([a.embedder.dispose(), b.embedder.dispose()]);
    await assert.rejects(loadModel(join(dir, 'nothing-here'), dir, capture().log), /no model folder there/);
  });

  test('a Hub id without network: falls back to the test model with an error line', async () => {
    // A closed loopback port stands in for an unreachable Hub (tests never leave loopback).
    const { log, lines } = capture();
    const m = await loadModel('Xenova/clip-vit-base-patch32', dir, log, { hubEndpoint: `http://127.0.0.1:${await freePort()}`, hubTimeoutMs: 10_000 });
    assert.match(m.id, /^nightshift-tiny-clip@/);
    assert.match(m.fallback ?? '', /cannot load CLIP model Xenova\/clip-vit-base-patch32 from the Hub/);
    assert.ok(lines.some((l) => l.level === 50 && /FALLING BACK to the built-in test model/.test(l.msg)));
    await m.embedder.dispose();
  });
});
