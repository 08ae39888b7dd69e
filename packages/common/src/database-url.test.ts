import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from './config.js';
import { MAX_DATABASE_URL_CHARS, databaseUrlProblem, redactDatabaseUrl } from './database-url.js';
import { createLogger } from './log.js';

const SECRET = 's3cr3t-Pa55';

test('NIGHTSHIFT_DATABASE_URL: unset or empty keeps SQLite; postgres:// and postgresql:// URLs are taken as written', () => {
  assert.equal(loadConfig({}).NIGHTSHIFT_DATABASE_URL, undefined);
  assert.equal(loadConfig({ NIGHTSHIFT_DATABASE_URL: '' }).NIGHTSHIFT_DATABASE_URL, undefined);
  for (const url of [
    `postgres://nightshift:${SECRET}@postgres:5432/nightshift`,
    `postgresql://nightshift:${SECRET}@db.example.lan/farm?sslmode=require`,
    'postgres://postgres@127.0.0.1:54321/postgres',
    'postgres://[::1]:5432/farm',
    // The local socket: no host, node-postgres's `host` parameter names the folder.
    'postgresql:///farm?host=/run/postgresql',
  ]) {
    assert.equal(databaseUrlProblem(url), undefined, url);
    assert.equal(loadConfig({ NIGHTSHIFT_DATABASE_URL: url }).NIGHTSHIFT_DATABASE_URL, url);
  }
});

test('NIGHTSHIFT_DATABASE_URL: anything else stops the config with a clear error that never quotes the password', () => {
  const bad: [string, RegExp][] = [
    [`mysql://nightshift:${SECRET}@db:3306/farm`, /NIGHTSHIFT_DATABASE_URL: the scheme must be postgres:\/\/ or postgresql:\/\/, not mysql:\/\//],
    [`sqlite:///data/${SECRET}.sqlite`, /NIGHTSHIFT_DATABASE_URL: the scheme must be postgres:\/\/ or postgresql:\/\//],
    [`nightshift:${SECRET}@db:5432/farm`, /NIGHTSHIFT_DATABASE_URL: (not a URL|the scheme must be)/],
    [`db.example.lan:5432`, /NIGHTSHIFT_DATABASE_URL: (not a URL|the scheme must be)/],
    [`postgres://nightshift:${SECRET}@db:5432`, /NIGHTSHIFT_DATABASE_URL: names no database/],
    [`postgres://nightshift:${SECRET}@db:99999/farm`, /NIGHTSHIFT_DATABASE_URL: not a URL/],
    [`postgres://nightshift:${SECRET}@db/${'x'.repeat(MAX_DATABASE_URL_CHARS)}`, new RegExp(`NIGHTSHIFT_DATABASE_URL: longer than ${MAX_DATABASE_URL_CHARS} characters`)],
  ];
  for (const [url, why] of bad) {
    assert.throws(
      () => loadConfig({ NIGHTSHIFT_DATABASE_URL: url }),
      (err: Error) => {
        assert.match(err.message, /^invalid configuration: /);
        assert.match(err.message, why, url);
        assert.ok(!err.message.includes(SECRET), `the error quotes the password: ${err.message}`);
        return true;
      },
    );
  }
  // From a settings file a non-string is refused too.
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-database-url-'));
  try {
    const file = join(dir, 'farm.yaml');
    writeFileSync(file, 'NIGHTSHIFT_DATABASE_URL: 5432\n');
    assert.throws(() => loadConfig({ NIGHTSHIFT_CONFIG: file }), /invalid configuration: NIGHTSHIFT_DATABASE_URL: .*expected string/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('redactDatabaseUrl hides the password (in the authority or as a parameter) and keeps the rest', () => {
  assert.equal(redactDatabaseUrl(`postgres://nightshift:${SECRET}@postgres:5432/nightshift`), 'postgres://nightshift:redacted@postgres:5432/nightshift');
  assert.equal(redactDatabaseUrl(`postgresql://db/farm?user=ns&password=${SECRET}`), 'postgresql://db/farm?user=ns&password=redacted');
  assert.equal(redactDatabaseUrl('postgres://postgres@127.0.0.1:5432/postgres'), 'postgres://postgres@127.0.0.1:5432/postgres');
  assert.equal(redactDatabaseUrl(`not a url ${SECRET}`), '[unparsable database URL]');
});

test('logs censor a database URL under its usual keys', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = createLogger('test', 'info', sink);
  const url = `postgres://nightshift:${SECRET}@postgres:5432/nightshift`;
  log.info({ NIGHTSHIFT_DATABASE_URL: url, databaseUrl: url, store: { connectionString: url, databaseUrl: url }, config: { NIGHTSHIFT_DATABASE_URL: url } }, 'store chosen');
  log.info({ database: redactDatabaseUrl(url) }, 'connecting');
  assert.equal(lines.length, 2);
  for (const line of lines) assert.ok(!line.includes(SECRET), `the log holds the password: ${line}`);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(
    [first.NIGHTSHIFT_DATABASE_URL, first.databaseUrl, first.store, first.config],
    ['[redacted]', '[redacted]', { connectionString: '[redacted]', databaseUrl: '[redacted]' }, { NIGHTSHIFT_DATABASE_URL: '[redacted]' }],
  );
  assert.equal((JSON.parse(lines[1]!) as { database: string }).database, 'postgres://nightshift:redacted@postgres:5432/nightshift');
});
