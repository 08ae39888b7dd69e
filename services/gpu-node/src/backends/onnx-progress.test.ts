import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressQueue } from './onnx-progress.js';

/** A promise settled from outside, so the test decides the order work finishes in. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('ProgressQueue', () => {
  test('reports in push order even when later work finishes first; flush waits for all', async () => {
    const q = new ProgressQueue(new AbortController().signal);
    const out: string[] = [];
    const frame = deferred<string>();
    q.push(frame.promise, (v) => out.push(v));
    q.push(undefined, () => out.push('step 2'));
    q.push(Promise.resolve('frame 3'), (v) => out.push(v));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(out, [], 'nothing overtakes the frame still encoding');
    frame.resolve('frame 1');
    await q.flush();
    assert.deepEqual(out, ['frame 1', 'step 2', 'frame 3']);
  });

  test('nothing is reported after an abort or close', async () => {
    const ctl = new AbortController();
    const q = new ProgressQueue(ctl.signal);
    const out: number[] = [];
    const frame = deferred<number>();
    q.push(frame.promise, (v) => out.push(v));
    ctl.abort();
    frame.resolve(1);
    await q.flush();
    const closed = new ProgressQueue(new AbortController().signal);
    closed.push(2, (v) => out.push(v));
    closed.close();
    await closed.flush();
    assert.deepEqual(out, []);
  });

  test('a failed encode makes flush reject, and the reports after it are dropped', async () => {
    const q = new ProgressQueue(new AbortController().signal);
    const out: number[] = [];
    const frame = deferred<number>();
    q.push(frame.promise, (v) => out.push(v));
    q.push(2, (v) => out.push(v));
    frame.reject(new Error('webp encode failed'));
    await assert.rejects(q.flush(), /webp encode failed/);
    assert.deepEqual(out, []);
  });
});
