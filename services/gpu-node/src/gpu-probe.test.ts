/** idleOnly's probe through a stub `nvidia-smi` on the PATH: foreign processes count, the node's own and its children do not. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nvidiaSmiProbe, parseComputeApps } from './gpu-probe.js';
import { ScheduleGate, type GateState } from './schedule-gate.js';
import { stubNvidiaSmi } from './nvidia-smi-stub.js';

/** A stub `nvidia-smi` on the PATH that prints `lines` when asked for compute apps. */
const stubApps = (lines: string[]) => stubNvidiaSmi({ apps: lines });

test('parses nvidia-smi csv lines, skipping noise', () => {
  assert.deepEqual(parseComputeApps('1234, /usr/bin/game\n  99 ,python3 \nNo running processes found\n'), [
    { pid: 1234, name: '/usr/bin/game' },
    { pid: 99, name: 'python3' },
  ]);
});

test('a foreign process on the GPU is reported; the node itself and its generators are not', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const child = spawn('sleep', ['30']);
  await new Promise((r) => child.once('spawn', r));
  const stub = stubApps([`${process.pid}, node`, `${child.pid}, /usr/bin/python3 generator.py`, '4194301, /usr/games/doom']);
  try {
    const probe = nvidiaSmiProbe({ env: stub.env });
    assert.deepEqual(await probe(), [{ pid: 4194301, name: '/usr/games/doom' }]);
  } finally {
    child.kill();
    stub.cleanup();
  }
});

test('only the node\'s own work on the GPU: idle', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const stub = stubApps([`${process.pid}, node`]);
  try {
    assert.deepEqual(await nvidiaSmiProbe({ env: stub.env })(), []);
  } finally {
    stub.cleanup();
  }
});

test('without nvidia-smi the GPU counts as idle, and the owner is told once', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'nightshift-nosmi-'));
  const told: string[] = [];
  try {
    const probe = nvidiaSmiProbe({ env: { ...process.env, PATH: empty }, onUnavailable: (why) => told.push(why) });
    assert.deepEqual(await probe(), []);
    assert.deepEqual(await probe(), []);
    assert.deepEqual(told, ['nvidia-smi is not on the PATH']);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('idleOnly end to end in the node: a stub nvidia-smi reporting a game makes the gate close, its exit opens it again', async () => {
  const game = stubApps(['31337, /usr/games/quake']);
  const idle = stubApps([]);
  let env = game.env;
  const changes: GateState[] = [];
  try {
    const gate = new ScheduleGate({ probe: () => nvidiaSmiProbe({ env })(), onChange: (s) => changes.push(s) });
    await gate.poll();
    assert.deepEqual(changes, [{ accepting: false, reason: 'gpu-busy', untilMs: 0, untilLocal: '', detail: 'GPU in use by /usr/games/quake (pid 31337)' }]);
    env = idle.env;
    await gate.poll();
    assert.deepEqual(changes.at(-1), { accepting: true });
  } finally {
    game.cleanup();
    idle.cleanup();
  }
});
