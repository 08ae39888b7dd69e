/**
 * `npm run up`: the whole farm on this machine — nats-server, the S3 server,
 * the coordinator, three gpu-nodes and the indexer — under one data folder
 * (.nightshift/ by default, NIGHTSHIFT_DATA_DIR to change it). Two nodes run
 * the procedural painter; the third runs Stable Diffusion in-process (the
 * `onnx` backend, examples/onnx-node.yaml, built-in nightshift-tiny-sd).
 * node-1 also upscales, with the built-in tiny ×4 upscaler, so "Upscale
 * favorites" works out of the box. The built-in tiny models (CLIP, upscaler,
 * SD) are registered in the farm's model registry the way `nightshift models
 * add` does it, so sweeps naming them are pulled by nodes on demand.
 * Submits the example sweeps (or the spec files given as arguments), shows
 * their progress, prints a search, then keeps running until Ctrl-C, which
 * stops every process.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureTinyUpscaler } from '@nightshift/models';
import { Client, finalReport, postSweep, readSpecFile, watchSweep, type SearchResult } from '@nightshift/cli';
import { builtinModelsDir, freePort, registerBuiltinModels, startFarm, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const dir = resolve(process.env.NIGHTSHIFT_DATA_DIR ?? '.nightshift');
const specFiles = (process.argv.length > 2 ? process.argv.slice(2) : ['examples/sweep.yaml', 'examples/onnx-sweep.yaml']).map((f) => resolve(f));
const onnxNodeConfig = resolve('examples/onnx-node.yaml');
/** node-0 and node-1 paint procedurally; node-2 is the onnx (Stable Diffusion) node. */
const NODES = 3;
const ONNX_NODE = 2;
/** node-1 paints and upscales (the tiny ×4 upscaler). */
const UPSCALE_NODE = 1;
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
  const upscaleNodeConfig = await writeUpscaleNodeConfig();
  const farm: Farm = await startFarm({
    dir,
    nodes: NODES,
    nodeEnv: (i): Record<string, string> =>
      i === ONNX_NODE ? { NIGHTSHIFT_NODE_CONFIG: onnxNodeConfig } : i === UPSCALE_NODE ? { NIGHTSHIFT_NODE_CONFIG: upscaleNodeConfig } : {},
    indexer: true,
    ports: { http: await port(8080), grpc: await port(7070), indexer: await port(8090), nats: await port(4222), s3: await port(9000) },
  });
  let stopping = false;
  // Ctrl-C stops the farm, so it also ends the watch (instead of the CLI's "stopped watching").
  const watching = new AbortController();
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    watching.abort();
    console.log('\nstopping the farm…');
    await farm.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    for (const m of await registerBuiltinModels(farm.storage, builtinModelsDir(dir))) {
      console.log(`model ${m.name} (${m.kind}, ${(m.size / 1024).toFixed(0)} KiB) ${m.existed ? 'already in' : 'added to'} the registry as ${m.hash.slice(0, 12)}`);
    }
    const specs = specFiles.map((file) => ({ file, input: readSpecFile(file).input }));
    await waitForNodes(farm.apiUrl, NODES);
    const api = new Client(farm.apiUrl);
    // All submitted before watching any, so the onnx node renders while the procedural ones do.
    const sweeps: { id: string; jobs: number }[] = [];
    for (const { file, input } of specs) {
      const sweep = await postSweep(api, file, input);
      console.log(`submitted ${file} as sweep ${sweep.id} (${sweep.jobs} images)`);
      sweeps.push(sweep);
    }
    let done = 0;
    for (const sweep of sweeps) {
      const final = await watchSweep(api, sweep.id, { out: process.stdout, quiet: false, signal: watching.signal });
      console.log(finalReport(final));
      done += final.counts.done;
    }

    const indexer = new Client(farm.indexerUrl);
    await waitFor('the indexer to catch up', async () => (await indexer.get<{ indexed: number }>('/healthz')).indexed >= done, 120_000, 250);
    const { results } = await api.get<{ results: SearchResult[] }>(`/api/search?${new URLSearchParams({ q: query, k: '5' })}`);
    console.log(`\nsearch "${query}" (built-in test model unless NIGHTSHIFT_CLIP_MODEL is set):`);
    for (const r of results) console.log(`  ${r.score.toFixed(3)}  seed ${r.seed}  ${r.prompt}  ${new URL(r.url, api.base).href}`);
  } catch (err) {
    if (stopping) return;
    console.error(`\n${err instanceof Error ? err.message : String(err)}\n(logs in ${dir}/logs)`);
    await stop(1);
    return;
  }

  console.log(`
The farm is running (Ctrl-C stops it):
  dashboard         ${farm.apiUrl}/ui/
  coordinator API   ${farm.apiUrl}/api/sweeps
  images            ${farm.apiUrl}/api/sweeps/<id>/images
  nodes             ${farm.apiUrl}/api/nodes (node-0, node-1: procedural; node-${UPSCALE_NODE} upscales too; node-${ONNX_NODE}: onnx, nightshift-tiny-sd)
  models            ${farm.apiUrl}/api/models (the built-in tiny models, pulled by nodes on demand)
  live events       ${farm.apiUrl}/api/events
  search            ${farm.apiUrl}/api/search?q=blue
  gRPC (nodes/API)  ${farm.grpcAddress}
  NATS              ${farm.nats.url}
  S3                ${farm.s3.endpoint} (bucket nightshift)
  logs              ${dir}/logs/
Add a gpu-node from another shell (NIGHTSHIFT_NODE_CONFIG=examples/onnx-node.yaml for an onnx one):
  NIGHTSHIFT_COORDINATOR=${farm.grpcAddress} NIGHTSHIFT_S3_ENDPOINT=${farm.s3.endpoint} node --import tsx services/gpu-node/src/main.ts`);
}

/** node-1's config: the procedural painter and the upscale backend with the built-in tiny ×4 upscaler. */
async function writeUpscaleNodeConfig(): Promise<string> {
  const model = await ensureTinyUpscaler(builtinModelsDir(dir));
  const file = join(dir, 'upscale-node.yaml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `# written by npm run up: paints, and upscales with the built-in tiny x4 upscaler\nprocedural: true\nupscale:\n  model: ${JSON.stringify(model)}\n`);
  return file;
}

await main();
