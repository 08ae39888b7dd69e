/**
 * Scale check: one coordinator (a child process, measured from /proc and its
 * own /metrics) against 10 → 25 → 50 → 100 simulated gpu-nodes
 * (bench/scale-nodes.ts: real Connect streams, registration, heartbeats at the
 * coordinator's interval, results; no pixels) with a real nats-server taking
 * the outbox. At each size:
 *   saturated   every node completes each job at once: the most jobs/s one
 *               coordinator dispatches (SQLite, scheduler, leases, outbox)
 *   1 s renders each job "renders" for 1 s, like a fast GPU: what the
 *               coordinator spends (CPU, event-loop lag) at N jobs/s
 * A completion counts once the coordinator's storage check has found the
 * job's image (one HEAD against a real s3rver child process, whose own CPU
 * is not in the coordinator's figures; a node uploads the thumbnail first,
 * result-reports.ts). The simulated nodes
 * upload nothing, so a 1×1 placeholder of each object of every sweep is stored
 * before the first timed run (untimed set-up, bench/placeholders.ts; its
 * duration is printed apart). The last line is the results as JSON.
 * `efficiency` is the 1 s run's jobs/s ÷ the ideal (nodes ÷ render time), the
 * sweep lasting from its POST to the moment the coordinator settled it;
 * `steadyEfficiency`, jobs per node and the first-lease spread (timeline())
 * tell the coordinator's rate from a finite sweep's ramp-up and tail. Beside
 * the coordinator's CPU it prints that of the simulated nodes, s3rver and
 * nats-server (and on PostgreSQL the database's own CPU per job:
 * `postgresCpuMsPerJob`), and how busy the whole machine was: on a 2-core
 * machine the stand-ins share the cores with the coordinator.
 *   node --import tsx bench/scale.ts [SATURATED_JOBS=4000] [RENDER_MS=1000] [NODES=10,25,50,100]
 * SCALE_PROF=DIR writes a CPU profile of the coordinator into DIR; SCALE_DUMP=PREFIX keeps a copy of its
 * database after each run (PREFIX-<sweep>.sqlite) for a closer look (SQLite only).
 * SCALE_DATABASE=postgres runs the coordinator on a throwaway PostgreSQL (Debian's postgresql, started
 * here); SCALE_REPLICAS=2 then runs two coordinator replicas on it, each serving half of the nodes
 * (CPU and RSS summed over the replicas, loop lag the worst of them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { join } from 'node:path';
import { execPath } from 'node:process';
import { fileURLToPath } from 'node:url';
import { Storage } from '@nightshift/common';
import { freePort, SERVICE_MAIN, startNatsServer, startPostgres, startProcess, startS3Server, tempDir, waitFor, type ManagedProcess } from '@nightshift/devfarm';
import { renderKeysOf, storePlaceholders } from './placeholders.js';

const SATURATED_JOBS = Number(process.argv[2] ?? 4_000);
const RENDER_MS = Number(process.argv[3] ?? 1_000);
// Node counts, cumulative (issue 12 asks for 1,000: `... 4000 1000 10,100,1000`).
const STEPS = (process.argv[4] ?? '10,25,50,100').split(',').map(Number);
const SIM = fileURLToPath(new URL('./scale-nodes.ts', import.meta.url));
const TICK = 100; // Linux USER_HZ: /proc/PID/stat counts CPU in 1/100 s
const MAX_JOBS = Math.max(SATURATED_JOBS, 100_000);
const SEEDS = 100;

/** The sweep request of one run; tags keep every run's render keys apart. */
function sweepSpec(jobs: number, simMs: number, tag: string) {
  const prompts = Array.from({ length: Math.ceil(jobs / SEEDS) }, (_, i) => `${tag} prompt ${i}`);
  return { prompts, seeds: { count: SEEDS }, params: { width: 64, height: 64, steps: 1, simMs } };
}
/**
 * Jobs per node in the RENDER_MS run (SCALE_ROUNDS, default 10). A finite
 * sweep pays a fixed ramp-up (storing the sweep, the first leases) and tail
 * (the last round's results, all at once): a longer one shows what is left
 * of the rate once those are spread thinner.
 */
const ROUNDS = Number(process.env.SCALE_ROUNDS ?? 10);
/** The two runs at N nodes: saturated, then ROUNDS jobs per node of RENDER_MS each. */
const runsAt = (n: number) => ({ sat: sweepSpec(SATURATED_JOBS, 0, `sat${n}`), real: sweepSpec(n * ROUNDS, RENDER_MS, `real${n}`) });

const tmp = tempDir('nightshift-scale-');
const nats = await startNatsServer(join(tmp.dir, 'nats'));
const s3 = await startS3Server(join(tmp.dir, 's3'));
// Untimed: what the nodes would have uploaded for every run, before the coordinator starts.
const storage = new Storage({ endpoint: s3.reachEndpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
await storage.ensureBucket();
const placeholderKeys = STEPS.flatMap((n) => Object.values(runsAt(n)).flatMap((spec) => renderKeysOf(spec, MAX_JOBS)));
const setupSeconds = await storePlaceholders(storage, placeholderKeys);
const REPLICAS = Number(process.env.SCALE_REPLICAS ?? 1);
const postgres = process.env.SCALE_DATABASE === 'postgres' ? await startPostgres() : undefined;
if (REPLICAS > 1 && !postgres) throw new Error('SCALE_REPLICAS > 1 needs SCALE_DATABASE=postgres');
const databaseUrl = postgres ? await postgres.createDatabase('scale') : '';
// SCALE_PROF=DIR: a CPU profile of each coordinator into DIR (written when it exits).
const profile = process.env.SCALE_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SCALE_PROF}`] : [];
const replicas: { proc: ManagedProcess; api: string; grpc: string }[] = [];
for (let r = 0; r < REPLICAS; r++) {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const proc = startProcess(`coordinator-${r}`, execPath, [...profile, '--import', 'tsx', SERVICE_MAIN.coordinator], {
  env: {
    ...process.env,
    NIGHTSHIFT_DATABASE_URL: databaseUrl,
    NIGHTSHIFT_DATA_DIR: join(tmp.dir, `coordinator${r ? `-${r}` : ''}`),
    NIGHTSHIFT_NATS_URL: nats.url,
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_S3_ACCESS_KEY: s3.accessKey,
    NIGHTSHIFT_S3_SECRET_KEY: s3.secretKey,
    NIGHTSHIFT_S3_BUCKET: storage.bucket,
    NIGHTSHIFT_HTTP_PORT: String(httpPort),
    NIGHTSHIFT_GRPC_PORT: String(grpcPort),
    NIGHTSHIFT_MAX_JOBS: String(MAX_JOBS),
    NIGHTSHIFT_LOG_LEVEL: 'warn',
  },
  });
  replicas.push({ proc, api: `http://127.0.0.1:${httpPort}`, grpc: `127.0.0.1:${grpcPort}` });
}
const api = replicas[0]!.api;
const sims: ManagedProcess[] = [];

function cpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICK;
}
/** Pids whose command line holds `part` (the s3rver and nats-server children the devfarm helpers started). */
function pidsOf(part: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(part);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
const cpuOf = (pids: number[]) => pids.reduce((a, p) => a + cpuSeconds(p), 0);

/**
 * PostgreSQL's CPU seconds so far (SCALE_DATABASE=postgres): the postmaster's
 * own and its reaped children's (backends that ended), and its live
 * children's. Its share of a run on a shared machine is steadier than jobs/s.
 */
function postgresCpu(): number {
  if (!postgres) return 0;
  const stat = (pid: number | string) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return pidsOf(`${postgres.socketDir}/data\0`).reduce((sum, master) => {
    const own = stat(master);
    let children = 0;
    for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const f = stat(d);
        if (Number(f[1]) === master) children += Number(f[11]) + Number(f[12]);
      } catch {
        // gone meanwhile: its CPU is in the master's reaped children's
      }
    }
    return sum + (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]) + children) / TICK;
  }, 0);
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat's first line. */
function boxJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total }; // idle and iowait are not busy
}
function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}
async function metric(name: string, from = api): Promise<number> {
  return (await metrics([name], from))[0]!;
}
/** Several figures from one scrape (a scrape resets the event-loop lag histogram). */
async function metrics(names: string[], from = api): Promise<number[]> {
  const text = await (await fetch(`${from}/metrics`)).text();
  return names.map((name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN));
}
/** Summed over the replicas (each counts its own connected nodes). */
async function metricSum(name: string): Promise<number> {
  return (await Promise.all(replicas.map((r) => metric(name, r.api)))).reduce((a, b) => a + b, 0);
}
const coordinatorPids = () => replicas.map((r) => r.proc.child.pid!);

/**
 * How the sweep's jobs fell over nodes and time, read from the coordinator's
 * database (read-only, WAL) once it is done. With exactly ROUNDS jobs per node a
 * node that gets an 11th before the queue runs dry makes the whole sweep last
 * one render more however fast the coordinator is: `maxJobsPerNode` and
 * `firstLeaseSpreadMs` (first lease of the first node to the last node's
 * first) show that quantisation apart, and `steadyEfficiency` (jobs/s between
 * the 10th and 90th percentile of finish times ÷ ideal) is the rate with the
 * ramp-up and the tail left out.
 */
async function timeline(sweepId: string, nodes: number): Promise<{ minJobsPerNode: number; maxJobsPerNode: number; firstLeaseSpreadMs: number; steadyEfficiency: number }> {
  const perNodeSql = `SELECT COUNT(*) AS n, MIN(started_at) AS first FROM jobs WHERE sweep_id = $1 AND state = 'done' GROUP BY node_id`;
  const doneSql = `SELECT finished_at AS t FROM jobs WHERE sweep_id = $1 AND state = 'done' ORDER BY finished_at`;
  let perNode: { n: number; first: number }[];
  let done: number[];
  if (postgres) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      perNode = (await client.query<{ n: string; first: string }>(perNodeSql, [sweepId])).rows.map((r) => ({ n: Number(r.n), first: Number(r.first) }));
      done = (await client.query<{ t: string }>(doneSql, [sweepId])).rows.map((r) => Number(r.t));
    } finally {
      await client.end();
    }
  } else {
    const db = new Database(join(tmp.dir, 'coordinator', 'coordinator.sqlite'), { readonly: true, fileMustExist: true });
    try {
      if (process.env.SCALE_DUMP) db.exec(`VACUUM INTO '${process.env.SCALE_DUMP}-${sweepId}.sqlite'`);
      perNode = db.prepare(perNodeSql.replace('$1', '?')).all(sweepId) as { n: number; first: number }[];
      done = (db.prepare(doneSql.replace('$1', '?')).all(sweepId) as { t: number }[]).map((r) => r.t);
    } finally {
      db.close();
    }
  }
  {
    const at = (q: number) => done[Math.min(done.length - 1, Math.floor(q * (done.length - 1)))]!;
    const counts = perNode.map((r) => r.n);
    const firsts = perNode.map((r) => r.first);
    const steadyJobsPerSec = (0.8 * done.length) / ((at(0.9) - at(0.1)) / 1000);
    return {
      minJobsPerNode: Math.min(...counts),
      maxJobsPerNode: Math.max(...counts),
      firstLeaseSpreadMs: Math.max(...firsts) - Math.min(...firsts),
      steadyEfficiency: steadyJobsPerSec / ((nodes * 1000) / RENDER_MS),
    };
  }
}

/** The event loop's lag since the last scrape: p99, and the longest single block. */
async function lagMs(): Promise<{ lagP99Ms: number; lagMaxMs: number }> {
  const each = await Promise.all(replicas.map((r) => metrics(['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds'], r.api)));
  return { lagP99Ms: 1000 * Math.max(...each.map((m) => m[0]!)), lagMaxMs: 1000 * Math.max(...each.map((m) => m[1]!)) };
}

async function runSweep(spec: ReturnType<typeof sweepSpec>, tag: string, nodes: number) {
  await lagMs(); // a scrape resets the lag histogram
  const cpu0 = cpuOf(coordinatorPids());
  const box0 = boxJiffies();
  const sim0 = sims.reduce((a, p) => a + cpuSeconds(p.child.pid!), 0);
  const helpers = { s3rver: pidsOf(`s3-server-main.ts\0${new URL(s3.endpoint).port}`), nats: pidsOf(`nats-server\0`).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`\0${new URL(nats.url).port}\0`)) };
  const helpers0 = { s3rver: cpuOf(helpers.s3rver), nats: cpuOf(helpers.nats), postgres: postgresCpu() };
  const wall0 = Date.now();
  const res = await fetch(`${api}/api/sweeps`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  const { id, jobs: n } = (await res.json()) as { id: string; jobs: number };
  // Polled every 200 ms: each look reads the sweep's cost rows of every node (1,000 of them), and at 50 ms the
  // looks took about 4 % of the coordinator's CPU.
  const view = await waitFor(`sweep ${tag}`, async () => {
    const v = (await (await fetch(`${api}/api/sweeps/${id}`)).json()) as { status: string; counts: { done: number }; finishedAt: string | null };
    return v.status === 'done' && v;
  }, 600_000, 200);
  // The sweep's length ends when the coordinator settled it (the same machine's clock), not when a poll noticed.
  // CPU is read when the poll noticed, up to 200 ms later, and shared over the sweep's length: an idle farm
  // spends next to nothing in between, while a share over the longer window would read low (by up to 7 % for
  // a 3 s saturated run). The box's busy share is over that longer window.
  const seconds = (Date.parse(view.finishedAt!) - wall0) / 1000;
  const cpu = cpuOf(coordinatorPids()) - cpu0;
  const box1 = boxJiffies();
  // What else the run cost: the simulated nodes' process(es), and how busy the whole machine was (every core; 100 = all busy).
  const others = {
    simCpuPct: (100 * (sims.reduce((a, p) => a + cpuSeconds(p.child.pid!), 0) - sim0)) / seconds,
    s3rverCpuPct: (100 * (cpuOf(helpers.s3rver) - helpers0.s3rver)) / seconds,
    natsCpuPct: (100 * (cpuOf(helpers.nats) - helpers0.nats)) / seconds,
    ...(postgres ? { postgresCpuMsPerJob: (1000 * (postgresCpu() - helpers0.postgres)) / n } : {}),
    boxBusyPct: (100 * (box1.busy - box0.busy)) / (box1.total - box0.total),
  };
  if (view.counts.done !== n) throw new Error(`sweep ${tag} finished with ${view.counts.done} of ${n} jobs done`);
  const rss = coordinatorPids().reduce((a, p) => a + rssMb(p), 0);
  return { jobs: n, seconds, jobsPerSec: n / seconds, ...(await timeline(id, nodes)), ...others, cpuPct: (100 * cpu) / seconds, cpuMsPerJob: (1000 * cpu) / n, ...(await lagMs()), rssMb: rss, heapMb: (await metricSum('nodejs_heap_size_used_bytes')) / 1e6 };
}

const rows: string[][] = [];
const results: { nodes: number; saturated: Record<string, number>; renders: Record<string, number> }[] = [];
/** A run's figures for the JSON line, to 2 decimals. */
const round = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +v.toFixed(2)]));
try {
  for (const r of replicas)
    await waitFor('coordinator', async () => {
      if (r.proc.child.exitCode !== null) throw new Error(r.proc.output());
      return (await fetch(`${r.api}/healthz`).catch(() => undefined))?.ok;
    }, 30_000);
  const idleRss = coordinatorPids().reduce((a, p) => a + rssMb(p), 0);
  let have = 0;
  for (const n of STEPS) {
    // The step's new nodes, split over the replicas (each simulated-node process dials one).
    const started = replicas.map((r, i) => {
      const from = have + Math.floor(((n - have) * i) / REPLICAS);
      const to = have + Math.floor(((n - have) * (i + 1)) / REPLICAS);
      return startProcess(`sim-${from}`, execPath, ['--import', 'tsx', SIM, r.grpc, String(from), String(to - from)]);
    });
    sims.push(...started);
    await waitFor(`${n} nodes online`, async () => {
      for (const sim of started) if (sim.child.exitCode !== null) throw new Error(sim.output());
      return (await metricSum('nightshift_nodes\\{[^}]*status="online"[^}]*\\}')) === n;
    }, 60_000, 200);
    have = n;
    const runs = runsAt(n);
    const sat = await runSweep(runs.sat, `sat${n}`, n);
    const real = await runSweep(runs.real, `real${n}`, n);
    // Renders of 0 ms have no steady rate to compare with an ideal.
    const { steadyEfficiency: _none, ...satFigures } = sat;
    results.push({ nodes: n, saturated: round(satFigures), renders: round({ ...real, efficiency: real.jobsPerSec / ((n * 1000) / RENDER_MS) }) });
    rows.push([
      String(n),
      sat.jobsPerSec.toFixed(0),
      sat.cpuPct.toFixed(0),
      sat.cpuMsPerJob.toFixed(2),
      real.jobsPerSec.toFixed(1),
      (real.jobsPerSec / ((n * 1000) / RENDER_MS)).toFixed(3),
      real.cpuPct.toFixed(1),
      real.lagP99Ms.toFixed(1),
      real.rssMb.toFixed(0),
      real.heapMb.toFixed(0),
    ]);
    console.error(`  ${n} nodes done`);
  }
  const head = ['nodes', 'saturated jobs/s', 'coord CPU %', 'CPU ms/job', `${RENDER_MS} ms renders: jobs/s`, '÷ ideal', 'coord CPU %', 'loop lag p99 ms', 'RSS MB', 'heap MB'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(`${REPLICAS} coordinator(s) (child processes) on ${postgres ? 'PostgreSQL' : 'SQLite'}, nats-server, simulated nodes in ${sims.length} process(es); ${SATURATED_JOBS} jobs per saturated run, ${ROUNDS} jobs per node per ${RENDER_MS} ms run; idle RSS ${idleRss.toFixed(0)} MB`);
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  console.log(`untimed set-up (placeholder image + thumbnail for ${placeholderKeys.length} jobs into s3rver): ${setupSeconds.toFixed(1)} s`);
  console.log(JSON.stringify({ bench: 'scale', database: postgres ? 'postgres' : 'sqlite', replicas: REPLICAS, saturatedJobs: SATURATED_JOBS, renderMs: RENDER_MS, rounds: ROUNDS, idleRssMb: +idleRss.toFixed(0), setupSeconds: +setupSeconds.toFixed(1), steps: results }));
} catch (err) {
  // What the coordinator logged (warnings and up) says why a sweep did not finish.
  for (const r of replicas) console.error(r.proc.output().slice(-4_000));
  throw err;
} finally {
  for (const s of sims) await s.stop();
  for (const r of replicas) await r.proc.stop();
  await Promise.all([nats.stop(), s3.stop(), postgres?.close()]);
  tmp.cleanup();
}
process.exit(0);
