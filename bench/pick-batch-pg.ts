/**
 * What a pick costs PostgreSQL alone and in batches (postgres-pick-batches.ts):
 * a 200,000-job sweep queued, then picks through the engine's leaseNext,
 * one caller at a time (each pick its own statement) and in turns of 10 and
 * 64 like nodes asking at once (one PICK_MANY_SQL each). Alternated over
 * rounds, since every pick leaves a dead entry at the queue's head that the
 * next ones step over until vacuum. Reports the database's CPU per pick
 * (its backends' CPU from /proc, so the figure holds on a busy box too) and
 * the wall time per pick. The last line is the results as JSON.
 *   node --import tsx bench/pick-batch-pg.ts [PICKS_PER_ROUND=2000] [ROUNDS=3]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { tempDir } from '@nightshift/devfarm';
import { withPostgres } from './with-postgres.js';
import type { NewJob } from '../services/coordinator/src/store-engine/engine.js';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';

const PICKS = Number(process.argv[2] ?? 2_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const CAPS = { backends: ['procedural'], models: ['m1'], vramMb: 24_576 };
const LEASE = 60_000;
const JOBS = 200_000;

const jobs: NewJob[] = Array.from({ length: JOBS }, (_, i) => ({
  index: i,
  renderKey: `pb${i.toString(16).padStart(60, '0')}`,
  prompt: `a lighthouse at dusk ${i}`,
  seed: i,
  params: { width: 512, height: 512, steps: 20 },
  axes: {},
  backend: 'procedural',
  model: 'm1',
  minVramMb: 0,
}));

/** CPU seconds of the database's backends (its connections), from /proc. */
async function backendsCpu(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
  let sum = 0;
  for (const { pid } of rows) {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    sum += (Number(f[11]) + Number(f[12])) / 100;
  }
  return sum;
}

const tmp = tempDir('nightshift-pick-batch-');
const result = await withPostgres(tmp.dir, async (server) => {
  const url = await server.createDatabase('bench');
  const engine = await PostgresEngine.open({ url, poolSize: 4 });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await engine.createSweep({ name: 'big', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, jobs, 'sw-big');
    let node = 0;
    const sizes = [1, 10, 64];
    const totals = new Map(sizes.map((s) => [s, { cpu: 0, wall: 0, picks: 0, statements: 0 }]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const size of sizes) {
        const t = totals.get(size)!;
        const [cpu0, wall0, st0] = [await backendsCpu(admin), performance.now(), engine.picks.statements];
        for (let done = 0; done < PICKS; done += size) {
          const got = await Promise.all(Array.from({ length: size }, () => engine.leaseNext(`node-${node++ % 1_000}`, CAPS, LEASE)));
          if (got.some((j) => !j)) throw new Error('the queue ran dry');
        }
        t.wall += performance.now() - wall0;
        t.cpu += (await backendsCpu(admin)) - cpu0;
        t.picks += Math.ceil(PICKS / size) * size;
        t.statements += engine.picks.statements - st0;
      }
    }
    return Object.fromEntries(
      [...totals].map(([size, t]) => [
        size === 1 ? 'alone' : `turnsOf${size}`,
        { dbCpuMsPerPick: +((1000 * t.cpu) / t.picks).toFixed(3), wallMsPerPick: +(t.wall / t.picks).toFixed(3), picksPerStatement: +(t.picks / t.statements).toFixed(1) },
      ]),
    );
  } finally {
    await admin.end();
    await engine.close();
  }
});
tmp.cleanup();
console.log(JSON.stringify({ bench: 'pick-batch-pg', jobs: JOBS, picksPerRound: PICKS, rounds: ROUNDS, ...result }));
