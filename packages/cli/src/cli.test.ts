import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { parseSseFrame, unreachableError, Client, EXIT } from './client.js';
import { checkSpecText, SpecFileError } from './spec-file.js';
import { duration, table } from './format.js';
import { main } from './cli.js';

test('spec problems point at the line and column of the field', () => {
  const text = ['name: x', 'prompts:', '  - ok', '  - ""', 'seeds:', '  count: 0', 'params:', '  width: 65', ''].join('\n');
  const err = (() => {
    try {
      checkSpecText('s.yaml', text);
    } catch (e) {
      return e;
    }
    throw new Error('no error');
  })();
  assert.ok(err instanceof SpecFileError);
  assert.equal(err.exitCode, EXIT.usage);
  const byPath = Object.fromEntries(err.problems.map((p) => [p.path, p.line]));
  assert.deepEqual(byPath, { 'prompts.1': 4, 'seeds.count': 6, 'params.width': 8 });
  assert.match(err.message, /^s\.yaml: invalid sweep spec\n {2}s\.yaml:4:5 {2}prompts\.1: must not be empty/);
});

test('a missing required field points at the document, JSON works too, and an empty file is named', () => {
  assert.throws(() => checkSpecText('a.json', '{"seeds": {"count": 1}}'), /a\.json:1:1 {2}prompts: /);
  const ok = checkSpecText('b.json', '{"prompts": ["x"], "axes": {"s": ["a", "b"]}, "seeds": [1, 2, 3]}');
  assert.equal(ok.jobs, 6);
  assert.throws(() => checkSpecText('c.yaml', '# nothing\n'), /c\.yaml: the file is empty/);
});

test('SSE frames parse into events', () => {
  assert.deepEqual(parseSseFrame('event: sweep\ndata: {"a":1}'), { event: 'sweep', data: { a: 1 } });
  assert.deepEqual(parseSseFrame('data: plain'), { event: 'message', data: 'plain' });
  assert.equal(parseSseFrame(': comment'), undefined);
});

test('unreachable errors name the URL, the cause and what to check', () => {
  const e = unreachableError('http://farm:8080', Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }));
  assert.equal(e.exitCode, EXIT.unreachable);
  assert.match(e.message, /^cannot reach the coordinator at http:\/\/farm:8080 \(connection refused/);
  assert.match(e.message, /NIGHTSHIFT_URL/);
  assert.throws(() => new Client('ftp://x'), /must be http/);
});

test('tables align and durations read well', () => {
  assert.equal(table(['A', 'BB'], [['long', 'x'], ['y', 'z']]), 'A     BB\nlong  x\ny     z');
  assert.equal(duration(5), '5s');
  assert.equal(duration(125), '2m05s');
  assert.equal(duration(7260), '2h01m');
  assert.equal(duration(null), '—');
});

test('main returns exit codes instead of exiting', async () => {
  const out = new PassThrough();
  const err = new PassThrough();
  let text = '';
  err.on('data', (b: Buffer) => (text += b.toString()));
  assert.equal(await main(['node', 'nightshift', '--help'], { out, err, env: {} }), 0);
  assert.equal(await main(['node', 'nightshift', 'frobnicate'], { out, err, env: {} }), EXIT.usage);
  assert.match(text, /unknown command 'frobnicate'/);
  assert.equal(await main(['node', 'nightshift', 'upscale'], { out, err, env: {} }), EXIT.usage);
  assert.match(text, /exactly one/);
});
