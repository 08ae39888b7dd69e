/**
 * GPU idle fraction between jobs: one gpu-node with one slot and a renderer
 * that always takes 100 ms (a stand-in for a GPU), real uploads to the S3
 * server, a real coordinator and NATS. Idle = time between the end of one
 * render and the start of the next, over the whole run. Prefetch (2 per slot)
 * and uploads behind the next render are what keep it low.
 *   node --import tsx bench/gpu-idle.ts [JOBS=100] [RENDER_MS=100]
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { createLogger, loadConfig } from '@nightshift/common';
import { startNatsServer, startS3Server, freePort, tempDir, waitFor } from '@nightshift/devfarm';
import { startCoordinator } from '@nightshift/coordinator';
import { startNode, type Backend } from '@nightshift/gpu-node';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';

const JOBS = Number(process.argv[2] ?? 100);
const RENDER_MS = Number(process.argv[3] ?? 100);
const tmp = tempDir('nightshift-idle-');
const nats = await startNatsServer(join(tmp.dir, 'nats'));
const s3 = await startS3Server(join(tmp.dir, 's3'));
const grpcPort = await freePort();
const env = {
  NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'coord'),
  NIGHTSHIFT_NATS_URL: nats.url,
  NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
  NIGHTSHIFT_GRPC_PORT: String(grpcPort),
  NIGHTSHIFT_HTTP_PORT: '0',
  NIGHTSHIFT_COORDINATOR: `127.0.0.1:${grpcPort}`,
  NIGHTSHIFT_NODE_ID: 'idle-bench',
};
const log = createLogger('bench', 'error');
const coordinator = await startCoordinator(loadConfig(env), log);

// A noisy 512×512 PNG (~770 KiB, incompressible) so uploads cost something real.
const raw = randomBytes(512 * 512 * 3);
const png = await sharp(raw, { raw: { width: 512, height: 512, channels: 3 } }).png().toBuffer();
const spans: [number, number][] = [];
const fixed: Backend = {
  name: 'procedural',
  models: [PROCEDURAL_MODEL],
  async render() {
    const start = performance.now();
    await new Promise((r) => setTimeout(r, RENDER_MS));
    spans.push([start, performance.now()]);
    return { png };
  },
};
const node = await startNode(loadConfig(env), log, new Map([['procedural', fixed]]));
await waitFor('node', () => coordinator.deps.hub.connectedNodeIds().length === 1);
const res = await fetch(`http://127.0.0.1:${coordinator.httpPort}/api/sweeps`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ prompts: ['idle bench'], seeds: { count: JOBS }, params: { width: 512, height: 512, steps: 1 } }),
});
const { id } = (await res.json()) as { id: string };
await waitFor('sweep', async () => (await coordinator.deps.engine.getSweep(id))?.status === 'done', 600_000, 20);
const busy = spans.reduce((a, [s, e]) => a + (e - s), 0);
const span = spans.at(-1)![1] - spans[0]![0];
const gaps = spans.slice(1).map(([s], i) => s - spans[i]![1]).sort((a, b) => a - b);
console.log(`jobs: ${spans.length}, render: ${RENDER_MS} ms each, PNG ${(png.length / 1024).toFixed(0)} KiB uploaded + thumbnail per job`);
console.log(`GPU idle fraction: ${((100 * (span - busy)) / span).toFixed(2)} % (gap between renders median ${gaps[gaps.length >> 1]!.toFixed(2)} ms, max ${gaps.at(-1)!.toFixed(2)} ms)`);
// Machine-readable summary, last line (bench/ convention).
console.log(JSON.stringify({ bench: 'gpu-idle', jobs: spans.length, renderMs: RENDER_MS, idleFraction: (span - busy) / span, gapMedianMs: gaps[gaps.length >> 1], gapMaxMs: gaps.at(-1) }));
await node.stop();
await coordinator.stop();
await Promise.all([nats.stop(), s3.stop()]);
tmp.cleanup();
process.exit(0);
