/**
 * Configuration from NIGHTSHIFT_* environment variables (docs/design.md "Configuration"), optionally
 * overlaid on a JSON or YAML file named by NIGHTSHIFT_CONFIG with the same keys
 * (settings.ts). Environment wins over the file so one machine can override a shared file.
 */
import { z } from 'zod';
import { parseSettings, settingsInput } from './settings.js';
import { databaseUrlSetting } from './database-url.js';

const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const flag = z.enum(['', '0', '1', 'false', 'true']).default('').transform((v) => v === '1' || v === 'true');

/** More than this many connections from one replica is a mistake (PostgreSQL's own default max_connections is 100). */
export const MAX_DATABASE_POOL_SIZE = 200;
const POOL_SIZE_PROBLEM = `a whole number of connections from 1 to ${MAX_DATABASE_POOL_SIZE} (default 10)`;

const ConfigSchema = z.object({
  /** The coordinator's store: unset or empty = the embedded SQLite file in the data folder; postgres://user:password@host:5432/db = PostgreSQL, shared by replicas (database-url.ts; never logged with its password). */
  NIGHTSHIFT_DATABASE_URL: databaseUrlSetting,
  /** PostgreSQL connections per coordinator replica (its periodic duties and LISTEN hold one more each); unused on SQLite. */
  NIGHTSHIFT_DATABASE_POOL_SIZE: z.coerce
    .number({ message: POOL_SIZE_PROBLEM })
    .int(POOL_SIZE_PROBLEM)
    .min(1, POOL_SIZE_PROBLEM)
    .max(MAX_DATABASE_POOL_SIZE, POOL_SIZE_PROBLEM)
    .default(10),
  NIGHTSHIFT_NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  /** NATS user and password (both or neither); the server must require them (deploy/ does). */
  NIGHTSHIFT_NATS_USER: z.string().optional(),
  NIGHTSHIFT_NATS_PASSWORD: z.string().optional(),
  /** NATS credentials file (JWT + nkey seed, `nsc generate creds`), instead of user and password. */
  NIGHTSHIFT_NATS_CREDS: z.string().optional(),
  /** The event stream keeps events this many hours (0: no age limit). */
  NIGHTSHIFT_STREAM_MAX_AGE_HOURS: z.coerce.number().min(0).default(168),
  /** The event stream's size cap in bytes, oldest events dropped first (0: no size limit). */
  NIGHTSHIFT_STREAM_MAX_BYTES: z.coerce.number().int().min(0).default(1024 ** 3),
  NIGHTSHIFT_S3_ENDPOINT: z.string().default('http://127.0.0.1:9000'),
  NIGHTSHIFT_S3_ACCESS_KEY: z.string().default('S3RVER'),
  NIGHTSHIFT_S3_SECRET_KEY: z.string().default('S3RVER'),
  NIGHTSHIFT_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not a valid bucket name').default('nightshift'),
  /** The coordinator's gRPC address for nodes: host:port, or several comma-separated (replicas; the gpu-node validates and rotates them, coordinator-addresses.ts). */
  NIGHTSHIFT_COORDINATOR: z.string().default('127.0.0.1:7070'),
  NIGHTSHIFT_API_TOKEN: z.string().optional(),
  NIGHTSHIFT_NODE_TOKEN: z.string().optional(),
  /** Enrolled node tokens, comma-separated; revoking one = removing it (the coordinator's node-tokens.ts). */
  NIGHTSHIFT_NODE_TOKENS: z.string().optional(),
  /** File of enrolled node tokens as `NAME sha256:HEX` lines (hashes only at rest); re-read when it changes. */
  NIGHTSHIFT_NODE_TOKENS_FILE: z.string().optional(),
  /** gRPC TLS (tls.ts): the coordinator serves TLS when cert and key (PEM files) are both set. */
  NIGHTSHIFT_TLS_CERT: z.string().optional(),
  NIGHTSHIFT_TLS_KEY: z.string().optional(),
  /** Clients (gpu-nodes, SweepService programs) connect with TLS, trusting this CA (PEM file). */
  NIGHTSHIFT_TLS_CA: z.string().optional(),
  /** Name to expect in the coordinator's certificate when the address is an IP or another name. */
  NIGHTSHIFT_TLS_SERVER_NAME: z.string().optional(),
  /** mTLS: the coordinator requires client certificates signed by this CA (PEM file). */
  NIGHTSHIFT_TLS_CLIENT_CA: z.string().optional(),
  /** mTLS: this client's certificate and key (PEM files). */
  NIGHTSHIFT_TLS_CLIENT_CERT: z.string().optional(),
  NIGHTSHIFT_TLS_CLIENT_KEY: z.string().optional(),
  /** gRPC keepalive ping interval on both ends; a dead link is noticed within about twice this. */
  NIGHTSHIFT_GRPC_KEEPALIVE_MS: z.coerce.number().int().min(1_000).default(5_000),
  /** gpu-node /metrics, /healthz, /readyz on this port (0: a free one); unset: no HTTP server. */
  NIGHTSHIFT_NODE_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  NIGHTSHIFT_CLIP_MODEL: z.string().optional(),
  NIGHTSHIFT_DATA_DIR: z.string().default('.data'),
  NIGHTSHIFT_HTTP_HOST: z.string().default('127.0.0.1'),
  /** Host names the API answers to besides loopback names and IP literals, comma-separated (DNS-rebinding defence). */
  NIGHTSHIFT_ALLOWED_HOSTS: z.string().default('').transform(list),
  /** Origins besides the farm's own that may make state-changing requests, comma-separated. */
  NIGHTSHIFT_ALLOWED_ORIGINS: z.string().default('').transform(list),
  /** 1: start on a non-loopback address without tokens (a trusted network only). */
  NIGHTSHIFT_INSECURE_OPEN: flag,
  /** Live (SSE) clients at once; more get 503. */
  NIGHTSHIFT_SSE_MAX_CLIENTS: z.coerce.number().int().min(1).default(100),
  /** Bearer token for /metrics and /readyz; without it they answer loopback clients only. */
  NIGHTSHIFT_METRICS_TOKEN: z.string().optional(),
  NIGHTSHIFT_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  NIGHTSHIFT_GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(7070),
  NIGHTSHIFT_INDEXER_PORT: z.coerce.number().int().min(0).max(65535).default(8090),
  NIGHTSHIFT_INDEXER_URL: z.string().default('http://127.0.0.1:8090'),
  NIGHTSHIFT_MAX_JOBS: z.coerce.number().int().min(1).default(100_000),
  /** Characters in one expanded prompt (template and axis values filled in). */
  NIGHTSHIFT_MAX_PROMPT_CHARS: z.coerce.number().int().min(1).default(4_000),
  /** Characters in all of one sweep's expanded prompts together. */
  NIGHTSHIFT_MAX_SWEEP_CHARS: z.coerce.number().int().min(1).default(50_000_000),
  NIGHTSHIFT_NODE_ID: z.string().optional(),
  NIGHTSHIFT_NODE_NAME: z.string().optional(),
  NIGHTSHIFT_NODE_VRAM_MB: z.coerce.number().int().min(0).default(16_384),
  NIGHTSHIFT_NODE_GPU: z.string().default('cpu'),
  NIGHTSHIFT_NODE_SLOTS: z.coerce.number().int().min(1).max(64).default(1),
  NIGHTSHIFT_HEARTBEAT_MS: z.coerce.number().int().min(50).default(2_000),
  NIGHTSHIFT_LEASE_MS: z.coerce.number().int().min(200).default(30_000),
  /** A node silent this long is marked down and its jobs requeued. */
  NIGHTSHIFT_NODE_TIMEOUT_MS: z.coerce.number().int().min(200).default(15_000),
  /** After a coordinator restart, leases last at least this long so nodes can reconnect. */
  NIGHTSHIFT_RESTART_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  NIGHTSHIFT_PREFETCH_PER_SLOT: z.coerce.number().int().min(1).max(32).default(2),
  NIGHTSHIFT_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(3),
  NIGHTSHIFT_BLOCKLIST_AFTER: z.coerce.number().int().min(1).max(1000).default(3),
  /** Minimum run time before a job may be duplicated onto an idle node (0 disables copies). */
  NIGHTSHIFT_STRAGGLER_MIN_MS: z.coerce.number().int().min(0).default(60_000),
  /** Published outbox rows are deleted after this many hours (the stream keeps the events). */
  NIGHTSHIFT_OUTBOX_RETENTION_HOURS: z.coerce.number().min(0).default(24),
  /** The coordinator's audit of every result report is kept this many days. */
  NIGHTSHIFT_RESULTS_RETENTION_DAYS: z.coerce.number().min(0).default(30),
  /** Webhook retries wait this long, doubling each time (capped at an hour). */
  NIGHTSHIFT_WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(1).default(10_000),
  /** A webhook delivery is retried for this many hours after its event, then given up. */
  NIGHTSHIFT_WEBHOOK_RETRY_HOURS: z.coerce.number().min(0).default(24),
  /** Hosts webhooks may target, comma-separated (`host`, `host:port`, `*.domain`); empty: any (a single-owner farm). */
  NIGHTSHIFT_WEBHOOK_ALLOW: z.string().default('').transform(list),
  /** Finished webhook deliveries and their attempts are kept this many days. */
  NIGHTSHIFT_WEBHOOK_RETENTION_DAYS: z.coerce.number().min(0).default(7),
  /** What one kWh costs, in no particular currency, for a sweep's cost figures; unset: energy is shown, no cost. */
  NIGHTSHIFT_ENERGY_PRICE: z.coerce.number().min(0).max(1_000_000).optional(),
});

export type Config = z.output<typeof ConfigSchema>;

export type LimitsConfig = Pick<Config, 'NIGHTSHIFT_MAX_JOBS' | 'NIGHTSHIFT_MAX_PROMPT_CHARS' | 'NIGHTSHIFT_MAX_SWEEP_CHARS'>;

/** What one sweep may expand to (the shape of @nightshift/sweep's ExpansionLimits). */
export const expansionLimits = (c: LimitsConfig) => ({ maxJobs: c.NIGHTSHIFT_MAX_JOBS, maxPromptChars: c.NIGHTSHIFT_MAX_PROMPT_CHARS, maxSweepChars: c.NIGHTSHIFT_MAX_SWEEP_CHARS });

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return parseSettings(ConfigSchema, settingsInput(env), 'configuration');
}
