/**
 * Untimed set-up for benchmarks whose simulated nodes report completions
 * without uploading anything: the coordinator records a completion only once
 * a HEAD finds the job's own `images/RK.png` and `thumbs/RK.webp`
 * (result-reports.ts), so those objects are stored beforehand, as 1×1
 * placeholders, for every job the sweep will expand to. The render keys come
 * from the same expansion the coordinator runs (`expandSweep(parseSpec(…))`),
 * so a spec that expands differently there leaves the sweep unfinished.
 */
import { imageKey, thumbKey, type Storage } from '@nightshift/common';
import { eachLimit } from '@nightshift/devfarm';
import { expandSweep, parseSpec } from '@nightshift/sweep';

// The smallest valid files of each kind: only their existence is checked.
const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const WEBP_1X1 = Buffer.from('UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==', 'base64');

/** The render keys of the jobs the coordinator will expand `spec` (a sweep request body) into. */
export function renderKeysOf(spec: unknown, maxJobs: number): string[] {
  return expandSweep(parseSpec(spec), maxJobs).map((j) => j.renderKey);
}

/** Stores a placeholder image and thumbnail for each render key, `concurrency` uploads at once; returns the seconds it took. */
export async function storePlaceholders(storage: Pick<Storage, 'put'>, renderKeys: readonly string[], concurrency = 16): Promise<number> {
  const t0 = performance.now();
  await eachLimit(renderKeys, concurrency, async (rk) => {
    await storage.put(imageKey(rk), PNG_1X1, 'image/png');
    await storage.put(thumbKey(rk), WEBP_1X1, 'image/webp');
  });
  return (performance.now() - t0) / 1000;
}
