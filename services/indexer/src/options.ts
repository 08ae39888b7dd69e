/**
 * The indexer's own settings, NIGHTSHIFT_INDEXER_* (environment, or the same
 * keys in the NIGHTSHIFT_CONFIG file, environment winning as in loadConfig).
 * The shared ones (NATS, S3, model, data folder, port) come from loadConfig.
 */
import { z } from 'zod';
import { parseSettings, settingsInput } from '@nightshift/common';

const Schema = z.object({
  /** Events per batch (one forward pass of the vision model). */
  NIGHTSHIFT_INDEXER_BATCH: z.coerce.number().int().min(1).max(1024).default(32),
  /** Batches in flight at once; with the batch size, the bound on events held in memory. */
  NIGHTSHIFT_INDEXER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(3),
  /** Seconds before an unacked event is redelivered. */
  NIGHTSHIFT_INDEXER_ACK_WAIT_S: z.coerce.number().min(1).max(3600).default(60),
  /** Cosine distance under which a later image is marked a near-duplicate of an earlier one; negative disables. */
  NIGHTSHIFT_INDEXER_DUP_DISTANCE: z.coerce.number().min(-1).max(2).default(0.02),
  /** Exact search up to this many vectors, HNSW beyond. */
  NIGHTSHIFT_INDEXER_EXACT_BELOW: z.coerce.number().int().min(0).default(20_000),
  NIGHTSHIFT_INDEXER_HNSW_M: z.coerce.number().int().min(4).max(128).default(16),
  NIGHTSHIFT_INDEXER_HNSW_EF_ADD: z.coerce.number().int().min(8).max(4096).default(128),
  NIGHTSHIFT_INDEXER_HNSW_EF_SEARCH: z.coerce.number().int().min(8).max(4096).default(128),
  /** onnxruntime threads per forward pass; 0 = one per core (better for a real CLIP on a big machine). */
  NIGHTSHIFT_INDEXER_ORT_THREADS: z.coerce.number().int().min(0).max(256).default(1),
  NIGHTSHIFT_INDEXER_QUANTIZATION: z.enum(['f32', 'f16']).default('f32'),
  /** Seconds between vector-index snapshots (when something changed). */
  NIGHTSHIFT_INDEXER_SNAPSHOT_S: z.coerce.number().min(1).default(120),
  /** Test hook, see ConsumerOptions.fault and ReindexOptions.fault. */
  NIGHTSHIFT_INDEXER_FAULT: z.string().optional(),
  /** Hub mirror for NIGHTSHIFT_CLIP_MODEL=org/name (also read from HF_ENDPOINT). */
  NIGHTSHIFT_HF_ENDPOINT: z.string().optional(),
  NIGHTSHIFT_INDEXER_HUB_TIMEOUT_S: z.coerce.number().min(1).default(120),
  /** The aesthetic head (aesthetic-setting.ts): an .onnx file, registry:NAME or nightshift-tiny-aesthetic; unset: none. */
  NIGHTSHIFT_AESTHETIC_MODEL: z.string().max(4096).optional(),
});

export type IndexerOptions = z.output<typeof Schema>;

export function loadIndexerOptions(env: NodeJS.ProcessEnv = process.env): IndexerOptions {
  const input = settingsInput(env);
  if (!input.NIGHTSHIFT_HF_ENDPOINT && env.HF_ENDPOINT) input.NIGHTSHIFT_HF_ENDPOINT = env.HF_ENDPOINT;
  return parseSettings(Schema, input, 'indexer configuration');
}
