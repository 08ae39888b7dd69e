import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fingerprint, NodeTokens, parseTokensFile, sha256 } from './node-tokens.js';

const line = (name: string, token: string) => `${name} sha256:${sha256(token).toString('hex')}\n`;

test('no token configured: every node is let in (loopback farms)', () => {
  const t = new NodeTokens({});
  assert.equal(t.enabled, false);
  assert.deepEqual(t.check(undefined), { ok: true, name: 'open' });
});

test('env tokens: the single token and the comma list both enrol; others are refused with a reason', () => {
  const t = new NodeTokens({ token: 'alpha', tokens: ' beta , gamma,' });
  assert.equal(t.size, 3);
  for (const tok of ['alpha', 'beta', 'gamma']) assert.equal(t.check(`Bearer ${tok}`).ok, true, tok);
  assert.deepEqual(t.check(''), { ok: false, reason: 'missing token' });
  const bad = t.check('Bearer delta');
  assert.equal(bad.ok, false);
  assert.equal(!bad.ok && bad.reason, 'unknown or revoked token');
  // The fingerprint is of the hash and short: it does not give the token away.
  assert.equal(!bad.ok && bad.fingerprint, sha256('delta').toString('hex').slice(0, 12));
  assert.equal(t.check('Bearer alph').ok, false);
  assert.equal(t.check('Bearer alphaa').ok, false);
});

test('tokens file: hashes only, bad lines skipped, revocation by removing the line is seen on the next check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-tokens-'));
  try {
    const file = join(dir, 'tokens');
    writeFileSync(file, `# comment\n${line('gpu-a', 'tok-a')}${line('gpu-b', 'tok-b')}garbage here\n`);
    const t = new NodeTokens({ file });
    assert.equal(t.size, 2);
    assert.deepEqual(t.check('Bearer tok-a'), { ok: true, name: 'gpu-a', fingerprint: fingerprint(sha256('tok-a')) });
    assert.deepEqual(t.check('Bearer tok-b'), { ok: true, name: 'gpu-b', fingerprint: fingerprint(sha256('tok-b')) });
    assert.equal(t.hasFingerprint(fingerprint(sha256('tok-b'))), true);
    const rev = t.revision;
    writeFileSync(file, `${line('gpu-a', 'tok-a')}# gpu-b revoked\n`);
    assert.equal(t.check('Bearer tok-b').ok, false);
    assert.equal(t.hasFingerprint(fingerprint(sha256('tok-b'))), false, 'a revoked token no longer holds the node ids it enrolled');
    assert.ok(t.revision > rev);
    assert.equal(t.has('gpu-b'), false);
    assert.equal(t.has('gpu-a'), true);
    // A missing file fails closed.
    rmSync(file);
    assert.equal(t.check('Bearer tok-a').ok, false);
    assert.equal(t.enabled, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseTokensFile reports bad lines by number', () => {
  const { entries, errors } = parseTokensFile(`a sha256:${'0'.repeat(64)}\nb sha256:xyz\n\n`);
  assert.equal(entries.length, 1);
  assert.deepEqual(errors, ['line 2: expected "NAME sha256:<64 hex digits>"']);
});

test('tokens.ts add prints the token once and stores only its hash; revoke removes it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-tokens-'));
  const cli = fileURLToPath(new URL('./tokens.ts', import.meta.url));
  try {
    const file = join(dir, 'tokens');
    const run = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', cli, ...args, '--file', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    const token = run('add', 'gpu-7');
    assert.match(token, /^nst_[A-Za-z0-9_-]{43}$/);
    const stored = readFileSync(file, 'utf8');
    assert.ok(!stored.includes(token), 'the token itself is not stored');
    const t = new NodeTokens({ file });
    assert.deepEqual(t.check(`Bearer ${token}`), { ok: true, name: 'gpu-7', fingerprint: fingerprint(sha256(token)) });
    assert.match(run('list'), /^gpu-7\t[0-9a-f]{12}$/);
    run('revoke', 'gpu-7');
    assert.equal(t.check(`Bearer ${token}`).ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
