import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { main } from '../cli.js';
import { parseQuota, parseWeight } from './keys.js';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  const err = new PassThrough();
  let e = '';
  err.on('data', (b: Buffer) => (e += b.toString()));
  // Port 9 (discard): nothing is sent for a refused input, so nothing needs to answer.
  const code = await main(['node', 'nightshift', '--url', 'http://127.0.0.1:9', ...args], { out: new PassThrough(), err, env: {} });
  return { code, err: e };
}

test('keys add: the quota is images a day ("500" or "500/day"), the weight a positive share', () => {
  assert.equal(parseQuota('500'), 500);
  assert.equal(parseQuota('500/day'), 500);
  assert.throws(() => parseQuota('500/week'), /images a day/);
  assert.throws(() => parseQuota('-1'), /images a day/);
  assert.equal(parseWeight('2.5'), 2.5);
  assert.throws(() => parseWeight('0'), /0\.01 to 1000/);
  assert.throws(() => parseWeight('lots'), /0\.01 to 1000/);
});

test('keys: bad names and options exit 2 before anything is sent', async () => {
  const badName = await run(['keys', 'add', 'Alice Smith']);
  assert.equal(badName.code, 2);
  assert.match(badName.err, /key names are 1-64 of a-z/);
  assert.equal((await run(['keys', 'add', 'alice', '--quota-images', 'many'])).code, 2);
  assert.equal((await run(['keys', 'revoke', '../etc'])).code, 2);
});
