/** The worker's reports: a preview over the size bound is dropped before it is sent; the progress still goes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { MAX_PREVIEW_BYTES, Worker, type Report } from './worker.js';
import type { Backend } from './backends/backend.js';
import { ProceduralBackend } from './backends/procedural.js';

test('previews bigger than MAX_PREVIEW_BYTES are not sent; smaller ones are', async () => {
  const procedural = new ProceduralBackend();
  // A backend whose previews are over the bound twice, then at it.
  const backend: Backend = {
    name: 'fake',
    models: [],
    async render(req, onProgress, signal) {
      onProgress({ step: 1, total: 3, preview: Buffer.alloc(MAX_PREVIEW_BYTES + 1) });
      onProgress({ step: 2, total: 3, preview: Buffer.alloc(MAX_PREVIEW_BYTES + 1) });
      onProgress({ step: 3, total: 3, preview: Buffer.alloc(MAX_PREVIEW_BYTES) });
      return procedural.render({ ...req, params: { ...req.params, steps: 1 } }, () => {}, signal);
    },
  };
  const reports: Report[] = [];
  const stored = new Map<string, Buffer>();
  const worker = new Worker({
    nodeId: 'n',
    slots: 1,
    backends: new Map([['fake', backend]]),
    storage: { exists: async (k) => stored.has(k), put: async (k, b) => void stored.set(k, b), get: async (k) => stored.get(k)! },
    report: (r) => reports.push(r),
    log: createLogger('worker-test', 'silent'),
    previewIntervalMs: 0,
  });
  worker.start();
  worker.assign(create(JobAssignmentSchema, { jobId: 'j1', renderKey: 'a'.repeat(64), backend: 'fake', paramsJson: JSON.stringify({ width: 64, height: 64, steps: 3 }), prompt: 'x' }));
  const deadline = Date.now() + 10_000;
  while (!reports.some((r) => r.case === 'completed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await worker.stop();
  const progress = reports.flatMap((r) => (r.case === 'progress' ? [r.value] : []));
  assert.deepEqual(progress.map((p) => [p.step, p.previewWebp.length]), [[1, 0], [2, 0], [3, MAX_PREVIEW_BYTES]]);
  assert.ok(reports.some((r) => r.case === 'completed'));
});
