/**
 * The PostgreSQL engine's schema: the SQLite tables of db.ts that the job
 * lifecycle uses, in PostgreSQL types (times are BIGINT ms, like SQLite's),
 * migrated append-only like db.ts. Replicas starting together migrate once:
 * each migration runs under a transaction-scoped advisory lock.
 *
 * Counters: statement-level triggers with transition tables keep
 * `sweep_counts` equal to the jobs' states in the same transaction as every
 * insert and state change. One upsert per (sweep, state) per statement (a
 * 100,000-job cancel or insert batch is one row update, not 100,000), taken
 * in (sweep, state) order so concurrent statements lock counter rows in one
 * order and cannot deadlock on them.
 */
import type pg from 'pg';

/** The advisory-lock namespace (first key) of this engine: migrations and duties. */
export const LOCK_NAMESPACE = 0x4e534654; // "NSFT"
export const MIGRATION_LOCK = 0;
/** The advisory-lock namespace of sweeps stored in parts (postgres-sweep-parts.ts), one key per sweep: apart from the duties' session locks. */
export const PARTS_LOCK_NAMESPACE = LOCK_NAMESPACE + 1;
/** The LISTEN/NOTIFY channel of wake-ups; payloads 'jobs' and 'outbox'. */
export const WAKE_CHANNEL = 'nightshift_wake';
/** The channel of changes live clients follow; payloads 'sweep:<id>' and 'node:<status>:<id>'. */
export const CHANGES_CHANNEL = 'nightshift_changes';

export const MIGRATIONS = [
  `
  CREATE TABLE sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    kind TEXT NOT NULL DEFAULT 'render',
    model TEXT NOT NULL DEFAULT ''
  );
  CREATE INDEX sweeps_active ON sweeps (priority DESC, created_at, id) WHERE status IN ('queued', 'running');
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL REFERENCES sweeps(id),
    idx INTEGER NOT NULL,
    render_key TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed BIGINT NOT NULL,
    params_json TEXT NOT NULL,
    axes_json TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL,            -- queued | leased | done | skipped | failed | cancelled
    node_id TEXT,
    lease_expires_at BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    log_tail TEXT,
    image_key TEXT,
    thumb_key TEXT,
    render_ms INTEGER,
    started_at BIGINT,
    finished_at BIGINT,
    kind TEXT NOT NULL DEFAULT 'render',
    source_key TEXT,
    min_vram_mb INTEGER NOT NULL DEFAULT 0,
    copy_node_id TEXT,
    copy_lease_expires_at BIGINT,
    result_model TEXT,
    announced SMALLINT NOT NULL DEFAULT 0,
    prev_node_id TEXT,
    UNIQUE (sweep_id, idx)
  );
  -- The pick walks a sweep's queue in index order; the VRAM floor is one probe.
  CREATE INDEX jobs_queued ON jobs (sweep_id, idx) WHERE state = 'queued';
  CREATE INDEX jobs_vram ON jobs (sweep_id, min_vram_mb) WHERE state = 'queued';
  CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'leased';
  CREATE INDEX jobs_holder ON jobs (node_id) WHERE state = 'leased';
  CREATE INDEX jobs_render_key_finished ON jobs (render_key) WHERE state IN ('done', 'skipped');
  CREATE INDEX jobs_sweep_finished ON jobs (sweep_id, finished_at) WHERE state IN ('done', 'skipped');
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    capabilities_json TEXT NOT NULL,
    status TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    connected_at BIGINT NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE node_tokens (
    node_id TEXT PRIMARY KEY,
    token_fingerprint TEXT NOT NULL,
    bound_at BIGINT NOT NULL
  );
  CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT,
    -- A replica publishing a row claims it until then; a lapsed claim (its replica died) is taken again.
    claimed_until BIGINT
  );
  CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
  CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
  CREATE TABLE sweep_counts (
    sweep_id TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, state)
  );
  CREATE TABLE job_exclusions (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    PRIMARY KEY (job_id, node_id)
  );
  CREATE TABLE sweep_blocklist (
    sweep_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    blocked SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, node_id)
  );
  CREATE TABLE results (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    skipped SMALLINT NOT NULL,
    accepted SMALLINT NOT NULL,
    copy SMALLINT NOT NULL,
    at BIGINT NOT NULL
  );
  CREATE INDEX results_job ON results (job_id);
  CREATE INDEX results_at ON results (at);

  CREATE FUNCTION jobs_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO sweep_counts AS c (sweep_id, state, n)
      SELECT sweep_id, state, COUNT(*) FROM new_rows GROUP BY sweep_id, state ORDER BY sweep_id, state
      ON CONFLICT (sweep_id, state) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_insert_counts AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_inserts();

  CREATE FUNCTION jobs_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO sweep_counts AS c (sweep_id, state, n)
      SELECT sweep_id, state, SUM(d) FROM (
          SELECT o.sweep_id, o.state, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.state <> n.state
          UNION ALL
          SELECT n.sweep_id, n.state, 1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.state <> n.state
        ) delta
       GROUP BY sweep_id, state HAVING SUM(d) <> 0
       ORDER BY sweep_id, state
      ON CONFLICT (sweep_id, state) DO UPDATE SET n = c.n + excluded.n;
    -- A final job's exclusions go: they are kept only while it can still run.
    DELETE FROM job_exclusions x USING new_rows n
     WHERE x.job_id = n.id AND n.state IN ('done', 'skipped', 'failed', 'cancelled');
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_state_counts AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_states();
  `,
  // Parity with the SQLite Store (issue 12): registry models (rule 4 of the
  // pick), people and their fair share (users.running kept by a trigger, as
  // db.ts does), straggler copies found by index, and wake-ups between
  // replicas (NOTIFY at commit when jobs are queued or outbox rows written).
  `
  ALTER TABLE sweeps ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
  ALTER TABLE sweeps ADD COLUMN model_bytes BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE sweeps ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
  CREATE INDEX sweeps_owner ON sweeps (owner, created_at);
  ALTER TABLE jobs ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
  CREATE INDEX jobs_copy ON jobs (copy_node_id) WHERE copy_node_id IS NOT NULL;
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    admin SMALLINT NOT NULL DEFAULT 0,
    weight DOUBLE PRECISION NOT NULL DEFAULT 1,
    quota_images INTEGER,
    running INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
  );
  INSERT INTO users (name, admin, weight, running, created_at) VALUES ('local', 1, 1, (SELECT COUNT(*) FROM jobs WHERE state = 'leased'), 0);
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX api_keys_user ON api_keys (user_name) WHERE revoked_at IS NULL;

  -- One update per owner whose running count changed, in name order (no deadlock between statements).
  CREATE FUNCTION jobs_count_user_running() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE r RECORD;
  BEGIN
    FOR r IN
      SELECT s.owner, SUM(CASE WHEN n.state = 'leased' THEN 1 ELSE -1 END) AS d
        FROM old_rows o JOIN new_rows n ON n.id = o.id JOIN sweeps s ON s.id = n.sweep_id
       WHERE (o.state = 'leased') <> (n.state = 'leased')
       GROUP BY s.owner HAVING SUM(CASE WHEN n.state = 'leased' THEN 1 ELSE -1 END) <> 0
       ORDER BY s.owner
    LOOP
      UPDATE users SET running = running + r.d WHERE name = r.owner;
    END LOOP;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_user_running AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_user_running();

  -- NOTIFY is delivered at commit (never for a rolled-back change), once per distinct payload per transaction.
  CREATE FUNCTION nightshift_wake() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${WAKE_CHANNEL}', TG_ARGV[0]);
    RETURN NULL;
  END $$;
  CREATE TRIGGER outbox_wake AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION nightshift_wake('outbox');
  CREATE TRIGGER jobs_insert_wake AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION nightshift_wake('jobs');
  CREATE FUNCTION jobs_requeued_wake() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.state = 'queued' AND o.state <> 'queued') THEN
      PERFORM pg_notify('${WAKE_CHANNEL}', 'jobs');
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_requeued_wake AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_requeued_wake();
  `,
  // What a night cost (store/costs.ts) and share links (store/shares.ts), as db.ts has them.
  `
  CREATE TABLE job_costs (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    sweep_id TEXT NOT NULL,
    gpu_ms BIGINT NOT NULL,
    energy_joules DOUBLE PRECISION,
    gpu_name TEXT NOT NULL,
    driver_version TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_id, node_id)
  );
  CREATE TABLE sweep_costs (
    sweep_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    renders INTEGER NOT NULL DEFAULT 0,
    gpu_ms BIGINT NOT NULL DEFAULT 0,
    measured_renders INTEGER NOT NULL DEFAULT 0,
    energy_joules DOUBLE PRECISION NOT NULL DEFAULT 0,
    gpu_name TEXT NOT NULL DEFAULT '',
    driver_version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sweep_id, node_id)
  );
  CREATE TABLE node_costs (
    node_id TEXT PRIMARY KEY,
    renders INTEGER NOT NULL DEFAULT 0,
    gpu_ms BIGINT NOT NULL DEFAULT 0,
    measured_renders INTEGER NOT NULL DEFAULT 0,
    energy_joules DOUBLE PRECISION NOT NULL DEFAULT 0
  );
  CREATE FUNCTION job_costs_sums() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO sweep_costs AS c (sweep_id, node_id, renders, gpu_ms, measured_renders, energy_joules, gpu_name, driver_version)
      VALUES (NEW.sweep_id, NEW.node_id, 1, NEW.gpu_ms, (NEW.energy_joules IS NOT NULL)::int, COALESCE(NEW.energy_joules, 0), NEW.gpu_name, NEW.driver_version)
      ON CONFLICT (sweep_id, node_id) DO UPDATE SET renders = c.renders + 1, gpu_ms = c.gpu_ms + excluded.gpu_ms,
        measured_renders = c.measured_renders + excluded.measured_renders, energy_joules = c.energy_joules + excluded.energy_joules,
        gpu_name = excluded.gpu_name, driver_version = excluded.driver_version;
    INSERT INTO node_costs AS c (node_id, renders, gpu_ms, measured_renders, energy_joules)
      VALUES (NEW.node_id, 1, NEW.gpu_ms, (NEW.energy_joules IS NOT NULL)::int, COALESCE(NEW.energy_joules, 0))
      ON CONFLICT (node_id) DO UPDATE SET renders = c.renders + 1, gpu_ms = c.gpu_ms + excluded.gpu_ms,
        measured_renders = c.measured_renders + excluded.measured_renders, energy_joules = c.energy_joules + excluded.energy_joules;
    RETURN NULL;
  END $$;
  CREATE TRIGGER job_costs_sums AFTER INSERT ON job_costs FOR EACH ROW EXECUTE FUNCTION job_costs_sums();

  CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT 'local',
    title TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX shares_owner ON shares (owner, created_at);
  CREATE INDEX shares_expires ON shares (expires_at);
  CREATE TABLE share_images (
    share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    render_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (share_id, render_key)
  );
  `,
  // Nodes know their replica (the application_name of the engine they are
  // connected through), so a replica starting marks offline only the nodes of
  // replicas that are gone; webhooks and their deliveries (store/webhooks.ts,
  // written with their outbox row); wildcard list owners; the indexes the
  // listings and retention read.
  `
  ALTER TABLE nodes ADD COLUMN replica TEXT NOT NULL DEFAULT '';
  CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events_json TEXT NOT NULL,
    secret TEXT NOT NULL,
    format TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local'
  );
  CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    data_json TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (webhook_id, event_id)
  );
  CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
  CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE state <> 'pending';
  CREATE TABLE webhook_attempts (
    delivery_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    at BIGINT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
  );
  CREATE TABLE wildcard_owners (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL
  );
  CREATE INDEX wildcard_owners_owner ON wildcard_owners (owner, name);
  CREATE INDEX sweeps_newest ON sweeps (created_at DESC, id COLLATE "C");
  `,
  // Which registry models each node holds, farm-wide (engine.ts's ModelHolderEngine).
  `
  CREATE TABLE node_models (
    node_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (node_id, hash)
  );
  `,
  // Changes live clients follow (engine.ts's subscribeChanges): a sweep whose
  // row or jobs' states changed, once per sweep per transaction (NOTIFY folds
  // equal payloads), at commit. Node changes are notified by postgres-nodes.ts.
  `
  CREATE FUNCTION sweeps_changed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${CHANGES_CHANNEL}', 'sweep:' || id) FROM (SELECT DISTINCT id FROM new_rows) s;
    RETURN NULL;
  END $$;
  CREATE TRIGGER sweeps_insert_changed AFTER INSERT ON sweeps REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sweeps_changed();
  CREATE TRIGGER sweeps_update_changed AFTER UPDATE ON sweeps REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sweeps_changed();
  CREATE FUNCTION jobs_changed_sweeps() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${CHANGES_CHANNEL}', 'sweep:' || sweep_id)
       FROM (SELECT DISTINCT n.sweep_id FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE o.state <> n.state) s;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_changed_sweeps AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_changed_sweeps();
  `,
  // Webhook deliveries claimed by the replica sending them, as outbox rows are (postgres-webhooks.ts's claimDeliveries):
  // a claim lapses, so a dead replica's deliveries are sent by another.
  `
  ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT;
  `,
  // Secrets every replica must share (the share links' signing key): made once by whichever replica asks first.
  `
  CREATE TABLE shared_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL, created_at BIGINT NOT NULL);
  `,
  // A sweep's jobs by state in index order (its failed jobs on the sweep page, the jobs API's state filter):
  // without it each such read walked all of the sweep's jobs (12 ms at 100,000 queued).
  `
  CREATE INDEX jobs_sweep_state ON jobs (sweep_id, state, idx);
  `,
  // Jobs' sweeps checked once per statement instead of once per row (issue 12, a 100,000-job sweep
  // accepted in under 1 s): the foreign key's row trigger was 260 of the ~830 ms that storing one took
  // (bench/submit-breakdown-pg.ts). The same rule and error (SQLSTATE 23503): an inserted job's sweep
  // exists and is locked against deletion until commit (FOR KEY SHARE, as the key's check locked it,
  // in id order), a job never moves to a sweep that does not exist, and a sweep with jobs is neither
  // deleted nor renamed.
  `
  ALTER TABLE jobs DROP CONSTRAINT jobs_sweep_id_fkey;
  CREATE FUNCTION jobs_sweeps_exist() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    wanted TEXT[];
    found INTEGER;
  BEGIN
    SELECT array_agg(sweep_id ORDER BY sweep_id) INTO wanted FROM (SELECT DISTINCT sweep_id FROM new_rows) n;
    SELECT COUNT(*) INTO found FROM (SELECT 1 FROM sweeps WHERE id = ANY (wanted) ORDER BY id FOR KEY SHARE) s;
    IF found < COALESCE(cardinality(wanted), 0) THEN
      RAISE EXCEPTION 'insert or update on table "jobs" violates foreign key constraint "jobs_sweep_id_fkey"'
        USING ERRCODE = 'foreign_key_violation', TABLE = 'jobs', CONSTRAINT = 'jobs_sweep_id_fkey';
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_sweeps_exist AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_sweeps_exist();
  CREATE FUNCTION jobs_sweep_moved() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM 1 FROM sweeps WHERE id = NEW.sweep_id FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'insert or update on table "jobs" violates foreign key constraint "jobs_sweep_id_fkey"'
        USING ERRCODE = 'foreign_key_violation', TABLE = 'jobs', CONSTRAINT = 'jobs_sweep_id_fkey';
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_sweep_moved AFTER UPDATE OF sweep_id ON jobs
    FOR EACH ROW WHEN (OLD.sweep_id IS DISTINCT FROM NEW.sweep_id) EXECUTE FUNCTION jobs_sweep_moved();
  CREATE FUNCTION sweeps_keep_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF EXISTS (SELECT 1 FROM jobs WHERE sweep_id = OLD.id) THEN
      RAISE EXCEPTION 'update or delete on table "sweeps" violates foreign key constraint "jobs_sweep_id_fkey" on table "jobs"'
        USING ERRCODE = 'foreign_key_violation', TABLE = 'sweeps', CONSTRAINT = 'jobs_sweep_id_fkey';
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER sweeps_keep_jobs_deleted AFTER DELETE ON sweeps FOR EACH ROW EXECUTE FUNCTION sweeps_keep_jobs();
  CREATE TRIGGER sweeps_keep_jobs_renamed AFTER UPDATE OF id ON sweeps
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION sweeps_keep_jobs();
  `,
  // Counters in shards (issue 12, 1,000 nodes on PostgreSQL): every lease and result changed one row per
  // (sweep, state) and one per owner, and held it until COMMIT, so each such transaction waited for the one
  // before it (sampled at 1,000 nodes: most active sessions waited on a transaction lock in a completion).
  // Each session now adds to its own shard (its backend's pid mod 16) and readers sum the shards. A shard's
  // own n may be negative (leased in one session, finished in another); only the sum means anything.
  // sweep_counts stays, as a view of the sums, so replicas of the version before (upgraded one at a time)
  // still read one row per (sweep, state). users.running becomes user_running for the same reason (kept, as
  // before, only for owners with a users row); the column stays for those replicas, no longer kept (their
  // fair share is off until they are replaced), for a later migration to drop.
  `
  ALTER TABLE sweep_counts RENAME TO sweep_count_shards;
  ALTER TABLE sweep_count_shards ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
  ALTER TABLE sweep_count_shards DROP CONSTRAINT sweep_counts_pkey;
  ALTER TABLE sweep_count_shards ADD PRIMARY KEY (sweep_id, state, shard);
  CREATE VIEW sweep_counts AS SELECT sweep_id, state, SUM(n)::int AS n FROM sweep_count_shards GROUP BY sweep_id, state;
  CREATE OR REPLACE FUNCTION jobs_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO sweep_count_shards AS c (sweep_id, state, shard, n)
      SELECT sweep_id, state, pg_backend_pid() % 16, COUNT(*) FROM new_rows GROUP BY sweep_id, state ORDER BY sweep_id, state
      ON CONFLICT (sweep_id, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
  END $$;
  CREATE OR REPLACE FUNCTION jobs_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO sweep_count_shards AS c (sweep_id, state, shard, n)
      SELECT sweep_id, state, pg_backend_pid() % 16, SUM(d) FROM (
          SELECT o.sweep_id, o.state, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.state <> n.state
          UNION ALL
          SELECT n.sweep_id, n.state, 1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.state <> n.state
        ) delta
       GROUP BY sweep_id, state HAVING SUM(d) <> 0
       ORDER BY sweep_id, state
      ON CONFLICT (sweep_id, state, shard) DO UPDATE SET n = c.n + excluded.n;
    -- A final job's exclusions go: they are kept only while it can still run.
    DELETE FROM job_exclusions x USING new_rows n
     WHERE x.job_id = n.id AND n.state IN ('done', 'skipped', 'failed', 'cancelled');
    RETURN NULL;
  END $$;
  CREATE TABLE user_running (
    owner TEXT NOT NULL,
    shard SMALLINT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (owner, shard)
  );
  INSERT INTO user_running (owner, shard, n) SELECT name, 0, running FROM users WHERE running <> 0;
  CREATE OR REPLACE FUNCTION jobs_count_user_running() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO user_running AS u (owner, shard, n)
      SELECT s.owner, pg_backend_pid() % 16, SUM(CASE WHEN n.state = 'leased' THEN 1 ELSE -1 END)
        FROM old_rows o JOIN new_rows n ON n.id = o.id JOIN sweeps s ON s.id = n.sweep_id
       WHERE (o.state = 'leased') <> (n.state = 'leased') AND EXISTS (SELECT 1 FROM users x WHERE x.name = s.owner)
       GROUP BY s.owner HAVING SUM(CASE WHEN n.state = 'leased' THEN 1 ELSE -1 END) <> 0
       ORDER BY s.owner
      ON CONFLICT (owner, shard) DO UPDATE SET n = u.n + excluded.n;
    RETURN NULL;
  END $$;
  `,
  // Big sweeps stored in parts (postgres-sweep-parts.ts): a row while a replica stores one, naming that replica
  // (its application_name: another replica ends the sweep once that name has no session left) and, once its
  // queued jobs were failed for want of a capable node, why (its later parts are failed with it). Replicas older
  // than this one neither take the sweep's parts lock in a cancel nor record that reason: upgrade them all first.
  `
  CREATE TABLE sweeps_storing (
    sweep_id TEXT PRIMARY KEY,
    replica TEXT NOT NULL,
    failed TEXT
  );
  `,
  // A lease is no longer notified in the pick's own transaction: each NOTIFY serialised the picks' commits
  // (postgres-lease-notices.ts, which notifies leases a sweep at a time after they commit). Every other change
  // of a job's state still is. Replicas older than this one leave their own leases unheard by live clients
  // until the sweep's next result: a running count a little behind while they are upgraded.
  `
  CREATE OR REPLACE FUNCTION jobs_changed_sweeps() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${CHANGES_CHANNEL}', 'sweep:' || sweep_id)
       FROM (SELECT DISTINCT n.sweep_id FROM new_rows n JOIN old_rows o ON o.id = n.id
              WHERE o.state <> n.state AND NOT (o.state = 'queued' AND n.state = 'leased')) s;
    RETURN NULL;
  END $$;
  `,
  // A batch of picks (postgres-pick.ts's PICK_MANY_SQL) asks, for each node in it, whether it is blocklisted for an
  // open sweep or excluded from any job: by node, which neither table's key begins with.
  `
  CREATE INDEX sweep_blocklist_node ON sweep_blocklist (node_id) WHERE blocked = 1;
  CREATE INDEX job_exclusions_node ON job_exclusions (node_id);
  `,
];

/** Runs the migrations the database has not had yet, each in its own transaction, once across replicas. */
export async function migratePostgres(client: pg.ClientBase): Promise<number> {
  let applied = 0;
  for (;;) {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS nightshift_schema (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM nightshift_schema');
      const version = rows[0]?.version ?? 0;
      if (version >= MIGRATIONS.length) {
        await client.query('COMMIT');
        return applied;
      }
      await client.query(MIGRATIONS[version]!);
      if (rows.length) await client.query('UPDATE nightshift_schema SET version = $1', [version + 1]);
      else await client.query('INSERT INTO nightshift_schema (version) VALUES ($1)', [version + 1]);
      await client.query('COMMIT');
      applied++;
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
  }
}
