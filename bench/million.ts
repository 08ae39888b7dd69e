/**
 * A big queue on one coordinator: a coordinator process with no node connected
 * (a real nats-server; S3 points at a closed port, nothing needs it without
 * nodes) takes SWEEPS sweeps of JOBS jobs each over HTTP. It prints each
 * submission's latency (POST → 201), the coordinator's RSS once everything is
 * queued (VmRSS and its peak VmHWM, from /proc), its CPU share while idle for
 * 10 s with everything queued, and the latency of `GET /api/sweeps`, of one
 * sweep's page (`GET /api/sweeps/:id`) and of a `/metrics` scrape. Targets
 * (issue 12): submit < 1 s, RSS < 300 MB, list < 50 ms, idle CPU near zero.
 * MILLION_DATABASE=postgres runs the coordinator on a throwaway PostgreSQL
 * (Debian's postgresql, started here; its server's own memory and CPU are
 * not in the coordinator's figures). The last line is the results as JSON.
 *   node --import tsx bench/million.ts [SWEEPS=10] [JOBS=100000]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execPath } from 'node:process';
import { freePort, SERVICE_MAIN, startNatsServer, startPostgres, startProcess, tempDir, waitFor } from '@nightshift/devfarm';

const SWEEPS = Number(process.argv[2] ?? 10);
const JOBS = Number(process.argv[3] ?? 100_000);
const IDLE_SECONDS = 10;
const CLOCK_TICKS = 100; // USER_HZ on Linux: /proc/PID/stat counts CPU time in 1/100 s.
const tmp = tempDir('nightshift-million-');

/** kB → MB of a /proc/PID/status field (VmRSS now, VmHWM its peak). */
function memMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the whole line.
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
}

async function timed(url: string, init?: RequestInit): Promise<{ ms: number; status: number; body: string }> {
  const t = performance.now();
  const res = await fetch(url, init);
  const body = await res.text();
  return { ms: performance.now() - t, status: res.status, body };
}

/** Median and max over `n` sequential requests (the first one, a cold cache, included). */
async function latency(url: string, n: number): Promise<{ p50: number; max: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await timed(url);
    if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.body.slice(0, 200)}`);
    ms.push(r.ms);
  }
  ms.sort((a, b) => a - b);
  return { p50: +ms[Math.floor(ms.length / 2)]!.toFixed(1), max: +ms[ms.length - 1]!.toFixed(1) };
}

const nats = await startNatsServer(join(tmp.dir, 'nats'));
const postgres = process.env.MILLION_DATABASE === 'postgres' ? await startPostgres() : undefined;
const databaseUrl = postgres ? await postgres.createDatabase('million') : '';
const [httpPort, grpcPort, nowhere] = [await freePort(), await freePort(), await freePort()];
const api = `http://127.0.0.1:${httpPort}`;
const coordinator = startProcess('coordinator', execPath, ['--import', 'tsx', SERVICE_MAIN.coordinator], {
  env: {
    ...process.env,
    NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'coordinator'),
    NIGHTSHIFT_DATABASE_URL: databaseUrl,
    NIGHTSHIFT_NATS_URL: nats.url,
    NIGHTSHIFT_S3_ENDPOINT: `http://127.0.0.1:${nowhere}`,
    NIGHTSHIFT_S3_ACCESS_KEY: 'none',
    NIGHTSHIFT_S3_SECRET_KEY: 'none',
    NIGHTSHIFT_HTTP_PORT: String(httpPort),
    NIGHTSHIFT_GRPC_PORT: String(grpcPort),
    NIGHTSHIFT_MAX_JOBS: String(JOBS),
    NIGHTSHIFT_LOG_LEVEL: 'warn',
  },
});
try {
  await waitFor('coordinator /healthz', async () => {
    if (coordinator.child.exitCode !== null) throw new Error(`coordinator exited:\n${coordinator.output()}`);
    return (await fetch(`${api}/healthz`).catch(() => undefined))?.ok ?? false;
  }, 30_000);
  const pid = coordinator.child.pid!;
  const rssIdle = memMb(pid, 'VmRSS');

  const submitMs: number[] = [];
  const ids: string[] = [];
  for (let s = 0; s < SWEEPS; s++) {
    const spec = { name: `million ${s}`, prompts: Array.from({ length: JOBS / 100 }, (_, i) => `sweep ${s} prompt ${i}`), seeds: { count: 100 }, params: { width: 64, height: 64, steps: 1 } };
    const r = await timed(`${api}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    if (r.status !== 201) throw new Error(`submit ${s}: ${r.status} ${r.body.slice(0, 300)}`);
    const { id, jobs } = JSON.parse(r.body) as { id: string; jobs: number };
    if (jobs !== JOBS) throw new Error(`submit ${s}: ${jobs} jobs, expected ${JOBS}`);
    ids.push(id);
    submitMs.push(+r.ms.toFixed(0));
    console.log(`submit ${s + 1}/${SWEEPS}: ${JOBS} jobs accepted in ${r.ms.toFixed(0)} ms, RSS ${memMb(pid, 'VmRSS')} MB`);
  }
  const queued = SWEEPS * JOBS;
  // Settle (the outbox's sweep.created events, garbage collection) before measuring idle.
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = memMb(pid, 'VmRSS');
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1_000));
  const idleCpuPct = +((100 * (cpuSeconds(pid) - cpu0)) / ((performance.now() - t0) / 1000)).toFixed(1);

  const list = await latency(`${api}/api/sweeps`, 10);
  const page = await latency(`${api}/api/sweeps/${ids[ids.length - 1]}`, 10);
  const metrics = await latency(`${api}/metrics`, 5);
  const listed = JSON.parse((await timed(`${api}/api/sweeps`)).body) as { sweeps: { counts: { queued: number } }[] };
  const listedQueued = listed.sweeps.reduce((n, s) => n + s.counts.queued, 0);
  if (listedQueued !== queued) throw new Error(`GET /api/sweeps counts ${listedQueued} queued, expected ${queued}`);
  const rssEnd = memMb(pid, 'VmRSS');
  const peak = memMb(pid, 'VmHWM');

  console.log(`sweeps: ${SWEEPS} × ${JOBS} jobs = ${queued} queued, no node connected`);
  console.log(`submit (POST /api/sweeps → 201): first ${submitMs[0]} ms, last ${submitMs[submitMs.length - 1]} ms, max ${Math.max(...submitMs)} ms`);
  console.log(`coordinator RSS: ${rssIdle} MB empty, ${rss} MB with ${queued} queued, ${rssEnd} MB after the reads, peak ${peak} MB`);
  console.log(`idle CPU with ${queued} queued and no node: ${idleCpuPct} % of a core over ${IDLE_SECONDS} s`);
  console.log(`GET /api/sweeps: p50 ${list.p50} ms, max ${list.max} ms; GET /api/sweeps/:id: p50 ${page.p50} ms, max ${page.max} ms; /metrics: p50 ${metrics.p50} ms, max ${metrics.max} ms`);
  console.log(
    JSON.stringify({
      database: postgres ? 'postgres' : 'sqlite',
      bench: 'million',
      sweeps: SWEEPS,
      jobsPerSweep: JOBS,
      queued,
      submitMs,
      rssMb: rss,
      rssPeakMb: peak,
      idleCpuPct,
      listMs: list,
      sweepPageMs: page,
      metricsMs: metrics,
    }),
  );
} finally {
  await coordinator.stop();
  await nats.stop();
  await postgres?.close();
  tmp.cleanup();
}
