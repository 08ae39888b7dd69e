/**
 * Storing a sweep's jobs with COPY (postgres-job-insert.ts) on a real
 * PostgreSQL: every field comes back as written whatever it holds, a failure
 * halfway (the expansion's or the database's) stores nothing and leaves the
 * connection usable, and the jobs' sweep is still checked as the foreign key
 * checked it (now once per statement, postgres-schema.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { jobId, type NewJob } from '../store/rows.js';
import { PostgresEngine } from './postgres.js';
import { copyField, storeJobs } from './postgres-job-insert.js';

const { skip, server } = postgresForFile();
let databases = 0;


/** A migrated database and an admin client on it. */
async function database(): Promise<{ client: pg.Client; close: () => Promise<void> }> {
  const url = await server().createDatabase(`job_insert_${++databases}`);
  const engine = await PostgresEngine.open({ url });
  await engine.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return { client, close: () => client.end() };
}

async function addSweep(c: pg.Client, id: string): Promise<void> {
  await c.query(`INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at) VALUES ($1, $1, '{}', 'queued', 0, 'procedural', 0, 0)`, [id]);
}

const job = (index: number, over: Partial<NewJob> = {}): NewJob => ({
  index,
  renderKey: `key-${index}`,
  prompt: `prompt ${index}`,
  seed: index,
  params: { width: 64, height: 64 },
  axes: {},
  backend: 'procedural',
  model: 'procedural-v1',
  minVramMb: 0,
  ...over,
});

test('copyField escapes what COPY text reads specially, and only that', () => {
  assert.equal(copyField('plain text, "quoted", é ✓'), 'plain text, "quoted", é ✓');
  assert.equal(copyField('a\tb\nc\rd\\e'), 'a\\tb\\nc\\rd\\\\e');
  assert.equal(copyField('\\N'), '\\\\N');
  assert.equal(copyField('\\.'), '\\\\.');
});

test('every field is stored as written: tabs, newlines, backslashes, \\N and \\. in prompts, NULL and set source keys, JSON, big seeds', { skip }, async () => {
  const { client, close } = await database();
  try {
    await addSweep(client, 'sw-fields');
    const odd = ['tab\there', 'line\nbreak', 'carriage\rreturn', 'back\\slash', '\\N', '\\.', 'both \\t and \t', '"quoted" \'single\'', 'unicode é ✓ 🌙', ''];
    const jobs = odd.map((prompt, i) =>
      job(i, { prompt, params: { width: 64, height: 64, negative: `no ${prompt}` }, axes: { style: prompt }, seed: Number.MAX_SAFE_INTEGER - i, ...(i % 2 ? { kind: 'upscale' as const, sourceKey: `images/${prompt}.png` } : {}) }),
    );
    await client.query('BEGIN');
    assert.equal(await storeJobs(client, 'sw-fields', jobs, 'hash-1'), jobs.length);
    await client.query('COMMIT');
    const { rows } = await client.query<Record<string, unknown>>('SELECT * FROM jobs WHERE sweep_id = $1 ORDER BY idx', ['sw-fields']);
    assert.equal(rows.length, jobs.length);
    for (const [i, j] of jobs.entries()) {
      const r = rows[i]!;
      assert.equal(r.id, jobId('sw-fields', i));
      assert.equal(r.prompt, j.prompt, `prompt ${i}`);
      assert.equal(Number(r.seed), j.seed);
      assert.deepEqual(JSON.parse(r.params_json as string), j.params);
      assert.deepEqual(JSON.parse(r.axes_json as string), j.axes);
      assert.equal(r.source_key, j.sourceKey ?? null);
      assert.equal(r.kind, j.kind ?? 'render');
      assert.equal(r.state, 'queued');
      assert.equal(r.model_hash, 'hash-1');
    }
    const counts = await client.query<{ n: number }>(`SELECT SUM(n)::int AS n FROM sweep_counts WHERE sweep_id = 'sw-fields' AND state = 'queued'`);
    assert.equal(counts.rows[0]!.n, jobs.length, 'the counter trigger counted the COPY');
  } finally {
    await close();
  }
});

test('an expansion that throws halfway ends the COPY: the error comes back, nothing is stored, the connection goes on', { skip }, async () => {
  const { client, close } = await database();
  try {
    await addSweep(client, 'sw-keep');
    function* failing(): Generator<NewJob> {
      for (let i = 0; i < 2_500; i++) yield job(i);
      throw new Error('expansion broke at 2500');
    }
    await client.query('BEGIN');
    await assert.rejects(storeJobs(client, 'sw-keep', failing(), ''), /expansion broke at 2500/);
    await client.query('ROLLBACK');
    assert.equal((await client.query('SELECT count(*)::int AS n FROM jobs')).rows[0].n, 0);
    // The same connection stores the next sweep.
    await client.query('BEGIN');
    assert.equal(await storeJobs(client, 'sw-keep', [job(0), job(1)], ''), 2);
    await client.query('COMMIT');
    assert.equal((await client.query('SELECT count(*)::int AS n FROM jobs')).rows[0].n, 2);
  } finally {
    await close();
  }
});

test('a row the database refuses early (a NUL in a prompt, the rest still being written) rejects with its error, stores nothing, and the connection goes on', { skip }, async () => {
  const { client, close } = await database();
  try {
    await addSweep(client, 'sw-nul');
    const jobs = Array.from({ length: 50_000 }, (_, i) => job(i, i === 10 ? { prompt: 'bad \u0000 byte' } : {}));
    await client.query('BEGIN');
    await assert.rejects(storeJobs(client, 'sw-nul', jobs, ''), (err: { code?: string }) => err.code === '22021');
    await client.query('ROLLBACK');
    assert.equal((await client.query('SELECT count(*)::int AS n FROM jobs')).rows[0].n, 0);
    await client.query('BEGIN');
    assert.equal(await storeJobs(client, 'sw-nul', [job(0)], ''), 1);
    await client.query('COMMIT');
  } finally {
    await close();
  }
});

test("jobs' sweeps are checked as the foreign key did: no job of a missing sweep, no sweep with jobs deleted or renamed (SQLSTATE 23503)", { skip }, async () => {
  const { client, close } = await database();
  try {
    await client.query('BEGIN');
    await assert.rejects(storeJobs(client, 'sw-missing', [job(0)], ''), (err: { code?: string; constraint?: string }) => err.code === '23503' && err.constraint === 'jobs_sweep_id_fkey');
    await client.query('ROLLBACK');
    await addSweep(client, 'sw-a');
    await addSweep(client, 'sw-b');
    await addSweep(client, 'sw-empty');
    await client.query('BEGIN');
    await storeJobs(client, 'sw-a', [job(0), job(1)], '');
    await client.query('COMMIT');
    await assert.rejects(client.query(`UPDATE jobs SET sweep_id = 'sw-missing' WHERE id = $1`, [jobId('sw-a', 0)]), { code: '23503' });
    await client.query(`UPDATE jobs SET sweep_id = 'sw-b' WHERE id = $1`, [jobId('sw-a', 1)]);
    await assert.rejects(client.query(`DELETE FROM sweeps WHERE id = 'sw-a'`), { code: '23503' });
    await assert.rejects(client.query(`UPDATE sweeps SET id = 'sw-renamed' WHERE id = 'sw-b'`), { code: '23503' });
    await client.query(`UPDATE sweeps SET status = 'running' WHERE id = 'sw-a'`);
    await client.query(`DELETE FROM sweeps WHERE id = 'sw-empty'`);
    assert.deepEqual((await client.query('SELECT id FROM sweeps ORDER BY id')).rows.map((r) => r.id), ['sw-a', 'sw-b']);
  } finally {
    await close();
  }
});
