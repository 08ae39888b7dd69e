/** `nightshift best` against a stand-in coordinator: the request it makes, the table (taste or aesthetic), and the 409's message. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { EXIT } from '../client.js';
import { main } from '../cli.js';

let server: Server;
let url: string;
const seen: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/api/sweeps/pretty/best')) {
      res.end(
        JSON.stringify({
          results: [{ key: 'images/cc.png', renderKey: 'cc', score: 6.25, favorite: false, url: '/files/images/cc.png' }],
          scoredBy: 'aesthetic',
          aesthetic: { head: 'sac-logos-ava1-l14@0123456789ab', scored: 1, unscored: 0 },
          taste: { error: 'too few favorites to learn from: 3 of the 10 needed (star more images)', favorites: 3, needed: 10 },
        }),
      );
      return;
    }
    if (req.url?.startsWith('/api/sweeps/few/best')) {
      res.statusCode = 409;
      res.end(JSON.stringify({ error: 'too few favorites to learn from: 3 of the 10 needed (star more images)', favorites: 3, needed: 10 }));
      return;
    }
    res.end(
      JSON.stringify({
        results: [
          { key: 'images/aa.png', renderKey: 'aa', score: 0.91, favorite: false, url: '/files/images/aa.png' },
          { key: 'images/bb.png', renderKey: 'bb', score: 0.52, favorite: true, url: '/files/images/bb.png' },
        ],
        scoredBy: 'taste',
        model: { positives: 12, negatives: 88, cvAuc: 0.934, trainedAt: '2026-03-02T07:00:00.000Z' },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (d: Buffer) => (chunks.out += String(d)));
  err.on('data', (d: Buffer) => (chunks.err += String(d)));
  const code = await main(['node', 'nightshift', '--url', url, ...args], { out, err, env: {} });
  return { code, ...chunks };
}

test('best SWEEP --k 2 --unstarred: asks the ranking and prints the model and a table', async () => {
  const r = await run('best', 'night/1', '--k', '2', '--unstarred');
  assert.equal(r.code, EXIT.ok);
  assert.equal(seen.at(-1), '/api/sweeps/night%2F1/best?k=2&starred=false');
  assert.match(r.out, /12 favorites, 88 not starred, cross-validated AUC 0\.93/);
  assert.match(r.out, /0\.910 +images\/aa\.png/);
  assert.match(r.out, /0\.520 +★ +images\/bb\.png/);
});

test('best --json gives absolute URLs', async () => {
  const r = await run('--json', 'best', 'night');
  const body = JSON.parse(r.out) as { results: { url: string }[]; scoredBy: string };
  assert.equal(body.scoredBy, 'taste');
  assert.equal(body.results[0]!.url, `${url}/files/images/aa.png`);
  assert.equal(seen.at(-1), '/api/sweeps/night/best?k=20');
});

test('too few favorites: the server says so and the exit code is 1', async () => {
  const r = await run('best', 'few');
  assert.equal(r.code, EXIT.failed);
  assert.match(r.err, /too few favorites to learn from: 3 of the 10/);
});

test('too few favorites with an aesthetic head: the head\'s ranking, said to be the head\'s', async () => {
  const r = await run('best', 'pretty');
  assert.equal(r.code, EXIT.ok);
  assert.match(r.out, /scored by the aesthetic head sac-logos-ava1-l14@0123456789ab: 3 of the 10 favorites a taste model needs/);
  assert.match(r.out, /6\.250 +images\/cc\.png/);
});

test('a bad --k is a usage error', async () => {
  assert.equal((await run('best', 'night', '--k', '0')).code, EXIT.usage);
});
