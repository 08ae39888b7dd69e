/**
 * Where a node keeps registry models and how much room they get:
 *   NIGHTSHIFT_MODEL_CACHE              the cache folder (default `<data dir>/model-cache`)
 *   NIGHTSHIFT_MODEL_CACHE_GB           its size cap in GB of 2^30 bytes (default 50; fractions allowed)
 *   NIGHTSHIFT_MODEL_FETCH_ATTEMPTS     tries per download before the job fails (default 5)
 *   NIGHTSHIFT_MODEL_FETCH_RETRY_MS     wait before the second try, doubled after each (default 1000)
 */
import path from 'node:path';
import { z } from 'zod';
import { formatIssues } from '@nightshift/common';

export interface ModelSettings {
  dir: string;
  capBytes: number;
  attempts: number;
  retryDelayMs: number;
}

const GB = 1024 ** 3;

const schema = z.object({
  NIGHTSHIFT_MODEL_CACHE: z.string().min(1).optional(),
  NIGHTSHIFT_MODEL_CACHE_GB: z.coerce.number().positive().max(1_000_000).default(50),
  NIGHTSHIFT_MODEL_FETCH_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(5),
  NIGHTSHIFT_MODEL_FETCH_RETRY_MS: z.coerce.number().int().min(0).max(600_000).default(1_000),
});

export function modelSettingsFromEnv(env: NodeJS.ProcessEnv, dataDir: string): ModelSettings {
  const r = schema.safeParse(env);
  if (!r.success) throw new Error(`invalid model cache settings: ${formatIssues(r.error.issues)}`);
  const s = r.data;
  return {
    dir: path.resolve(s.NIGHTSHIFT_MODEL_CACHE ?? path.join(dataDir, 'model-cache')),
    capBytes: Math.floor(s.NIGHTSHIFT_MODEL_CACHE_GB * GB),
    attempts: s.NIGHTSHIFT_MODEL_FETCH_ATTEMPTS,
    retryDelayMs: s.NIGHTSHIFT_MODEL_FETCH_RETRY_MS,
  };
}
