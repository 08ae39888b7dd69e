/**
 * The coordinator's durable state: SQLite in WAL mode (better-sqlite3@12).
 * Migrations are append-only; `user_version` records how far a file has come.
 */
import Database from 'better-sqlite3';

export type DB = Database.Database;

const MIGRATIONS = [
  `
  CREATE TABLE sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL REFERENCES sweeps(id),
    idx INTEGER NOT NULL,
    render_key TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    axes_json TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL,            -- queued | leased | done | skipped | failed | cancelled
    node_id TEXT,
    lease_expires_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    log_tail TEXT,
    image_key TEXT,
    thumb_key TEXT,
    render_ms INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    UNIQUE (sweep_id, idx)
  );
  CREATE INDEX jobs_dispatch ON jobs (state, sweep_id, idx);
  CREATE INDEX jobs_node ON jobs (node_id, state);
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    capabilities_json TEXT NOT NULL,
    status TEXT NOT NULL,           -- online | offline
    last_seen INTEGER NOT NULL,
    connected_at INTEGER NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
  );
  CREATE INDEX outbox_pending ON outbox (published_at, id);
  `,
  // Scheduling that survives the night: job kinds, placement, exclusions,
  // straggler copies, per-sweep node blocklists, and an audit of every result.
  `
  ALTER TABLE sweeps ADD COLUMN kind TEXT NOT NULL DEFAULT 'render';
  ALTER TABLE sweeps ADD COLUMN model TEXT NOT NULL DEFAULT '';
  ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'render';
  ALTER TABLE jobs ADD COLUMN source_key TEXT;
  ALTER TABLE jobs ADD COLUMN min_vram_mb INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN excluded_nodes TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE jobs ADD COLUMN copy_node_id TEXT;
  ALTER TABLE jobs ADD COLUMN copy_lease_expires_at INTEGER;
  ALTER TABLE jobs ADD COLUMN result_model TEXT;
  CREATE INDEX jobs_copy ON jobs (copy_node_id) WHERE copy_node_id IS NOT NULL;
  CREATE TABLE sweep_blocklist (
    sweep_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, node_id)
  );
  CREATE TABLE results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    skipped INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    copy INTEGER NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX results_job ON results (job_id);
  `,
  // leasedTo() is served by jobs_dispatch (state first); this index only cost writes.
  `
  DROP INDEX jobs_node;
  `,
  // Lookups by image (upscale requests, gallery detail) and the gallery's newest-first listing.
  `
  CREATE INDEX jobs_render_key ON jobs (render_key);
  CREATE INDEX jobs_finished ON jobs (state, finished_at);
  `,
  // Which job announced its image (image.rendered / image.upscaled): one per
  // image. A job skipped because its image was already stored announces it
  // when no job ever did (a node that uploaded and died before reporting).
  `
  ALTER TABLE jobs ADD COLUMN announced INTEGER NOT NULL DEFAULT 0;
  UPDATE jobs SET announced = 1 WHERE state = 'done';
  CREATE INDEX jobs_announced ON jobs (announced, finished_at) WHERE announced = 1;
  `,
  // Nodes are not trusted. A result is accepted only from a node that holds
  // (or, for a report that crossed a moved lease, last held) the job: the
  // last holder is kept. A node id belongs to the token that first enrolled
  // it. Results are pruned by age.
  `
  ALTER TABLE jobs ADD COLUMN prev_node_id TEXT;
  CREATE TABLE node_tokens (
    node_id TEXT PRIMARY KEY,
    token_fingerprint TEXT NOT NULL,
    bound_at INTEGER NOT NULL
  );
  CREATE INDEX results_at ON results (at);
  `,
  // A big queue (issue 12): nothing on a hot path counts or scans a sweep's jobs.
  // Per-sweep job counts by state, kept in the same transaction as every
  // state change by a trigger (createSweep sets a new sweep's queued count).
  // Exclusions move from a JSON column into a table, kept only while the job
  // can still run. Indexes for the pick's VRAM floor (MIN per sweep's queued
  // jobs) and for a sweep's recent finishes (ETA, straggler medians).
  `
  CREATE TABLE sweep_counts (
    sweep_id TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, state)
  ) WITHOUT ROWID;
  INSERT INTO sweep_counts (sweep_id, state, n) SELECT sweep_id, state, COUNT(*) FROM jobs GROUP BY sweep_id, state;
  CREATE TRIGGER jobs_state_counts AFTER UPDATE OF state ON jobs WHEN old.state IS NOT new.state BEGIN
    UPDATE sweep_counts SET n = n - 1 WHERE sweep_id = old.sweep_id AND state = old.state;
    INSERT INTO sweep_counts (sweep_id, state, n) VALUES (new.sweep_id, new.state, 1)
      ON CONFLICT (sweep_id, state) DO UPDATE SET n = n + 1;
  END;
  CREATE TABLE job_exclusions (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    PRIMARY KEY (job_id, node_id)
  ) WITHOUT ROWID;
  INSERT OR IGNORE INTO job_exclusions (job_id, node_id)
    SELECT j.id, x.value FROM jobs j, json_each(j.excluded_nodes) x WHERE j.excluded_nodes != '[]' AND j.state IN ('queued', 'leased');
  ALTER TABLE jobs DROP COLUMN excluded_nodes;
  CREATE TRIGGER jobs_final_exclusions AFTER UPDATE OF state ON jobs WHEN new.state IN ('done', 'skipped', 'failed', 'cancelled') BEGIN
    DELETE FROM job_exclusions WHERE job_id = new.id;
  END;
  CREATE INDEX jobs_vram ON jobs (sweep_id, state, min_vram_mb);
  CREATE INDEX jobs_sweep_finished ON jobs (sweep_id, finished_at) WHERE state IN ('done', 'skipped');
  `,
  // Every lookup by image is of a finished job (an upscale's source, the
  // gallery, "announced before?"): indexing render keys only once a job ends
  // keeps a 100,000-job submit from inserting 100,000 random keys into one
  // ever-growing index (what made each submit slower than the last).
  `
  DROP INDEX jobs_render_key;
  CREATE INDEX jobs_render_key_finished ON jobs (render_key) WHERE state IN ('done', 'skipped');
  `,
  // Webhooks (issue 16; the farm's, until there are users). A delivery row is
  // written in the transaction that writes its event's outbox row, so a crash
  // loses none; every attempt is kept for GET /api/webhooks/:id/deliveries.
  `
  CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events_json TEXT NOT NULL,
    secret TEXT NOT NULL,
    format TEXT NOT NULL,           -- json | ntfy | discord | slack
    created_at INTEGER NOT NULL
  );
  CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    data_json TEXT NOT NULL,
    state TEXT NOT NULL,            -- pending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (webhook_id, event_id)
  );
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE state != 'pending';
  CREATE TABLE webhook_attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
  ) WITHOUT ROWID;
  `,
  // Registry models (issue 14): the content hash a sweep's model name meant at
  // submit (so a later re-add under the name changes no running sweep) and
  // its size (the scheduler's fetch-time estimate); '' and 0 for models known
  // to nodes only by name. Each job carries the hash to its node.
  `
  ALTER TABLE sweeps ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
  ALTER TABLE sweeps ADD COLUMN model_bytes INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
  `,
  // People and keys (issue 16): users (admin flag, fair-share weight, daily
  // image quota) and their API keys (SHA-256 hashes only). Everything a user
  // makes has an owner; rows from before are the local user's. Each user's
  // running job count is kept by a trigger in the same transaction as every
  // lease change, so the scheduler's user share reads a counter, not jobs.
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    admin INTEGER NOT NULL DEFAULT 0,
    weight REAL NOT NULL DEFAULT 1,
    quota_images INTEGER,           -- images a UTC day; NULL: no quota
    running INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  INSERT INTO users (name, admin, weight, running, created_at) VALUES ('local', 1, 1, (SELECT COUNT(*) FROM jobs WHERE state = 'leased'), 0);
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX api_keys_user ON api_keys (user) WHERE revoked_at IS NULL;
  ALTER TABLE sweeps ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
  CREATE INDEX sweeps_owner ON sweeps (owner, created_at);
  ALTER TABLE webhooks ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
  CREATE TABLE wildcard_owners (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TRIGGER jobs_user_running AFTER UPDATE OF state ON jobs WHEN (old.state = 'leased') != (new.state = 'leased') BEGIN
    UPDATE users SET running = running + (CASE WHEN new.state = 'leased' THEN 1 ELSE -1 END)
     WHERE name = (SELECT owner FROM sweeps WHERE id = new.sweep_id);
  END;
  `,
  // Share links (issue 15, store/shares.ts): a frozen list of images per
  // share, shown to whoever holds its signed token until it expires; deleting
  // the row revokes it. Owned by the local user until users own shares.
  `
  CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT 'local',
    title TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX shares_owner ON shares (owner, created_at);
  CREATE TABLE share_images (
    share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    render_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (share_id, render_key)
  ) WITHOUT ROWID;
  `,
  // What a night cost (issue 16, store/costs.ts): each render's GPU time and
  // measured energy, one row per job and node (a report sent again counts
  // once; energy_joules NULL = not measured), and sums per sweep and node and
  // per node, kept by a trigger in the same transaction as the row, so a
  // sweep's figures and /metrics read a few rows, never a sweep's jobs.
  `
  CREATE TABLE job_costs (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    sweep_id TEXT NOT NULL,
    gpu_ms INTEGER NOT NULL,
    energy_joules REAL,
    gpu_name TEXT NOT NULL,
    driver_version TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (job_id, node_id)
  ) WITHOUT ROWID;
  CREATE TABLE sweep_costs (
    sweep_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    renders INTEGER NOT NULL DEFAULT 0,
    gpu_ms INTEGER NOT NULL DEFAULT 0,
    measured_renders INTEGER NOT NULL DEFAULT 0,
    energy_joules REAL NOT NULL DEFAULT 0,
    gpu_name TEXT NOT NULL DEFAULT '',
    driver_version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sweep_id, node_id)
  ) WITHOUT ROWID;
  CREATE TABLE node_costs (
    node_id TEXT PRIMARY KEY,
    renders INTEGER NOT NULL DEFAULT 0,
    gpu_ms INTEGER NOT NULL DEFAULT 0,
    measured_renders INTEGER NOT NULL DEFAULT 0,
    energy_joules REAL NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TRIGGER job_costs_sums AFTER INSERT ON job_costs BEGIN
    INSERT INTO sweep_costs (sweep_id, node_id, renders, gpu_ms, measured_renders, energy_joules, gpu_name, driver_version)
      VALUES (new.sweep_id, new.node_id, 1, new.gpu_ms, new.energy_joules IS NOT NULL, COALESCE(new.energy_joules, 0), new.gpu_name, new.driver_version)
      ON CONFLICT (sweep_id, node_id) DO UPDATE SET renders = renders + 1, gpu_ms = gpu_ms + excluded.gpu_ms,
        measured_renders = measured_renders + excluded.measured_renders, energy_joules = energy_joules + excluded.energy_joules,
        gpu_name = excluded.gpu_name, driver_version = excluded.driver_version;
    INSERT INTO node_costs (node_id, renders, gpu_ms, measured_renders, energy_joules)
      VALUES (new.node_id, 1, new.gpu_ms, new.energy_joules IS NOT NULL, COALESCE(new.energy_joules, 0))
      ON CONFLICT (node_id) DO UPDATE SET renders = renders + 1, gpu_ms = gpu_ms + excluded.gpu_ms,
        measured_renders = measured_renders + excluded.measured_renders, energy_joules = energy_joules + excluded.energy_joules;
  END;
  `,
  // The pick's per-floor probe (scheduler.ts): a sweep's queued jobs of one
  // VRAM floor in index order, so a card that fits only some sizes finds its
  // first job without walking past the jobs it cannot take.
  `
  DROP INDEX jobs_vram;
  CREATE INDEX jobs_vram ON jobs (sweep_id, state, min_vram_mb, idx);
  `,
  // Dispatch at scale (issue 12): what one node holds, without walking every leased job (heldCount after each result).
  `
  CREATE INDEX jobs_leased_node ON jobs (node_id) WHERE state = 'leased';
  `,
];

/** SQLite errors that a later retry may not meet (busy, locked, disk full, I/O): retry the work, do not drop it. */
export function isTransientDbError(err: unknown): boolean {
  return err instanceof Database.SqliteError && /^SQLITE_(BUSY|LOCKED|FULL|IOERR|NOMEM|PROTOCOL)/.test(err.code);
}

export function openDb(file: string): DB {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/** Runs the migrations a file has not had yet, each in its own transaction (up to `target`: tests of a migration stop before it). */
export function migrate(db: DB, target = MIGRATIONS.length): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < target; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
