/**
 * Per-job overhead of the exec backend: time from render() to the first
 * progress line, and to the finished PNG, over N runs of a one-step job.
 * Compared: the example Node generator, a minimal Node script, and a minimal
 * Python script (process start-up dominates; real generators then spend
 * seconds loading weights, which a long-running worker would amortise).
 *   node --import tsx bench/exec-overhead.ts [RUNS=30]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { ExecBackend, type GeneratorInput } from '../services/gpu-node/src/backends/exec.js';

const RUNS = Number(process.argv[2] ?? 30);
const GENERATOR = fileURLToPath(new URL('../examples/generators/node-generator.mjs', import.meta.url));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'nightshift-exec-bench-'));

// A 1×1 PNG written by the minimal scripts, so every variant completes a real job.
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';
const nodeMinimal = `process.stdout.write('{"step":1,"total":1}\\n'); require('fs').writeFileSync(process.argv[1], Buffer.from('${PNG_1X1}', 'base64'));`;
const pyMinimal = `import sys, base64\nprint('{"step":1,"total":1}', flush=True)\nopen(sys.argv[1], 'wb').write(base64.b64decode('${PNG_1X1}'))`;

const variants: (GeneratorInput & { label: string })[] = [
  { label: 'node-generator.mjs (64x64, 1 step)', name: 'example', command: [process.execPath, GENERATOR, '--prompt={prompt}', '--seed={seed}', '--width={width}', '--height={height}', '--steps={steps}', '--output={output}'] },
  { label: 'minimal node -e', name: 'node-minimal', command: [process.execPath, '-e', nodeMinimal, '{output}'] },
];
try {
  execFileSync('python3', ['-c', 'pass']);
  variants.push({ label: 'minimal python3 -c', name: 'python-minimal', command: ['python3', '-c', pyMinimal, '{output}'] });
} catch {
  console.log('(python3 not found: skipping the Python variant)');
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const summary: Record<string, { firstProgressMedianMs: number; firstProgressP95Ms: number; jobDoneMedianMs: number; jobDoneP95Ms: number }> = {};
console.log(`${RUNS} runs each (after 2 warm-up runs), ms`);
console.log('generator                            first progress: median    p95   | job done: median    p95');
try {
  for (const v of variants) {
    const { label, ...gen } = v;
    const backend = new ExecBackend([{ ...gen, timeoutMs: 30_000 }], { tmpDir: tmp });
    const first: number[] = [];
    const total: number[] = [];
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now();
      let t1 = 0;
      await backend.render(
        { jobId: `b${i}`, renderKey: 'k', kind: 'render', prompt: 'a red circle', seed: i, params: { width: 64, height: 64, steps: 1 }, model: 'default' },
        () => (t1 ||= performance.now()),
        new AbortController().signal,
      );
      if (i < 2) continue; // warm-up: file cache, first sharp use
      first.push(t1 - t0);
      total.push(performance.now() - t0);
    }
    first.sort((a, b) => a - b);
    total.sort((a, b) => a - b);
    const f = (x: number) => x.toFixed(1).padStart(7);
    console.log(`${label.padEnd(36)} ${f(pct(first, 50))}  ${f(pct(first, 95))}   |        ${f(pct(total, 50))}  ${f(pct(total, 95))}`);
    summary[v.name] = { firstProgressMedianMs: pct(first, 50), firstProgressP95Ms: pct(first, 95), jobDoneMedianMs: pct(total, 50), jobDoneP95Ms: pct(total, 95) };
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
// Machine-readable summary, last line (bench/ convention).
console.log(JSON.stringify({ bench: 'exec-overhead', runs: RUNS, generators: summary }));
