/**
 * `npm run up`: the whole farm on this machine — nats-server, the S3 server,
 * the coordinator, two gpu-nodes and the indexer — under one data folder
 * (.nightshift/ by default, NIGHTSHIFT_DATA_DIR to change it). Submits the
 * example sweep, shows its progress, prints a search, then keeps running
 * until Ctrl-C, which stops every process.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SingleBar, Presets } from 'cli-progress';
import { freePort, startFarm, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const dir = resolve(process.env.NIGHTSHIFT_DATA_DIR ?? '.nightshift');
const specFile = resolve(process.argv[2] ?? 'examples/sweep.yaml');
const query = process.env.NIGHTSHIFT_UP_QUERY ?? 'red';

/** The usual port when it is free, otherwise any free one. */
async function port(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => void freePort().then(done));
    s.listen(preferred, '127.0.0.1', () => s.close(() => done(preferred)));
  });
}

async function main(): Promise<void> {
  console.log(`Nightshift: starting the local farm in ${dir}`);
  const farm: Farm = await startFarm({
    dir,
    nodes: 2,
    indexer: true,
    ports: { http: await port(8080), grpc: await port(7070), indexer: await port(8090), nats: await port(4222), s3: await port(9000) },
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the farm…');
    await farm.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    await waitForNodes(farm.apiUrl, 2);
    const spec = parseYaml(readFileSync(specFile, 'utf8')) as unknown;
    const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    const body = (await res.json()) as { id?: string; jobs?: number; error?: string };
    if (res.status !== 201 || !body.id) throw new Error(`sweep refused: ${body.error ?? res.status}`);
    console.log(`submitted ${specFile} as sweep ${body.id} (${body.jobs} images)`);

    const bar = new SingleBar({ format: 'rendering [{bar}] {value}/{total} images | {status} | ETA {eta}s', hideCursor: true }, Presets.shades_classic);
    bar.start(body.jobs ?? 0, 0, { status: 'queued' });
    const final = await waitFor(
      'the sweep to finish',
      async () => {
        const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${body.id}`)).json()) as { status: string; counts: Record<string, number> };
        bar.update((s.counts.done ?? 0) + (s.counts.skipped ?? 0) + (s.counts.failed ?? 0), { status: s.status });
        return ['done', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
      },
      30 * 60_000,
      250,
    );
    bar.stop();
    console.log(`sweep ${body.id} ${final.status}: ${JSON.stringify(final.counts)}`);

    await waitFor('the indexer to catch up', async () => {
      const h = (await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number };
      return h.indexed >= (final.counts.done ?? 0);
    }, 120_000, 250);
    const search = (await (await fetch(`${farm.apiUrl}/api/search?q=${encodeURIComponent(query)}&k=5`)).json()) as {
      results: { score: number; prompt: string; seed: number; url: string }[];
    };
    console.log(`\nsearch "${query}" (built-in test model unless NIGHTSHIFT_CLIP_MODEL is set):`);
    for (const r of search.results) console.log(`  ${r.score.toFixed(3)}  seed ${r.seed}  ${r.prompt}  ${farm.apiUrl}${r.url.startsWith('/') ? r.url : ''}`);
  } catch (err) {
    console.error(`\n${err instanceof Error ? err.message : String(err)}\n(logs in ${dir}/logs)`);
    await stop(1);
    return;
  }

  console.log(`
The farm is running (Ctrl-C stops it):
  dashboard         ${farm.apiUrl}/ui/
  coordinator API   ${farm.apiUrl}/api/sweeps
  images            ${farm.apiUrl}/api/sweeps/<id>/images
  nodes             ${farm.apiUrl}/api/nodes
  live events       ${farm.apiUrl}/api/events
  search            ${farm.apiUrl}/api/search?q=blue
  gRPC (nodes/API)  ${farm.grpcAddress}
  NATS              ${farm.nats.url}
  S3                ${farm.s3.endpoint} (bucket nightshift)
  logs              ${dir}/logs/
Add a gpu-node from another shell:
  NIGHTSHIFT_COORDINATOR=${farm.grpcAddress} NIGHTSHIFT_S3_ENDPOINT=${farm.s3.endpoint} node --import tsx services/gpu-node/src/main.ts`);
}

await main();
