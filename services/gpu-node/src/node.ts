/** Wires a gpu-node: backends, storage, worker and the coordinator connection. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { grpcClientCredentials, storageFromConfig, type Config, type Logger } from '@nightshift/common';
import type { Backend } from './backends/backend.js';
import { backendsFromEnv, nodeConfigFromEnv, type NodeConfig } from './backends/registry.js';
import { Connection } from './connection.js';
import { nvidiaSmiProbe } from './gpu-probe.js';
import { Schedule } from './schedule.js';
import { ScheduleGate, type GateState } from './schedule-gate.js';
import { Worker } from './worker.js';
import { NodeModels } from './model-pull.js';
import { modelSettingsFromEnv } from './model-settings.js';
import { parseFaults, withStorageFaults } from './faults.js';
import { createNodeMetrics, startNodeOpsServer } from './metrics.js';
import { PowerMeter } from './power-meter.js';
import { localGpus } from './provenance.js';
import { advertisedExecutionProvider } from './backends/onnx-capability.js';

export interface RunningNode {
  nodeId: string;
  worker: Worker;
  /** Registry models jobs need, pulled on demand (model-pull.ts). */
  models: NodeModels;
  connection: Connection;
  /** Whether the node takes work now (schedule, idleOnly, pause by hand). */
  gate: ScheduleGate;
  /** Port of /metrics, /healthz, /readyz (NIGHTSHIFT_NODE_METRICS_PORT), if enabled. */
  metricsPort: number | undefined;
  stop(): Promise<void>;
}

/** The node's backends: from the node config named by NIGHTSHIFT_NODE_CONFIG, else procedural only. */
export function defaultBackends(env: NodeJS.ProcessEnv = process.env): Map<string, Backend> {
  return backendsFromEnv(env);
}

/**
 * The node's clock, shifted for tests only: by NIGHTSHIFT_NODE_CLOCK_OFFSET_MS,
 * or by the number of milliseconds in the file NIGHTSHIFT_NODE_CLOCK_OFFSET_FILE
 * (read at each look, so a test moves the node past its window when it
 * chooses, instead of racing a wall-clock deadline).
 */
function nodeClock(env: NodeJS.ProcessEnv): () => number {
  const file = env.NIGHTSHIFT_NODE_CLOCK_OFFSET_FILE;
  if (file) {
    return () => {
      // A missing or half-written file reads as no offset: the clock never throws.
      let offset: number;
      try {
        offset = Number(readFileSync(file, 'utf8').trim());
      } catch {
        offset = 0;
      }
      return Date.now() + (Number.isFinite(offset) ? offset : 0);
    };
  }
  const offset = Number(env.NIGHTSHIFT_NODE_CLOCK_OFFSET_MS ?? 0);
  return Number.isFinite(offset) && offset !== 0 ? () => Date.now() + offset : Date.now;
}

function describeSleep(state: Exclude<GateState, { accepting: true }>): string {
  return state.untilLocal ? `sleeping until ${state.untilLocal}` : `sleeping (${state.detail})`;
}

export async function startNode(
  config: Config,
  log: Logger,
  givenBackends?: Map<string, Backend>,
  givenNodeConfig?: Pick<NodeConfig, 'schedule' | 'idleOnly' | 'onLeave'>,
): Promise<RunningNode> {
  // The node config file is read once, for the backends and the schedule alike.
  const fileConfig = givenBackends && givenNodeConfig ? undefined : nodeConfigFromEnv();
  const backends = givenBackends ?? backendsFromEnv(process.env, fileConfig);
  const nodeConfig = givenNodeConfig ?? fileConfig!;
  const nodeId = config.NIGHTSHIFT_NODE_ID ?? `${hostname()}-${process.pid}`;
  const storage = storageFromConfig(config);
  // Assigned below; the closures that read it only run once the node has started.
  let connection: Connection | undefined; // eslint-disable-line prefer-const
  const connected = () => connection?.connected ?? false;
  const metrics = createNodeMetrics(nodeId, () => worker.heldJobIds().length, connected);
  // What each job cost (JobCompleted.cost): energy where nvidia-smi reads the GPU's power, else "not measured".
  const meter = new PowerMeter({ gpu: await localGpus(), fallbackGpuName: config.NIGHTSHIFT_NODE_GPU, log });
  // Registry models, pulled from the bucket into the node's cache (NIGHTSHIFT_MODEL_CACHE, NIGHTSHIFT_MODEL_CACHE_GB).
  const models = new NodeModels({ settings: modelSettingsFromEnv(process.env, config.NIGHTSHIFT_DATA_DIR), storage, log });
  const worker = new Worker({
    nodeId,
    slots: config.NIGHTSHIFT_NODE_SLOTS,
    vramMb: config.NIGHTSHIFT_NODE_VRAM_MB,
    backends,
    storage: withStorageFaults(storage, parseFaults(process.env.NIGHTSHIFT_FAULTS)),
    models,
    log,
    meter,
    report: (r) => {
      metrics.observe(r);
      connection?.report(r);
    },
  });
  const tls = grpcClientCredentials(config);
  connection = new Connection({
    address: config.NIGHTSHIFT_COORDINATOR,
    credentials: tls.credentials,
    channelOptions: tls.options,
    keepaliveMs: config.NIGHTSHIFT_GRPC_KEEPALIVE_MS,
    nodeId,
    name: config.NIGHTSHIFT_NODE_NAME ?? nodeId,
    capabilities: {
      gpuName: config.NIGHTSHIFT_NODE_GPU,
      vramMb: config.NIGHTSHIFT_NODE_VRAM_MB,
      backends: [...backends.keys()],
      models: [...backends.values()].flatMap((b) => [...b.models]),
      slots: config.NIGHTSHIFT_NODE_SLOTS,
      executionProvider: await advertisedExecutionProvider(backends, log),
      driverVersion: meter.driverVersion,
    },
    token: config.NIGHTSHIFT_NODE_TOKEN,
    heldJobIds: () => worker.heldJobIds(),
    modelState: () => models.state(),
    // A job sent before the coordinator heard that the node left goes straight back.
    onAssign: (job) => {
      if (!worker.assign(job)) connection?.release([job.jobId]);
    },
    onCancel: (jobId) => worker.cancel(jobId),
    onSetPaused: (paused) => gate.setPaused(paused),
    log,
  });
  const gate = new ScheduleGate({
    ...(nodeConfig.schedule ? { schedule: Schedule.parse(nodeConfig.schedule) } : {}),
    ...(nodeConfig.idleOnly ? { probe: nvidiaSmiProbe({ onUnavailable: (why) => log.warn({ why }, 'idleOnly: cannot see other GPU programs, the GPU counts as idle') }) } : {}),
    clock: nodeClock(process.env),
    onChange: (state) => {
      if (state.accepting) {
        worker.rejoin();
        connection?.setAvailability(state);
        log.info('node takes work again');
        return;
      }
      const released = worker.leave(nodeConfig.onLeave);
      connection?.setAvailability(state, released);
      log.info({ reason: state.reason, detail: state.detail, until: state.untilMs ? new Date(state.untilMs).toISOString() : undefined, released: released.length, onLeave: nodeConfig.onLeave }, `node leaves the farm: ${describeSleep(state)}`);
    },
  });
  if (process.env.NIGHTSHIFT_FAULTS) log.warn({ faults: process.env.NIGHTSHIFT_FAULTS }, 'FAULT INJECTION ENABLED (tests only)');
  const ops = config.NIGHTSHIFT_NODE_METRICS_PORT === undefined ? undefined : await startNodeOpsServer(config.NIGHTSHIFT_HTTP_HOST, config.NIGHTSHIFT_NODE_METRICS_PORT, metrics, storage, connected, config.NIGHTSHIFT_METRICS_TOKEN);
  // Models kept from an earlier run are advertised from the first Register; a cache folder that cannot be read fails only the jobs that need one.
  await models.open().catch((err: unknown) => log.error({ err: String(err) }, 'model cache unusable: jobs on registry models will fail on this node'));
  worker.start();
  // The first look comes before registering: a node outside its hours never takes a job.
  await gate.start();
  connection.start();
  log.info({ nodeId, backends: [...backends.keys()], coordinator: config.NIGHTSHIFT_COORDINATOR, tls: !!config.NIGHTSHIFT_TLS_CA, metricsPort: ops?.port }, 'gpu-node started');
  return {
    nodeId,
    worker,
    models,
    connection,
    gate,
    metricsPort: ops?.port,
    async stop() {
      gate.stop();
      connection.close();
      await ops?.close();
      await worker.stop();
      meter.stop();
      // Generators still running (a stop mid-job) are killed with their process groups.
      await Promise.all([...backends.values()].map((b) => b.close?.()));
    },
  };
}
