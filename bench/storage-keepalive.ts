/**
 * What S3 connections cost the coordinator's result checks: rounds of
 * concurrent HEADs (a thousand nodes' results arrive in bursts) against a real
 * s3rver child process, once through Node's global agent (256 idle sockets
 * kept, a new connection beyond them) and once through Storage's own agent
 * (STORAGE_MAX_SOCKETS, kept alive). Prints connections opened, wall time,
 * this process's CPU and s3rver's CPU for each; JSON on the last line.
 *   node --import tsx bench/storage-keepalive.ts [ROUNDS=10] [CONCURRENT=400]
 */
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Storage, STORAGE_MAX_SOCKETS } from '@nightshift/common';
import { startS3Server, tempDir } from '@nightshift/devfarm';

const ROUNDS = Number(process.argv[2] ?? 10);
const CONCURRENT = Number(process.argv[3] ?? 400);
const TICK_MS = 10; // /proc/PID/stat counts CPU in 1/100 s

/** The minio client's agent (not part of its typed face). */
type WithAgent = { transportAgent: http.Agent };

/** CPU ms of the processes whose command line holds `part`. */
function cpuMsOf(part: string): number {
  let ms = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(part)) continue;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ms += (Number(f[11]) + Number(f[12])) * TICK_MS;
    } catch {
      /* gone meanwhile */
    }
  }
  return ms;
}

const tmp = tempDir('nightshift-s3-keepalive-');
const s3 = await startS3Server(join(tmp.dir, 's3'));
const s3Part = `s3-server-main.ts\0${s3.port}`;
const results: Record<string, { connections: number; ms: number; clientCpuMs: number; s3rverCpuMs: number }> = {};
try {
  for (const agent of ['global', 'storage'] as const) {
    const storage = new Storage({ endpoint: s3.reachEndpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    const client = storage.client as unknown as WithAgent;
    if (agent === 'global') client.transportAgent = http.globalAgent;
    await storage.ensureBucket();
    await storage.put('images/keepalive.png', Buffer.from('x'), 'image/png');
    let connections = 0;
    const a = client.transportAgent;
    const create = a.createConnection.bind(a);
    a.createConnection = (...args: Parameters<typeof create>) => {
      connections++;
      return create(...args);
    };
    const [cpu0, s30, t0] = [process.cpuUsage(), cpuMsOf(s3Part), performance.now()];
    for (let round = 0; round < ROUNDS; round++) await Promise.all(Array.from({ length: CONCURRENT }, () => storage.exists('images/keepalive.png')));
    const cpu = process.cpuUsage(cpu0);
    results[agent] = { connections, ms: Math.round(performance.now() - t0), clientCpuMs: Math.round((cpu.user + cpu.system) / 1000), s3rverCpuMs: cpuMsOf(s3Part) - s30 };
    a.createConnection = create;
    console.log(agent.padEnd(8), JSON.stringify(results[agent]));
  }
} finally {
  await s3.kill();
  tmp.cleanup();
}
const g = results.global!;
const s = results.storage!;
console.log(JSON.stringify({ bench: 'storage-keepalive', requests: ROUNDS * CONCURRENT, maxSockets: STORAGE_MAX_SOCKETS, ...results, clientCpuRatio: +(s.clientCpuMs / g.clientCpuMs).toFixed(2), s3rverCpuRatio: +(s.s3rverCpuMs / g.s3rverCpuMs).toFixed(2) }));
