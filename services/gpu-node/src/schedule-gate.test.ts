/**
 * Leaving at a window's end, with a fake clock: the worker stops taking
 * jobs and hands back its queue (and, in requeue mode, its running render);
 * at the next window it takes work again. Also a pause by hand and idleOnly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { Worker, type Report } from './worker.js';
import type { Backend } from './backends/backend.js';
import { ProceduralBackend } from './backends/procedural.js';
import { Schedule } from './schedule.js';
import { ScheduleGate, type GateState } from './schedule-gate.js';

/** A backend whose renders wait until released (or aborted). */
function heldBackend(): { backend: Backend; started: string[]; finish: () => void } {
  const procedural = new ProceduralBackend();
  const started: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const backend: Backend = {
    name: 'fake',
    models: [],
    async render(req, _onProgress, signal) {
      started.push(req.jobId);
      await new Promise<void>((resolve, reject) => {
        void gate.then(resolve);
        signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
      return procedural.render({ ...req, params: { ...req.params, steps: 1 } }, () => {}, signal);
    },
  };
  return { backend, started, finish: release };
}

function setup() {
  const { backend, started, finish } = heldBackend();
  const reports: Report[] = [];
  const stored = new Map<string, Buffer>();
  const worker = new Worker({
    nodeId: 'n',
    slots: 1,
    backends: new Map([['fake', backend]]),
    storage: { exists: async (k) => stored.has(k), put: async (k, b) => void stored.set(k, b), get: async (k) => stored.get(k)! },
    report: (r) => reports.push(r),
    log: createLogger('gate-test', 'silent'),
  });
  const job = (i: number) => create(JobAssignmentSchema, { jobId: `j${i}`, renderKey: String(i % 10).repeat(64), backend: 'fake', paramsJson: JSON.stringify({ width: 64, height: 64, steps: 1 }), prompt: 'x' });
  return { worker, reports, started, finish, job };
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), 'condition not reached');
}

/** A gate over a fake clock, wired to the worker as node.ts wires it. */
function gateFor(worker: Worker, clock: { now: number }, onLeave: 'finish' | 'requeue', extra: Partial<ConstructorParameters<typeof ScheduleGate>[0]> = {}) {
  const changes: { state: GateState; released: string[] }[] = [];
  const gate = new ScheduleGate({
    schedule: Schedule.parse(['mon-fri 23:00-07:30']),
    clock: () => clock.now,
    onChange: (state) => {
      if (state.accepting) worker.rejoin();
      changes.push({ state, released: state.accepting ? [] : worker.leave(onLeave) });
    },
    ...extra,
  });
  return { gate, changes };
}

// Saturday 2026-11-28, local time: Friday's window ends at 07:30.
const SAT_0729 = new Date(2026, 10, 28, 7, 29, 59).getTime();
const SAT_0730 = new Date(2026, 10, 28, 7, 30).getTime();
const MON_2300 = new Date(2026, 10, 30, 23, 0).getTime();

test('requeue: at the window end the worker hands back its queue and its running render, and takes no job until the next window', async () => {
  const { worker, started, finish, job } = setup();
  const clock = { now: SAT_0729 };
  const { gate, changes } = gateFor(worker, clock, 'requeue');
  await gate.poll();
  assert.equal(changes.length, 0, 'inside the window: no change');
  worker.start();
  for (const i of [1, 2, 3]) assert.equal(worker.assign(job(i)), true);
  await until(() => started.length === 1);

  clock.now = SAT_0730;
  await gate.poll();
  assert.equal(changes.length, 1);
  const left = changes[0]!;
  assert.deepEqual(left.state, { accepting: false, reason: 'schedule', untilMs: MON_2300, untilLocal: 'Mon 23:00', detail: 'outside the schedule' });
  assert.deepEqual(left.released.sort(), ['j1', 'j2', 'j3'], 'the running render and the two prefetched jobs go back');
  assert.deepEqual(worker.heldJobIds(), []);
  assert.equal(worker.assign(job(4)), false, 'a job sent after leaving is refused (the node hands it back)');
  finish();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(started, ['j1'], 'nothing else was rendered');

  clock.now = MON_2300;
  await gate.poll();
  assert.deepEqual(changes[1]!.state, { accepting: true });
  assert.equal(worker.assign(job(5)), true, 'back at work in the next window');
  await until(() => started.includes('j5'));
  gate.stop();
  await worker.stop();
});

test('finish: the running job is completed and reported, the prefetched ones go back', async () => {
  const { worker, reports, started, finish, job } = setup();
  const clock = { now: SAT_0729 };
  const { gate, changes } = gateFor(worker, clock, 'finish');
  worker.start();
  for (const i of [1, 2]) worker.assign(job(i));
  await until(() => started.length === 1);
  clock.now = SAT_0730;
  await gate.poll();
  assert.deepEqual(changes[0]!.released, ['j2']);
  assert.deepEqual(worker.heldJobIds(), ['j1'], 'still held (and heartbeated) until it is done');
  finish();
  await until(() => reports.some((r) => r.case !== 'progress'));
  const completed = reports.flatMap((r) => (r.case === 'completed' ? [r.value.jobId] : []));
  assert.deepEqual(completed, ['j1']);
  await until(() => worker.heldJobIds().length === 0);
  assert.deepEqual(started, ['j1']);
  gate.stop();
  await worker.stop();
});

test('a pause by hand wins over an open window; resume rejoins', async () => {
  const { worker, job } = setup();
  const { gate, changes } = gateFor(worker, { now: SAT_0729 }, 'requeue');
  gate.setPaused(true);
  assert.equal(changes[0]!.state.accepting, false);
  assert.equal(!changes[0]!.state.accepting && changes[0]!.state.reason, 'paused');
  assert.equal(worker.assign(job(1)), false);
  gate.setPaused(false);
  assert.deepEqual(changes[1]!.state, { accepting: true });
  assert.equal(worker.assign(job(1)), true);
  await worker.stop();
});

test('idleOnly: a foreign GPU process makes the node leave within one poll, its end brings it back', async () => {
  const { worker } = setup();
  let apps = [{ pid: 4242, name: 'game.exe' }];
  const { gate, changes } = gateFor(worker, { now: SAT_0729 }, 'finish', { probe: async () => apps });
  await gate.poll();
  assert.deepEqual(changes[0]!.state, { accepting: false, reason: 'gpu-busy', untilMs: 0, untilLocal: '', detail: 'GPU in use by game.exe (pid 4242)' });
  apps = [];
  await gate.poll();
  assert.deepEqual(changes[1]!.state, { accepting: true });
  await worker.stop();
});
