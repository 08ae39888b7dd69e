/**
 * Dispatch throughput: jobs/s through the real coordinator (SQLite, scheduler,
 * leases, outbox to a real nats-server) to 32 simulated nodes that complete
 * jobs instantly, beside a bare gRPC round-trip loop over the same kind of
 * stream and the same 32 connections — the transport's ceiling on this box.
 * "Complete" includes the coordinator's storage check of each report (a HEAD
 * of the job's image and thumbnail against a real s3rver child process): the
 * simulated nodes upload nothing, so a 1×1 placeholder of each object is
 * stored before the timed phase (untimed set-up, bench/placeholders.ts; its
 * duration is printed apart). The last line is the results as JSON.
 *   node --import tsx bench/dispatch.ts [JOBS=20000] [NODES=32]
 */
import { join } from 'node:path';
import { execPath } from 'node:process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { addService, ConnectResponseSchema, NodeService, type ConnectRequest, type ConnectResponse } from '@nightshift/proto';
import { createLogger, loadConfig, storageFromConfig } from '@nightshift/common';
import { freePort, startNatsServer, startProcess, startS3Server, tempDir, waitFor } from '@nightshift/devfarm';
import { startCoordinator } from '@nightshift/coordinator';
import { renderKeysOf, storePlaceholders } from './placeholders.js';

const JOBS = Number(process.argv[2] ?? 20_000);
const NODES = Number(process.argv[3] ?? 32);
const SIM = fileURLToPath(new URL('./sim-nodes.ts', import.meta.url));
const tmp = tempDir('nightshift-bench-');

async function bareRoundTrips(seconds: number): Promise<number> {
  // The same bidi method, answered immediately with an assignment: no database, no scheduling.
  const server = new grpc.Server();
  addService(server, NodeService, {
    connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      let n = 0;
      call.on('data', () => call.write(create(ConnectResponseSchema, { msg: { case: 'assign', value: { jobId: `j${n++}`, renderKey: 'k'.repeat(64) } } })));
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const sim = startProcess('sim', execPath, ['--import', 'tsx', SIM, `127.0.0.1:${port}`, String(NODES), 'echo', String(seconds)]);
  await sim.exited;
  server.forceShutdown();
  const { roundTrips } = JSON.parse(sim.output().trim().split('\n').pop()!) as { roundTrips: number };
  return roundTrips / seconds;
}

async function coordinatorThroughput(): Promise<{ jobsPerSec: number; seconds: number; submitSeconds: number; setupSeconds: number }> {
  const nats = await startNatsServer(join(tmp.dir, 'nats'));
  const s3 = await startS3Server(join(tmp.dir, 's3'));
  const grpcPort = await freePort();
  const config = loadConfig({
    NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'coord'),
    NIGHTSHIFT_NATS_URL: nats.url,
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_S3_ACCESS_KEY: s3.accessKey,
    NIGHTSHIFT_S3_SECRET_KEY: s3.secretKey,
    NIGHTSHIFT_GRPC_PORT: String(grpcPort),
    NIGHTSHIFT_HTTP_PORT: '0',
    NIGHTSHIFT_MAX_JOBS: String(JOBS),
    NIGHTSHIFT_PREFETCH_PER_SLOT: process.env.PREFETCH ?? '2',
  });
  const spec = { prompts: Array.from({ length: JOBS / 100 }, (_, i) => `prompt ${i}`), seeds: { count: 100 }, params: { width: 64, height: 64, steps: 1 } };
  // Untimed: what the nodes would have uploaded, before the coordinator starts competing for the CPU.
  const storage = storageFromConfig(config);
  await storage.ensureBucket();
  const keys = renderKeysOf(spec, JOBS);
  const setupSeconds = await storePlaceholders(storage, keys);
  const coordinator = await startCoordinator(config, createLogger('bench', 'error'));
  const sim = startProcess('sim', execPath, ['--import', 'tsx', SIM, `127.0.0.1:${grpcPort}`, String(NODES), 'coordinator']);
  await waitFor('simulated nodes', () => coordinator.deps.hub.connectedNodeIds().length === NODES, 30_000);
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${coordinator.httpPort}/api/sweeps`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  const { id, jobs } = (await res.json()) as { id: string; jobs: number };
  const submitted = performance.now();
  if (jobs !== keys.length) throw new Error(`the coordinator expanded ${jobs} jobs, the placeholders cover ${keys.length}`);
  await waitFor('the sweep', async () => (await coordinator.deps.engine.getSweep(id))?.status === 'done', 600_000, 20);
  const seconds = (performance.now() - submitted) / 1000;
  const submitSeconds = (submitted - started) / 1000;
  const done = (await coordinator.deps.engine.listings.jobs(id, ['done'])).length;
  await sim.stop();
  await coordinator.stop();
  await Promise.all([nats.stop(), s3.stop()]);
  if (done !== JOBS) throw new Error(`the sweep finished with ${done} of ${JOBS} jobs done`);
  return { jobsPerSec: JOBS / seconds, seconds, submitSeconds, setupSeconds };
}

const bare = await bareRoundTrips(5);
const coord = await coordinatorThroughput();
console.log(`nodes: ${NODES}, jobs: ${JOBS}`);
console.log(`bare gRPC round trips (same bidi stream, no coordinator work): ${Math.round(bare)} /s`);
console.log(`untimed set-up (placeholder image + thumbnail per job into s3rver): ${coord.setupSeconds.toFixed(1)} s`);
console.log(`coordinator dispatch → complete (SQLite, scheduler, storage HEADs → s3rver, outbox → NATS): ${Math.round(coord.jobsPerSec)} jobs/s (${coord.seconds.toFixed(1)} s for ${JOBS})`);
console.log(`sweep submission (validate, expand, store ${JOBS} jobs): ${coord.submitSeconds.toFixed(2)} s`);
console.log(`ratio coordinator / bare: ${(coord.jobsPerSec / bare).toFixed(2)}`);
console.log(
  JSON.stringify({
    bench: 'dispatch',
    nodes: NODES,
    jobs: JOBS,
    bareRoundTripsPerSec: Math.round(bare),
    jobsPerSec: Math.round(coord.jobsPerSec),
    seconds: +coord.seconds.toFixed(2),
    submitSeconds: +coord.submitSeconds.toFixed(2),
    ratio: +(coord.jobsPerSec / bare).toFixed(3),
    setupSeconds: +coord.setupSeconds.toFixed(1),
  }),
);
tmp.cleanup();
process.exit(0);
