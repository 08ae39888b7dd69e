/**
 * Simulated gpu-nodes for bench/scale.ts: N Connect streams in one process,
 * each behaving like a one-slot node on the wire — register, heartbeat at the
 * interval the coordinator asks for (with its running jobs), "render" each
 * job for params.simMs (0: at once), report it completed. No pixels, no
 * uploads: bench/scale.ts stores each job's objects beforehand, so the
 * coordinator's storage check of each report finds them.
 *   scale-nodes.ts ADDRESS FIRST COUNT     ids sim-FIRST … sim-(FIRST+COUNT-1); until SIGTERM
 */
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, createClient, NodeService, type ConnectRequest, type ConnectResponse } from '@nightshift/proto';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';

const [address, firstText, countText] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
// Several channels, so that 100 streams do not all share one HTTP/2 connection.
const clients = Array.from({ length: Math.ceil(count / 25) }, () =>
  createClient(NodeService, address!, grpc.credentials.createInsecure(), { 'grpc.keepalive_time_ms': 5_000, 'grpc.keepalive_timeout_ms': 5_000, 'grpc.use_local_subchannel_pool': 1 }),
);
type Msg = NonNullable<MessageInitShape<typeof ConnectRequestSchema>['msg']>;
let registered = 0;

for (let i = 0; i < count; i++) {
  const nodeId = `sim-${first + i}`;
  const stream = clients[Math.floor(i / 25)]!.connect() as grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
  const write = (msg: Msg) => stream.write(create(ConnectRequestSchema, { msg }));
  const running = new Set<string>();
  const queue: { jobId: string; renderKey: string; ms: number }[] = [];
  let busy = false;
  const next = () => {
    if (busy) return;
    const job = queue.shift();
    if (!job) return;
    busy = true;
    const finish = () => {
      running.delete(job.jobId);
      write({ case: 'completed', value: { jobId: job.jobId, renderKey: job.renderKey, imageKey: `images/${job.renderKey}.png`, thumbKey: `thumbs/${job.renderKey}.webp`, renderMs: job.ms } });
      busy = false;
      next();
    };
    if (job.ms > 0) setTimeout(finish, job.ms);
    else setImmediate(finish);
  };
  write({ case: 'register', value: { nodeId, name: nodeId, capabilities: { gpuName: 'sim', vramMb: 24_576n, backends: ['procedural'], models: [PROCEDURAL_MODEL], slots: 1 } } });
  stream.on('data', (res: ConnectResponse) => {
    const m = res.msg;
    if (m.case === 'registered') {
      registered++;
      if (registered === count) console.log(JSON.stringify({ registered }));
      setInterval(() => write({ case: 'heartbeat', value: { runningJobIds: [...running] } }), m.value.heartbeatIntervalMs || 2_000).unref();
    } else if (m.case === 'assign') {
      const a = m.value;
      const ms = Number((JSON.parse(a.paramsJson || '{}') as { simMs?: number }).simMs ?? 0);
      running.add(a.jobId);
      queue.push({ jobId: a.jobId, renderKey: a.renderKey, ms });
      next();
    } else if (m.case === 'cancel') {
      running.delete(m.value.jobId);
    }
  });
  stream.on('error', () => {});
}

process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
