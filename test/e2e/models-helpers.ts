/**
 * Shared by the registry-model e2e tests (models-pull, models-cache-farm):
 * the farm's API as those tests read it, the S3 access log's count of a
 * model's file downloads, and the render keys a sweep on a registered model
 * must produce.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { modelFileKey } from '@nightshift/common';
import { s3AccessLog, waitFor } from '@nightshift/devfarm';
import type { ModelManifest } from '@nightshift/registry';
import { expandSweep, parseSpec, renderKey } from '@nightshift/sweep';

/** A node in GET /api/nodes, with its model cache as it last reported it. */
export interface NodeView {
  id: string;
  status: string;
  models: { cached: string[]; loaded: string; downloads: { hash: string; bytesDone: number; bytesTotal: number }[]; bytesPerS: number } | null;
}

export interface SweepView {
  status: string;
  counts: Record<string, number>;
  failedJobs: unknown[];
}

export interface ImageView {
  renderKey: string;
  node: string;
  url: string;
}

/** The coordinator's API at `apiUrl`, as the model tests use it. */
export function modelsApi(apiUrl: string) {
  const api = async <T>(path: string): Promise<T> => (await (await fetch(`${apiUrl}${path}`)).json()) as T;
  return {
    api,
    nodes: async () => (await api<{ nodes: NodeView[] }>('/api/nodes')).nodes,
    images: async (id: string) => (await api<{ images: ImageView[] }>(`/api/sweeps/${id}/images`)).images,
    async submit(spec: unknown): Promise<string> {
      const res = await fetch(`${apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
      const body = (await res.json()) as { id: string };
      assert.equal(res.status, 201, JSON.stringify(body));
      return body.id;
    },
    /** Waits for the sweep to end (done, failed or cancelled) and returns it. */
    waitDone(id: string, timeoutMs = 240_000): Promise<SweepView> {
      return waitFor(`sweep ${id}`, async () => {
        const s = await api<SweepView>(`/api/sweeps/${id}`);
        return ['done', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
      }, timeoutMs, 250);
    },
  };
}

/** GETs of `manifest`'s files the farm's S3 server has answered so far (needs `s3AccessLog`), by object key. */
export function modelFileGets(farmDir: string, manifest: ModelManifest): Map<string, number> {
  const keys = new Set(manifest.files.map((f) => `/nightshift/${modelFileKey(manifest.hash, f.path)}`));
  const counts = new Map<string, number>();
  const file = s3AccessLog(farmDir);
  if (!existsSync(file)) return counts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const { path } = JSON.parse(line) as { path: string };
    const key = decodeURIComponent(path);
    if (keys.has(key)) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The render keys a sweep spec on a registered model must produce: the model's content hash in place of its name. */
export const expectedRenderKeys = (spec: unknown, modelHash: string) =>
  expandSweep(parseSpec(spec), 100)
    .map((j) => renderKey({ backend: j.backend, model: modelHash, prompt: j.prompt, seed: j.seed, params: j.params }))
    .sort();
