#!/usr/bin/env node
/**
 * A small generator script for Nightshift's `exec` backend, in plain Node (no
 * dependencies). It is not an AI model: it paints a deterministic gradient
 * from the prompt and seed, "denoising" from noise over --steps so previews
 * show an evolving image. It exists to show the protocol and to drive the
 * tests, including failure modes real generators have.
 *
 * Protocol (stdout, one JSON object per line; everything else is log):
 *   {"step":3,"total":50}      progress
 *   {"preview":"/path.png"}    an intermediate image, written completely before the line
 *   {"output":"/path.png"}     the final image (else the backend reads --output)
 *
 * Usage (the node config's command template, one argv entry per item):
 *   node node-generator.mjs --prompt={prompt} --seed={seed} --width={width}
 *        --height={height} --steps={steps} --output={output} --preview={preview}
 *        [--params={params}] [--model={model}]
 * Use the --name=value form for the prompt: a prompt may start with "-".
 *
 * Simulations, from flags, from the params file's `params` object (so a
 * sweep's extra params can select them), or from NODE_GENERATOR_* env vars:
 *   --sleep-ms=N        / sleepMs / NODE_GENERATOR_SLEEP_MS      wait N ms per step
 *   --simulate=MODE     / simulate / NODE_GENERATOR_SIMULATE     fail | oom | hang | no-output
 *   --spawn-child=DIR   / pidDir / NODE_GENERATOR_PID_DIR        start a child process; write DIR/generator.pid and DIR/child.pid
 *   --ignore-term       / ignoreTerm                             this process and its child ignore SIGTERM (needs SIGKILL)
 *   --write-prompt=FILE                                          write the received prompt, verbatim, to FILE
 *   --prompt-dir=DIR    / promptDir / NODE_GENERATOR_PROMPT_DIR  write it to DIR/<seed>-<pid>.txt
 *   --previews=N                                                 number of previews (default 4)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

const { values: args } = parseArgs({
  options: {
    prompt: { type: 'string', default: '' },
    seed: { type: 'string', default: '0' },
    width: { type: 'string', default: '64' },
    height: { type: 'string', default: '64' },
    steps: { type: 'string', default: '10' },
    guidance: { type: 'string' },
    model: { type: 'string', default: 'node-generator' },
    output: { type: 'string' },
    preview: { type: 'string' },
    params: { type: 'string' },
    'sleep-ms': { type: 'string' },
    simulate: { type: 'string' },
    'spawn-child': { type: 'string' },
    'ignore-term': { type: 'boolean', default: false },
    'write-prompt': { type: 'string' },
    'prompt-dir': { type: 'string' },
    previews: { type: 'string', default: '4' },
  },
  strict: true,
  allowPositionals: false,
});

const fileParams = args.params ? JSON.parse(readFileSync(args.params, 'utf8')).params ?? {} : {};
const env = process.env;
const opt = (flag, key, envKey) => args[flag] ?? fileParams[key] ?? (envKey ? env[envKey] : undefined);

const prompt = args.prompt;
const seed = Number(args.seed);
const width = int(args.width, 'width');
const height = int(args.height, 'height');
const steps = int(args.steps, 'steps');
const sleepMs = Number(opt('sleep-ms', 'sleepMs', 'NODE_GENERATOR_SLEEP_MS') ?? 0);
const simulate = opt('simulate', 'simulate', 'NODE_GENERATOR_SIMULATE');
const pidDir = opt('spawn-child', 'pidDir', 'NODE_GENERATOR_PID_DIR');
const ignoreTerm = args['ignore-term'] || fileParams.ignoreTerm === true;
const promptDir = opt('prompt-dir', 'promptDir', 'NODE_GENERATOR_PROMPT_DIR');
const output = args.output ?? path.resolve('output.png');
const previewBase = args.preview ?? path.join(path.dirname(output), 'preview.png');
const previewCount = int(args.previews, 'previews');

function int(v, name) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`node-generator: --${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    process.exit(2); // before any other output: nothing queued to lose
  }
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const emit = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');

/**
 * Exits once stdout and stderr are flushed: writes to a pipe can be queued,
 * and a bare process.exit() would drop them (the last log lines, or the
 * output line). Exits even with the helper child's handle still open.
 */
async function exit(code) {
  let pending = 2;
  const done = () => --pending === 0 && process.exit(code);
  process.stdout.write('', done);
  process.stderr.write('', done);
  await new Promise(() => {});
}

// The prompt is written first and untouched, so tests can compare it byte for byte.
if (args['write-prompt']) writeFileSync(args['write-prompt'], prompt, 'utf8');
if (promptDir) {
  mkdirSync(promptDir, { recursive: true });
  writeFileSync(path.join(promptDir, `${seed}-${process.pid}.txt`), prompt, 'utf8');
}
if (ignoreTerm) process.on('SIGTERM', () => console.error('node-generator: ignoring SIGTERM'));

console.log(`node-generator: loading model ${args.model}`);
console.error(`node-generator: prompt=${JSON.stringify(prompt)} seed=${seed} size=${width}x${height} steps=${steps}`);

if (pidDir) {
  mkdirSync(pidDir, { recursive: true });
  // The child stays in our process group (not detached) and holds no pipe of ours.
  const code = `
    const fs = require('node:fs');
    ${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''}
    fs.writeFileSync(${JSON.stringify(path.join(pidDir, 'child.pid.tmp'))}, String(process.pid));
    fs.renameSync(${JSON.stringify(path.join(pidDir, 'child.pid.tmp'))}, ${JSON.stringify(path.join(pidDir, 'child.pid'))});
    setInterval(() => {}, 1000);
  `;
  spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  writeFileSync(path.join(pidDir, 'generator.pid'), String(process.pid));
  for (let i = 0; i < 200 && !existsSync(path.join(pidDir, 'child.pid')); i++) await sleep(10);
  console.log(`node-generator: started a helper process (pid file in ${pidDir})`);
}

// ------------------------------------------------------------------ image

/** FNV-1a of the prompt, mixed with the seed: the picture depends on both. */
function hash(s, salt) {
  let h = 0x811c9dc5 ^ salt;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}
function rng(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const h = hash(prompt, seed >>> 0);
const c0 = [h & 255, (h >>> 8) & 255, (h >>> 16) & 255];
const c1 = [255 - c0[0], (h >>> 24) & 255, 255 - c0[2]];
const blob = { x: ((h >>> 3) % 100) / 100, y: ((h >>> 11) % 100) / 100, r: 0.15 + ((h >>> 19) % 20) / 100 };

function pixelsAt(t) {
  const noise = rng(h ^ 0x9e3779b9);
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / Math.max(1, width - 1);
      const v = y / Math.max(1, height - 1);
      const d = Math.hypot(u - blob.x, v - blob.y) < blob.r ? 1 : 0;
      for (let c = 0; c < 3; c++) {
        const clean = d ? 255 - c0[c] : c0[c] * (1 - u) + c1[c] * u * (1 - v / 2);
        const n = noise() * 255;
        px[(y * width + x) * 3 + c] = Math.round(clean * t + n * (1 - t));
      }
    }
  }
  return px;
}

let crcTable;
function crc32(buf) {
  if (zlib.crc32) return zlib.crc32(buf) >>> 0;
  crcTable ??= Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** 8-bit RGB PNG, filter 0 on every row. */
function encodePng(px) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) px.copy(raw, y * (width * 3 + 1) + 1, y * width * 3, (y + 1) * width * 3);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
/** Written to a temp name and renamed, so a reader never sees half a file. */
function writeAtomic(file, bytes) {
  writeFileSync(`${file}.tmp`, bytes);
  renameSync(`${file}.tmp`, file);
}

// ------------------------------------------------------------------ sampling

const previewEvery = previewCount > 0 ? Math.max(1, Math.floor(steps / previewCount)) : Infinity;
for (let step = 1; step <= steps; step++) {
  if (sleepMs > 0) await sleep(sleepMs);
  if (simulate === 'fail' && step === Math.min(2, steps)) {
    process.stderr.write('\n'); // end the progress line, as tqdm does on an exception
    console.error('Traceback (most recent call last):');
    console.error(`  File "sampler", line ${step}, in sample`);
    console.error('RuntimeError: simulated generator failure (--simulate=fail)');
    await exit(3);
  }
  if (simulate === 'oom' && step === Math.min(2, steps)) {
    process.stderr.write('\n');
    console.error('torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; simulated)');
    await exit(1);
  }
  process.stderr.write(`\rsampling ${step}/${steps}`);
  emit({ step, total: steps });
  if (step % previewEvery === 0 && step < steps) {
    const file = previewBase.replace(/(\.png)?$/, `-${step}.png`);
    writeAtomic(file, encodePng(pixelsAt(step / steps)));
    emit({ preview: file });
  }
  if (simulate === 'hang') {
    console.log('node-generator: hanging (--simulate=hang)');
    // Never finishes: only a timeout or a cancel ends this process.
    setInterval(() => {}, 1_000);
    await new Promise(() => {});
  }
}
process.stderr.write('\n');

if (simulate === 'no-output') {
  console.log('node-generator: exiting without an output (--simulate=no-output)');
  await exit(0);
}
writeAtomic(output, encodePng(pixelsAt(1)));
emit({ output });
console.log(`node-generator: wrote ${output}`);
if (pidDir) {
  // Finished normally: the helper is left behind on purpose, for the backend to clean up.
  console.log('node-generator: leaving the helper process running');
}
await exit(0);
