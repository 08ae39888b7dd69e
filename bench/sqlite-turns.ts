/**
 * What SQLite's commits cost the node hub, and what one commit per event-loop
 * turn saves (StoreBase.batchTurns): the hub's calls for one job (a heartbeat
 * renewing its lease, the lease, the result, its render cost) for 20,000 jobs
 * on 100 nodes, a turn at a time, on a real file (WAL, synchronous=NORMAL, as
 * the coordinator opens it): once with every call its own transaction, once
 * with a turn's calls in one. Prints µs per job for each; JSON on the last line.
 *   node --import tsx bench/sqlite-turns.ts [JOBS=20000] [JOBS_PER_TURN=100]
 */
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import { JobCostSchema } from '@nightshift/proto';
import { tempDir } from '@nightshift/devfarm';
import { SqliteEngine } from '../services/coordinator/src/store-engine/sqlite.js';
import { PROC, newJobs, report } from '../services/coordinator/src/store-engine/conformance-helpers.js';

const JOBS = Number(process.argv[2] ?? 20_000);
const PER_TURN = Number(process.argv[3] ?? 100);
const NODES = 100;
const COST = create(JobCostSchema, { gpuMs: 1_000, energyMeasured: true, energyJoules: 200, gpuName: 'bench' });

async function run(batched: boolean): Promise<number> {
  const tmp = tempDir('nightshift-sqlite-turns-');
  const engine = SqliteEngine.open(join(tmp.dir, 'coordinator.sqlite'));
  try {
    if (batched)
      engine.batchTurns(
        (err) => {
          throw err;
        },
        (err) => {
          throw err;
        },
      );
    await engine.createSweep({ name: 'b', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('b', JOBS), 'sw-b');
    for (let i = 0; i < NODES; i++) await engine.nodes.upsertNode(`n${i}`, `n${i}`, { gpuName: 'x', vramMb: 8_192, backends: ['procedural'], models: [], slots: 1 });
    await engine.committed();
    const t0 = performance.now();
    let done = 0;
    while (done < JOBS) {
      for (let i = 0; i < PER_TURN && done < JOBS; i++, done++) {
        const node = `n${done % NODES}`;
        const job = (await engine.leaseNext(node, PROC, 60_000))!;
        await engine.heartbeat(node, [job.id], 60_000);
        if (!(await engine.completeJob(job.id, node, report(job))).accepted) throw new Error(`not accepted: ${job.id}`);
        await engine.costs.record(job.id, node, { renderMs: 1_000, skipped: false, cost: COST });
      }
      await nextTurn(); // the turn ends: a batched engine commits here
    }
    await engine.committed();
    return ((performance.now() - t0) * 1000) / JOBS;
  } finally {
    await engine.close();
    tmp.cleanup();
  }
}

const perCall = await run(false);
console.log(`every call its own transaction: ${perCall.toFixed(0)} µs/job`);
const perTurn = await run(true);
console.log(`one transaction per turn (${PER_TURN} jobs): ${perTurn.toFixed(0)} µs/job`);
console.log(JSON.stringify({ bench: 'sqlite-turns', jobs: JOBS, jobsPerTurn: PER_TURN, perCallUsPerJob: Math.round(perCall), perTurnUsPerJob: Math.round(perTurn), ratio: +(perTurn / perCall).toFixed(2) }));
